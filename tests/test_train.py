"""Schedules (pure functions of the step, I-JEPA's formulas) and atomic, safe checkpoints."""

from __future__ import annotations

import math
import random

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jepakit import create, get_config, to_dict
from jepakit.train import CheckpointManager, adamw, load_checkpoint, lr_at, save_checkpoint, weight_decay_at


@given(total=st.integers(2, 10_000), warm_frac=st.floats(0, 0.5), step=st.integers(0, 12_000))
def test_lr_matches_ijepas_warmup_cosine(total, warm_frac, step):
    warm = int(total * warm_frac)
    lr = lr_at(step, peak=1e-3, total_steps=total, warmup_steps=warm, start=2e-4, final=1e-6)
    if step < warm:
        expected = 2e-4 + step / warm * (1e-3 - 2e-4)
    else:
        progress = min(step - warm, total - warm) / (total - warm)
        expected = 1e-6 + (1e-3 - 1e-6) * 0.5 * (1 + math.cos(math.pi * progress))
    assert lr == pytest.approx(expected, rel=1e-9, abs=1e-15)


@given(total=st.integers(1, 10_000), step=st.integers(0, 12_000))
def test_weight_decay_ramps_from_004_to_04_along_a_cosine(total, step):
    wd = weight_decay_at(step, total_steps=total)
    progress = min(step, total) / total
    assert wd == pytest.approx(0.4 - (0.4 - 0.04) * (1 + math.cos(math.pi * progress)) / 2, rel=1e-9)
    assert weight_decay_at(0, total_steps=total) == pytest.approx(0.04)
    assert weight_decay_at(total, total_steps=total) == pytest.approx(0.4)


@given(seed=st.integers(0, 2**16), wd=st.floats(0.0, 0.5))
def test_fused_adamw_equals_the_plain_update(seed, wd):
    """The trainer's fused AdamW against torch's per-parameter AdamW: same weights after 5 steps."""
    g = torch.Generator().manual_seed(seed)
    start = [torch.randn(7, 5, generator=g), torch.randn(5, generator=g)]
    grads = [[torch.randn(p.shape, generator=g) for p in start] for _ in range(5)]
    runs = []
    for fused in (True, False):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        opt = adamw(
            [{"params": params[:1], "weight_decay": wd}, {"params": params[1:], "weight_decay": 0.0}], 1e-2, fused=fused
        )
        assert opt.defaults["fused"] is (True if fused else None)
        for step in grads:
            for p, grad in zip(params, step, strict=True):
                p.grad = grad.clone()
            opt.step()
        runs.append(params)
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_adamw_fuses_plain_cpu_parameters_by_default():
    assert adamw([{"params": [torch.nn.Parameter(torch.ones(2))], "weight_decay": 0.0}], 1e-3).defaults["fused"]


def test_bad_schedule_lengths():
    with pytest.raises(ValueError, match=r"warmup_steps"):
        lr_at(0, peak=1.0, total_steps=10, warmup_steps=20)


def full_state():
    torch.manual_seed(0)
    model = create("encoder", "vit", embed_dim=16, depth=1, num_heads=2, img_size=16, patch_size=8)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    opt.step()
    tok = create("tokenizer", "sentencepiece", vocab_size=300).fit(["a red circle", "two squares"] * 10)
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": 7,
        "config": to_dict(get_config("tc-jepa")),
        "tokenizer": tok.to_bytes(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
    }


def test_checkpoint_round_trips_everything_with_weights_only(tmp_path):
    state = full_state()
    save_checkpoint(state, tmp_path / "c.pt")
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["step"] == 7 and back["config"] == state["config"] and back["tokenizer"] == state["tokenizer"]
    assert all(torch.equal(back["model"][k], v) for k, v in state["model"].items())
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"]) and back["rng"]["python"] == state["rng"]["python"]
    assert back["optimizer"]["state"][0]["step"] == state["optimizer"]["state"][0]["step"]


def test_an_interrupted_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    manager = CheckpointManager(tmp_path, keep=2)
    manager.save({"w": torch.ones(3), "step": 1}, step=1)

    def dying_save(obj, f):
        f.write(b"partial bytes of a checkpoint")
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        manager.save({"w": torch.zeros(3), "step": 2}, step=2)
    monkeypatch.undo()
    assert [s for s, _ in manager.checkpoints()] == [1]
    assert torch.equal(load_checkpoint(manager.latest())["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001.pt"], "no temporary file left behind"


def test_keep_the_newest_k(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    for step in (5, 10, 15, 20):
        manager.save({"step": step}, step=step)
    assert [s for s, _ in manager.checkpoints()] == [15, 20]
    assert load_checkpoint(manager.latest())["step"] == 20


class Payload:
    """An arbitrary class: unpickling it could run code, so a safe load must refuse it."""


def test_corrupt_and_unsafe_checkpoints_are_refused_by_name(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"bad.pt"):
        load_checkpoint(bad)
    evil = tmp_path / "evil.pt"
    torch.save({"obj": Payload()}, evil)
    with pytest.raises(ValueError, match=r"evil.pt"):
        load_checkpoint(evil)
    with pytest.raises(FileNotFoundError, match=r"missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
