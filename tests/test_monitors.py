"""Collapse monitors against their textbook values."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit.eval import centred_rank, effective_rank, embedding_std, lidar, view_embeddings


@given(d=st.integers(2, 64))
def test_effective_rank_of_orthonormal_and_rank_one(d):
    assert effective_rank(torch.eye(d)) == pytest.approx(d, rel=1e-4)
    v = torch.randn(d, generator=torch.Generator().manual_seed(d))
    line = torch.linspace(-1, 1, 50)[:, None] * v
    assert effective_rank(line) == pytest.approx(1.0, rel=1e-3)


@given(k=st.integers(1, 16), seed=st.integers(0, 1000))
def test_effective_rank_of_k_equal_directions_is_k(k, seed):
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(seed)))
    z = q[:k].repeat(3, 1)  # k orthonormal rows, each three times: k equal singular values
    assert effective_rank(z) == pytest.approx(k, rel=1e-3)


@given(k=st.integers(1, 12), seed=st.integers(0, 1000), shift=st.floats(-100, 100))
def test_centred_rank_ignores_the_shared_mean_and_counts_the_directions_the_rows_spread_over(k, seed, shift):
    """k orthonormal directions met by +-1 on each (rows summing to 0 on each direction), lifted by one shared
    vector of any size: RankMe sees the lift, the centred rank sees k; one repeated row reads 0."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=g))
    spread = torch.cat([q[:k], -q[:k]])  # mean zero, k equal singular values
    lifted = spread + shift * torch.randn(32, generator=g)
    assert centred_rank(lifted) == pytest.approx(k, rel=1e-3)
    assert centred_rank(spread) == pytest.approx(effective_rank(spread), rel=1e-6)
    assert centred_rank(torch.randn(1, 32, generator=g).repeat(6, 1)) == 0.0


def test_embedding_std_zero_when_collapsed_and_near_one_over_sqrt_d_when_spread():
    assert embedding_std(torch.ones(100, 16) * 3.0) == pytest.approx(0.0, abs=1e-6)
    spread = torch.randn(20_000, 64, generator=torch.Generator().manual_seed(0))
    assert embedding_std(spread) == pytest.approx(1 / math.sqrt(64), rel=0.02)


def test_token_batches_and_bad_shapes():
    z = torch.randn(4, 10, 8)
    assert embedding_std(z) == pytest.approx(embedding_std(z.reshape(40, 8)))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        effective_rank(torch.ones(5))


def lidar_oracle(z: torch.Tensor, delta: float = 1e-4, eps: float = 1e-7) -> float:
    """LiDAR from the generalised eigenvalues of (Sigma_b, Sigma_w) (scipy), the same spectrum as
    Sigma_w^-1/2 Sigma_b Sigma_w^-1/2, with the paper's unbiased class statistics."""
    import numpy as np
    from scipy.linalg import eigh

    x = z.double().numpy()
    n, q, d = x.shape
    mu = x.mean(1)
    between = np.cov(mu.T, ddof=1).reshape(d, d)
    dev = (x - mu[:, None]).reshape(-1, d)
    within = dev.T @ dev / (n * (q - 1)) + delta * np.eye(d)
    lam = np.clip(eigh(between, within, eigvals_only=True), 0, None)
    p = lam / lam.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 12), q=st.integers(2, 5), d=st.integers(1, 8), seed=st.integers(0, 10**6))
def test_lidar_equals_the_generalised_eigenvalue_formula(n, q, d, seed):
    z = torch.randn(n, q, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert lidar(z) == pytest.approx(lidar_oracle(z), rel=1e-6)


@settings(max_examples=20, deadline=None)
@given(k=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_lidar_counts_the_directions_that_separate_images_beyond_their_views(k, seed):
    """Image means spread equally along k orthonormal directions of 16, views isotropic: LiDAR near k;
    the count does not change under an invertible linear map of the embeddings."""
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    codes = torch.linalg.qr(torch.randn(400, k, generator=g, dtype=torch.float64))[0] * 400**0.5  # white
    means = codes @ basis[:k]
    z = means[:, None] + 0.01 * torch.randn(400, 6, 16, generator=g, dtype=torch.float64)
    assert lidar(z) == pytest.approx(k, rel=0.05)
    a = torch.randn(16, 16, generator=g, dtype=torch.float64) + 4 * torch.eye(16, dtype=torch.float64)
    assert lidar(z @ a, delta=1e-12) == pytest.approx(lidar(z, delta=1e-12), rel=1e-4)


def test_lidar_is_one_when_images_do_not_differ_and_needs_two_views():
    views = torch.randn(1, 5, 8, generator=torch.Generator().manual_seed(0))
    assert lidar(views.expand(6, 5, 8).clone()) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="views >= 2"):
        lidar(torch.randn(6, 1, 8))


def test_view_embeddings_are_seeded_crops_of_each_image():
    from jepakit import get_config

    cfg = get_config("ijepa-cpu", encoder={"embed_dim": 32, "depth": 1, "num_heads": 2}, data={"size": 8})
    encoder, data = cfg.method.encoder.build(), cfg.data.build()
    z = view_embeddings(encoder, data, range(4), views=3, seed=1)
    assert z.shape == (4, 3, 32)
    torch.testing.assert_close(z, view_embeddings(encoder, data, range(4), views=3, seed=1), rtol=0, atol=0)
    assert not torch.allclose(z[:, 0], z[:, 1]), "the views are different crops"
