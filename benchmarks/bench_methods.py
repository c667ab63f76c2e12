"""Method step cost: one train step of each method of the family at the quality benchmark's size.

The quality rows' train minutes come from runs that share the cores (and SALT's include its online
probes), so they are no step costs. Here each method's ``*-cpu`` recipe (ViT 192/6 with 8 px patches at
64 px, predictor 192/3 where it has one; batch 32 like the quality rows) takes one full step through the
engine's contract: ``make_batch`` on real samples of its data, forward, backward, AdamW, ``after_step``
(the EMA). SALT is timed per stage: the pixel teacher (its first stage) and the student on a frozen
teacher. Times are medians over rounds in which the methods alternate in one process (noise hits all
alike), with the ratio of each round's time to I-JEPA's; memory is the peak of live heap bytes in a warm step.
The last column is what SALT's two stages cost against I-JEPA's steps at the quality rows' split.

Run: ``python benchmarks/bench_methods.py [--rounds 5] [--batch 32] [--record]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch

from jepakit import get_config
from jepakit.methods.base import Draw

from _common import alternate, engine_step, median, per_round_ratio, publish, step_peak_mb, table

TITLE = "Method step cost: the JEPA family at the quality benchmark's size"
#: name shown -> (recipe, which stage: the recipe's own or its first stage, SALT's teacher)
METHODS: dict[str, tuple[str, str]] = {
    "I-JEPA": ("ijepa-cpu", "run"),
    "MAE (pixels)": ("mae-cpu", "run"),
    "SALT teacher (V-Pixel)": ("salt-cpu", "teacher"),
    "SALT student (frozen teacher)": ("salt-cpu", "run"),
    "data2vec 2.0": ("data2vec-cpu", "run"),
    "C-JEPA": ("c-jepa-cpu", "run"),
    "LeJEPA (2 + 6 views)": ("lejepa-cpu", "run"),
    "TC-JEPA": ("tc-jepa-cpu", "run"),
}
#: SALT's stages in the quality rows: 100 teacher steps, then 200 student steps
SALT_SPLIT = (100, 200)


def method_step(recipe: str, stage: str, batch: int) -> Callable[[], None]:
    """One engine step of ``recipe`` (or its first stage) on a fixed batch of its own data's samples."""
    cfg = get_config(recipe)
    if stage == "teacher":
        assert cfg.teacher_run is not None, f"{recipe} has no first stage"
        cfg = cfg.teacher_run
    torch.manual_seed(0)
    model = cfg.method.build()
    data = cfg.data.build()
    model.prepare(data)
    rows = torch.arange(batch)
    draw = Draw(seed=0, epoch=0, step=0, micro=0, indices=rows, rows=rows, size=batch)
    inputs: dict[str, Any] = model.make_batch([data[i] for i in range(batch)], draw)
    return engine_step(model, inputs)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32, help="images per step")
    parser.add_argument("--record", action="store_true", help="write the table into RESULTS.md")
    args = parser.parse_args()
    steps = {name: method_step(recipe, stage, args.batch) for name, (recipe, stage) in METHODS.items()}
    times = alternate(steps, rounds=args.rounds, repeats=1)
    base = times["I-JEPA"]
    rows = []
    for name, step in steps.items():
        t = median(times[name])
        peak = step_peak_mb(step)["allocated"]
        rows.append((name, METHODS[name][0], f"{t:.3f}", f"{per_round_ratio(times[name], base):.2f}", f"{peak:.0f}"))
    teacher, student = (median(times[f"SALT {s}"]) for s in ("teacher (V-Pixel)", "student (frozen teacher)"))
    salt = (SALT_SPLIT[0] * teacher + SALT_SPLIT[1] * student) / (sum(SALT_SPLIT) * median(base))
    header = ("method", "recipe", "s / step", "time / I-JEPA's (median per round)", "peak allocated MB")
    note = (
        f"Batch {args.batch} at 64 px, fp32, median of {args.rounds} alternating rounds. SALT's "
        f"{SALT_SPLIT[0]} teacher + {SALT_SPLIT[1]} student steps cost {salt:.2f}x I-JEPA's {sum(SALT_SPLIT)} "
        f"steps. Command: `python benchmarks/bench_methods.py --rounds {args.rounds} --batch {args.batch} --record`."
    )
    publish(TITLE, note + "\n\n" + table(header, rows), args.record)


if __name__ == "__main__":
    main()
