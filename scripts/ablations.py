"""Run several recipes one after another with the same overrides, each in its own run folder.

    python scripts/ablations.py tc-jepa-cpu ijepa-cpu -- train.steps=200

Prints a table of first and last losses at the end.
"""

from __future__ import annotations

import sys

from jepakit import get_config
from jepakit.train import train


def main(argv: list[str]) -> int:
    if "--" in argv:
        cut = argv.index("--")
        recipes, overrides = argv[:cut], argv[cut + 1 :]
    else:
        recipes, overrides = argv, []
    if not recipes:
        print(__doc__)
        return 2
    rows = []
    for recipe in recipes:
        result = train(get_config(recipe, *overrides), f"runs/ablations/{recipe}", log=print)
        losses = result["losses"]
        k = max(1, len(losses) // 10)
        rows.append((recipe, sum(losses[:k]) / k, sum(losses[-k:]) / k))
    print(f"{'recipe':28s} {'first loss':>12s} {'last loss':>12s}")
    for recipe, first, last in rows:
        print(f"{recipe:28s} {first:12.4f} {last:12.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
