"""Time of the default probe on a run: feature extraction, then each probe on each task.

Extracts the features of the run's held-out images once (timed), then runs
``jepakit.eval.evaluate`` on them from the feature cache, timing each probe by the
moments its result lines appear, and prints one row per phase with the seconds and the
accuracy (mIoU for the dense probe). ``--command`` also times the whole ``jepakit probe
SOURCE`` command in a child process, as a user runs it.

The functions used (``extract``, ``evaluate`` with ``cache`` and ``log``) have kept their
signatures, so an earlier commit is measured with the same script (``--before``).

Run: ``python benchmarks/bench_probe.py [SOURCE] [--command] [--before OLD_CHECKOUT] [--record]``
(SOURCE defaults to ``runs/tc-jepa-cpu``, the main job's run; ``--before`` measures an
earlier commit's checkout first, in a child process, and prints both side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from jepakit.eval import evaluate, probe_data
from jepakit.eval.features import extract
from jepakit.eval.splits import chosen_rows
from jepakit.runs import load_eval_encoder

from _common import record, table

#: A result line of ``evaluate``'s log: ``linear/count: 0.4123 ...`` or ``dense/miou: 0.51``.
RESULT = re.compile(r"^(\w+)/(\w+): ([0-9.]+)")


def phases(source: str) -> list[tuple[str, float, str]]:
    """(phase, seconds, result) for extraction and every probe of the default ``evaluate``."""
    encoder, cfg = load_eval_encoder(source)
    data = probe_data(cfg, encoder).fit.build()
    need = 3000 + 500 + 3000
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "features.pt"
        t0 = time.perf_counter()
        extract(encoder, data, chosen_rows(len(data), need, 0).tolist(), keep_patches=True, cache=cache)
        rows = [("extract features", time.perf_counter() - t0, f"{need} images")]
        stamps: list[tuple[float, str]] = []
        t0 = time.perf_counter()
        evaluate(encoder, data, cache=cache, log=lambda line: stamps.append((time.perf_counter(), line)))
    last = t0
    for moment, line in stamps:
        match = RESULT.match(line)
        if match:
            probe, task, value = match.groups()
            rows.append((f"{probe} / {task}", moment - last, value))
            last = moment
    return rows


def command_seconds(source: str) -> float:
    """Wall time of ``jepakit probe SOURCE --out TMP`` in a child process (run in TMP, so the
    jepakit imported is the installed one or ``PYTHONPATH``'s, never the current folder's)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "jepakit.cli", "probe", str(Path(source).resolve()), "--out", tmp],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=tmp,
        )
        return time.perf_counter() - t0


def measure(source: str, command: bool) -> list[tuple[str, float, str]]:
    """The phases, and the whole command's wall time when ``command``."""
    torch.manual_seed(0)
    rows = phases(source)
    rows.append(("**extraction + probes**", sum(s for _, s, _ in rows), ""))
    if command:
        rows.append(("`jepakit probe` command (wall)", command_seconds(source), ""))
    return rows


def measure_at(checkout: str, source: str, command: bool) -> list[tuple[str, float, str]]:
    """``measure`` with the jepakit of another checkout (an earlier commit), in a child process."""
    env = {**os.environ, "PYTHONPATH": str(Path(checkout).resolve())}
    args = [sys.executable, __file__, source, "--json"] + (["--command"] if command else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout
    return [tuple(row) for row in json.loads(out.strip().splitlines()[-1])]


def commit(checkout: str) -> str:
    """The short hash of a checkout's HEAD."""
    out = subprocess.run(["git", "-C", checkout, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", default="runs/tc-jepa-cpu")
    parser.add_argument("--command", action="store_true", help="also time the whole jepakit probe command")
    parser.add_argument("--before", default="", help="a checkout of an earlier commit, measured beside this one")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON (for --before)")
    parser.add_argument("--record", action="store_true", help="put the table into RESULTS.md")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.source, args.command)))
        return
    before = measure_at(args.before, args.source, args.command) if args.before else None
    after = measure(args.source, args.command)
    if before is None:
        text = table(["phase", "s", "result"], [(n, f"{s:.1f}", r) for n, s, r in after])
    else:
        rows = [
            (n, f"{b[1]:.1f}", f"{s:.1f}", f"{b[1] / s:.1f}x", b[2], r)
            for (n, s, r), b in zip(after, before, strict=True)
        ]
        text = table(["phase", "before s", "after s", "speed-up", "before result", "after result"], rows)
    command = " ".join(["python benchmarks/bench_probe.py", *sys.argv[1:]])
    old = f" Before: commit {commit(args.before)}; after: commit {commit('.')} and the working tree." if before else ""
    text = f"Command: `{command}` (the run: `jepakit train tc-jepa-cpu`).{old}\n\n{text}"
    if args.record:
        record("Probe time on the main job's run", text)
    else:
        print(text)


if __name__ == "__main__":
    main()
