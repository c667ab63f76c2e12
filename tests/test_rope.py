"""Rotary positions (``positions=rope`` / ``rope-vjepa2``): the rotation's invariants, its layouts against their
formulas, every attention path of the blocks (padded, packed, queries from a row on) agreeing, the configs that
refuse it, and a run that trains with it. The released V-JEPA 2 forward is matched in tests/test_weights.py."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jepakit import ConfigError, create, get_config
from jepakit.layers.rope import Rotation, grid_coords, rope_angles

GRIDS = st.sampled_from([(4, 4), (3, 5), (2, 3, 4), (1, 4, 4)])


@given(grid=GRIDS, data=st.data())
def test_grid_coords_invert_the_raster_order(grid, data):
    index = torch.tensor(data.draw(st.lists(st.integers(0, math.prod(grid) - 1), min_size=1, max_size=9)))
    coords = grid_coords(index, grid)
    strides = [math.prod(grid[i + 1 :]) for i in range(len(grid))]
    assert torch.equal((coords * torch.tensor(strides)).sum(-1), index)
    assert all(bool((coords[:, i] < size).all()) for i, size in enumerate(grid))


@given(head_dim=st.sampled_from([6, 8, 12, 32, 64]), axes=st.sampled_from([2, 3]), seed=st.integers(0, 99))
def test_rope_scores_depend_on_coordinate_differences_only(head_dim, axes, seed):
    """RoFormer's property: <R(a + s) q, R(b + s) k> = <R(a) q, R(b) k> for any shift s, and lengths are kept."""
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, head_dim, generator=g, dtype=torch.float64)
    a, b, s = torch.randint(-20, 20, (3, axes), generator=g)

    def turned(x, coords):
        rot = Rotation(rope_angles(coords[None, None], head_dim, "rope"), torch.float64)
        return rot(x[None, None, None])[0, 0, 0]

    assert torch.isclose(turned(q, a) @ turned(k, b), turned(q, a + s) @ turned(k, b + s), atol=1e-9)
    assert torch.isclose(turned(q, a).norm(), q.norm())


@given(head_dim=st.sampled_from([6, 8, 20, 64]), layout=st.sampled_from(["rope", "rope-vjepa2"]))
def test_each_axis_turns_its_own_channels_by_the_layouts_frequencies(head_dim, layout):
    """Axis i owns channels [i w, (i + 1) w), w = 2 floor(floor(head_dim / 3) / 2); the rest never turn. Within
    an axis, rope pairs channel 2j and 2j + 1 on frequency j; V-JEPA 2's released layout gives channel c the
    frequency c mod (w / 2)."""
    w = 2 * ((head_dim // 3) // 2)
    coords = torch.tensor([[3, 5, 7]])
    angles = rope_angles(coords, head_dim, layout)[0]
    m = w // 2
    omega = [10000 ** (-j / m) for j in range(m)]
    for axis, coord in enumerate((3, 5, 7)):
        for c in range(w):
            freq = omega[c % m] if layout == "rope-vjepa2" else omega[c // 2]
            assert math.isclose(float(angles[axis * w + c]), coord * freq, rel_tol=1e-12)
    assert not angles[3 * w :].any()


def test_at_the_origin_and_in_the_unturned_channels_nothing_changes():
    x = torch.randn(2, 3, 4, 8)
    rot = Rotation.of(torch.zeros(1, 4, dtype=torch.long), (2, 2, 2), 8, "rope-vjepa2")
    assert torch.equal(rot(x), x)
    rot = Rotation.of(torch.arange(4)[None], (2, 2, 2), 8, "rope")
    assert torch.equal(rot(x)[..., 6:], x[..., 6:])


@pytest.mark.parametrize("layout", ["rope", "rope-vjepa2"])
def test_padded_packed_and_whole_encodings_agree(layout):
    """A rotary encoder gives each image's kept tokens the same features whether the batch is padded (packed or
    not) or the image is encoded alone, and a different order of the same tokens only permutes them."""
    torch.manual_seed(0)
    enc = create("encoder", "vit", img_size=16, patch_size=4, embed_dim=24, depth=2, num_heads=2, positions=layout)
    images = torch.rand(2, 3, 16, 16)
    index = torch.tensor([[0, 3, 5, 9, 14], [2, 7, 11, 0, 0]])
    valid = torch.tensor([[True] * 5, [True, True, True, False, False]])
    packed = enc(images, index, valid)
    enc.pack_tokens = False
    padded = enc(images, index, valid)
    alone = [enc(images[:1], index[:1]), enc(images[1:], index[1:, :3])]
    assert torch.allclose(packed[0], alone[0][0], atol=1e-5) and torch.allclose(padded[0], alone[0][0], atol=1e-5)
    assert torch.allclose(packed[1, :3], alone[1][0], atol=1e-5) and torch.allclose(
        padded[1, :3], alone[1][0], atol=1e-5
    )
    order = torch.tensor([[4, 0, 2, 1, 3]])
    shuffled = enc(images[:1], index[:1].gather(1, order))
    assert torch.allclose(shuffled[0], alone[0][0][order[0]], atol=1e-5)
    assert not torch.allclose(enc(images[:1], index[:1] + 1), alone[0], atol=1e-3), "positions must matter"


def test_the_predictor_with_rope_is_the_same_with_padding_and_reads_its_targets_places():
    """The predictor's last block computes only its queries (rows from the context on): with padded contexts,
    packed or not, each target's prediction is what the unpadded row gives; moving a target moves its prediction."""
    torch.manual_seed(1)
    kwargs = dict(embed_dim=24, depth=2, num_heads=2, encoder_dim=16, positions="rope", init="xavier")
    pred = create("predictor", "vit-predictor", **kwargs)
    z = torch.randn(2, 4, 16)
    context = torch.tensor([[0, 1, 2, 5], [3, 4, 8, 0]])
    valid = torch.tensor([[True] * 4, [True, True, True, False]])
    targets = torch.tensor([[[6, 7], [10, 11]], [[0, 1], [12, 13]]])
    packed = pred(z, context, targets, (4, 4), context_valid=valid)
    pred.pack_tokens = False
    padded = pred(z, context, targets, (4, 4), context_valid=valid)
    alone = pred(z[1:, :3], context[1:, :3], targets[1:], (4, 4))
    assert torch.allclose(packed[1], alone[0], atol=1e-5) and torch.allclose(padded[1], alone[0], atol=1e-5)
    moved = pred(z[1:, :3], context[1:, :3], targets[1:] + 2, (4, 4))
    assert not torch.allclose(moved, alone, atol=1e-2), "the queries differ only in their places"


def test_configs_that_cannot_place_rotary_positions_are_refused_when_made():
    with pytest.raises(ConfigError, match=r"positions=rope turns 3 pairs of channels per head; .*leaves too few"):
        get_config("vjepa-cpu", encoder={"positions": "rope", "embed_dim": 48, "num_heads": 12})
    with pytest.raises(ConfigError, match=r"predictor.positions=rope with conditioner 'sparse-xattn'"):
        get_config("tc-jepa-cpu", encoder={"positions": "rope"})
    enc = create("encoder", "vit", img_size=16, patch_size=4, embed_dim=24, depth=1, num_heads=2, positions="rope")
    with pytest.raises(ConfigError, match=r"positions=rope: timm's plain ViT adds a position table"):
        enc.timm_state_dict()
    assert "pos_embed" not in enc.state_dict()


def test_a_rope_run_trains_and_the_predictor_follows_the_encoders_positions(tmp_path):
    from jepakit.check import tiny_config
    from jepakit.train import train

    train_fields = {"steps": 3, "warmup_steps": 1, "batch_size": 4}
    cfg = tiny_config("ijepa-cpu", encoder={"positions": "rope-vjepa2"}, train=train_fields)
    assert cfg.method.predictor.positions == "rope-vjepa2"
    result = train(get_config(cfg, "data.size=8"), tmp_path / "run", progress=False)
    assert len(result["losses"]) == 3 and all(math.isfinite(x) for x in result["losses"])
