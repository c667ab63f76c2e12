"""The command line: user errors are one line and exit 2; --debug and internal errors keep the traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from jepakit.cli import main


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "tc-jepa-cpu", "predictor.dept=3"], ["unknown field 'dept'", "Did you mean 'depth'"]),
        (["train", "ijepa-cpuu"], ["unknown recipe 'ijepa-cpuu'", "Did you mean 'ijepa-cpu'"]),
        (["show", "ijepa-cpu", "encoder.depth=0"], ["encoder/vit.depth=0 must be >= 1"]),
        (["show", "ijepa-cpu", "train.lr=fast"], ["train.lr='fast' is not a float"]),
        (
            ["show", "ijepa-cpu", "target_updater.checkpoint=/x"],
            ["unknown field 'checkpoint'", "'frozen' has it", "target_updater=frozen target_updater.checkpoint=..."],
        ),
        (["show", "ijepa-cpu", "data=captions", "data.captions=/no/such.jsonl"], ["/no/such.jsonl", "does not exist"]),
        (["probe", "/no/such/run"], ["/no/such/run", "does not exist"]),
        (["export", "README.md"], ["README.md", "cannot be read safely"]),
        (["--import", "/no/such/module.py", "list"], ["/no/such/module.py", "no such file"]),
    ],
)
def test_a_user_error_is_one_line_naming_the_problem(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("jepakit: error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with a GPU trains on it")
@pytest.mark.parametrize(
    "extra, words",
    [
        (["train.device=cuda"], ["train.device='cuda'", "no CUDA GPU", "train.device=cpu"]),
        (["--resume", "--overwrite"], ["--resume", "--overwrite", "give one"]),
    ],
)
def test_a_training_mistake_is_one_line_before_anything_is_written(tmp_path, capsys, extra, words):
    assert main(["train", "ijepa-cpu", "--out", str(tmp_path / "run"), *extra]) == 2
    assert not (tmp_path / "run").exists()
    err = capsys.readouterr().err
    assert err.startswith("jepakit: error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err


def test_debug_shows_the_traceback():
    from jepakit import UnknownChoiceError

    with pytest.raises(UnknownChoiceError):
        main(["--debug", "show", "ijepa-cpu", "predictor.dept=3"])


def test_an_internal_error_keeps_its_traceback(monkeypatch):
    import jepakit.cli

    def broken(args):
        raise RuntimeError("a bug inside jepakit")

    monkeypatch.setitem(jepakit.cli.COMMANDS, "list", broken)
    with pytest.raises(RuntimeError, match=r"a bug inside jepakit"):
        main(["list"])


def test_the_installed_command_exits_2_with_one_line():
    done = subprocess.run(
        [sys.executable, "-m", "jepakit.cli", "train", "tc-jepa-cpu", "predictor.dept=3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Did you mean 'depth'" in done.stderr


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--probes", "linar"], ["unknown probes ['linar']", "'linear'"]),
        (["--train", "100000"], ["train=100000", "need more images than the data has"]),
    ],
)
def test_a_probe_mistake_is_one_line(tmp_path, monkeypatch, capsys, extra, words):
    monkeypatch.chdir(tmp_path)
    assert main(["probe", "random:ijepa-cpu", "data.size=8", "--floor-seeds", "0", "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jepakit: error: ") and err.count("\n") == 1, err
    assert all(w in err for w in words), err


def _folder(root, bad: int, good: int) -> None:
    from conftest import png

    (root / "a").mkdir(parents=True)
    for i in range(good):
        (root / "a" / f"{i}.png").write_bytes(png((200, 30, 30)))
    for i in range(bad):
        (root / "a" / f"bad{i}.png").write_bytes(b"not an image")


@pytest.mark.parametrize(
    "bad, good, policy, words",
    [
        (1, 7, "fail", ["cannot decode image", "bad0.png", "data.on_error=skip"]),
        (8, 0, "skip", ["none of the batch's 8 samples could be read"]),
    ],
)
def test_unreadable_data_is_one_line(tmp_path, capsys, bad, good, policy, words):
    _folder(tmp_path / "data", bad, good)
    data = ["data=imagefolder", f"data.root={tmp_path / 'data'}", f"data.on_error={policy}"]
    small = ["image_size=16", "encoder.patch_size=4", "encoder.depth=1", "predictor.depth=1", "masker.min_keep=2"]
    train = ["train.steps=1", "train.batch_size=8", "train.warmup_steps=0", "train.num_workers=0"]
    argv = ["train", "ijepa-cpu", *data, *small, *train, "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("jepakit: error: ") and err.count("\n") == 1, err
    assert all(w in err for w in words), err
