"""Train speed of this checkout against an earlier commit, side by side in one run.

Each round trains every recipe once with each version (order alternating), in fresh
processes with the same overrides and the same interpreter; a run's speed is the median
of its logged images/s after the first interval (warm-up left out). The ratio of a round
is this checkout's speed over the earlier one's; the table gives the median over rounds.

    python benchmarks/bench_versions.py --before df12479 [--rounds 5] [--steps 30] [--record]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import median, publish, table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

RUN = """
import sys
sys.path.insert(0, sys.argv[1])
import jepakit
assert jepakit.__file__.startswith(sys.argv[1]), jepakit.__file__
from jepakit.cli import main
main(sys.argv[2:])
"""


def speed(tree: Path, recipe: str, steps: int, every: int, out: Path) -> float:
    """Images/s of ``recipe`` trained for ``steps`` by the jepakit in ``tree`` (median after the first log)."""
    args = [
        "train",
        recipe,
        f"train.steps={steps}",
        f"train.warmup_steps={min(30, steps)}",
        f"train.log_every={every}",
        f"train.checkpoint_every={steps}",
        f"train.monitor_every={steps}",
        "--out",
        str(out),
        "--quiet",
    ]
    done = subprocess.run([sys.executable, "-c", RUN, str(tree), *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} at {tree} failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return median([r["images_per_s"] for r in records[1:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the earlier commit (e.g. the one before a refactor)")
    parser.add_argument("--recipes", default="ijepa-cpu,tc-jepa-cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--every", type=int, default=5, help="steps per logged speed reading")
    parser.add_argument("--record", action="store_true", help="write the table into RESULTS.md")
    args = parser.parse_args()
    recipes = args.recipes.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(before), args.before],
            check=True,
            capture_output=True,
        )
        rev = subprocess.run(
            ["git", "-C", str(before), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        try:
            speeds: dict[tuple[str, str], list[float]] = {}
            for r in range(args.rounds):
                for recipe in recipes:
                    order = [("before", before), ("now", REPO)]
                    for name, tree in order if r % 2 == 0 else order[::-1]:
                        out = Path(tmp) / f"{name}-{recipe}-{r}"
                        speeds.setdefault((recipe, name), []).append(speed(tree, recipe, args.steps, args.every, out))
                        print(f"round {r} {recipe} {name}: {speeds[recipe, name][-1]:.2f} images/s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)], check=True)
    rows = []
    for recipe in recipes:
        b, n = speeds[recipe, "before"], speeds[recipe, "now"]
        ratios = [x / y for x, y in zip(n, b, strict=True)]
        rows.append(
            (
                recipe,
                f"{median(b):.2f}",
                f"{median(n):.2f}",
                f"{statistics.median(ratios):.3f}x",
                f"{min(ratios):.3f}-{max(ratios):.3f}",
            )
        )
    body = table(
        ("recipe", f"images/s at {rev}", "images/s now", "now / before (median of rounds)", "range over rounds"), rows
    )
    note = (
        f"`python benchmarks/bench_versions.py --before {args.before} --rounds {args.rounds} --steps {args.steps}`: "
        f"`jepakit train RECIPE` for {args.steps} steps in fresh processes, alternating versions each round; "
        f"speed = median logged images/s after the first {args.every} steps."
    )
    publish("Train speed against an earlier commit", note + "\n\n" + body, args.record)


if __name__ == "__main__":
    main()
