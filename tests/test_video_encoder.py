"""The video side of the ViT encoder and predictor (issue 20's first part): tubelet embedding, 3-D sin-cos
positions, patch-index masks over (time, row, column), and images as clips of one tubelet."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit import ConfigError, get_config
from jepakit.encoders.vit import ViTConfig
from jepakit.layers.pos_embed import sincos_1d, sincos_3d
from jepakit.predictors.vit_predictor import ViTPredictorConfig


def video(**fields) -> ViTConfig:
    return ViTConfig(
        **{"embed_dim": 32, "depth": 2, "num_heads": 2, "patch_size": 4, "img_size": 16, "num_frames": 4, **fields}
    )


def test_3d_positions_encode_column_row_and_time_in_their_parts():
    t, h, w, d = 3, 4, 5, 32
    quarters = sincos_3d(d, (t, h, w), "quarters").view(t, h, w, d)
    thirds = sincos_3d(d, (t, h, w), "thirds").view(t, h, w, d)
    for i, j, k in [(0, 0, 0), (2, 3, 4), (1, 0, 3)]:
        want = torch.cat(
            [sincos_1d(8, torch.tensor([k])), sincos_1d(8, torch.tensor([j])), sincos_1d(16, torch.tensor([i]))], 1
        )
        torch.testing.assert_close(quarters[i, j, k], want[0].float())
        parts = [sincos_1d(12, torch.tensor([x])) for x in (i, j, k)]  # 2 * ceil(32 / 6), cut to 32
        torch.testing.assert_close(thirds[i, j, k], torch.cat(parts, 1)[0, :d].float())
    for pos in (quarters, thirds):
        assert torch.unique(pos.view(-1, d), dim=0).shape[0] == t * h * w, "every cell has its own position"


@settings(max_examples=15, deadline=None)
@given(
    frames=st.sampled_from([2, 4, 6]), side=st.sampled_from([8, 12]), keep=st.integers(1, 10), seed=st.integers(0, 999)
)
def test_kept_tubelets_embed_as_the_full_clip_does_at_their_indices(frames, side, keep, seed):
    torch.manual_seed(0)
    enc = video(img_size=side, num_frames=4).build()
    g = torch.Generator().manual_seed(seed)
    clip = torch.rand(2, 3, frames, side, side, generator=g)
    grid = enc.grid_of(clip)
    assert grid == (frames // 2, side // 4, side // 4)
    n = grid[0] * grid[1] * grid[2]
    index = torch.stack([torch.randperm(n, generator=g)[: min(keep, n)] for _ in range(2)])
    full = enc.embed(clip, grid, None)
    part = enc.embed(clip, grid, index)
    torch.testing.assert_close(part, full.gather(1, index[..., None].expand(-1, -1, 32)), rtol=1e-5, atol=1e-5)


def test_the_tubelet_embedding_is_a_linear_map_of_each_tubelets_pixels():
    torch.manual_seed(0)
    enc = video().build()
    clip = torch.rand(1, 3, 4, 16, 16)
    tokens = enc.patch_embed(clip)  # [1, 2 * 4 * 4, 32]
    w, b = enc.patch_embed.proj.weight, enc.patch_embed.proj.bias  # [32, 3, 2, 4, 4]
    t, i, j = 1, 2, 3  # the tubelet of frames 2-3, row 2, column 3
    pixels = clip[0, :, 2 * t : 2 * t + 2, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4]
    torch.testing.assert_close(tokens[0, t * 16 + i * 4 + j], (w * pixels).sum((1, 2, 3, 4)) + b, rtol=1e-5, atol=1e-5)


def test_an_image_is_a_clip_of_one_tubelet_and_image_encoders_are_unchanged():
    torch.manual_seed(0)
    enc = video().build()
    image = torch.rand(2, 3, 16, 16)
    clip = image[:, :, None].expand(-1, -1, 2, -1, -1)
    torch.testing.assert_close(enc(image), enc(clip))
    assert enc.grid_of(clip) == (1, 4, 4)
    plain = ViTConfig(embed_dim=32, depth=2, num_heads=2, patch_size=4, img_size=16).build()
    assert "proj.weight" in dict(plain.patch_embed.named_parameters()) and plain.patch_embed.proj.weight.ndim == 4


def test_the_predictor_places_targets_in_time():
    torch.manual_seed(0)
    pred = ViTPredictorConfig(embed_dim=16, depth=1, num_heads=2, encoder_dim=32).build()
    z = torch.randn(1, 3, 32)
    context = torch.tensor([[0, 1, 2]])
    early, late = torch.tensor([[[5]]]), torch.tensor([[[5 + 16]]])  # the same cell one tubelet later
    a = pred(z, context, early, (2, 4, 4))
    b = pred(z, context, late, (2, 4, 4))
    assert a.shape == (1, 1, 1, 32) and not torch.allclose(a, b)


def test_bad_clips_and_configs_name_the_values():
    enc = video().build()
    with pytest.raises(ValueError, match=r"a clip of 3 frames is not divisible by tubelet_size=2"):
        enc(torch.rand(1, 3, 3, 16, 16))
    with pytest.raises(ConfigError, match=r"num_frames=5 is not divisible by .*tubelet_size=2"):
        video(num_frames=5)
    with pytest.raises(ConfigError, match=r"no timm architecture"):
        enc.timm_state_dict()
    image = ViTConfig(embed_dim=32, depth=2, num_heads=2, patch_size=4, img_size=16).build()
    with pytest.raises(ValueError, match=r"images must be \[B, 3, H, W\]"):
        image(torch.rand(1, 3, 2, 16, 16))
    with pytest.raises(ConfigError, match=r"encoder.num_frames=16 makes a video encoder"):
        get_config("ijepa-cpu", encoder={"num_frames": 16})
