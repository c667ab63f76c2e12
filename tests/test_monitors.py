"""Collapse monitors against their textbook values."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jepakit.eval import effective_rank, embedding_std


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


def test_embedding_std_zero_when_collapsed_and_near_one_over_sqrt_d_when_spread():
    assert embedding_std(torch.ones(100, 16) * 3.0) == pytest.approx(0.0, abs=1e-6)
    spread = torch.randn(20_000, 64, generator=torch.Generator().manual_seed(0))
    assert embedding_std(spread) == pytest.approx(1 / math.sqrt(64), rel=0.02)


def test_token_batches_and_bad_shapes():
    z = torch.randn(4, 10, 8)
    assert embedding_std(z) == pytest.approx(embedding_std(z.reshape(40, 8)))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        effective_rank(torch.ones(5))
