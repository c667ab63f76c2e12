"""Property tests of every masker, and the multi-block specifics the reference code gets wrong."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jepakit import ConfigError, create, list_components
from jepakit.masks import Masks, VideoMaskerConfig
from jepakit.masks.boxes import draw_block_shape
from jepakit.registry import config_class

MASKERS = list_components("masker")["masker"]


#: Fields a masker needs to be valid on every grid the contract draws (from 4 x 4): capped at grid-1, a
#: 4 x 4 grid's context block of 9 cannot keep the default min_keep=10 beside a target.
SMALL_GRID = {"multiblock-paper-context": {"min_keep": 4}}


def make(name: str, grid: int, frames: int = 4, **fields):
    """A masker on a grid x grid patch grid (patch 4), with ``frames`` time steps for video maskers."""
    size = {"input_size": 4 * grid, "patch_size": 4, **SMALL_GRID.get(name, {})}
    if issubclass(config_class("masker", name), VideoMaskerConfig):
        size.update(num_frames=2 * frames, tubelet_size=2)
    return create("masker", name, **{**size, **fields})


def valid_rows(index: torch.Tensor, valid: torch.Tensor | None):
    for r in range(index.shape[0]):
        yield index[r] if valid is None else index[r][valid[r]]


@pytest.mark.parametrize("name", MASKERS)
@given(grid=st.integers(4, 32), batch=st.integers(1, 12), seed=st.integers(0, 2**31))
def test_contract(name, grid, batch, seed):
    masker = make(name, grid)
    masks = masker(batch, torch.Generator().manual_seed(seed))
    n = masker.num_patches
    rows = batch * masks.repeats
    assert isinstance(masks, Masks) and masks.grid == masker.grid
    assert masks.context.dtype == torch.long and masks.targets.dtype == torch.long
    assert masks.context.shape[0] == rows and masks.targets.ndim == 3 and masks.targets.shape[0] == rows
    for t in (masks.context, masks.targets):
        assert int(t.min()) >= 0 and int(t.max()) < n
    if masks.context_valid is not None:
        assert masks.context_valid.shape == masks.context.shape and masks.context_valid.dtype == torch.bool
        assert masks.context_valid.any(1).all()
    if masks.targets_valid is not None:
        assert masks.targets_valid.shape == masks.targets.shape
    for row in valid_rows(masks.context, masks.context_valid):
        assert len(row) > 0 and len(row.unique()) == len(row)
        assert torch.equal(row, row.sort().values), "context in raster order"
    flat_t = masks.targets.reshape(rows * masks.targets.shape[1], -1)
    flat_v = None if masks.targets_valid is None else masks.targets_valid.reshape(flat_t.shape)
    for row in valid_rows(flat_t, flat_v):
        assert len(row) > 0 and len(row.unique()) == len(row)
    ctx, tgt = masks.dense()
    if not masker.allows_overlap:
        assert not (ctx & tgt).any(), "context and targets overlap"


@pytest.mark.parametrize("name", MASKERS)
def test_same_generator_same_masks_and_seeds_differ(name):
    masker = make(name, 10)
    a = masker(6, torch.Generator().manual_seed(3))
    b = masker(6, torch.Generator().manual_seed(3))
    assert torch.equal(a.context, b.context) and torch.equal(a.targets, b.targets)
    if name != "none":
        others = [masker(6, torch.Generator().manual_seed(s)) for s in range(4, 8)]
        assert any(not torch.equal(a.targets, o.targets) for o in others)


# ---------------------------------------------------------------- multiblock


@given(grid=st.integers(4, 32), batch=st.integers(1, 16), seed=st.integers(0, 2**31))
def test_multiblock_targets_are_rectangles_of_the_sampled_shape(grid, batch, seed):
    masks = make("multiblock", grid)(batch, torch.Generator().manual_seed(seed))
    h, w = masks.stats["target_shape"]
    assert masks.targets.shape == (batch, 4, h * w)
    r, c = masks.targets // grid, masks.targets % grid
    assert torch.equal(r.amax(-1) - r.amin(-1) + 1, torch.full_like(r[..., 0], h))
    assert torch.equal(c.amax(-1) - c.amin(-1) + 1, torch.full_like(c[..., 0], w))


@given(grid=st.integers(4, 32), batch=st.integers(1, 32), seed=st.integers(0, 2**31))
def test_multiblock_terminates_and_keeps_min_keep_on_every_grid(grid, batch, seed):
    masks = make("multiblock", grid)(batch, torch.Generator().manual_seed(seed))
    kept = (
        masks.context_valid.sum(1) if masks.context_valid is not None else torch.full((batch,), masks.context.shape[1])
    )
    assert int(kept.min()) >= 10


def test_a_context_of_exactly_min_keep_patches_is_accepted():
    """Whole-grid context minus one 2x2 target leaves exactly 12 of 16 patches: min_keep=12 is met at once."""
    masker = make(
        "multiblock",
        4,
        num_targets=1,
        target_scale=(0.25, 0.25),
        target_aspect=(1.0, 1.0),
        context_scale=(1.0, 1.0),
        min_keep=12,
    )
    masks = masker(32, torch.Generator().manual_seed(0))
    assert masks.stats["retries"] == 0 and masks.stats["relaxations"] == 0
    assert masks.context.shape == (32, 12) and masks.context_valid is None


def test_rows_short_of_min_keep_are_redrawn_and_counted():
    masker = make("multiblock", 6, num_targets=4, min_keep=20, shape_draw="independent")
    masks = masker(64, torch.Generator().manual_seed(0))
    kept = masks.context_valid.sum(1) if masks.context_valid is not None else torch.full((64,), masks.context.shape[1])
    assert int(kept.min()) >= 20 and masks.stats["retries"] > 0


@pytest.mark.parametrize("grid", [4, 6, 14])
def test_every_cell_is_sometimes_target_and_sometimes_context(grid):
    masker = make("multiblock", grid)
    g = torch.Generator().manual_seed(0)
    seen_ctx = torch.zeros(grid * grid, dtype=torch.bool)
    seen_tgt = torch.zeros_like(seen_ctx)
    for _ in range(30):
        ctx, tgt = masker(32, g).dense()
        seen_ctx |= ctx.any(0)
        seen_tgt |= tgt.any(0)
    assert seen_ctx.all() and seen_tgt.all(), "the reference never targets the last row and column"


def _kept_and_sampled_by_row(
    mode: str, batches: int = 10, name: str = "multiblock"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per grid row: context kept in ``mode`` and context sampled, same draws (14x14, batch 128)."""
    pad = make(name, 14, context="pad")
    other = make(name, 14, context=mode)
    kept = torch.zeros(14)
    sampled = torch.zeros(14)
    for seed in range(batches):
        sampled += pad(128, torch.Generator().manual_seed(seed)).dense()[0].view(-1, 14, 14).sum((0, 2))
        kept += other(128, torch.Generator().manual_seed(seed)).dense()[0].view(-1, 14, 14).sum((0, 2))
    return kept, sampled


def test_random_truncate_has_no_row_bias_and_reference_does():
    kept, sampled = _kept_and_sampled_by_row("random-truncate")
    ratio = kept / sampled
    expected = kept.sum() / sampled.sum()
    assert ((ratio / expected - 1).abs() < 0.2).all(), ratio / expected
    kept, sampled = _kept_and_sampled_by_row("reference")
    ratio = kept / sampled
    assert ratio[:3].mean() > 1.5 * ratio[-3:].mean(), "reference mode keeps the top rows (documented bias)"


def test_pad_keeps_all_sampled_context():
    masks = make("multiblock", 14)(256, torch.Generator().manual_seed(0))
    assert masks.stats["context_kept"] == masks.stats["context_sampled"]
    assert masks.context_valid is not None and masks.context.shape[1] == masks.stats["context_max"]


def test_scale_and_aspect_are_drawn_independently():
    g = torch.Generator().manual_seed(0)
    shapes = torch.tensor([draw_block_shape((0.1, 0.3), (0.5, 2.0), (64, 64), g) for _ in range(400)]).float()
    area = shapes[:, 0] * shapes[:, 1]
    aspect = (shapes[:, 0] / shapes[:, 1]).log()
    corr = torch.corrcoef(torch.stack([area, aspect]))[0, 1]
    assert abs(float(corr)) < 0.2, "one random number for both gives correlation near 1"


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"target_scale": (0.0, 0.2)}, "target_scale"),
        ({"target_scale": (0.3, 0.2)}, "target_scale"),
        ({"context_scale": (0.9, 1.2)}, "context_scale"),
        ({"target_aspect": (-1.0, 1.0)}, "target_aspect"),
        ({"num_targets": 0}, "num_targets"),
        ({"min_keep": 0}, "min_keep"),
        ({"min_keep": 40}, "min_keep"),
        ({"patch_size": 5}, "patch_size"),
    ],
)
def test_multiblock_bad_config_names_the_field(fields, field):
    with pytest.raises(ConfigError, match=field):
        make("multiblock", 6, **fields)


def test_grid_too_small_raises_at_construction():
    with pytest.raises(ConfigError, match=r"too small"):
        make("multiblock", 3)


@pytest.mark.parametrize("side, patch", [(16, 2), (24, 3), (8, 1)])
def test_a_recipe_on_smaller_images_says_which_patch_size_keeps_its_grid(side, patch):
    """ijepa-cpu's 8 px patches at 64 px make an 8 x 8 grid; on smaller images the refusal names the patch
    size that gives that grid back, and the recipe with it builds."""
    from jepakit import get_config

    with pytest.raises(ConfigError, match=rf"at {side} x {side} px set the encoder's patch_size={patch} "):
        get_config("ijepa-cpu", image_size=side)
    assert get_config("ijepa-cpu", f"encoder.patch_size={patch}", image_size=side).method.masker.grid == (8, 8)


def test_no_patch_size_is_advised_where_none_takes_the_blocks():
    with pytest.raises(ConfigError, match=r"too small") as refusal:
        make("multiblock", 3, min_keep=200)  # not even 1 px patches (a 12 x 12 grid) keep 200
    assert "patch_size=" not in str(refusal.value) and "min_keep=200; lower min_keep" in str(refusal.value)


def test_bad_batch_size():
    with pytest.raises(ValueError, match=r"batch_size"):
        make("multiblock", 6)(0)


# ---------------------------------------------------------------- other maskers


@given(grid=st.integers(4, 16), ratio=st.floats(0.1, 0.9), seed=st.integers(0, 2**31))
def test_random_masker_ratio_and_partition(grid, ratio, seed):
    masks = make("random", grid, ratio=ratio)(5, torch.Generator().manual_seed(seed))
    n = grid * grid
    assert masks.targets.shape == (5, 1, round(ratio * n))
    ctx, tgt = masks.dense()
    assert (ctx ^ tgt).all(), "context and target partition the grid"


@given(grid=st.integers(4, 16), seed=st.integers(0, 2**31))
def test_block_masker_one_rectangle_and_complement(grid, seed):
    masks = make("block", grid)(4, torch.Generator().manual_seed(seed))
    h, w = masks.stats["target_shape"]
    assert masks.targets.shape == (4, 1, h * w)
    ctx, tgt = masks.dense()
    assert (ctx ^ tgt).all()


@given(grid=st.integers(4, 12), frames=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_tube_masks_repeat_over_time(grid, frames, seed):
    masks = make("tube", grid, frames=frames)(3, torch.Generator().manual_seed(seed))
    ctx, tgt = masks.dense()
    tgt = tgt.view(3, frames, grid * grid)
    assert (tgt == tgt[:, :1]).all(), "the same spatial mask in every frame"
    assert (ctx ^ tgt.view(3, -1)).all()


@given(grid=st.integers(4, 16), frames=st.integers(1, 4), batch=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_multiblock3d_union_and_complement(grid, frames, batch, seed):
    masker = make("multiblock3d", grid, frames=frames)
    masks = masker(batch, torch.Generator().manual_seed(seed))
    assert masks.repeats == 2 and masks.targets.shape[:2] == (2 * batch, 1)
    ctx, tgt = masks.dense()
    assert (ctx ^ tgt).all(), "context is the complement of the union of blocks"
    per_frame = tgt.view(2 * batch, frames, -1)
    assert (per_frame == per_frame[:, :1]).all(), "temporal scale 1: blocks span all frames"


def test_multiblock3d_block_count_matches_generator():
    masks = make("multiblock3d", 16, num_blocks=(1,), spatial_scale=((0.2, 0.2),), temporal_scale=((1.0, 1.0),))(
        4, torch.Generator().manual_seed(0)
    )
    t, h, w = 4, 16, 16
    (shape,) = masks.stats["block_shapes"]
    assert masks.targets_valid is None and masks.targets.shape[-1] == math.prod(shape)
    assert shape[0] == t and shape[1] * shape[2] <= 0.3 * h * w


def test_multiblock3d_config_lengths_must_agree():
    with pytest.raises(ConfigError, match=r"one entry per generator"):
        make("multiblock3d", 8, num_blocks=(8,))


def test_none_masker_is_the_full_grid():
    masks = make("none", 5)(2)
    assert torch.equal(masks.context, torch.arange(25).expand(2, -1))


@st.composite
def block_scales(draw, feasible: bool):
    """Target and context scales; ``feasible`` draws from a region most grids of 8+ accept."""
    lo = draw(st.floats(0.02, 0.25 if feasible else 0.5))
    hi = draw(st.floats(lo, 0.25 if feasible else 0.5))
    clo = draw(st.floats(0.6 if feasible else 0.3, 1.0))
    chi = draw(st.floats(clo, 1.0))
    return (lo, hi), (clo, chi)


def guaranteed_context(grid: int, t_scale, c_scale) -> int:
    """The fewest context patches any draw can leave: the smallest context block minus the largest target."""
    from jepakit.masks.boxes import block_area_range

    return (
        block_area_range(c_scale, (1.0, 1.0), (grid, grid))[0] - block_area_range(t_scale, (0.75, 1.5), (grid, grid))[1]
    )


@given(grid=st.integers(4, 32), scales=block_scales(feasible=False), seed=st.integers(0, 2**31))
def test_multiblock_refuses_exactly_the_scales_that_cannot_keep_min_keep(grid, scales, seed):
    t_scale, c_scale = scales
    try:
        make("multiblock", grid, target_scale=t_scale, context_scale=c_scale, min_keep=4)
    except ConfigError as e:
        assert "too small" in str(e) and guaranteed_context(grid, t_scale, c_scale) < 4
    else:
        assert guaranteed_context(grid, t_scale, c_scale) >= 4


@given(
    grid=st.integers(8, 32), scales=block_scales(feasible=True), targets=st.integers(1, 6), seed=st.integers(0, 2**31)
)
def test_multiblock_any_feasible_scales_sample_valid_masks(grid, scales, targets, seed):
    (t_scale, c_scale) = scales
    masker = make("multiblock", grid, target_scale=t_scale, context_scale=c_scale, num_targets=targets, min_keep=4)
    masks = masker(8, torch.Generator().manual_seed(seed))
    h, w = masks.stats["target_shape"]
    assert masks.targets.shape == (8, targets, h * w)
    _, hi = t_scale
    n = grid * grid
    assert h * w <= max(round(hi * n * 1.5) + 2 * grid, 1), "block area follows the scale"
    kept = masks.context_valid.sum(1) if masks.context_valid is not None else torch.full((8,), masks.context.shape[1])
    assert int(kept.min()) >= 4
    ctx, tgt = masks.dense()
    assert not (ctx & tgt).any()


@given(seed=st.integers(0, 2**31), mode=st.sampled_from(["random-truncate", "reference"]))
def test_truncating_modes_keep_a_subset_of_the_padded_context(seed, mode):
    pad = make("multiblock", 10)(16, torch.Generator().manual_seed(seed))
    cut = make("multiblock", 10, context=mode)(16, torch.Generator().manual_seed(seed))
    full, _ = pad.dense()
    kept, _ = cut.dense()
    assert not (kept & ~full).any()
    assert cut.context_valid is None and cut.context.shape[1] == pad.stats["context_min"]
    assert torch.equal(pad.targets, cut.targets)


def test_random_truncate_has_no_column_bias():
    pad = make("multiblock", 14)
    cut = make("multiblock", 14, context="random-truncate")
    kept = torch.zeros(14)
    sampled = torch.zeros(14)
    for seed in range(10):
        sampled += pad(128, torch.Generator().manual_seed(seed)).dense()[0].view(-1, 14, 14).sum((0, 1))
        kept += cut(128, torch.Generator().manual_seed(seed)).dense()[0].view(-1, 14, 14).sum((0, 1))
    ratio = (kept / sampled) / (kept.sum() / sampled.sum())
    assert ((ratio - 1).abs() < 0.2).all(), ratio


def test_a_share_of_several_mask_sets_keeps_each_sets_rows():
    """take(images) on masks with repeats=2 (generator-major rows) keeps rows i and B + i of every image i."""
    masks = make("multiblock3d", 8, frames=2)(4, torch.Generator().manual_seed(0))
    assert masks.repeats == 2
    share = masks.take(torch.tensor([3, 1]))
    rows = torch.tensor([3, 1, 7, 5])
    assert share.batch_size == 2 and share.repeats == 2
    assert torch.equal(share.context, masks.context[rows]) and torch.equal(share.targets, masks.targets[rows])


def test_masks_move_between_devices():
    masks = make("multiblock", 8)(4, torch.Generator().manual_seed(0))
    moved = masks.to("cpu")
    assert torch.equal(moved.context, masks.context) and moved.stats == masks.stats


@given(grid=st.integers(4, 20), batch=st.integers(1, 16), seed=st.integers(0, 2**31))
def test_paper_context_caps_block_sides_at_grid_minus_one_and_equalises_lengths(grid, batch, seed):
    masks = make("multiblock-paper-context", grid, min_keep=1)(batch, torch.Generator().manual_seed(seed))
    for shape in (masks.stats["target_shape"], masks.stats["context_shape"]):
        assert max(shape) <= grid - 1, "no block spans a full row or column (the official collator's cap)"
    assert masks.context_valid is None, "every context of the batch has the batch's shortest length"
    assert masks.context.shape[1] == masks.stats["context_min"]


def test_paper_context_has_the_official_effective_context_and_multiblock_keeps_twice_it():
    """At 224/16 and 128 images per batch (2048 over 16 GPUs), mean context length against lightly's
    port of the official collator (which truncates in raster order: the same length, with a row bias)."""
    from lightly.data.ijepa_collate import IJEPAMaskCollator

    from _common import LIGHTLY_IJEPA_MASKS  # the official collator's settings, as bench_masks runs it

    torch.manual_seed(0)
    official = IJEPAMaskCollator(input_size=224, patch_size=16, **LIGHTLY_IJEPA_MASKS)
    theirs = [official([(torch.zeros(()),)] * 128)[1][0].shape[1] for _ in range(30)]
    g = torch.Generator().manual_seed(0)
    paper = create("masker", "multiblock-paper-context", input_size=224, patch_size=16)
    ours = [paper(128, g).context.shape[1] for _ in range(30)]
    assert abs(sum(ours) / sum(theirs) - 1) < 0.1, (sum(ours) / 30, sum(theirs) / 30)
    padded = create("masker", "multiblock", input_size=224, patch_size=16)
    kept = [float(m.context_valid.sum(1).float().mean()) for m in (padded(128, g) for _ in range(30))]
    assert sum(kept) / sum(ours) > 1.6, "padding at the full-grid cap keeps nearly twice the context"


def test_paper_context_truncation_has_no_row_bias():
    kept, sampled = _kept_and_sampled_by_row("random-truncate", name="multiblock-paper-context")
    ratio = kept / sampled
    assert ((ratio / (kept.sum() / sampled.sum()) - 1).abs() < 0.2).all(), ratio


def _official_block_size(generator, height, width, scale, aspect_ratio_scale):
    """facebookresearch/ijepa ``MaskCollator._sample_block_size``, written out as the oracle: one uniform
    number for both the scale and the aspect ratio, the area floored, sides capped at grid - 1."""
    _rand = torch.rand(1, generator=generator).item()
    min_s, max_s = scale
    max_keep = int(height * width * (min_s + _rand * (max_s - min_s)))
    min_ar, max_ar = aspect_ratio_scale
    aspect_ratio = min_ar + _rand * (max_ar - min_ar)
    h = round(math.sqrt(max_keep * aspect_ratio))
    w = round(math.sqrt(max_keep / aspect_ratio))
    while h >= height:
        h -= 1
    while w >= width:
        w -= 1
    return h, w


@settings(max_examples=80, deadline=None)
@given(
    side=st.integers(6, 32),
    seed=st.integers(0, 2**31),
    block=st.sampled_from([((0.15, 0.2), (0.75, 1.5)), ((0.85, 1.0), (1.0, 1.0)), ((0.1, 0.6), (0.3, 3.0))]),
)
def test_the_coupled_block_draw_is_the_official_collators(side, seed, block):

    scale, aspect = block
    want = _official_block_size(torch.Generator().manual_seed(seed), side, side, scale, aspect)
    assume(min(want) >= 1)  # the official draw can give an empty side on tiny grids; ours keeps one patch
    got = draw_block_shape(scale, aspect, (side, side), torch.Generator().manual_seed(seed), margin=1, coupled=True)
    assert got == want


def test_coupled_blocks_are_wide_when_small_and_tall_when_large_independent_ones_are_not():

    def shapes(coupled: bool) -> list[tuple[int, int]]:
        g = torch.Generator().manual_seed(0)
        return [draw_block_shape((0.1, 0.6), (0.5, 2.0), (28, 28), g, coupled=coupled) for _ in range(400)]

    coupled = sorted(shapes(True), key=lambda hw: hw[0] * hw[1])
    small, large = coupled[:100], coupled[-100:]
    assert all(h <= w for h, w in small) and all(h >= w for h, w in large)
    free = sorted(shapes(False), key=lambda hw: hw[0] * hw[1])
    assert any(h > w for h, w in free[:100]) and any(h < w for h, w in free[-100:])
    assert make("multiblock", 14).config.shape_draw == "coupled", "the masker's default is the paper's draw"


@given(seed=st.integers(0, 2**31), batch=st.integers(1, 16), tries=st.sampled_from([1, 20]))
def test_the_overlap_fallback_admits_lightlys_masks_and_keeps_min_keep(seed, batch, tries):
    """lightly's collator defaults (context and targets 20-80%, aspect 0.3-3, 2 targets, min_keep 4) on an
    8 x 8 grid: refused with the stacking fallback, drawn with the overlap one; every row keeps min_keep
    context patches, and only a relaxed row keeps target patches in its context."""
    lightly = dict(input_size=64, patch_size=8, context_scale=(0.2, 0.8), target_scale=(0.2, 0.8))
    lightly |= dict(target_aspect=(0.3, 3.0), num_targets=2, min_keep=4)
    with pytest.raises(ConfigError, match="fallback=overlap"):
        create("masker", "multiblock", **lightly)
    masker = create("masker", "multiblock", **lightly, fallback="overlap", max_tries=tries)
    masks = masker(batch, torch.Generator().manual_seed(seed))
    kept = (
        masks.context_valid.sum(1) if masks.context_valid is not None else torch.full((batch,), masks.context.shape[1])
    )
    assert bool((kept >= 4).all())
    overlapping = 0
    for row in range(batch):
        ctx = set(
            masks.context[row][masks.context_valid[row]].tolist()
            if masks.context_valid is not None
            else masks.context[row].tolist()
        )
        overlapping += bool(ctx & set(masks.targets[row].flatten().tolist()))
    assert overlapping <= masks.stats["relaxations"]


def test_the_overlap_fallback_is_taken_when_retries_run_out():
    lightly = dict(input_size=64, patch_size=8, context_scale=(0.2, 0.8), target_scale=(0.2, 0.8), num_targets=2)
    masker = create("masker", "multiblock", **lightly, min_keep=4, fallback="overlap", max_tries=1)
    relaxed = sum(masker(16, torch.Generator().manual_seed(s)).stats["relaxations"] for s in range(20))
    assert relaxed > 0
