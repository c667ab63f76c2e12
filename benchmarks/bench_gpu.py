"""GPU rows: images/s and MFU of ViT-B/16 I-JEPA and TC-JEPA, bf16 autocast, eager and compiled.

One prepared script for a machine with a CUDA device (``python benchmarks/bench_gpu.py``):
for each model and mode, a warm-up (which includes compilation), then the median of
timed rounds of ``--steps`` steps (synchronised); FLOPs of forward + backward from
``torch.utils.flop_counter``; MFU against the bf16 matmul rate measured in the same run
(and against the device's nominal dense bf16 peak when given with ``--nominal-tflops``).
``--device cpu --smoke`` checks the script itself on a CPU with a tiny model.
"""

from __future__ import annotations

import argparse
import time

import torch

from jepakit import build
from jepakit.text import TextFeatures

from _common import matmul_flops_per_s, median, record, step_flops, sync, table, train_step


def make(recipe: str, batch: int, device: str, smoke: bool, compile: bool, dtype: torch.dtype):
    torch.manual_seed(0)
    over: dict = {}
    if smoke:
        over = {
            "image_size": 32,
            "encoder": {"embed_dim": 64, "depth": 2, "num_heads": 2, "patch_size": 8},
            "predictor": {"embed_dim": 32, "depth": 2, "num_heads": 2},
            "masker": {"min_keep": 2},
        }
    if recipe.startswith("tc-jepa"):
        over["text_encoder"] = {"trainable": False}
        over["tokenizer"] = {"max_length": 16, "max_captions": 8}
    model = build(recipe, **over).to(device)
    size = model.config.image_size
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=g).to(device)
    masks = model.masker(batch, g).to(device)
    text = None
    if recipe.startswith("tc-jepa"):
        text = TextFeatures(
            torch.randn(batch, 8, 16, model.text_encoder.width, generator=g), torch.ones(batch, 8, 16, dtype=torch.bool)
        ).to(device)
    return train_step(model, images, masks, text, compile=compile, autocast=dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nominal-tflops", type=float, default=0.0, help="the device's dense bf16 peak, if known")
    parser.add_argument("--smoke", action="store_true", help="tiny models (checks the script on a CPU)")
    args = parser.parse_args()
    dtype = torch.bfloat16
    peak = matmul_flops_per_s(256 if args.smoke else 8192, dtype, args.device) / 1e12
    rows = []
    for recipe in ("ijepa", "tc-jepa"):
        for compile in (False, True):
            step = make(recipe, args.batch, args.device, args.smoke, compile, dtype)
            flops = step_flops(step, dtype)
            for _ in range(3):  # warm-up, compilation included
                step()
            times = []
            for _ in range(args.rounds):
                sync(args.device)
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    step()
                sync(args.device)
                times.append((time.perf_counter() - t0) / args.steps)
            t = median(times)
            achieved = flops / t / 1e12
            mem = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else float("nan")
            rows.append(
                (
                    recipe,
                    "compiled" if compile else "eager",
                    args.batch,
                    f"{args.batch / t:.0f}",
                    f"{t * 1000:.1f}",
                    f"{flops / 1e12:.2f}",
                    f"{achieved:.1f}",
                    f"{achieved / peak:.0%}",
                    f"{achieved / args.nominal_tflops:.0%}" if args.nominal_tflops else "-",
                    f"{mem:.1f}",
                )
            )
            del step
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu (smoke)"
    note = (
        f"{name}; ViT-B/16 at 224 px, predictor 6 x 384, TC-JEPA with N=8 S=16 cached text; bf16 autocast; "
        f"median of {args.rounds} rounds of {args.steps} steps; measured bf16 matmul peak {peak:.0f} TFLOP/s."
    )
    header = (
        "recipe",
        "mode",
        "batch",
        "images/s",
        "ms/step",
        "TFLOP/step",
        "TFLOP/s",
        "MFU vs measured peak",
        "MFU vs nominal",
        "peak GiB",
    )
    text = note + "\n\n" + table(header, rows)
    if args.smoke:
        print(text)
    else:
        record("GPU: images/s and MFU", text)


if __name__ == "__main__":
    main()
