"""Preemption and disks: a real signal to a real run, on one process and under torchrun; unwritable
and full run folders."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from jepakit.checkpoint import CheckpointError, RunFolderError, load_checkpoint
from jepakit.train import train
from jepakit.train.signals import EXIT_STOPPED

from conftest import on_ranks, tiny_config

#: A tiny run of many short steps: long enough to be interrupted, short enough for the suite.
ARGS = [
    "ijepa-cpu",
    "image_size=32",
    "encoder.embed_dim=32",
    "encoder.depth=2",
    "encoder.num_heads=2",
    "encoder.patch_size=4",
    "predictor.embed_dim=16",
    "predictor.depth=2",
    "predictor.num_heads=2",
    "masker.min_keep=4",
    "data.size=16",
    "train.batch_size=4",
    "train.steps=16",
    "train.warmup_steps=2",
    "train.log_every=1",
    "train.checkpoint_every=2",
    "train.num_workers=0",
    "--quiet",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def start(out: Path, *extra: str, torchrun: bool = False) -> subprocess.Popen:
    cli = ["-m", "jepakit.cli", "train", *ARGS, "--out", str(out), *extra]
    launcher = ["-m", "torch.distributed.run", "--nproc-per-node", "2"] if torchrun else []
    return subprocess.Popen(
        [sys.executable, *launcher, *cli], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def cli(*extra: str) -> int:
    """The same command in this process: the same code at the same one thread, without a new process's
    imports (the runs that are signalled are real processes)."""
    from jepakit.cli import main

    return main(["train", *ARGS, *extra])


def _cli_rank(rank: int, world: int, port: int, extra: tuple[str, ...]) -> None:
    """``cli(*extra)`` as rank ``rank`` of ``world``, in the environment torchrun gives its ranks."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    assert cli(*extra) == 0


def wait_for_step(out: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the run's log records ``step`` (the run is then mid-training)."""
    deadline = time.monotonic() + timeout
    log = out / "log.jsonl"
    while time.monotonic() < deadline:
        if log.is_file() and any(json.loads(line).get("step", 0) >= step for line in log.read_text().splitlines()):
            return
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached")


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def free_port() -> int:
    """A TCP port no one listens on now (for the ranks' rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def weights(out: Path) -> dict[str, torch.Tensor]:
    newest = sorted((out / "checkpoints").glob("step-*.pt"))[-1]
    return load_checkpoint(newest)["model"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The weights of the same run, never interrupted."""
    out = tmp_path_factory.mktemp("straight")
    assert cli("--out", str(out)) == 0
    return weights(out)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_after_the_step_with_a_checkpoint_and_resume_is_exact(tmp_path, sig, straight):
    run = start(tmp_path / "run")
    wait_for_step(tmp_path / "run", 3, run)
    run.send_signal(sig)
    code, _, err = finish(run)
    assert code == EXIT_STOPPED, err[-2000:]
    events = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    stop = next(e for e in events if "event" in e)
    assert sig.name in stop["event"] and f"step-{stop['step']:08d}.pt" in stop["event"]
    assert stop["step"] < 16 and (tmp_path / "run" / "checkpoints" / f"step-{stop['step']:08d}.pt").is_file()
    assert cli("--out", str(tmp_path / "run"), "--resume") == 0  # here: a fresh start reads only the disk
    resumed = weights(tmp_path / "run")
    assert resumed.keys() == straight.keys() and all(torch.equal(resumed[k], straight[k]) for k in resumed), (
        "resumed as if never stopped"
    )


SLOW_SAVES = """
import sys, time
import jepakit.checkpoint as checkpoint
real = checkpoint.save_checkpoint

def slow(state, path):  # a large checkpoint on a slow disk: the second signal lands mid-save
    if state["step"] > 2:
        print("SAVING", flush=True)
        time.sleep(3)
    return real(state, path)

checkpoint.save_checkpoint = slow
from jepakit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_second_signal_exits_at_once_and_leaves_the_last_checkpoint_whole(tmp_path):
    out = tmp_path / "run"
    run = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVES, "train", *ARGS, "--out", str(out)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_step(out, 3, run)
    run.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the first is handled (two signals at once would arrive as one); the stop's save takes 3 s
    assert run.poll() is None
    t0 = time.monotonic()
    run.send_signal(signal.SIGTERM)
    code, _, err = finish(run)
    assert code == 128 + signal.SIGTERM and time.monotonic() - t0 < 2, (code, err[-2000:])
    files = sorted((out / "checkpoints").glob("step-*.pt"))
    assert files and all("model" in load_checkpoint(path) for path in files), "every complete checkpoint loads"
    assert cli("--out", str(out), "--resume") == 0
    assert not list((out / "checkpoints").glob(".*.tmp")), "the interrupted save's temporary file is cleared"


@pytest.mark.distributed
def test_every_rank_stops_at_the_same_step_under_torchrun(tmp_path):
    """And the command under torchrun: every rank stops and resumes alike, and only rank 0 reports."""
    run = start(tmp_path / "run", "train.log_every=1", torchrun=True)
    wait_for_step(tmp_path / "run", 3, run)
    run.send_signal(signal.SIGTERM)
    finish(run)
    events = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    stop = next(e for e in events if "event" in e)
    assert "SIGTERM" in stop["event"] or "another rank" in stop["event"]
    assert (tmp_path / "run" / "checkpoints" / f"step-{stop['step']:08d}.pt").is_file()
    code, out, err = finish(start(tmp_path / "run", "--resume", torchrun=True))
    assert code == 0, err[-3000:]
    assert out.count("checkpoint:") == 1, "only rank 0 reports"
    straight = tmp_path / "straight"  # the same two ranks, never stopped (forked here: no new imports)
    on_ranks(_cli_rank, (2, free_port(), ("--out", str(straight))))
    a, b = weights(tmp_path / "run"), weights(straight)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed as if never stopped"


def experiment():
    return tiny_config(
        "ijepa",
        masker={"min_keep": 4},
        data={"size": 8},
        train={"steps": 4, "batch_size": 4, "warmup_steps": 1, "checkpoint_every": 2},
    )


def test_an_unwritable_run_folder_fails_before_training(tmp_path):
    if os.geteuid() == 0:  # root writes anywhere a mode allows nothing: use a place no one can write
        folder = Path("/proc/self/jepakit-run")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        folder = locked / "run"
    with pytest.raises(RunFolderError, match=r"jepakit-run|run'"):
        train(experiment(), folder, progress=False)


def test_a_run_folder_too_full_for_a_checkpoint_fails_before_training(tmp_path, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1024))
    with pytest.raises(RunFolderError, match=r"1024|0 MB free"):
        train(experiment(), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_save_that_fails_half_way_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = torch.save

    def disk_full(obj, f, *args, **kwargs):
        if obj["step"] == 4:
            f.write(b"half a checkpoint")
            raise OSError(28, "No space left on device")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError, match=r"step-00000004\.pt.*No space left.*step-00000002\.pt"):
        train(experiment(), tmp_path, progress=False)
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == ["step-00000002.pt"], "no half-written file is left, the last good one stays"
    assert load_checkpoint(tmp_path / "checkpoints" / "step-00000002.pt")["step"] == 2
