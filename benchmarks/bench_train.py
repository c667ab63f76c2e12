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
4. Optimisations: each of jepakit's optimisations switched off in turn (the plain path it
   replaced, patched into one model instance), against all of them on, alternating.
5. Packing: with jepakit's own masks (each context padded to the batch's longest), the
   blocks on the valid tokens only against the blocks on the padded batch, by batch size.

Speed-ups are the median over rounds of the per-round time ratio (the machine's speed
drifts; both runs of a round see the same drift). Memory is the peak of live heap bytes
during a warm step (what the tensors need) and the peak RSS above rest, each in a child
process.

Run: ``python benchmarks/bench_train.py [--parts compare mfu scaling optimisations packing] [--rounds 9]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch

from jepakit import build
from jepakit.masks.base import Masks

from _common import (
    LIGHTLY_IJEPA_MASKS,
    Step,
    alternate,
    closure_flops,
    matmul_flops_per_s,
    median,
    peak_memory_mb,
    per_round_ratio,
    record,
    step_flops,
    table,
    train_step,
)

TINY = dict(
    encoder={"embed_dim": 192, "depth": 12, "num_heads": 3}, predictor={"embed_dim": 192, "depth": 6, "num_heads": 3}
)


def lightly_masks(batch: int, image: int, patch: int, seed: int) -> tuple[list, list]:
    """Context and target index masks from lightly's collator with I-JEPA's settings."""
    from lightly.data.ijepa_collate import IJEPAMaskCollator

    torch.manual_seed(seed)  # the collator draws positions from the global generator
    collator = IJEPAMaskCollator(input_size=image, patch_size=patch, **LIGHTLY_IJEPA_MASKS)
    _, enc, pred = collator([torch.zeros(1)] * batch)
    return enc, pred


def as_masks(enc: list, pred: list, grid: tuple[int, int]) -> Masks:
    """lightly's per-block lists as one jepakit ``Masks`` (same indices, no padding)."""
    return Masks(context=enc[0], targets=torch.stack(pred, dim=1), grid=grid)


def tiny_model(image: int, pred_depth: int, seed: int, recipe: str = "ijepa-tiny", n: int = 0, s: int = 0):
    """The benchmarked model: ``recipe`` at ViT-Ti width, its initial weights seeded by ``seed``."""
    torch.manual_seed(seed)
    over = {
        "image_size": image,
        "encoder": dict(TINY["encoder"]),
        "predictor": {**TINY["predictor"], "depth": pred_depth},
    }
    if recipe.startswith("tc-jepa"):
        over["tokenizer"] = {"max_length": max(s, 1), "max_captions": max(n, 1)}
        over["text_encoder"] = {"trainable": False}
    return build(recipe, **over)


def jepakit_step(
    batch: int,
    image: int,
    pred_depth: int,
    seed: int = 0,
    *,
    masks: Masks | None = None,
    recipe: str = "ijepa-tiny",
    n: int = 0,
    s: int = 0,
    compile: bool = False,
    without: str = "",
    pack: bool = True,
):
    """One training step of jepakit's model on fixed inputs (a closure); ``without`` names an
    optimisation (a key of ``PLAIN``) to switch off; ``pack=False`` runs the blocks on the padding too."""
    from jepakit.text import TextFeatures

    model = tiny_model(image, pred_depth, seed, recipe, n, s)
    model.encoder.pack_tokens = model.predictor.pack_tokens = pack
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, image, image, generator=g)
    if masks is None:
        masks = model.masker(batch, g)
    text = None
    if recipe.startswith("tc-jepa"):
        text = TextFeatures(
            torch.randn(batch, n, s, model.text_encoder.width, generator=g), torch.ones(batch, n, s, dtype=torch.bool)
        )
    options = PLAIN[without](model) if without else {}
    return train_step(model, images, masks, text, compile=compile, **options)


def _whole_last_block(model) -> dict:
    blk = model.predictor.blocks[-1]
    whole = blk.forward

    def forward(x, attn_mask=None, rows_from=0, packing=None):
        out = whole(x, attn_mask, packing=packing)
        if not rows_from:
            return out
        return out[packing.split :] if packing is not None else out[:, rows_from:]

    setattr(blk, "forward", forward)  # noqa: B010  (patch the instance)
    return {}


def _keep_gelu_output(model) -> dict:
    from jepakit.layers.transformer import GeluMlp

    for m in model.modules():
        if isinstance(m, GeluMlp):
            setattr(m, "forward", lambda x, m=m: m.fc2(m.act(m.fc1(x))))  # noqa: B010  (patch the instance)
    return {}


def _embed_all_patches(model) -> dict:
    from jepakit.layers.transformer import gather_tokens

    enc = model.encoder

    def embed(images, grid, index):
        x = enc.patch_embed(images).contiguous() + enc.pos_embed_for(grid)
        return x if index is None else gather_tokens(x, index)

    enc.embed = embed
    return {}


def _strided_tokens(model) -> dict:
    for enc in (model.encoder, model.target_encoder):
        kept = enc.embed

        def embed(images, grid, index, enc=enc, kept=kept):
            return kept(images, grid, index) if index is not None else enc.patch_embed(images) + enc.pos_embed_for(grid)

        enc.embed = embed
    return {}


def _plain_adamw(model) -> dict:
    return {"fused": False}


#: Each optimisation and how to put the plain path it replaced back: patches one model and
#: returns what ``train_step`` is to be given.
PLAIN = {
    "last block on mask tokens only": _whole_last_block,
    "GELU recomputed in backward": _keep_gelu_output,
    "context encoder embeds kept patches only": _embed_all_patches,
    "contiguous token layout": _strided_tokens,
    "fused AdamW": _plain_adamw,
}


def lightly_step(batch: int, image: int, pred_depth: int, seed: int = 0):
    """The same step assembled from lightly's I-JEPA modules over timm (as lightly's example),
    holding the weights jepakit's step starts from (same seed), fed the same images and masks."""
    from lightly.models import utils

    from peers import lightly_ijepa, lightly_ijepa_loss

    encoder, target, predictor = lightly_ijepa(tiny_model(image, pred_depth, seed), image)
    params = list(encoder.parameters()) + list(predictor.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.04)
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, image, image, generator=g)
    enc, pred = lightly_masks(batch, image, 16, seed)
    masks = as_masks(enc, pred, (image // 16,) * 2)

    def loss() -> torch.Tensor:
        return lightly_ijepa_loss(encoder, target, predictor, images, masks.context, masks.targets)

    def step() -> None:
        out = loss()
        opt.zero_grad(set_to_none=True)
        out.backward()
        opt.step()
        utils.update_momentum(encoder, target, m=0.996)

    return Step(step, masks=(enc, pred), loss=loss)


def make_step(kind: str, *args: Any) -> Step:
    """A step by name, for ``peak_memory_mb`` (which rebuilds it in a child process)."""
    if kind == "lightly":
        return lightly_step(*args)
    if kind in ("jepakit-same-masks", "jepakit-compiled") or kind.startswith("jepakit-without:"):
        batch, image, depth, seed = args
        enc, pred = lightly_masks(batch, image, 16, seed)
        return jepakit_step(
            batch,
            image,
            depth,
            seed,
            masks=as_masks(enc, pred, (image // 16,) * 2),
            compile=kind == "jepakit-compiled",
            without=kind.partition(":")[2],
        )
    batch, image, depth, seed, *text = args  # text: recipe, N, S of a TC-JEPA step
    recipe, n, s = text if text else ("ijepa-tiny", 0, 0)
    return jepakit_step(batch, image, depth, seed, recipe=recipe, n=n, s=s, pack=kind != "jepakit-padded")


def compare(rounds: int, batch: int = 16, image: int = 224, depth: int = 6) -> str:
    args = (batch, image, depth, 0)
    base = "lightly (timm ViT + IJEPAPredictorTIMM)"
    kinds = {
        base: "lightly",
        "jepakit, lightly's masks": "jepakit-same-masks",
        "jepakit, lightly's masks, torch.compile": "jepakit-compiled",
    }
    steps = {name: make_step(kind, *args) for name, kind in kinds.items()}
    flops = {name: closure_flops(step) for name, step in steps.items()}
    times = alternate(steps, rounds=rounds, repeats=1)
    mem = {name: peak_memory_mb("bench_train", [kind, *args]) for name, kind in kinds.items()}
    rows = [
        (
            name,
            f"{flops[name] / 1e9:.1f}",
            f"{median(t):.3f}",
            f"{per_round_ratio(times[base], t):.2f}x",
            f"{mem[name]['allocated']:.0f}",
            f"{mem[name]['allocated'] / mem[base]['allocated']:.2f}x",
            f"{mem[name]['rss']:.0f}",
            f"{mem[name]['rss'] / mem[base]['rss']:.2f}x",
        )
        for name, t in times.items()
    ]
    enc, pred = next(iter(steps.values())).masks
    note = (
        f"ViT-Ti/16 at {image} px, batch {batch}, predictor {depth} x 192, fp32, one step = forward + backward "
        f"+ AdamW + EMA; both fed the same masks ({enc[0].shape[1]} context and 4 x {pred[0].shape[1]} target "
        f"patches per image); {rounds} alternating rounds. GFLOP: the whole step by torch.utils.flop_counter "
        "(the same loss and gradients; jepakit skips work whose result nobody reads). Speed: median per-round "
        "ratio. Allocated: peak live heap during a warm step; RSS: peak resident set above rest."
    )
    return (
        note
        + "\n\n"
        + table(
            (
                "implementation",
                "GFLOP / step",
                "s / step (median)",
                "speed vs lightly",
                "peak allocated MB",
                "vs lightly",
                "peak RSS MB",
                "vs lightly",
            ),
            rows,
        )
    )


def _component(name: str, step: Step) -> tuple[str, Callable[[], object]]:
    """The part of ``step`` an optimisation changes: its name and a closure (forward + backward where it trains)."""
    model, (images, masks, _) = step.model, step.inputs
    grid = model.encoder.grid_of(images)
    if name == "fused AdamW":
        for p in model.parameters():
            p.grad = torch.ones_like(p) if p.requires_grad else None
        return "optimiser step", step.opt.step
    if name == "contiguous token layout":
        return "target encoder forward", torch.no_grad()(lambda: model.target_encoder(images))
    if name == "context encoder embeds kept patches only":
        return "context encoder fwd + bwd", lambda: model.encoder(images, masks.context).sum().backward()
    z = model.forward_context(images, masks).detach().requires_grad_(True)
    return "predictor fwd + bwd", lambda: model.predictor(z, masks.context, masks.targets, grid).sum().backward()


def optimisations(rounds: int, batch: int = 16, image: int = 224, depth: int = 6) -> str:
    """Each optimisation off in turn: the part it changes timed with and without it (alternating,
    many repeats: a few percent of a whole step drowns in this machine's drift), and the whole
    step's FLOPs and peak allocated memory."""
    args = (batch, image, depth, 0)
    on = make_step("jepakit-same-masks", *args)
    rows = [
        (
            "all on",
            "",
            "",
            "",
            f"{closure_flops(on) / 1e9:.1f}",
            f"{(mem_on := peak_memory_mb('bench_train', ['jepakit-same-masks', *args]))['allocated']:.0f}",
            "",
        )
    ]
    for name in PLAIN:
        off = make_step(f"jepakit-without:{name}", *args)
        where, with_it = _component(name, on)
        part: dict[str, Callable[[], object]] = {"with": with_it, "without": _component(name, off)[1]}
        times = alternate(part, rounds=3 * rounds, repeats=3)
        mem = peak_memory_mb("bench_train", [f"jepakit-without:{name}", *args])
        rows.append(
            (
                f"without: {name}",
                where,
                f"{1e3 * median(times['with']):.1f} / {1e3 * median(times['without']):.1f}",
                f"{per_round_ratio(times['without'], times['with']):.2f}x",
                f"{closure_flops(off) / 1e9:.1f}",
                f"{mem['allocated']:.0f}",
                f"{mem_on['allocated'] / mem['allocated']:.2f}x",
            )
        )
        del off, part, with_it
    note = (
        f"ViT-Ti/16 at {image} px, batch {batch}, predictor {depth} x 192, fp32, lightly's masks. Each row puts "
        "one optimisation's plain path back into one model (same loss and gradients to 1e-11). 'Part' is the "
        f"piece of the step it changes, timed with / without it over {3 * rounds} alternating rounds of 3 calls "
        "(speed-up: median per-round ratio); GFLOP and peak allocated memory are of the whole step; 'memory it "
        "saves' = peak with all on / peak without it."
    )
    return (
        note
        + "\n\n"
        + table(
            (
                "variant",
                "part",
                "part ms with / without",
                "speed-up of the part",
                "step GFLOP",
                "step peak allocated MB",
                "memory it saves",
            ),
            rows,
        )
    )


def mfu(rounds: int) -> str:
    peak = matmul_flops_per_s() / 1e9
    rows = []
    for name, batch, image, recipe in (
        ("ViT-Ti/16 I-JEPA", 16, 224, "ijepa-tiny"),
        ("ViT-S/16 I-JEPA", 16, 224, "ijepa-small"),
    ):
        step = jepakit_step(batch, image, 6, recipe=recipe) if recipe == "ijepa-tiny" else _small_step(batch, image)
        flops = step_flops(step)
        t = median(alternate({"s": step}, rounds=rounds, repeats=1)["s"])
        rate = flops / t / 1e9
        rows.append((name, batch, f"{flops / 1e9:.1f}", f"{t:.3f}", f"{rate:.1f}", f"{peak:.1f}", f"{rate / peak:.0%}"))
    note = (
        "FLOPs of forward + backward from torch.utils.flop_counter (matmuls and attention); the peak is the best "
        "fp32 rate of a 1024^3 matmul measured in the same process; MFU = achieved / peak."
    )
    return (
        note
        + "\n\n"
        + table(("model", "batch", "GFLOP / step", "s / step", "GFLOP/s", "matmul peak GFLOP/s", "MFU"), rows)
    )


def _small_step(batch: int, image: int):
    torch.manual_seed(0)
    model = build("ijepa-small", image_size=image)
    images = torch.rand(batch, 3, image, image)
    return train_step(model, images, model.masker(batch, torch.Generator().manual_seed(0)))


def scaling(rounds: int) -> str:
    """One knob at a time around ViT-Ti/16, 224 px, batch 16, predictor depth 6."""
    base = dict(batch=16, image=224, depth=6)
    grid = (
        [("batch", v) for v in (8, 16, 32)]
        + [("image", v) for v in (128, 224, 320)]
        + [("depth", v) for v in (3, 6, 12)]
    )
    rows = []
    for knob, value in grid:
        spec = {**base, knob: value}
        args: list[Any] = [spec["batch"], spec["image"], spec["depth"], 0]
        t = median(alternate({"s": jepakit_step(*args)}, rounds=rounds, repeats=1)["s"])
        tokens = (spec["image"] // 16) ** 2
        rows.append(
            (
                "I-JEPA",
                f"{knob}={value}",
                spec["batch"],
                tokens,
                f"{t:.3f}",
                f"{spec['batch'] / t:.1f}",
                f"{peak_memory_mb('bench_train', ['jepakit', *args])['allocated']:.0f}",
            )
        )
    for n, s in ((1, 16), (8, 16), (8, 64), (16, 16)):
        args = [16, 224, 6, 0, "tc-jepa-tiny", n, s]
        t = median(alternate({"s": make_step("jepakit", *args)}, rounds=rounds, repeats=1)["s"])
        rows.append(
            (
                "TC-JEPA cached",
                f"N={n} S={s}",
                16,
                196,
                f"{t:.3f}",
                f"{16 / t:.1f}",
                f"{peak_memory_mb('bench_train', ['jepakit', *args])['allocated']:.0f}",
            )
        )
    note = "ViT-Ti/16, fp32; one knob changed at a time from batch 16, 224 px, predictor depth 6."
    return (
        note
        + "\n\n"
        + table(("method", "changed", "batch", "tokens / image", "s / step", "images / s", "peak allocated MB"), rows)
    )


def packing(rounds: int, image: int = 224, depth: int = 6) -> str:
    """jepakit's default masks pad every context to the batch's longest; the blocks on the valid
    tokens only (the default) against the blocks on the padded batch, by batch size."""
    rows = []
    for batch in (16, 32):
        args = (batch, image, depth, 0)
        kinds = {"padded": "jepakit-padded", "packed": "jepakit"}
        steps = {name: make_step(kind, *args) for name, kind in kinds.items()}
        valid = steps["packed"].inputs[1].context_valid
        times = alternate(steps, rounds=rounds, repeats=1)
        mem = {name: peak_memory_mb("bench_train", [kind, *args])["allocated"] for name, kind in kinds.items()}
        for name, step in steps.items():
            rows.append(
                (
                    batch,
                    f"{valid.shape[1]} / {valid.float().sum(1).mean():.1f}",
                    name,
                    f"{closure_flops(step) / 1e9:.1f}",
                    f"{median(times[name]):.3f}",
                    f"{per_round_ratio(times['padded'], times[name]):.2f}x",
                    f"{mem[name]:.0f}",
                    f"{mem[name] / mem['padded']:.2f}x",
                )
            )
        del steps
    note = (
        f"ViT-Ti/16 at {image} px, predictor {depth} x 192, fp32, jepakit's multi-block masks (context=pad: each "
        "context padded to the batch's longest), one step = forward + backward + AdamW + EMA; the same loss "
        f"and gradients (tested). {rounds} alternating rounds; speed-up: median per-round ratio."
    )
    return (
        note
        + "\n\n"
        + table(
            (
                "batch",
                "context length padded / mean valid",
                "blocks run on",
                "GFLOP / step",
                "s / step",
                "speed-up",
                "peak allocated MB",
                "memory vs padded",
            ),
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="*", default=["compare", "mfu", "scaling", "optimisations", "packing"])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    if "compare" in args.parts:
        record("Train step: jepakit vs lightly's I-JEPA modules", compare(args.rounds))
    if "mfu" in args.parts:
        record("Model FLOP utilisation (CPU, fp32)", mfu(args.rounds))
    if "scaling" in args.parts:
        record("Scaling of the train step", scaling(args.rounds))
    if "optimisations" in args.parts:
        record("Train step optimisations, one at a time", optimisations(args.rounds))
    if "packing" in args.parts:
        record("Valid tokens packed vs padded batches (jepakit's masks)", packing(args.rounds))


if __name__ == "__main__":
    main()
