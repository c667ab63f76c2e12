"""Text conditioning cost: TC-JEPA against I-JEPA at the same encoder, CPU, fp32.

For each encoder size, one training step (forward, backward, AdamW, EMA) of I-JEPA and
of TC-JEPA (sparse-xattn on every predictor layer) with N captions of S tokens, the
text either cached (precomputed ``TextFeatures``, as with a frozen encoder and
``TextCache``) or encoded every step by a frozen transformer text encoder. Steps of
all variants alternate in one process; peak memory is measured per variant in a
child process (max RSS growth over one step). Also the text-use check: on a tiny
TC-JEPA trained briefly on captioned toy images, the prediction loss with the true
captions against shuffled captions on the same batch.

Run: ``python benchmarks/bench_text.py [--sizes tiny small base] [--batch 8]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

from _common import alternate, median, record, table
from jepakit import build
from jepakit.text import TextFeatures, TokenBatch


def make_step(recipe: str, size: str, batch: int, n: int, s: int, cached: bool, seed: int = 0):
    """A closure running one training step of the variant, and its description."""
    torch.manual_seed(seed)
    overrides: dict = {}
    if recipe == "tc-jepa":
        overrides = {
            "tokenizer": {"max_length": s, "max_captions": n},
            "text_encoder": {"trainable": False},
        }
    model = build(f"{recipe}-{size}" if size != "base" else recipe, **overrides)
    opt = torch.optim.AdamW(model.param_groups(0.04), lr=1e-4)
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, 224, 224, generator=g)
    masks = model.masker(batch, g)
    text = None
    if recipe == "tc-jepa":
        mask = torch.ones(batch, n, s, dtype=torch.bool)
        mask[:, :, s // 2 :] = torch.rand(batch, n, s - s // 2, generator=g) < 0.5  # ragged captions
        mask = mask.cummin(-1).values
        if cached:
            text = TextFeatures(torch.randn(batch, n, s, model.text_encoder.width, generator=g), mask)
        else:
            text = TokenBatch(torch.randint(3, 1000, (batch, n, s), generator=g), mask)
    state = {"step": 0}

    def step() -> None:
        out = model(images, masks, text, step=state["step"])
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        model.update_target(state["step"])
        state["step"] += 1

    return step


def peak_memory_mb(args: list[str]) -> float:
    """Max RSS growth (MB) of one step of a variant, in a fresh child process."""
    code = (
        "import sys, json, resource; sys.path.insert(0, 'benchmarks'); import bench_text as b; "
        "a = json.loads(sys.argv[1]); step = b.make_step(*a); "
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; step(); "
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def variants(batch: int, size: str) -> dict[str, list]:
    v = {"I-JEPA": ["ijepa", size, batch, 0, 0, True]}
    for n, s in ((1, 16), (8, 16), (1, 64), (8, 64)):
        v[f"TC-JEPA N={n} S={s} cached"] = ["tc-jepa", size, batch, n, s, True]
    v["TC-JEPA N=8 S=16 text encoder"] = ["tc-jepa", size, batch, 8, 16, False]
    return v


def cost_table(sizes: list[str], batch: int, rounds: int) -> str:
    rows = []
    for size in sizes:
        specs = variants(batch, size)
        steps = {name: make_step(*spec) for name, spec in specs.items()}
        times = alternate(steps, rounds=rounds, repeats=1)
        base = median(times["I-JEPA"])
        mem = {name: peak_memory_mb(spec) for name, spec in specs.items()}
        for name in specs:
            t = median(times[name])
            rows.append(
                (
                    f"ViT-{size}",
                    name,
                    f"{t:.3f}",
                    f"{t / base:.2f}x",
                    f"{mem[name]:.0f}",
                    f"{mem[name] / mem['I-JEPA']:.2f}x",
                )
            )
        del steps
    header = ("encoder", "variant", "s / step", "vs I-JEPA", "peak MB (child RSS growth)", "memory vs I-JEPA")
    return table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "base"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    note = (
        f"224 px, batch {args.batch}, fp32, one step = forward + backward + AdamW + EMA; predictor as in the "
        f"recipes (6 x 384, Tiny 6 x 192), sparse-xattn on all 6 layers; median of {args.rounds} alternating rounds."
    )
    record("Text conditioning cost: TC-JEPA vs I-JEPA", note + "\n\n" + cost_table(args.sizes, args.batch, args.rounds))


if __name__ == "__main__":
    main()
