"""Pixel targets (MAE): patches against a loop over the image, per-patch normalisation, the predictor's
output width following the patch, zero loss on a perfect reconstruction, and the online encoder evaluated."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit import ConfigError, get_config
from jepakit.targets.pixels import PatchPixels

from conftest import batch, tiny_config


def loop_patches(images: torch.Tensor, p: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, N, p * p * C]: patch by patch in raster order, each as rows, columns, channels."""
    b, _, h, w = images.shape
    out = []
    for i in range(h // p):
        for j in range(w // p):
            patch = images[:, :, i * p : (i + 1) * p, j * p : (j + 1) * p]  # [B, C, p, p]
            out.append(patch.permute(0, 2, 3, 1).reshape(b, -1))
    return torch.stack(out, 1)


@settings(max_examples=25, deadline=None)
@given(
    p=st.sampled_from([1, 2, 4]),
    c=st.integers(1, 3),
    gh=st.integers(1, 4),
    gw=st.integers(1, 4),
    seed=st.integers(0, 10**6),
)
def test_patches_are_the_images_cut_in_raster_order_after_the_encoders_normalisation(p, c, gh, gw, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(2, c, gh * p, gw * p, generator=g, dtype=torch.float64)
    mean, std = torch.rand(c, generator=g, dtype=torch.float64), 0.1 + torch.rand(c, generator=g, dtype=torch.float64)
    got = PatchPixels(p, mean, std, norm_pix=False)(images)
    want = loop_patches((images - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1), p)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@settings(max_examples=25, deadline=None)
@given(p=st.sampled_from([2, 4, 8]), scale=st.floats(0.05, 10.0), seed=st.integers(0, 10**6))
def test_each_normalised_patch_has_zero_mean_and_unit_variance(p, scale, seed):
    images = scale * torch.rand(3, 3, 2 * p, 2 * p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = PatchPixels(p, torch.zeros(3), torch.ones(3), norm_pix=True)(images)
    torch.testing.assert_close(x.mean(-1), torch.zeros(x.shape[:2], dtype=x.dtype), atol=1e-10, rtol=0)
    # MAE divides by sqrt(unbiased variance + 1e-6): unit variance up to that epsilon, exactly so
    raw = PatchPixels(p, torch.zeros(3), torch.ones(3), norm_pix=False)(images).var(-1)
    torch.testing.assert_close(x.var(-1), raw / (raw + 1e-6), atol=1e-10, rtol=0)


def test_the_predictor_predicts_a_patchs_pixels_and_follows_the_patch_size():
    assert get_config("mae-cpu").method.predictor.out_dim == 8 * 8 * 3
    assert get_config("mae").method.predictor.out_dim == 16 * 16 * 3
    assert get_config("mae-cpu", encoder={"patch_size": 4}).method.predictor.out_dim == 4 * 4 * 3
    assert get_config("ijepa-cpu").method.predictor.out_dim == 192, "token targets: the encoder's width"
    with pytest.raises(ConfigError, match=r"out_dim=10 does not match encoder.patch_size\*\*2 x encoder.in_chans"):
        get_config("mae-cpu", predictor={"out_dim": 10})
    with pytest.raises(ConfigError, match=r"image_size=64 is not divisible by encoder\.patch_size=7"):
        get_config("mae-cpu", encoder={"patch_size": 7})


def mae_model():
    torch.manual_seed(0)
    return tiny_config("mae", masker={"ratio": 0.75}).build()


def test_a_perfect_reconstruction_has_zero_loss_and_the_targets_are_the_masked_patches():
    model = mae_model()
    x, m = batch(model)
    targets = model.forward_target(x, m)  # [B, 1, Kt, p * p * 3]
    pixels = PatchPixels(4, model.encoder.pixel_mean, model.encoder.pixel_std, True)(x)
    torch.testing.assert_close(targets[:, 0], torch.stack([pixels[i, m.targets[i, 0]] for i in range(len(x))]))
    assert float(model.loss_fn(targets, targets, m.targets_valid)) == 0.0
    out = model(x, m)
    assert out["predict"] > 0.5, "an untrained decoder is far from normalised pixels"


def test_the_online_encoder_is_evaluated_and_nothing_is_a_teacher():
    model = mae_model()
    assert model.eval_encoder() is model.encoder
    assert not any(k.startswith("target_encoder.") for k in model.state_dict())
    assert model.config.eval_encoder()[1] == ("encoder",)
    x, m = batch(model)
    model(x, m)["loss"].backward()
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.predictor.predictor_proj.weight.shape == (4 * 4 * 3, model.predictor.config.embed_dim)


@settings(max_examples=20, deadline=None)
@given(u=st.integers(1, 3), slots=st.integers(1, 3), p=st.sampled_from([1, 2, 4]), seed=st.integers(0, 10**6))
def test_a_clips_targets_are_its_tubelets_frame_by_frame(u, slots, p, seed):
    """V-Pixel: a tubelet's values are its frames' patches one after another (the 3-D conv's order)."""
    g = torch.Generator().manual_seed(seed)
    clips = torch.rand(2, 3, u * slots, 2 * p, 3 * p, generator=g, dtype=torch.float64)
    got = PatchPixels(p, torch.zeros(3), torch.ones(3), norm_pix=False, tubelet=u)(clips)
    assert got.shape == (2, slots * 6, u * p * p * 3)
    for s in range(slots):
        frames = [loop_patches(clips[:, :, s * u + f], p) for f in range(u)]  # each [B, 6, p * p * 3]
        torch.testing.assert_close(got[:, s * 6 : (s + 1) * 6], torch.cat(frames, -1), rtol=0, atol=0)
    normed = PatchPixels(p, torch.zeros(3), torch.ones(3), norm_pix=True, tubelet=u)(clips)
    torch.testing.assert_close(normed.mean(-1), torch.zeros(normed.shape[:2], dtype=normed.dtype), atol=1e-10, rtol=0)


def test_video_pixel_targets_follow_the_tubelet():
    cfg = get_config("salt-video-cpu").teacher_run
    assert cfg.method.predictor.out_dim == 2 * 8 * 8 * 3 and cfg.method.target_updater.name == "pixels"
    assert get_config(cfg, tubelet_size=4).method.predictor.out_dim == 4 * 8 * 8 * 3


def test_the_mae_recipes_initialise_and_augment_as_the_paper():
    """MAE's xavier-uniform Linear layers (encoder and decoder) and its flips after the 20-100% crops, in the
    paper recipe and its CPU preset alike; I-JEPA keeps its truncated normal."""
    for recipe in ("mae", "mae-cpu"):
        method = get_config(recipe).method
        assert (method.encoder.init, method.predictor.init, method.crop_scale) == ("xavier", "xavier", (0.2, 1.0))
        assert [t.name for t in method.augment] == ["hflip"]
    assert get_config("ijepa-cpu").method.encoder.init == "trunc-normal"
