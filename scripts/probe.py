"""Probe a pretrained encoder: ``python scripts/probe.py runs/tc-jepa-cpu [data.seed=7] [--probes linear,dense]``.

The same as ``jepakit probe``: the target encoder of a checkpoint, run folder or export
folder (or ``random:RECIPE``, the random-init floor), on held-out images of the run's
data (its seed + 1) unless overridden; linear, kNN, attentive and dense probes on every
label the data has; writes ``probe.json`` and ``segmentation.png`` beside the source.
"""

from __future__ import annotations

import sys

from jepakit.cli import main

if __name__ == "__main__":
    sys.exit(main(["probe", *sys.argv[1:]]))
