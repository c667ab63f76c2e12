"""Text conditioning cost: TC-JEPA against I-JEPA at the same encoder, CPU, fp32.

For each encoder size, one training step (forward, backward, AdamW, EMA) of I-JEPA and
of TC-JEPA (sparse-xattn on every predictor layer) with N captions of S tokens, the
text either cached (precomputed ``TextFeatures``, as with a frozen encoder and
``TextCache``) or encoded every step by a frozen transformer text encoder. Steps of
all variants alternate in one process; peak memory is measured per variant in a
child process (peak live heap bytes during a warm step, and peak RSS). Also the text-use check: on a tiny
TC-JEPA trained briefly on captioned toy images, the prediction loss with the true
captions against shuffled captions on the same batch.

Run: ``python benchmarks/bench_text.py [--sizes tiny small base] [--batch 8] [--paper-rounds 11]``.
"""

from __future__ import annotations

import argparse

import torch

from jepakit import build
from jepakit.text import TextFeatures, TokenBatch
from jepakit.train import adamw, torch_groups

from _common import alternate, median, peak_memory_mb, per_round_ratio, record, table, train_step


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
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, 224, 224, generator=g)
    masks = model.masker(batch, g)
    text: TextFeatures | TokenBatch | None = None
    if recipe == "tc-jepa":
        mask = torch.ones(batch, n, s, dtype=torch.bool)
        mask[:, :, s // 2 :] = torch.rand(batch, n, s - s // 2, generator=g) < 0.5  # ragged captions
        mask = mask.cummin(-1).values
        if cached:
            text = TextFeatures(torch.randn(batch, n, s, model.text_encoder.width, generator=g), mask)
        else:
            text = TokenBatch(torch.randint(3, 1000, (batch, n, s), generator=g), mask)
    return train_step(model, images, masks, text)


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
        mem = {name: peak_memory_mb("bench_text", spec) for name, spec in specs.items()}
        base = mem["I-JEPA"]
        for name in specs:
            rows.append(
                (
                    f"ViT-{size}",
                    name,
                    f"{median(times[name]):.3f}",
                    f"{1 / per_round_ratio(times['I-JEPA'], times[name]):.2f}x",
                    f"{mem[name]['allocated']:.0f}",
                    f"{mem[name]['allocated'] / base['allocated']:.2f}x",
                    f"{mem[name]['rss']:.0f}",
                )
            )
        del steps
    header = (
        "encoder",
        "variant",
        "s / step (median)",
        "vs I-JEPA (median per round)",
        "step peak allocated MB",
        "memory vs I-JEPA",
        "step peak RSS MB",
    )
    return table(header, rows)


COLOURS = {"red": (1.0, 0.1, 0.1), "green": (0.1, 0.9, 0.1), "blue": (0.1, 0.2, 1.0), "yellow": (1.0, 0.9, 0.1)}
PLACES = {"top left": (0, 0), "top right": (0, 1), "bottom left": (1, 0), "bottom right": (1, 1)}


def toy_batch(batch: int, g: torch.Generator) -> tuple[torch.Tensor, list[list[str]]]:
    """32 px images of one coloured square in a quadrant, on noise; two captions each."""
    images = torch.rand(batch, 3, 32, 32, generator=g) * 0.3
    captions = []
    for i in range(batch):
        colour = list(COLOURS)[int(torch.randint(0, 4, (), generator=g))]
        place = list(PLACES)[int(torch.randint(0, 4, (), generator=g))]
        r, c = PLACES[place]
        images[i, :, r * 16 + 2 : r * 16 + 14, c * 16 + 2 : c * 16 + 14] = torch.tensor(COLOURS[colour])[:, None, None]
        captions.append([f"a {colour} square", f"a square at the {place}"])
    return images, captions


def text_use_check(steps: int, conditioner: dict) -> tuple:
    """Train a tiny TC-JEPA on toy captioned squares; compare losses with true and shuffled captions."""
    torch.manual_seed(0)
    model = build(
        "tc-jepa-tiny",
        image_size=32,
        encoder={"patch_size": 4, "embed_dim": 64, "depth": 2, "num_heads": 2},
        predictor={"embed_dim": 64, "depth": 2, "num_heads": 2},
        text_encoder={"embed_dim": 32, "depth": 1, "num_heads": 2},
        tokenizer={"vocab_size": 300, "max_length": 8, "max_captions": 2},
        masker={"min_keep": 4},
        conditioner=conditioner,
    )
    g = torch.Generator().manual_seed(0)
    model.tokenizer.fit([c for _, caps in (toy_batch(64, g),) for cs in caps for c in cs])
    opt = adamw(torch_groups(model.param_groups(), 0.04), 1e-3)
    positive = []
    for step in range(steps):
        images, captions = toy_batch(32, g)
        out = model(images, model.masker(32, g), captions, step=step)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        model.after_step(step, steps)
        positive.append(float(out["metric/o_positive"]))
    model.eval()
    true_loss = shuffled_loss = 0.0
    with torch.no_grad():
        for seed in range(10):
            eg = torch.Generator().manual_seed(1000 + seed)
            images, captions = toy_batch(32, eg)
            masks = model.masker(32, eg)
            true_loss += float(model(images, masks, captions)["predict"])
            shuffled_loss += float(model(images, masks, captions[1:] + captions[:1])["predict"])
    return (
        f"{true_loss / 10:.4f}",
        f"{shuffled_loss / 10:.4f}",
        f"{shuffled_loss / true_loss - 1:+.1%}",
        f"{positive[0]:.0%} -> {positive[len(positive) // 2]:.0%} -> {positive[-1]:.0%}",
    )


TEXT_USE_VARIANTS: dict[str, dict[str, float]] = {
    "sparse-xattn, lambda 0.1, beta 0.5": {},
    "same, lambda and beta warmed up over the run": {"reg_warmup_steps": -1},
    "no regularisers": {"sparse_weight": 0.0, "consistency_weight": 0.0},
}


def text_use_table(steps: int) -> str:
    rows = []
    for name, variant in TEXT_USE_VARIANTS.items():
        fields = {k: (steps if v == -1 else v) for k, v in variant.items()}
        rows.append((name, steps, *text_use_check(steps, fields)))
    header = (
        "conditioner",
        "train steps",
        "predict loss, true captions",
        "shuffled captions",
        "shuffled vs true",
        "O positive (start -> mid -> end)",
    )
    return table(header, rows)


def paper_table(batch: int, rounds: int) -> str:
    """The target's configuration only (ViT-B/16, N = 8 and 1, S = 16, cached), with every round's ratio."""
    specs = {
        name: spec
        for name, spec in variants(batch, "base").items()
        if name in ("I-JEPA", "TC-JEPA N=8 S=16 cached", "TC-JEPA N=1 S=16 cached")
    }
    times = alternate({name: make_step(*spec) for name, spec in specs.items()}, rounds=rounds, repeats=1)
    base = times["I-JEPA"]
    rows = [
        (
            name,
            f"{median(t):.3f}",
            f"{1 / per_round_ratio(base, t):.3f}x",
            " ".join(f"{a / b:.2f}" for a, b in zip(t, base, strict=True)),
        )
        for name, t in times.items()
    ]
    note = (
        f"ViT-B/16, 224 px, batch {batch}, fp32, predictor 6 x 384, sparse-xattn on all 6 layers, cached text; "
        f"{rounds} alternating rounds; every round's ratio listed."
    )
    return (
        note
        + "\n\n"
        + table(("variant", "s / step (median)", "vs I-JEPA (median per round)", "per-round ratios"), rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=["tiny", "small", "base"], help="none: skip the cost table")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--text-use-steps", type=int, default=300, help="0 skips the text-use check")
    parser.add_argument(
        "--paper-rounds", type=int, default=0, help="rounds of the ViT-B/16 target configuration alone (0: skip)"
    )
    args = parser.parse_args()
    if args.paper_rounds:
        record(
            "Text conditioning cost at the paper's configuration, ViT-B/16",
            paper_table(args.batch, args.paper_rounds),
        )
    note = (
        f"224 px, batch {args.batch}, fp32, one step = forward + backward + AdamW + EMA; predictor as in the "
        f"recipes (6 x 384, Tiny 6 x 192), sparse-xattn on all 6 layers; median of {args.rounds} alternating rounds."
    )
    if args.sizes:
        record(
            "Text conditioning cost: TC-JEPA vs I-JEPA", note + "\n\n" + cost_table(args.sizes, args.batch, args.rounds)
        )
    if args.text_use_steps:
        note = (
            "Tiny TC-JEPA (ViT 64/2 on 32 px, patch 4, predictor 64/2, text transformer 32/1) trained on toy images "
            "of one coloured square in a quadrant with two captions each (colour; place); loss on 10 fresh batches "
            "of 32 with true captions and with captions shifted by one image."
        )
        record("Text-use check: true vs shuffled captions", note + "\n\n" + text_use_table(args.text_use_steps))


if __name__ == "__main__":
    main()
