"""Training-step performance: jepakit against I-JEPA assembled from lightly's modules, MFU, scaling.

1. Side by side: one I-JEPA step (forward, backward, AdamW, EMA), ViT-Ti/16 at 224 px,
   batch 16, predictor 6 x 192, fp32 on the CPU; jepakit's model against the same
   model assembled from lightly (``MaskedVisionTransformerTIMM`` over a timm ViT as
   context and target encoder, ``IJEPAPredictorTIMM``, ``update_momentum``), both fed
   the same masks from lightly's ``IJEPAMaskCollator`` (so equal token counts), steps
   alternating in one process; peak memory per variant in a child process.
2. Model FLOP utilisation: FLOPs of one step from ``torch.utils.flop_counter`` divided by
   the measured step time, against the fp32 matmul peak measured in the same run.
3. Scaling: step time and memory against batch size, image size, predictor depth, and
   for TC-JEPA the caption count N and length S.

Run: ``python benchmarks/bench_train.py [--parts compare mfu scaling] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F

from _common import alternate, matmul_flops_per_s, median, peak_memory_mb, record, step_flops, table, train_step
from jepakit import build
from jepakit.masks.base import Masks

TINY = dict(encoder={"embed_dim": 192, "depth": 12, "num_heads": 3},
            predictor={"embed_dim": 192, "depth": 6, "num_heads": 3})


def lightly_masks(batch: int, image: int, patch: int, seed: int) -> tuple[list, list]:
    """Context and target index masks from lightly's collator with I-JEPA's settings."""
    from lightly.data.ijepa_collate import IJEPAMaskCollator

    torch.manual_seed(seed)  # the collator draws positions from the global generator
    collator = IJEPAMaskCollator(input_size=image, patch_size=patch, enc_mask_scale=(0.85, 1.0),
                                 pred_mask_scale=(0.15, 0.2), aspect_ratio=(0.75, 1.5), nenc=1, npred=4, min_keep=10)
    _, enc, pred = collator([torch.zeros(1)] * batch)
    return enc, pred


def as_masks(enc: list, pred: list, grid: tuple[int, int]) -> Masks:
    """lightly's per-block lists as one jepakit ``Masks`` (same indices, no padding)."""
    return Masks(context=enc[0], targets=torch.stack(pred, dim=1), grid=grid)


def jepakit_step(batch: int, image: int, pred_depth: int, seed: int = 0, masks: Masks | None = None,
                 recipe: str = "ijepa-tiny", n: int = 0, s: int = 0, compile: bool = False):
    """One training step of jepakit's model on fixed inputs (a closure)."""
    from jepakit.text import TextFeatures

    torch.manual_seed(seed)
    over = {"image_size": image, "encoder": dict(TINY["encoder"]),
            "predictor": {**TINY["predictor"], "depth": pred_depth}}
    if recipe.startswith("tc-jepa"):
        over["tokenizer"] = {"max_length": max(s, 1), "max_captions": max(n, 1)}
        over["text_encoder"] = {"trainable": False}
    model = build(recipe, **over)
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, image, image, generator=g)
    if masks is None:
        masks = model.masker(batch, g)
    text = None
    if recipe.startswith("tc-jepa"):
        text = TextFeatures(torch.randn(batch, n, s, model.text_encoder.width, generator=g),
                            torch.ones(batch, n, s, dtype=torch.bool))
    return train_step(model, images, masks, text, compile=compile)


def lightly_step(batch: int, image: int, pred_depth: int, seed: int = 0):
    """The same step assembled from lightly's I-JEPA modules over timm (as lightly's example)."""
    import timm
    from lightly.models import utils
    from lightly.models.modules.ijepa_timm import IJEPAPredictorTIMM
    from lightly.models.modules.masked_vision_transformer_timm import MaskedVisionTransformerTIMM

    torch.manual_seed(seed)
    vit = timm.create_model("vit_tiny_patch16_224", img_size=image, class_token=False, global_pool="avg",
                            num_classes=0, pretrained=False)
    encoder = MaskedVisionTransformerTIMM(vit=vit)
    target = copy.deepcopy(encoder).requires_grad_(False)
    predictor = IJEPAPredictorTIMM(num_patches=(image // 16) ** 2, depth=pred_depth, mlp_dim=192,
                                   predictor_embed_dim=192, num_heads=3)
    params = list(encoder.parameters()) + list(predictor.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.04)
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, image, image, generator=g)
    enc, pred = lightly_masks(batch, image, 16, seed)

    def step() -> None:
        with torch.no_grad():
            h = target.encode(images)
            h = F.layer_norm(h, (h.size(-1),))
            h = utils.apply_masks(h, pred)
            h = utils.repeat_interleave_batch(h, batch, repeat=len(enc))
        z = encoder.encode(images, idx_keep=enc[0])
        z = predictor(z, enc, pred)
        loss = F.smooth_l1_loss(z, h)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        utils.update_momentum(encoder, target, m=0.996)

    step.masks = (enc, pred)
    return step


def make_step(kind: str, *args):
    """A step by name, for ``peak_memory_mb`` (which rebuilds it in a child process)."""
    if kind == "lightly":
        return lightly_step(*args)
    if kind in ("jepakit-same-masks", "jepakit-compiled"):
        batch, image, depth, seed = args
        enc, pred = lightly_masks(batch, image, 16, seed)
        return jepakit_step(batch, image, depth, seed, masks=as_masks(enc, pred, (image // 16,) * 2),
                            compile=kind == "jepakit-compiled")
    return jepakit_step(*args)


def compare(rounds: int, batch: int = 16, image: int = 224, depth: int = 6) -> str:
    args = (batch, image, depth, 0)
    kinds = {"lightly (timm ViT + IJEPAPredictorTIMM)": "lightly", "jepakit, lightly's masks": "jepakit-same-masks",
             "jepakit, lightly's masks, torch.compile": "jepakit-compiled"}
    steps = {name: make_step(kind, *args) for name, kind in kinds.items()}
    times = alternate(steps, rounds=rounds, repeats=1)
    mem = {name: peak_memory_mb("bench_train", [kind, *args]) for name, kind in kinds.items()}
    base_t = median(times["lightly (timm ViT + IJEPAPredictorTIMM)"])
    base_m = mem["lightly (timm ViT + IJEPAPredictorTIMM)"]
    rows = [(name, f"{median(t):.3f}", f"{base_t / median(t):.2f}x", f"{mem[name]:.0f}",
             f"{mem[name] / base_m:.2f}x") for name, t in times.items()]
    enc, pred = next(iter(steps.values())).masks
    note = (f"ViT-Ti/16 at {image} px, batch {batch}, predictor {depth} x 192, fp32, one step = forward + backward "
            f"+ AdamW + EMA; both fed the same masks ({enc[0].shape[1]} context and 4 x {pred[0].shape[1]} target "
            f"patches per image); median of {rounds} alternating rounds; peak = RSS above rest during a warm step.")
    return note + "\n\n" + table(("implementation", "s / step", "speed vs lightly", "step peak MB",
                                  "memory vs lightly"), rows)


def mfu(rounds: int) -> str:
    peak = matmul_flops_per_s() / 1e9
    rows = []
    for name, batch, image, recipe in (("ViT-Ti/16 I-JEPA", 16, 224, "ijepa-tiny"),
                                       ("ViT-S/16 I-JEPA", 16, 224, "ijepa-small")):
        step = jepakit_step(batch, image, 6, recipe=recipe) if recipe == "ijepa-tiny" else _small_step(batch, image)
        flops = step_flops(step)
        t = median(alternate({"s": step}, rounds=rounds, repeats=1)["s"])
        rate = flops / t / 1e9
        rows.append((name, batch, f"{flops / 1e9:.1f}", f"{t:.3f}", f"{rate:.1f}", f"{peak:.1f}", f"{rate / peak:.0%}"))
    note = ("FLOPs of forward + backward from torch.utils.flop_counter (matmuls and attention); the peak is the best "
            "fp32 rate of a 1024^3 matmul measured in the same process; MFU = achieved / peak.")
    return note + "\n\n" + table(("model", "batch", "GFLOP / step", "s / step", "GFLOP/s", "matmul peak GFLOP/s",
                                  "MFU"), rows)


def _small_step(batch: int, image: int):
    torch.manual_seed(0)
    model = build("ijepa-small", image_size=image)
    images = torch.rand(batch, 3, image, image)
    return train_step(model, images, model.masker(batch, torch.Generator().manual_seed(0)))


def scaling(rounds: int) -> str:
    """One knob at a time around ViT-Ti/16, 224 px, batch 16, predictor depth 6."""
    base = dict(batch=16, image=224, depth=6)
    grid = [("batch", v) for v in (8, 16, 32)] + [("image", v) for v in (128, 224, 320)] + \
        [("depth", v) for v in (3, 6, 12)]
    rows = []
    for knob, value in grid:
        spec = {**base, knob: value}
        args = [spec["batch"], spec["image"], spec["depth"], 0]
        t = median(alternate({"s": jepakit_step(*args)}, rounds=rounds, repeats=1)["s"])
        tokens = (spec["image"] // 16) ** 2
        rows.append(("I-JEPA", f"{knob}={value}", spec["batch"], tokens, f"{t:.3f}",
                     f"{spec['batch'] / t:.1f}", f"{peak_memory_mb('bench_train', ['jepakit', *args]):.0f}"))
    for n, s in ((1, 16), (8, 16), (8, 64), (16, 16)):
        args = [16, 224, 6, 0, None, "tc-jepa-tiny", n, s]
        t = median(alternate({"s": jepakit_step(*args)}, rounds=rounds, repeats=1)["s"])
        rows.append(("TC-JEPA cached", f"N={n} S={s}", 16, 196, f"{t:.3f}", f"{16 / t:.1f}",
                     f"{peak_memory_mb('bench_train', ['jepakit', *args]):.0f}"))
    note = "ViT-Ti/16, fp32; one knob changed at a time from batch 16, 224 px, predictor depth 6."
    return note + "\n\n" + table(("method", "changed", "batch", "tokens / image", "s / step", "images / s",
                                  "step peak MB"), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="*", default=["compare", "mfu", "scaling"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if "compare" in args.parts:
        record("Train step: jepakit vs lightly's I-JEPA modules", compare(args.rounds))
    if "mfu" in args.parts:
        record("Model FLOP utilisation (CPU, fp32)", mfu(args.rounds))
    if "scaling" in args.parts:
        record("Scaling of the train step", scaling(args.rounds))


if __name__ == "__main__":
    main()
