"""The override fuzz at length: many more examples than the suite's, counted by outcome.

    python benchmarks/override_fuzz.py [--examples 2000] [--seed 0] [--record]
    python benchmarks/override_fuzz.py --commands 300 [--seed 0] [--record]

Each example sets one field of ``ijepa-cpu`` or ``tc-jepa-cpu`` (at the tests' tiny sizes) to a
right or wrong value, an edge or an absurd size, or swaps a slot to any registered component,
then builds the method and runs a forward on two samples (``tests/fuzz.py``). Outcomes:
refused at config time naming the field, refused by the memory estimate before building,
ran with a finite loss, or a defect. ``--commands`` fuzzes ``probe``, ``export``, ``viz``, ``import-weights``,
``push`` (offline) and ``check`` instead, one hostile argument each, against a tiny saved run (``tests/cli_fuzz.py``): ran, refused in one line, or a defect.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import cli_fuzz
from hypothesis import HealthCheck, given, seed, settings

from jepakit import sizing

import fuzz
from _common import publish, table


def commands(examples: int, seed_: int, record: bool) -> None:
    """The command fuzz: counts by outcome and by command, and every defect (the hub offline, as in the tests)."""
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline")
    counts: collections.Counter = collections.Counter()
    defects: list[str] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        places = cli_fuzz.prepare(Path(tmp))

        @seed(seed_)
        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(cli_fuzz.commands())
        def explore(argv):
            outcome, detail = cli_fuzz.run(argv, places)
            counts[(argv[0], outcome)] += 1
            if outcome == "DEFECT":
                defects.append(f"{argv}: {detail[:200]}")

        explore()
    minutes = (time.perf_counter() - t0) / 60
    names = ("probe", "export", "viz", "import-weights", "push", "check")
    rows = [(c, *(counts[(c, o)] for o in ("ran", "refused", "DEFECT"))) for c in names]
    note = (
        f"`python benchmarks/override_fuzz.py --commands {examples} --seed {seed_}`: {sum(counts.values())} "
        f"command lines, {minutes:.1f} min, each with one hostile argument (a split size, a probe name, a data "
        "edit, a source that is not a run, a truncated checkpoint, a file where a folder goes, a weights format, a "
        "hub id, a file that is no Python) against a tiny saved run, the hub offline. 'refused': exit 1 or 2 with one line `jepakit: error: ...` (or argparse's usage error); 'ran': exit 0."
    )
    for d in defects:
        print("DEFECT", d)
    publish("Command fuzz", note + "\n\n" + table(("command", "ran", "refused", "DEFECT"), rows), record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--commands", type=int, help="fuzz the commands that read a user's files: this many lines")
    args = parser.parse_args()
    if args.commands:
        commands(args.commands, args.seed, args.record)
        return
    counts: collections.Counter = collections.Counter()
    fields: collections.Counter = collections.Counter()
    defects: list[str] = []
    t0 = time.perf_counter()

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(fuzz.examples())
    def explore(example):
        outcome, detail = fuzz.run(*example)
        counts[outcome] += 1
        fields[example[1]] += 1
        if outcome == "DEFECT":
            defects.append(f"{example}: {detail[:200]}")

    with mock.patch.object(sizing, "available_bytes", lambda device: fuzz.MEMORY):
        explore()
    minutes = (time.perf_counter() - t0) / 60
    total = sum(counts.values())
    rows = [(k, counts[k], f"{counts[k] / total:.0%}") for k in ("refused", "too large", "ran", "DEFECT")]
    body = table(("outcome", "examples", "share"), rows)
    note = (
        f"`python benchmarks/override_fuzz.py --examples {args.examples} --seed {args.seed}`: {total} examples over "
        f"{len(fields)} distinct fields and slots of `ijepa-cpu` and `tc-jepa-cpu` (tiny sizes), {minutes:.1f} "
        f"min; memory budget {fuzz.MEMORY // 2**20} MB. 'refused': a ValueError/KeyError/TypeError naming the "
        "field when the config is made; 'too large': the memory estimate refuses before anything is built; "
        "'ran': a forward on two samples gave a finite loss."
    )
    for d in defects:
        print("DEFECT", d)
    publish("Override fuzz", note + "\n\n" + body, args.record)


if __name__ == "__main__":
    main()
