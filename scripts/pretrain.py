"""Pretrain a recipe: ``python scripts/pretrain.py tc-jepa-cpu train.steps=500 [--out DIR] [--resume]``.

The same as ``jepakit train``; with no data override it trains on the embedded scenes.
"""

from __future__ import annotations

import sys

from jepakit.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
