"""Photometric transforms: each against its textbook formula, its probability per view, and the whole
BYOL pipeline's invariants for any image and seed (values in [0, 1], shape kept, bitwise reproducible)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from jepakit import create
from jepakit.augment import BYOL_AUGMENT, augmented


def image(seed: int = 0, side: int = 20) -> torch.Tensor:
    return torch.rand(3, side, side, generator=torch.Generator().manual_seed(seed))


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_grayscale_is_itu_601_luma_on_every_channel():
    x = image()
    luma = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
    out = create("transform", "grayscale", p=(1.0,))(x, g())
    assert torch.allclose(out, luma.expand(3, -1, -1), atol=2e-4)  # torchvision weighs red 0.2989


def test_solarize_inverts_the_pixels_at_or_above_the_threshold():
    x = image()
    out = create("transform", "solarize", p=(1.0,), threshold=0.3)(x, g())
    assert torch.equal(out, torch.where(x >= 0.3, 1 - x, x))


def test_brightness_scales_by_a_factor_within_its_range():
    x = image() * 0.5  # no pixel clips at factors up to 2
    for seed in range(20):
        jitter = create("transform", "color-jitter", p=(1.0,), brightness=0.4, contrast=0, saturation=0, hue=0)
        out = jitter(x, g(seed))
        factor = float((out / x).median())
        assert 0.6 <= factor <= 1.4 and torch.allclose(out, x * factor, atol=1e-5)


def test_blur_is_a_normalised_gaussian_convolution_with_reflected_borders():
    """sigma fixed at 1.3, kernel 0.25 x 20 px = 5 (odd): the separable Gaussian by its formula."""
    x = image()
    out = create("transform", "gaussian-blur", p=(1.0,), sigma=(1.3, 1.3), kernel_fraction=0.25)(x, g())
    r = torch.arange(5) - 2
    k1 = torch.exp(-(r**2) / (2 * 1.3**2))
    k = torch.outer(k1, k1) / k1.sum() ** 2
    padded = F.pad(x[None], (2, 2, 2, 2), mode="reflect")
    expected = F.conv2d(padded, k.expand(3, 1, 5, 5).float(), groups=3)[0]
    assert torch.allclose(out, expected, atol=1e-5)


def test_each_transform_applies_with_its_probability_per_view():
    """BYOL's asymmetry: blur on view 0 always and on view 1 one time in ten; solarise never on view 0
    and one time in five on view 1 (400 seeded draws each, within 4 binomial std)."""
    x = image()
    blur = create("transform", "gaussian-blur", sigma=(1.0, 2.0))  # BYOL's p; a blur wide enough to show
    solarize = create("transform", "solarize")
    for transform, view, p in ((blur, 0, 1.0), (blur, 1, 0.1), (solarize, 0, 0.0), (solarize, 1, 0.2)):
        applied = sum(not torch.equal(transform(x, g(s), view), x) for s in range(400)) / 400
        assert abs(applied - p) <= 4 * math.sqrt(p * (1 - p) / 400) + 1e-9, (type(transform).__name__, view, applied)


@given(seed=st.integers(0, 2**31), view=st.integers(0, 1), side=st.integers(8, 40), scale=st.floats(0, 1))
def test_byols_pipeline_keeps_shape_and_range_and_is_a_function_of_its_generator(seed, view, side, scale):
    transforms = [c.build() for c in BYOL_AUGMENT]
    x = image(seed % 1000, side) * scale
    out = augmented(x, transforms, g(seed), view)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert torch.equal(out, augmented(x, transforms, g(seed), view))


def test_the_flip_mirrors_left_right_with_its_probability():
    x = image()
    flip = create("transform", "hflip")
    outs = [flip(x, g(s)) for s in range(400)]
    assert all(torch.equal(o, x) or torch.equal(o, x.flip(-1)) for o in outs)
    assert abs(sum(not torch.equal(o, x) for o in outs) / 400 - 0.5) <= 4 * math.sqrt(0.25 / 400)


def test_transforms_are_chosen_by_name_at_their_defaults():
    """``augment=[hflip,grayscale]`` on the command line; a misspelt name is refused naming the choices."""
    from jepakit import UnknownChoiceError, get_config

    chosen = get_config("ijepa-cpu", "augment=[hflip, grayscale]").method.augment
    assert [t.name for t in chosen] == ["hflip", "grayscale"] and chosen[0].p == (0.5,)
    with pytest.raises(UnknownChoiceError, match=r"augment\[0\]: unknown transform 'hflp'.*'hflip'"):
        get_config("ijepa-cpu", "augment=[hflp]")
