"""LeJEPA: multi-crop views drawn from the seeds, the loss against its formula (every view regresses the
mean of the global views' projections, with no stop-gradient, plus SIGReg per view), config errors,
and exact resume of a run."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit import ConfigError, get_config
from jepakit.losses.embedding import epps_pulley
from jepakit.methods.base import Draw
from jepakit.train import train

from conftest import tiny_config

TRAIN = {"steps": 4, "batch_size": 4, "warmup_steps": 1, "log_every": 2, "monitor_every": 2, "checkpoint_every": 2}


def tiny(**overrides):
    """lejepa-cpu on an 8 x 8 grid of 4 px patches, local views of 16 px, a small projector."""
    fields = {"local_size": 16, "projector": (32, 32, 16), "data": {"size": 16}, "train": TRAIN, **overrides}
    return tiny_config("lejepa-cpu", **fields)


def draw(n: int, seed: int = 0, first: int = 0) -> Draw:
    index = torch.arange(first, first + n)
    return Draw(seed=seed, epoch=0, step=0, micro=0, indices=index, rows=torch.arange(n), size=n)


def samples(n: int, side: int = 32) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [{"image": torch.rand(3, side, side, generator=g), "captions": []} for _ in range(n)]


@settings(max_examples=8, deadline=None)
@given(global_views=st.integers(2, 3), local_views=st.integers(0, 3), seed=st.integers(0, 100))
def test_views_have_their_sizes_and_are_a_pure_function_of_the_seeds(global_views, local_views, seed):
    model = tiny(global_views=global_views, local_views=local_views).method.build()
    batch = model.make_batch(samples(3), draw(3, seed))
    assert batch["global_views"].shape == (global_views, 3, 3, 32, 32)
    if local_views:
        assert batch["local_views"].shape == (local_views, 3, 3, 16, 16)
    else:
        assert batch["local_views"] is None
    again = model.make_batch(samples(3), draw(3, seed))
    assert torch.equal(again["global_views"], batch["global_views"])
    other = model.make_batch(samples(3), draw(3, seed, first=10))  # other sample indices: other crops
    assert not torch.equal(other["global_views"], batch["global_views"])
    assert not torch.equal(batch["global_views"][0], batch["global_views"][1]), "two views of an image differ"


def test_the_loss_is_the_papers_formula():
    torch.manual_seed(0)
    model = tiny(lam=0.3).method.build().double()
    batch = model.make_batch(samples(6), draw(6))
    g, loc = batch["global_views"].double(), batch["local_views"].double()
    out = model(g, loc, step=5)
    # by hand: pooled tokens -> projector on all views at once (BatchNorm sees every view) -> [V, B, K]
    pooled = torch.cat([model.encoder(g.flatten(0, 1)).mean(1), model.encoder(loc.flatten(0, 1)).mean(1)])
    z = model.projector(pooled).view(8, 6, -1)
    prediction = ((z - z[:2].mean(0)) ** 2).mean()
    a = model.regulariser.directions(z.shape[-1], 5).double()
    sigreg = torch.stack([epps_pulley(v @ a).mean() for v in z]).mean()
    torch.testing.assert_close(out["prediction"], 0.7 * prediction)
    # SIGReg runs in float32 (its cos/sin means), whatever the embeddings' dtype
    torch.testing.assert_close(out["sigreg"], 0.3 * sigreg.float(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(out["loss"], 0.7 * prediction + 0.3 * sigreg, rtol=1e-5, atol=1e-7, check_dtype=False)


def centre_grads(local_views: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The patch embedding's gradient of the prediction term, and of the same with the centre detached."""
    torch.manual_seed(0)
    model = tiny(local_views=local_views, lam=0.0).method.build().double()
    batch = model.make_batch(samples(4), draw(4))
    g = batch["global_views"].double()
    loc = batch["local_views"].double() if local_views else None
    model(g, loc)["loss"].backward()
    grads = [model.encoder.patch_embed.proj.weight.grad.clone()]
    model.zero_grad()
    pooled = [model.pooled(g.flatten(0, 1))] + ([model.pooled(loc.flatten(0, 1))] if loc is not None else [])
    z = model.projector(torch.cat(pooled)).view(-1, 4, 16)
    ((z - z[:2].mean(0).detach()) ** 2).mean().backward()
    return grads[0], model.encoder.patch_embed.proj.weight.grad


def test_no_stop_gradient_the_centre_is_trained_by_the_local_views():
    # the centre's own gradient is -2/N * mean over global views of the sum over all views of (z_v - centre):
    # zero when the views are the global ones (their deviations from their mean sum to 0), not with local views
    full, detached = centre_grads(local_views=2)
    assert not torch.allclose(full, detached)
    full, detached = centre_grads(local_views=0)
    torch.testing.assert_close(full, detached)


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"global_views=1.*at least 2"):
        get_config("lejepa-cpu", global_views=1)
    with pytest.raises(ConfigError, match=r"local_size=30 is not divisible by encoder.patch_size=8"):
        get_config("lejepa-cpu", local_size=30)
    with pytest.raises(ConfigError, match=r"regulariser 'smooth-l1' is not a regulariser.*sigreg"):
        get_config("lejepa-cpu", regulariser="smooth-l1")
    cfg = get_config("lejepa")
    assert (cfg.method.image_size, cfg.method.local_size, cfg.method.global_views, cfg.method.local_views) == (
        224,
        96,
        2,
        6,
    )
    assert (cfg.method.global_scale, cfg.method.local_scale, cfg.method.lam) == ((0.3, 1.0), (0.05, 0.3), 0.05)


def test_a_run_logs_both_parts_and_resumes_bitwise(tmp_path):
    cfg = tiny()
    straight = train(cfg, tmp_path / "straight", progress=False)
    log = (tmp_path / "straight" / "log.jsonl").read_text()
    assert '"prediction"' in log and '"sigreg"' in log and '"effective_rank"' in log
    train(cfg, tmp_path / "resumed", progress=False, until=2)
    resumed = train(cfg, tmp_path / "resumed", resume=True, progress=False)
    want, got = straight["model"].state_dict(), resumed["model"].state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
