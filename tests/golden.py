"""Golden values: every recipe shrunk to a small model and trained for 5 steps, recorded before a refactor.

``python tests/golden.py --write`` records, for every registered recipe shrunk alike (64 px with 8 px
patches, ViT 48/3, predictor 48/2, batch 8, 5 steps; clips of 4 frames at 32 px), each logged value of the
first 5 steps (loss parts, metrics, learning rate, weight decay, EMA momentum, monitors) and a SHA-256 of
the weights after them. ``test_golden.py`` re-runs the same and demands bitwise equality on the machine
kind that recorded them. The widths are small because every code path runs at any width and the values
guard the code, not the size: a recipe costs its overhead, not its matrix products.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

FILE = Path(__file__).parent / "data" / "golden.json"

#: The sizes applied to every recipe (the predictor to those that have one): the CPU preset's 8 x 8 patch
#: grid (``ijepa-cpu``) at a quarter of its width and half its depth; a short, small-batch run.
ENCODER = {"embed_dim": 48, "depth": 3, "num_heads": 3, "patch_size": 8}
OVERRIDES = {
    "image_size": 64,
    "encoder": ENCODER,
    "predictor": {"embed_dim": 48, "depth": 2, "num_heads": 3},
    "data": {"size": 64},
    "train": {
        "steps": 5,
        "epochs": None,
        "warmup_epochs": None,
        "precision": "fp32",
        "batch_size": 8,
        "warmup_steps": 2,
        "log_every": 1,
        "monitor_every": 5,
        "checkpoint_every": 5,
        "num_workers": 0,
        "prefetch": 0,
    },
}
#: A text side trained from scratch, shrunk; a pretrained one (the recipes' MiniLM) runs as it is.
SCRATCH_TEXT = {
    "text_encoder": {"embed_dim": 32, "depth": 2, "num_heads": 2},
    "tokenizer": {"vocab_size": 500, "max_length": 16, "fit_samples": 64},
}
PRETRAINED_TEXT = {"tokenizer": {"max_length": 16}}
#: Keys not compared: timing, and the diagnostics logged since the values were recorded (the gradient norm, the
#: mask sizes and the centred rank: functions of the compared values and the weights, whose hash is compared)
NOT_GOLDEN = ("images_per_s", "step", "grad_norm", "context_tokens", "target_tokens", "centred_rank")
#: The thread count values are recorded and compared at (the bits of a reduction, and LAPACK's SVD in the
#: monitors, depend on it); ``data/v1`` was recorded at the same count.
THREADS = 2


def cpu_model() -> str:
    """The CPU's model name (kernels and their rounding differ between vendors and generations)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def machine() -> dict[str, str]:
    """What decides the bits: torch's version, the CPU and the kernels torch picks for it."""
    return {
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "threads": str(THREADS),
    }


def golden_values() -> dict[str, Any]:
    """``data/golden.json``: {"machine": ..., "recipes": {recipe: record}}."""
    return dict(json.loads(FILE.read_text()))


def recorded_here(recorded: dict[str, str]) -> bool:
    """Whether this machine is the kind that ``recorded`` (a ``machine()`` record) names, so that bits must
    match: the same torch, CPU and kernels, and at least the recorded thread count (the tests run at it)."""
    same = all(recorded[k] == v for k, v in machine().items() if k != "threads")
    return same and (os.cpu_count() or 1) >= int(recorded["threads"])


def close(have: dict[str, Any], want: dict[str, Any]) -> bool:
    """Equal up to float rounding elsewhere than the recording machine: numbers to a relative 1e-3, text
    (an event line) with its numbers left out."""
    numbers = [k for k, v in want.items() if isinstance(v, (int, float))]
    digits = lambda text: re.sub(r"[-+]?\d[\d.e+-]*", "#", str(text))  # noqa: E731
    return set(have) == set(want) and all(
        have[k] == pytest.approx(want[k], rel=1e-3, abs=1e-6) if k in numbers else digits(have[k]) == digits(want[k])
        for k in want
    )


def config(recipe: str):
    from jepakit import get_config

    base = get_config(recipe)
    from jepakit import Config

    transformer_predictor = isinstance(getattr(base.method, "predictor", None), Config)  # BYOL's is an MLP
    overrides = {k: v for k, v in OVERRIDES.items() if k != "predictor" or transformer_predictor}
    text = getattr(base.method, "text_encoder", None)
    if text is not None:
        overrides.update(SCRATCH_TEXT if text.type_id() == "text_encoder/transformer" else PRETRAINED_TEXT)
    depth = ENCODER["depth"]
    if getattr(base.method, "target_blocks", 1) > depth:  # data2vec's 10 of 12 blocks: 5 of the preset's 6
        overrides["target_blocks"] = depth - 1
    if getattr(base.method, "num_frames", None) is not None:  # clips: 4 frames at 32 px (2 x 4 x 4 tubelets)
        overrides.update(num_frames=4, image_size=32)
    if base.teacher_run is not None:  # a first stage (SALT's teacher) is shrunk alike
        overrides["teacher_run"] = get_config(base.teacher_run, **overrides)
    return get_config(recipe, **overrides)


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def run(recipe: str) -> dict:
    """The golden record of one recipe."""
    return record(config(recipe))


def record(cfg: Any) -> dict:
    """The golden record of a config: each logged value of its steps and the weights' hash after them."""
    from jepakit.train import train

    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, out, progress=False)
        records = [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]
    # events (the trainer's notes: a collapse warning) are words about the values, not values
    steps = [{k: v for k, v in r.items() if k not in NOT_GOLDEN} for r in records if "event" not in r]
    return {"steps": steps, "weights_sha256": weights_sha256(result["model"].state_dict())}


def main(argv: list[str]) -> int:
    """``--write``: record every recipe; ``--write RECIPE ...``: record those recipes again (their method
    changed) and keep every other record as it is, each record naming the machine that made it."""
    from jepakit import list_recipes

    torch.set_num_threads(THREADS)
    if argv[:1] != ["--write"]:
        print("usage: python tests/golden.py --write [RECIPE ...]")
        return 2
    chosen = argv[1:]
    golden: dict[str, Any] = golden_values() if chosen else {"machine": machine(), "recipes": {}}
    for recipe in chosen or list_recipes():
        golden["recipes"][recipe] = run(recipe)
        if chosen and machine() != golden["machine"]:
            golden["recipes"][recipe]["machine"] = machine()
        print(recipe, golden["recipes"][recipe]["steps"][-1]["loss"], flush=True)
    FILE.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
