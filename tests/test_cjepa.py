"""C-JEPA: VICReg's variance and covariance terms against their formulas, over the global batch under
torchrun, on the context encoder's pooled tokens (padding never counts), and in the JEPA method's loss."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit import ConfigError, get_config
from jepakit.losses.embedding import VICRegTermsConfig
from jepakit.methods.jepa import pooled_context

from conftest import batch, check_global_batch, tiny_config


def textbook(z: torch.Tensor, eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """VICReg (Bardes et al., 2022, eq. 1 and 4): mean over dimensions of max(0, 1 - sqrt(Var + eps)),
    and the squared off-diagonal entries of the covariance matrix summed and divided by D."""
    b, d = z.shape
    zc = z - z.mean(0)
    cov = zc.T @ zc / (b - 1)
    variance = torch.clamp(1 - torch.sqrt(torch.diagonal(cov) + eps), min=0).mean()
    off = cov - torch.diag(torch.diagonal(cov))
    return variance, off.square().sum() / d


@settings(max_examples=25, deadline=None)
@given(b=st.integers(2, 16), d=st.integers(1, 12), scale=st.floats(0.01, 3.0), seed=st.integers(0, 10**6))
def test_vicreg_terms_equal_their_formulas_times_their_weights(b, d, scale, seed):
    z = scale * torch.randn(b, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    terms = VICRegTermsConfig(variance_weight=2.0, covariance_weight=0.5).build()(z)
    variance, covariance = textbook(z.float())
    torch.testing.assert_close(terms["variance"], 2.0 * variance)
    torch.testing.assert_close(terms["covariance"], 0.5 * covariance)


def test_vicreg_is_zero_on_whitened_data_and_large_on_collapsed_data():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4096, 8, generator=g)
    z = (z - z.mean(0)) @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T)).T)  # exactly identity covariance
    terms = VICRegTermsConfig().build()(z)
    assert terms["variance"] < 1e-3 and terms["covariance"] < 1e-8
    collapsed = VICRegTermsConfig().build()(torch.ones(64, 8) + 1e-3 * torch.randn(64, 8, generator=g))
    assert collapsed["variance"] > 0.95


def test_a_batch_of_one_is_an_error_not_a_zero_variance():
    with pytest.raises(ValueError, match="at least 2"):
        VICRegTermsConfig().build()(torch.randn(1, 8))


@pytest.mark.distributed
def test_two_processes_take_the_statistics_of_the_global_batch(tmp_path):
    check_global_batch(VICRegTermsConfig(), tmp_path)


@settings(max_examples=20, deadline=None)
@given(r=st.integers(1, 5), k=st.integers(1, 7), seed=st.integers(0, 10**6))
def test_pooling_averages_the_real_context_tokens_and_ignores_padding(r, k, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(r, k, 4, generator=g, dtype=torch.float64)
    valid = torch.rand(r, k, generator=g) < 0.6
    valid[:, 0] = True  # every row has a context patch
    pooled = pooled_context(tokens, valid)
    for i in range(r):
        torch.testing.assert_close(pooled[i], tokens[i, valid[i]].mean(0))
    noisy = torch.where(valid[..., None], tokens, torch.randn(r, k, 4, generator=g, dtype=torch.float64))
    torch.testing.assert_close(pooled_context(noisy, valid), pooled, rtol=0, atol=0)
    torch.testing.assert_close(pooled_context(tokens, None), tokens.mean(1))


def test_the_jepa_loss_adds_the_terms_of_the_pooled_context():
    torch.manual_seed(0)
    model = tiny_config("ijepa", masker={"min_keep": 4}, embedding_loss="vicreg").build()
    x, m = batch(model)
    out = model(x, m)
    assert set(out) >= {"loss", "predict", "variance", "covariance"}
    torch.testing.assert_close(out["loss"], out["predict"] + out["variance"] + out["covariance"])
    want = model.embedding_loss(pooled_context(model.forward_context(x, m), m.context_valid))
    torch.testing.assert_close(out["variance"], want["variance"])
    out["variance"].backward()
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0, "the terms train the context encoder"
    assert all(p.grad is None for p in model.predictor.parameters()), "and not the predictor"


def test_the_regulariser_slot_takes_only_an_embedding_loss():
    with pytest.raises(ConfigError, match=r"not a regulariser of embeddings.*vicreg"):
        get_config("ijepa-cpu", embedding_loss="smooth-l1")
    with pytest.raises(ConfigError, match="not a regression loss"):
        get_config("ijepa-cpu", loss="vicreg")
    assert get_config("c-jepa-cpu").method.embedding_loss.name == "vicreg"
    assert get_config("ijepa-cpu").method.embedding_loss is None


@settings(max_examples=20, deadline=None)
@given(b=st.integers(2, 12), d=st.integers(2, 10), seed=st.integers(0, 10**6))
def test_two_views_give_vicreg_itself_lightlys_loss_over_25(b, d, seed):
    """With two views the three terms are VICReg's loss (lightly's VICRegLoss, 25 / 25 / 1) over 25: the
    variance averaged over the views, the covariance summed over them, the invariance between them."""
    from lightly.loss import VICRegLoss

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, b, d, generator=g)
    terms = VICRegTermsConfig().build().of_views(z)
    assert set(terms) == {"variance", "covariance", "invariance"}
    torch.testing.assert_close(25 * sum(terms.values()), VICRegLoss()(z[0], z[1]), rtol=1e-5, atol=1e-5)
    three = VICRegTermsConfig(invariance_weight=2.0).build().of_views(torch.randn(3, b, d, generator=g))
    assert three["invariance"] > 0 and set(three) == set(terms)
    one = VICRegTermsConfig().build().of_views(z[:1])
    assert set(one) == {"variance", "covariance"} and torch.equal(one["variance"], terms_of(z[0])["variance"])


def terms_of(z: torch.Tensor) -> dict[str, torch.Tensor]:
    return VICRegTermsConfig().build()(z)


def test_c_jepa_crops_each_image_twice_and_ties_the_views_by_their_pooled_context():
    """views=2: the batch holds both crops of every image (view-major; the first is I-JEPA's own crop), a mask
    row each, and the loss adds the invariance between the two views' pooled context features; one view is
    I-JEPA's batch exactly."""
    import dataclasses

    from jepakit.methods.base import Draw

    cfg = tiny_config("ijepa", masker={"min_keep": 4}, embedding_loss="vicreg", views=2)
    one = get_config(cfg, views=1)
    torch.manual_seed(0)
    model, single = cfg.build(), one.build()
    data = cfg.data.build()
    samples = [data[i] for i in range(3)]
    draw = Draw(seed=0, epoch=0, step=0, micro=0, indices=torch.arange(3), rows=torch.arange(3), size=3)
    two, first = model.make_batch(samples, draw), single.make_batch(samples, draw)
    assert two["images"].shape[0] == 6 and two["masks"].context.shape[0] == 6
    assert torch.equal(two["images"][:3], first["images"]) and not torch.equal(two["images"][3:], first["images"])
    out = model(**two)
    assert {"variance", "covariance", "invariance"} <= set(out)
    z = pooled_context(model.forward_context(two["images"], two["masks"]), two["masks"].context_valid)
    torch.testing.assert_close(out["invariance"], (z[:3] - z[3:]).square().mean())
    share = Draw(**{**dataclasses.asdict(draw), "indices": torch.tensor([2]), "rows": torch.tensor([2])})
    part = model.make_batch(samples[2:], share)
    assert torch.equal(part["masks"].context, two["masks"].context[[2, 5]]), "a rank's share: its rows of each view"


def test_views_refuse_what_they_cannot_crop():
    with pytest.raises(ConfigError, match=r"views=2 .*conditioner 'sparse-xattn'.*set views=1"):
        get_config("tc-jepa-cpu", views=2)
    with pytest.raises(ConfigError, match=r"views=2 .*num_frames=.*set views=1"):
        get_config("vjepa-cpu", views=2)
    assert get_config("c-jepa").method.views == 2 and get_config("c-jepa-cpu").method.views == 1
    assert get_config("c-jepa", train={"batch_size": 8}).method.size(8).activations["predictor"] == pytest.approx(
        2 * get_config("c-jepa", views=1).method.size(8).activations["predictor"]
    )


def test_c_jepas_views_take_photometric_transforms_per_view_from_the_samples_draw():
    """augment applies after each view's crop with the view's own probability (greyed: the second view
    only), drawn from the sample's generator (the same draw, the same batch); the default keeps crops."""
    from jepakit.augment import GrayscaleConfig
    from jepakit.methods.base import Draw

    method = tiny_config("c-jepa", masker={"min_keep": 4}, augment=[GrayscaleConfig(p=(0.0, 1.0))]).build()
    samples = [{"image": torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(k))} for k in range(2)]
    draw = Draw(seed=0, epoch=0, step=0, micro=0, indices=torch.arange(2), rows=torch.arange(2), size=2)
    images = method.make_batch(samples, draw)["images"]  # view-major: [2 views x 2 images, C, H, W]
    assert torch.equal(images, method.make_batch(samples, draw)["images"])
    first, second = images[:2], images[2:]
    assert torch.allclose(second[:, 0], second[:, 1]) and torch.allclose(second[:, 1], second[:, 2])
    assert not torch.allclose(first[:, 0], first[:, 1])
    plain = tiny_config("c-jepa", masker={"min_keep": 4}).build().make_batch(samples, draw)["images"]
    assert torch.equal(plain[:2], first), "the transforms drew from the first view's generator before its crop"
