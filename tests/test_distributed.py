"""DDP and FSDP2 on a gloo group of 2 CPU processes equal one process on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from jepakit import get_config
from jepakit.train import adamw, load_checkpoint, train


def experiment(fsdp: bool = False, method: str = "jepa"):
    if method == "contrastive":  # clip-cpu shrunk: the loss must see the global batch (gathered with gradients)
        return get_config(
            "clip-cpu",
            image_size=32,
            embed_dim=16,
            encoder={"embed_dim": 32, "depth": 2, "num_heads": 2, "patch_size": 8},
            text_encoder={"embed_dim": 16, "depth": 1, "num_heads": 2},
            tokenizer={"vocab_size": 300, "max_length": 8, "fit_samples": 32},
            data={"size": 32},
            train={"steps": 2, "batch_size": 8, "warmup_steps": 1, "fsdp": fsdp},
        )
    small = dict(
        image_size=32,
        encoder={"embed_dim": 32, "depth": 2, "num_heads": 2, "patch_size": 8},
        predictor={"embed_dim": 16, "depth": 2, "num_heads": 2},
        masker={"min_keep": 4},
        data={"size": 32},
        train={"steps": 2, "batch_size": 8, "warmup_steps": 1, "lr": 1e-3, "fsdp": fsdp}
        | {"epochs": None, "warmup_epochs": None, "precision": "fp32"},
    )
    if method == "salt":  # both stages shrunk alike: the teacher's stage, then the student's reading it
        salt = get_config("salt-cpu")
        assert salt.teacher_run is not None
        first = get_config(salt.teacher_run, **small)
        return get_config(salt.replace(teacher_run=None), **small).replace(teacher_run=first)
    return get_config("ijepa", **small)


def _worker(
    rank: int, world: int, init_file: str, out: str, fsdp: bool, until: int | None, resume: bool, method: str
) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = train(experiment(fsdp, method), out, progress=False, until=until, resume=resume)["model"]
        sharded = type(next(model.encoder.parameters())).__name__ == "DTensor"
        assert sharded == fsdp, f"fsdp={fsdp} but the encoder's parameters are sharded={sharded}"
        fused = bool(adamw([{"params": g.params} for g in model.param_groups()], 1e-3).defaults["fused"])
        assert fused != sharded, "AdamW fuses plain parameters and leaves sharded (DTensor) ones to the default"
    finally:
        dist.destroy_process_group()


def run_pair(
    tmp_path, name: str, fsdp: bool, until: int | None = None, resume: bool = False, method: str = "jepa"
) -> dict:
    """Train on 2 gloo processes; return the full model state of the newest checkpoint."""
    init = tmp_path / f"init-{name}-{until}-{resume}"
    mp.spawn(_worker, args=(2, str(init), str(tmp_path / name), fsdp, until, resume, method), nprocs=2, join=True)
    checkpoints = sorted((tmp_path / name / "checkpoints").iterdir())
    return load_checkpoint(checkpoints[-1])["model"]


def single(tmp_path, method: str = "jepa") -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank
    try:
        return train(experiment(method=method), tmp_path / "single", progress=False)["model"].state_dict()
    finally:
        torch.set_num_threads(threads)


def assert_same(a: dict, b: dict, atol: float = 2e-5) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-4, msg=k)


@pytest.mark.distributed
def test_ddp_on_two_processes_matches_one_process(tmp_path):
    ddp = run_pair(tmp_path, "ddp", fsdp=False)
    reference = single(tmp_path)
    assert_same(ddp, reference)
    torch.manual_seed(experiment().train.seed)  # the trainer's initialisation
    initial = experiment().build().state_dict()
    moved = [k for k in reference if k.startswith("encoder.blocks") and not torch.equal(reference[k], initial[k])]
    assert moved, "two steps of training must move the encoder"


@pytest.mark.distributed
def test_fsdp2_on_two_processes_matches_one_process_and_resumes(tmp_path):
    straight = run_pair(tmp_path, "fsdp", fsdp=True)
    assert_same(straight, single(tmp_path))
    run_pair(tmp_path, "fsdp-resumed", fsdp=True, until=1)
    resumed = run_pair(tmp_path, "fsdp-resumed", fsdp=True, resume=True)
    assert_same(resumed, straight, atol=1e-6)


@pytest.mark.distributed
def test_ddp_contrastive_training_on_two_processes_matches_one_process(tmp_path):
    """Each rank holds half the pairs; the loss gathers the other half (with gradients), so two steps
    of DDP equal two steps of one process on the whole batch: towers, projections and temperature."""
    ddp = run_pair(tmp_path, "ddp-clip", fsdp=False, method="contrastive")
    reference = single(tmp_path, method="contrastive")
    assert_same(ddp, reference)
    torch.manual_seed(experiment(method="contrastive").train.seed)
    initial = experiment(method="contrastive").build().state_dict()
    assert not torch.equal(reference["loss_fn.logit_scale"], initial["loss_fn.logit_scale"]), "the temperature learns"


@pytest.mark.distributed
def test_salt_two_stages_on_two_processes_match_one_process(tmp_path):
    """Both stages under DDP: every rank waits for the teacher's last checkpoint and reads the same file."""
    ddp = run_pair(tmp_path, "ddp-salt", fsdp=False, method="salt")
    assert_same(ddp, single(tmp_path, method="salt"))


@pytest.mark.distributed
def test_the_cli_under_torchrun(tmp_path):
    args = [
        "train",
        "ijepa-cpu",
        "train.steps=2",
        "train.batch_size=4",
        "train.warmup_steps=1",
        "data.size=8",
        "encoder.depth=1",
        "predictor.depth=1",
        "train.num_workers=0",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "jepakit.cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("checkpoint:") == 1, "only rank 0 reports"
    assert (tmp_path / "checkpoints" / "step-00000002.pt").is_file()
