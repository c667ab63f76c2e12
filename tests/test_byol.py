"""BYOL: its loss and heads against lightly's, one target updater over the encoder and projector, its two
views drawn from the sample's seeds, and the configs it refuses."""

from __future__ import annotations

import pytest
import torch

from jepakit import ConfigError, get_config
from jepakit.check import tiny_config
from jepakit.methods.base import Draw
from jepakit.methods.byol import BYOL, BYOLConfig, byol_loss


def tiny_byol(**fields) -> BYOL:
    torch.manual_seed(0)
    cfg = tiny_config("byol-cpu", patch=8, grid=4, projector=(64, 16), predictor=(64, 16), **fields)
    return cfg.method.build()


def test_the_loss_is_the_papers_and_lightlys_negative_cosine():
    """2 - 2 cos per direction, summed (BYOL's L + L~) = 4 + 2 x (lightly's -cos of each direction)."""
    from lightly.loss import NegativeCosineSimilarity

    g = torch.Generator().manual_seed(0)
    p0, p1, z0, z1 = (torch.randn(8, 16, generator=g, dtype=torch.float64) for _ in range(4))
    neg = NegativeCosineSimilarity()
    ours = byol_loss(p0, z1) + byol_loss(p1, z0)
    assert torch.allclose(ours, 4 + 2 * (neg(p0, z1) + neg(p1, z0)), atol=1e-12)
    assert float(byol_loss(p0, p0)) == pytest.approx(0.0, abs=1e-12)
    assert float(byol_loss(p0, -p0)) == pytest.approx(4.0, abs=1e-12)


def test_the_heads_are_lightlys_byol_heads():
    """The projector and predictor compute lightly's BYOLProjectionHead / BYOLPredictionHead (whose first
    layer has no bias before its BatchNorm: ours, given a zero bias, is the same function)."""
    from lightly.models.modules.heads import BYOLPredictionHead, BYOLProjectionHead

    method = tiny_byol()
    g = torch.Generator().manual_seed(1)
    for ours, theirs in (
        (method.online["projector"], BYOLProjectionHead(32, 64, 16)),
        (method.predictor, BYOLPredictionHead(16, 64, 16)),
    ):
        with torch.no_grad():
            ours[0].bias.zero_()
        state = [v for k, v in ours.state_dict().items() if k != "0.bias"]
        theirs.load_state_dict(dict(zip(theirs.state_dict(), state, strict=True)))
        x = torch.randn(6, ours[0].in_features, generator=g)
        assert torch.allclose(ours(x), theirs(x), atol=1e-6)


def test_one_updater_moves_the_target_encoder_and_projector_together():
    """After a step, every target weight (encoder and projector) is m x its old value + (1 - m) x the online
    one; the predictor has no target; the target gets no gradient and the optimiser never sees it."""
    method = tiny_byol()
    names = {n for n, _ in method.target.named_parameters()}
    assert any(n.startswith("encoder.") for n in names) and any(n.startswith("projector.") for n in names)
    old = {n: p.clone() for n, p in method.target.named_parameters()}
    batch = method.make_batch([{"image": torch.rand(3, 32, 32)} for _ in range(4)], draw(4))
    method(**batch)["loss"].backward()
    assert all(p.grad is None for p in method.target.parameters())
    trained = {id(p) for g in method.param_groups() for p in g.params}
    assert not trained & {id(p) for p in method.target.parameters()}
    torch.optim.SGD(method.parameters(), lr=0.5).step()
    m = method.after_step(step=3, total_steps=10)["ema_momentum"]
    online = dict(method.online.named_parameters())
    for n, p in method.target.named_parameters():
        assert torch.allclose(p, m * old[n] + (1 - m) * online[n], atol=1e-6), n
    assert any(not torch.equal(p, old[n]) for n, p in method.target.named_parameters())


def draw(n: int, seed: int = 0, first: int = 0) -> Draw:
    return Draw(
        seed=seed, epoch=0, step=0, micro=0, indices=torch.arange(first, first + n), rows=torch.arange(n), size=n
    )


def test_the_two_views_are_drawn_from_the_samples_seeds():
    """The same draw gives bitwise the same views (any worker, rank, resume); the two views of an image
    differ, and so do the views of the same image at another index or seed."""
    method = tiny_byol()
    image = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0))
    samples = [{"image": image}, {"image": image}]
    a, b = method.make_batch(samples, draw(2))["views"], method.make_batch(samples, draw(2))["views"]
    assert a.shape == (2, 2, 3, 32, 32) and torch.equal(a, b)
    assert not torch.equal(a[0, 0], a[1, 0]), "the two views of an image are the same"
    assert not torch.equal(a[:, 0], a[:, 1]), "two indices drew the same views"
    assert not torch.equal(a, method.make_batch(samples, draw(2, seed=1))["views"])
    assert 0 <= float(a.min()) and float(a.max()) <= 1


def test_byol_refuses_what_it_cannot_train_with():
    with pytest.raises(ConfigError, match="target_updater='frozen'"):
        get_config("byol-cpu", "target_updater=frozen")
    with pytest.raises(ConfigError, match="must end alike"):
        get_config("byol-cpu", "predictor=[1024,64]")
    with pytest.raises(ConfigError, match=r"not a transform; choose from .*color-jitter"):
        BYOLConfig(augment=(get_config("byol-cpu").method.target_updater,))
    assert get_config("byol-cpu", "augment=[]").method.augment == ()
