"""Losses: zero on equal inputs, non-negative, textbook formulas, padding, normalised targets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit import create
from jepakit.losses import RegressionLossConfig
from jepakit.methods.base import loss_names

#: The regression losses (the image-text ones are tested in test_contrastive.py).
LOSSES = loss_names(RegressionLossConfig)


@st.composite
def pairs(draw):
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(2, 16)))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    scale = draw(st.floats(0.01, 100.0))
    return torch.randn(shape, generator=g) * scale, torch.randn(shape, generator=g) * scale


@pytest.mark.parametrize("name", LOSSES)
@given(pair=pairs())
def test_zero_on_equal_and_non_negative(name, pair):
    pred, target = pair
    for normalize in (False, True):
        loss_fn = create("loss", name, normalize_targets=normalize)
        assert float(loss_fn(pred, target)) >= 0
        equal = loss_fn.prepare_target(target)
        assert float(loss_fn(equal, target)) == pytest.approx(0.0, abs=1e-5)


@given(pair=pairs())
def test_layer_normed_targets_have_zero_mean_unit_variance(pair):
    _, target = pair
    t = create("loss", "l2").prepare_target(target)
    torch.testing.assert_close(t.mean(-1), torch.zeros(t.shape[:-1]), atol=1e-5, rtol=0)
    v = target.double().var(-1, unbiased=False)
    expected = (v / (v + 1e-5)).float()  # unit variance up to LayerNorm's eps
    torch.testing.assert_close(t.var(-1, unbiased=False), expected, atol=1e-4, rtol=1e-4)


@given(pair=pairs())
def test_textbook_formulas(pair):
    pred, target = pair
    t = F.layer_norm(target, target.shape[-1:])
    cases = {
        "smooth-l1": F.smooth_l1_loss(pred, t),  # the I-JEPA reference code's loss_fn
        "l1": F.l1_loss(pred, t),
        "l2": F.mse_loss(pred, t),
        "l2-norm": torch.linalg.norm(pred - t, dim=-1).mean(),
        "cosine": (1 - F.cosine_similarity(pred, t, dim=-1)).mean(),
    }
    for name, expected in cases.items():
        torch.testing.assert_close(create("loss", name)(pred, target), expected, rtol=1e-5, atol=1e-6)


@given(pair=pairs(), beta=st.floats(0.05, 5.0))
def test_smooth_l1_follows_its_beta(pair, beta):
    """Huber-like: d^2 / (2 beta) below beta, d - beta / 2 above, averaged over features and patches."""
    pred, target = pair
    d = (pred - target).abs()
    expected = torch.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta).mean()
    got = create("loss", "smooth-l1", beta=beta, normalize_targets=False)(pred, target)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", LOSSES)
@given(pair=pairs(), seed=st.integers(0, 2**31))
def test_padding_is_excluded(name, pair, seed):
    pred, target = pair
    valid = torch.rand(pred.shape[:-1], generator=torch.Generator().manual_seed(seed)) < 0.6
    valid.view(-1)[0] = True
    loss_fn = create("loss", name)
    expected = loss_fn(pred[valid], target[valid])
    torch.testing.assert_close(loss_fn(pred, target, valid), expected, rtol=1e-5, atol=1e-6)


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        create("loss", "l1")(torch.zeros(2, 3), torch.zeros(2, 4))


@settings(max_examples=30, deadline=None)
@given(d=st.integers(2, 64), n=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_data2vecs_loss_is_the_feature_sum_over_sqrt_d_and_its_gradient_sqrt_d_times_the_means(d, n, seed):
    """fairseq's data2vec 2.0 ``d2v_loss``, written out: per-element squared error summed over the features,
    times 1 / sqrt(D), averaged over the target tokens; its gradient (what the clip at 4 sees) is sqrt(D)
    times that of the mean over features."""
    g = torch.Generator().manual_seed(seed)
    pred, target = torch.randn(2, n, d, generator=g), torch.randn(2, n, d, generator=g)
    scaled = create("loss", "l2", normalize_targets=False, features="sum-over-sqrt")
    plain = create("loss", "l2", normalize_targets=False)
    fairseq = (F.mse_loss(pred, target, reduction="none").sum(-1) / math.sqrt(d)).mean()
    torch.testing.assert_close(scaled(pred, target), fairseq)
    grads = []
    for loss in (scaled, plain):
        p = pred.clone().requires_grad_(True)
        loss(p, target).backward()
        grads.append(p.grad.norm())
    torch.testing.assert_close(grads[0], grads[1] * math.sqrt(d))
