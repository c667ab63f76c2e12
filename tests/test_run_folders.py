"""A run folder never mixes two runs: a new run refuses a folder that holds one, ``--overwrite`` moves
the old run aside whole, and every command that reads a run says which checkpoint it read."""

from __future__ import annotations

import hashlib

import pytest

from jepakit.checkpoint import RunExistsError, claim_run_folder
from jepakit.cli import main
from jepakit.train import train

from conftest import tiny_config

#: The smallest run of the CLI's ijepa-cpu recipe (steps appended per test).
ARGS = [
    "ijepa-cpu",
    "image_size=16",
    "encoder.embed_dim=16",
    "encoder.depth=1",
    "encoder.num_heads=2",
    "encoder.patch_size=4",
    "predictor.embed_dim=16",
    "predictor.depth=1",
    "predictor.num_heads=2",
    "masker.min_keep=2",
    "data.size=8",
    "train.batch_size=4",
    "train.warmup_steps=1",
    "train.num_workers=0",
    "train.loggers=[jsonl]",
    "--quiet",
]


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def experiment(steps: int):
    train_cfg = {"steps": steps, "batch_size": 4, "warmup_steps": 1, "checkpoint_every": 2, "loggers": ["jsonl"]}
    return tiny_config("ijepa", masker={"min_keep": 4}, data={"size": 8}, train=train_cfg)


def test_a_new_run_refuses_a_folder_that_holds_a_run_and_leaves_it_as_it_was(tmp_path):
    train(experiment(4), tmp_path, progress=False)
    saved = {p.name: digest(p) for p in (tmp_path / "checkpoints").iterdir()}
    with pytest.raises(RunExistsError, match=r"already holds a run .*step-00000004\.pt.*--resume.*--overwrite"):
        train(experiment(2), tmp_path, progress=False)
    assert {p.name: digest(p) for p in (tmp_path / "checkpoints").iterdir()} == saved
    with pytest.raises(Exception, match=r"--resume .* --overwrite .*give one"):
        train(experiment(2), tmp_path, resume=True, overwrite=True, progress=False)


def test_the_trainer_itself_never_writes_beside_another_runs_checkpoints(tmp_path):
    cfg = experiment(2)
    train(cfg, tmp_path, progress=False)
    (tmp_path / "config.json").unlink()  # what claims the folder is gone; the checkpoints are not
    (tmp_path / "log.jsonl").unlink()
    with pytest.raises(RunExistsError, match=r"holds checkpoints of another run"):
        cfg.train.build().fit(cfg, tmp_path, progress=False)


def test_overwrite_moves_the_old_run_aside_whole_and_probe_reads_the_new_one(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *ARGS, "train.steps=4", "train.checkpoint_every=2", "--out", str(run)]) == 0
    old = {p.name: digest(p) for p in (run / "checkpoints").iterdir()}
    capsys.readouterr()
    assert main(["train", *ARGS, "train.steps=2", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err and "--overwrite" in err, "one line naming both ways on"
    assert main(["train", *ARGS, "train.steps=2", "--out", str(run), "--overwrite"]) == 0
    out = capsys.readouterr().out
    aside = tmp_path / "run.replaced-1"
    assert f"was moved to {str(aside)!r}" in out
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000002.pt"], "no checkpoint of the old run"
    assert {p.name: digest(p) for p in (aside / "checkpoints").iterdir()} == old, "the old run, untouched"
    assert f"checkpoint: {run / 'checkpoints' / 'step-00000002.pt'}" in out
    probe = ["probe", str(run), "--train", "4", "--val", "2", "--test", "2", "--probes", "knn", "--floor-seeds", "0"]
    assert main([*probe, "data.size=8", "--quiet"]) == 0
    assert f"probing the checkpoint {str(run / 'checkpoints' / 'step-00000002.pt')!r}" in capsys.readouterr().out
    assert main(["train", *ARGS, "train.steps=2", "--out", str(run), "--overwrite"]) == 0
    assert (tmp_path / "run.replaced-2" / "checkpoints" / "step-00000002.pt").is_file(), "never over an earlier one"


def test_resume_says_what_it_continues(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", *ARGS, "train.steps=4", "train.checkpoint_every=2", "--out", run, "--until", "2"]) == 0
    assert main(["train", *ARGS, "train.steps=4", "train.checkpoint_every=2", "--out", run, "--resume"]) == 0
    assert f"resuming from {run}/checkpoints/step-00000002.pt (step 2)" in capsys.readouterr().out


def test_a_folder_without_a_run_is_taken_as_it_is(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert claim_run_folder(tmp_path, resume=False, overwrite=True) is None
    assert (tmp_path / "notes.txt").read_text() == "mine", "nothing of a folder without a run is moved"
    assert claim_run_folder(tmp_path / "new", resume=False, overwrite=False) is None


USER_CODE = '''
from dataclasses import dataclass

from jepakit import get_config
from jepakit.masks.random_mask import RandomConfig, RandomMasker
from jepakit.registry import register, register_recipe


@dataclass(frozen=True)
class MyMaskConfig(RandomConfig):
    pass


@register("masker", "my-mask", MyMaskConfig)
class MyMask(RandomMasker):
    """A masker of the user's own: a run that uses it cannot be read without this file."""


@register_recipe("my-recipe", help="ijepa-cpu with the user's masker")
def my_recipe():
    return get_config("ijepa-cpu", masker="my-mask")
'''


def test_a_run_remembers_the_user_code_it_was_made_with(tmp_path):
    """probe, export and --resume of a run made with --import read it without the flag; when the file is gone,
    one line says what to pass."""
    import json
    import subprocess
    import sys

    (tmp_path / "mine.py").write_text(USER_CODE)
    run = tmp_path / "run"
    small = [a for a in ARGS if a != "ijepa-cpu" and not a.startswith("masker.")]
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "JEPAKIT_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}

    def jepakit(*words: str) -> subprocess.CompletedProcess:
        args = [sys.executable, "-m", "jepakit.cli", *words]
        return subprocess.run(args, cwd=tmp_path / "elsewhere", capture_output=True, text=True, env=env, timeout=300)

    (tmp_path / "elsewhere").mkdir()
    made = jepakit(
        "--import",
        str(tmp_path / "mine.py"),
        "train",
        "my-recipe",
        *small,
        "train.steps=4",
        "train.checkpoint_every=2",
        "--until",
        "2",
        "--out",
        str(run),
    )
    assert made.returncode == 0, made.stderr[-2000:]
    assert json.loads((run / "config.json").read_text())["imports"] == [str(tmp_path / "mine.py")]
    resumed = jepakit(
        "train", "my-recipe", *small, "train.steps=4", "train.checkpoint_every=2", "--out", str(run), "--resume"
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    probe = jepakit(
        "probe",
        str(run),
        "--train",
        "4",
        "--val",
        "2",
        "--test",
        "2",
        "--probes",
        "knn",
        "--floor-seeds",
        "0",
        "data.size=8",
        "--quiet",
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    (tmp_path / "mine.py").rename(tmp_path / "moved.py")
    lost = jepakit("export", str(run))
    assert lost.returncode == 2 and lost.stderr.count("\n") == 1
    assert "was made with --import" in lost.stderr and "mine.py" in lost.stderr
