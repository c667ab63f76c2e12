"""LeJEPA's SIGReg: the Epps-Pulley statistic against its complex-exponential definition, small on
Gaussian embeddings and large on collapsed ones, directions a function of (seed, step), the global batch on
2 gloo processes, and as a regulariser of the JEPA method."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit.losses.embedding import SIGRegConfig, epps_pulley

from conftest import batch, check_global_batch, tiny_config


def epps_pulley_definition(x: np.ndarray, t_max: float, points: int) -> np.ndarray:
    """N * trapezoid over the symmetric grid [-t_max, t_max] of |mean exp(i t x) - exp(-t^2/2)|^2 exp(-t^2/2)."""
    t = np.linspace(-t_max, t_max, 2 * points - 1)
    ecf = np.exp(1j * x[..., None] * t).mean(0)  # [M, T]
    integrand = np.abs(ecf - np.exp(-(t**2) / 2)) ** 2 * np.exp(-(t**2) / 2)
    return x.shape[0] * np.trapezoid(integrand, t, axis=-1)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    m=st.integers(1, 5),
    t_max=st.floats(0.5, 5.0),
    points=st.integers(2, 25),
    seed=st.integers(0, 10**6),
)
def test_epps_pulley_equals_its_definition_with_complex_exponentials(n, m, t_max, points, seed):
    x = torch.randn(n, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2
    got = epps_pulley(x, t_max, points).numpy()
    np.testing.assert_allclose(got, epps_pulley_definition(x.numpy(), t_max, points), rtol=1e-10, atol=1e-12)


def test_small_on_gaussian_embeddings_large_on_collapsed_or_scaled_ones():
    g = torch.Generator().manual_seed(0)
    reg = SIGRegConfig(weight=1.0, num_slices=256).build()
    gaussian = float(reg(torch.randn(2048, 32, generator=g))["sigreg"])
    collapsed = float(reg(torch.ones(2048, 32) + 1e-3 * torch.randn(2048, 32, generator=g))["sigreg"])
    wide = float(reg(3 * torch.randn(2048, 32, generator=g))["sigreg"])
    assert gaussian < 2.0, "about 1 for samples of N(0, 1): the statistic's null scale"
    assert collapsed > 100 * gaussian and wide > 100 * gaussian


def test_directions_are_unit_and_a_function_of_the_seed_and_step():
    reg = SIGRegConfig(num_slices=8).build()
    a = reg.directions(5, step=3)
    torch.testing.assert_close(a.norm(dim=0), torch.ones(8, dtype=a.dtype))
    torch.testing.assert_close(a, reg.directions(5, step=3), rtol=0, atol=0)
    assert not torch.allclose(a, reg.directions(5, step=4)), "redrawn each step"
    assert not torch.allclose(a, SIGRegConfig(num_slices=8, seed=1).build().directions(5, step=3))


@pytest.mark.distributed
def test_two_processes_take_the_statistic_of_the_global_batch(tmp_path):
    check_global_batch(SIGRegConfig(num_slices=16), tmp_path)


def test_the_jepa_method_takes_sigreg_as_its_embedding_loss():
    torch.manual_seed(0)
    model = tiny_config("ijepa", masker={"min_keep": 4}, embedding_loss="sigreg").build()
    x, m = batch(model)
    out = model(x, m, step=5)
    torch.testing.assert_close(out["loss"], out["predict"] + out["sigreg"])
    out["sigreg"].backward()
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0
