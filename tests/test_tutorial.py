"""docs/tutorial.md runs as written: a method defined outside the package trains, resumes, probes
and exports through the command line, with no library edit."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import torch

TUTORIAL = Path(__file__).parents[1] / "docs" / "tutorial.md"
#: Appended to every command of the tutorial: the same run, small enough for the suite.
SMALL = [
    "encoder.depth=3",
    "predictor.depth=1",
    "train.batch_size=8",
    "train.steps=4",
    "train.warmup_steps=1",
    "train.checkpoint_every=2",
    "data.size=16",
    "train.num_workers=0",
]

DRIVER = """
import shlex, sys
from jepakit.cli import main
for line in sys.argv[1:]:
    assert main(shlex.split(line)) == 0, line
"""


def test_tutorial_runs_end_to_end(tmp_path):
    text = TUTORIAL.read_text()
    module, usage = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (commands,) = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    (tmp_path / "my_data2vec.py").write_text(module)
    lines = []
    for command in commands.strip().splitlines():
        words = shlex.split(command)
        assert words[0] == "jepakit"
        words = [w.replace("runs/d2v", str(tmp_path / "runs" / "d2v")) for w in words[1:]]
        words = [w.replace("step-00000300.pt", "step-00000004.pt") for w in words]
        if "--until" in words:
            words[words.index("--until") + 1] = "2"
        if "train" in words:
            words += [*SMALL, "--quiet"]
        if "probe" in words:
            words += ["data.size=48", "--train", "24", "--val", "8", "--test", "16", "--probes", "linear,knn"]
            words += ["--floor-seeds", "1"]  # the floor's code path; its spread is tested in test_eval.py
        lines.append(shlex.join(words))
    straight = lines[0].replace(str(tmp_path / "runs" / "d2v"), str(tmp_path / "runs" / "straight"))
    straight = straight.replace(" --until 2", "")
    # one thread, as the suite runs (tiny models); floors cached in the test's folder, not the home
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "JEPAKIT_CACHE": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", DRIVER, *lines, straight],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    usage_run = subprocess.run(
        [sys.executable, "-c", usage],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert usage_run.returncode == 0, usage_run.stderr[-3000:]
    assert "loss" in usage_run.stdout and "data2vec-tutorial" in usage_run.stdout

    resumed = torch.load(tmp_path / "runs/d2v/checkpoints/step-00000004.pt", weights_only=True)
    whole = torch.load(tmp_path / "runs/straight/checkpoints/step-00000004.pt", weights_only=True)
    assert resumed["model"].keys() == whole["model"].keys()
    assert all(torch.equal(resumed["model"][k], whole["model"][k]) for k in whole["model"]), "resume is exact"
    probe = json.loads((tmp_path / "runs/d2v/probe.json").read_text())
    assert "count" in probe["linear"] and "count" in probe["knn"]
    export = json.loads((tmp_path / "runs/d2v/checkpoints/step-00000004.pt-timm/config.json").read_text())
    assert export["source"]["weights"] == "teacher_encoder"
