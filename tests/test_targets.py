"""Target updaters: the EMA formula and schedule, frozen teachers from files, stop-gradient copy."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jepakit import ConfigError, create
from jepakit.targets.ema import EMAConfig, ema_momentum


def encoder(seed: int = 0):
    torch.manual_seed(seed)
    return create("encoder", "vit", embed_dim=16, depth=1, num_heads=2, img_size=16, patch_size=8)


def params(module):
    return [p.detach().clone() for p in module.parameters()]


@given(start=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_ema_matches_the_formula(start, seed):
    updater = create("target_updater", "ema", momentum_start=start, momentum_end=1.0, total_steps=10)
    online = encoder(seed)
    target = updater.make_target(online)
    with torch.no_grad():
        for p in online.parameters():
            p.mul_(-2.0).add_(0.5)
    before = params(target)
    updater.update(online, target, step=0, total_steps=10)
    m = start
    for t0, t1, o in zip(before, target.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(t1, m * t0 + (1 - m) * o, rtol=1e-6, atol=1e-6)


def test_ema_momentum_one_keeps_and_zero_copies_exactly():
    online = encoder(0)
    keep = create("target_updater", "ema", momentum_start=1.0, momentum_end=1.0)
    copy = create("target_updater", "ema", momentum_start=0.0, momentum_end=0.0)
    target = keep.make_target(encoder(1))
    before = params(target)
    keep.update(online, target, step=3, total_steps=10)
    assert all(torch.equal(a, b) for a, b in zip(before, target.parameters(), strict=True))
    copy.update(online, target, step=3, total_steps=10)
    assert all(torch.equal(a, b) for a, b in zip(online.parameters(), target.parameters(), strict=True))


@given(step=st.integers(-5, 300), schedule=st.sampled_from(["linear", "cosine"]))
def test_momentum_schedule_is_a_pure_monotone_function_of_the_step(step, schedule):
    run = EMAConfig(momentum_start=0.996, momentum_end=1.0, schedule=schedule)  # the ramp spans the run
    fixed = run.replace(total_steps=200)  # ... or a length of its own, whatever the run's
    m = ema_momentum(run, step, 200)
    assert m == ema_momentum(fixed, step, 999)
    assert 0.996 <= m <= 1.0 and ema_momentum(run, step + 1, 200) >= m
    assert ema_momentum(run, 0, 200) == 0.996 and ema_momentum(run, 200, 200) == ema_momentum(run, 10**6, 200) == 1.0
    progress = min(max(step, 0), 200) / 200
    shape = progress if schedule == "linear" else (1 - math.cos(math.pi * progress)) / 2
    assert m == pytest.approx(0.996 + 0.004 * shape, rel=1e-12)


@pytest.mark.parametrize("schedule, quarter", [("linear", 0.997), ("cosine", 0.996 + 0.004 * (1 - 2**-0.5) / 2)])
def test_momentum_ramp_has_its_shape_between_the_ends(schedule, quarter):
    cfg = EMAConfig(momentum_start=0.996, momentum_end=1.0, schedule=schedule)
    assert ema_momentum(cfg, 100, 200) == pytest.approx(0.998, rel=1e-12)
    assert ema_momentum(cfg, 50, 200) == pytest.approx(quarter, rel=1e-12)


def test_ema_bad_config():
    with pytest.raises(ConfigError, match=r"momentum_start"):
        EMAConfig(momentum_start=1.5)
    with pytest.raises(ConfigError, match=r"total_steps"):
        EMAConfig(total_steps=0)


@pytest.mark.parametrize("suffix, key", [(".safetensors", None), (".pt", None), (".pt", "target_encoder")])
def test_frozen_teacher_loads_from_file_and_never_moves(tmp_path, suffix, key):
    teacher = encoder(7)
    path = str(tmp_path / f"teacher{suffix}")
    state = {k: v.contiguous() for k, v in teacher.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, path)
    else:
        torch.save({key: state} if key else state, path)
    updater = create("target_updater", "frozen", checkpoint=path, key=key)
    online = encoder(0)
    target = updater.make_target(online)
    assert all(torch.equal(a, b) for a, b in zip(teacher.parameters(), target.parameters(), strict=True))
    before = params(target)
    updater.update(online, target, step=5, total_steps=10)
    assert all(torch.equal(a, b) for a, b in zip(before, target.parameters(), strict=True))
    assert not any(p.requires_grad for p in target.parameters())


def test_frozen_teacher_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing.pt"):
        create("target_updater", "frozen", checkpoint=str(tmp_path / "missing.pt")).make_target(encoder())
    path = str(tmp_path / "other.pt")
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(ConfigError, match=r"missing keys"):
        create("target_updater", "frozen", checkpoint=path).make_target(encoder())
    with pytest.raises(ConfigError, match=r"key='nope'"):
        create("target_updater", "frozen", checkpoint=path, key="nope").make_target(encoder())


def test_frozen_teacher_refuses_pickled_objects(tmp_path):
    path = str(tmp_path / "evil.pt")
    torch.save({"obj": ConfigError("not a tensor")}, path)
    with pytest.raises(Exception, match=r"weights_only|Weights only load failed|Unsupported|WeightsUnpickler"):
        create("target_updater", "frozen", checkpoint=path).make_target(encoder())


def test_copy_has_no_target():
    assert create("target_updater", "copy").make_target(encoder()) is None
