"""DDP and FSDP2 on a gloo group of 2 CPU processes equal one process on the same global batch."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from jepakit import get_config
from jepakit.train import adamw, load_checkpoint, train

from conftest import on_ranks


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


#: Every two-process run of this module, in order, as (folder, method, fsdp, until, resume): one gloo group
#: trains them all, since starting a group costs each process its imports and the runs take a second.
PAIRS = [
    ("ddp", "jepa", False, None, False),
    ("fsdp", "jepa", True, None, False),
    ("fsdp-resumed", "jepa", True, 1, False),  # stopped after step 1 ...
    ("fsdp-resumed", "jepa", True, None, True),  # ... and resumed from its checkpoint
    ("ddp-clip", "contrastive", False, None, False),
    ("ddp-salt", "salt", False, None, False),
]


def _worker(rank: int, world: int, init_file: str, root: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        for name, method, fsdp, until, resume in PAIRS:
            result = train(experiment(fsdp, method), f"{root}/{name}", progress=False, until=until, resume=resume)
            model = result["model"]
            sharded = type(next(model.encoder.parameters())).__name__ == "DTensor"
            assert sharded == fsdp, f"{name}: fsdp={fsdp} but the encoder's parameters are sharded={sharded}"
            fused = bool(adamw([{"params": g.params} for g in model.param_groups()], 1e-3).defaults["fused"])
            assert fused != sharded, "AdamW fuses plain parameters and leaves sharded (DTensor) ones to the default"
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> dict[str, dict]:
    """The full model state of each ``PAIRS`` folder's newest checkpoint, trained on 2 gloo processes."""
    root = tmp_path_factory.mktemp("pairs")
    on_ranks(_worker, (2, str(root / "init"), str(root)))
    newest = {name: sorted((root / name / "checkpoints").iterdir())[-1] for name, *_ in PAIRS}
    return {name: load_checkpoint(path)["model"] for name, path in newest.items()}


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
def test_ddp_on_two_processes_matches_one_process(tmp_path, pairs):
    ddp = pairs["ddp"]
    reference = single(tmp_path)
    assert_same(ddp, reference)
    torch.manual_seed(experiment().train.seed)  # the trainer's initialisation
    initial = experiment().build().state_dict()
    moved = [k for k in reference if k.startswith("encoder.blocks") and not torch.equal(reference[k], initial[k])]
    assert moved, "two steps of training must move the encoder"


@pytest.mark.distributed
def test_fsdp2_on_two_processes_matches_one_process_and_resumes(tmp_path, pairs):
    straight = pairs["fsdp"]
    assert_same(straight, single(tmp_path))
    assert_same(pairs["fsdp-resumed"], straight, atol=1e-6)


@pytest.mark.distributed
def test_ddp_contrastive_training_on_two_processes_matches_one_process(tmp_path, pairs):
    """Each rank holds half the pairs; the loss gathers the other half (with gradients), so two steps
    of DDP equal two steps of one process on the whole batch: towers, projections and temperature."""
    ddp = pairs["ddp-clip"]
    reference = single(tmp_path, method="contrastive")
    assert_same(ddp, reference)
    torch.manual_seed(experiment(method="contrastive").train.seed)
    initial = experiment(method="contrastive").build().state_dict()
    assert not torch.equal(reference["loss_fn.logit_scale"], initial["loss_fn.logit_scale"]), "the temperature learns"


@pytest.mark.distributed
def test_salt_two_stages_on_two_processes_match_one_process(tmp_path, pairs):
    """Both stages under DDP: every rank waits for the teacher's last checkpoint and reads the same file."""
    assert_same(pairs["ddp-salt"], single(tmp_path, method="salt"))
