"""DDP on a gloo group of 2 CPU processes equals one process on the same global batch."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from jepakit import get_config
from jepakit.train import train


def experiment():
    return get_config(
        "ijepa",
        image_size=32,
        encoder={"embed_dim": 32, "depth": 2, "num_heads": 2, "patch_size": 8},
        predictor={"embed_dim": 16, "depth": 2, "num_heads": 2},
        masker={"min_keep": 4},
        data={"size": 32},
        train={"steps": 2, "batch_size": 8, "warmup_steps": 1, "lr": 1e-3},
    )


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        result = train(experiment(), out, progress=False)
        if rank == 0:
            torch.save(result["model"].state_dict(), os.path.join(out, "weights.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_gloo_processes_match_one_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "ddp")), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp" / "weights.pt", weights_only=True)
    torch.set_num_threads(1)
    single = train(experiment(), tmp_path / "single", progress=False)["model"].state_dict()
    assert ddp.keys() == single.keys()
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], atol=2e-5, rtol=1e-4, msg=k)
    torch.manual_seed(experiment().train.seed)  # the trainer's initialisation
    initial = experiment().build().state_dict()
    moved = [k for k in single if k.startswith("encoder.blocks") and not torch.equal(single[k], initial[k])]
    assert moved, "two steps of training must move the encoder"
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()) == ["step-00000002.pt"]
