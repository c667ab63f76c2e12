"""V-JEPA 3-D multi-block masking: several mask generators per batch.

Reference: Bardes et al., "Revisiting Feature Prediction for Learning Visual
Representations from Video" (V-JEPA), 2024 (https://arxiv.org/abs/2404.08471).

Each generator draws, per batch, one spatio-temporal block shape (spatial scale and
aspect ratio drawn independently, temporal extent as a fraction of the clip) and, per
clip, ``num_blocks`` positions; its target is the union of the blocks and its context
the complement. With G generators the result has G * B rows, generator-major
(``Masks.repeats = G``), each row with one target set (M = 1). Rows differ in length;
``context`` and ``targets`` choose how they are equalised (padding by default).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..config import ConfigError, at_least, each, knob, positive_pair
from ..registry import register
from .base import (
    SCALE,
    Equalise,
    Masker,
    Masks,
    VideoMaskerConfig,
    context_stats,
    draw_until_valid,
    rows_to_indices,
)
from .boxes import block_area_range, box_union, draw_block_shape, draw_starts

__all__ = ["MultiBlock3DConfig", "MultiBlock3DMasker"]


@dataclass(frozen=True)
class MultiBlock3DConfig(VideoMaskerConfig):
    num_blocks: tuple[int, ...] = knob(
        (8, 2), "blocks per clip, one entry per mask generator (V-JEPA: 8, 2)", valid=each(at_least(1))
    )
    spatial_scale: tuple[tuple[float, float], ...] = knob(
        ((0.15, 0.15), (0.7, 0.7)), "block area as a fraction of a frame, (min, max) per generator", valid=each(SCALE)
    )
    temporal_scale: tuple[tuple[float, float], ...] = knob(
        ((1.0, 1.0), (1.0, 1.0)), "block length as a fraction of the clip, (min, max) per generator", valid=each(SCALE)
    )
    aspect_ratio: tuple[float, float] = knob((0.75, 1.5), "block aspect ratio height/width", valid=positive_pair())
    min_keep: int = knob(1, "fewest context patches a row may have", valid=at_least(1))
    context: Equalise = knob("pad", "equalise context lengths: pad | random-truncate | reference")
    targets: Equalise = knob("pad", "equalise target lengths: pad | random-truncate | reference")
    max_tries: int = knob(20, "rejection-sampling rounds before a row's blocks are stacked", valid=at_least(1))

    @property
    def repeats(self) -> int:
        """One set of masks per generator."""
        return len(self.num_blocks)

    def validate(self) -> None:
        super().validate()
        t = self.type_id()
        g = len(self.num_blocks)
        if len(self.spatial_scale) != g or len(self.temporal_scale) != g:
            raise ConfigError(
                f"{t}: num_blocks {self.num_blocks}, spatial_scale {self.spatial_scale} and "
                f"temporal_scale {self.temporal_scale} need one entry per generator"
            )
        if not self.has_grid:
            return
        frames, h, w = self.grid
        if max(self.num_blocks) > frames * h * w:
            raise ConfigError(f"{t}.num_blocks={self.num_blocks} exceeds the {frames * h * w} patches of the grid")
        for i in range(g):
            _, area = block_area_range(self.spatial_scale[i], self.aspect_ratio, (h, w))
            volume = area * _temporal_length(self.temporal_scale[i][1], frames)
            if frames * h * w - volume < self.min_keep:
                raise ConfigError(
                    f"{t}: generator {i}'s block (spatial_scale={self.spatial_scale[i]}, "
                    f"temporal_scale={self.temporal_scale[i]}) can cover {volume} of the {frames * h * w} "
                    f"patches, leaving fewer than min_keep={self.min_keep}"
                )


def _temporal_length(scale: float, frames: int) -> int:
    return min(max(round(scale * frames), 1), frames)


@register("masker", "multiblock3d", MultiBlock3DConfig)
class MultiBlock3DMasker(Masker):
    """V-JEPA masks: per generator, target = union of blocks, context = complement.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> masker = create("masker", "multiblock3d", input_size=64, patch_size=8, num_frames=8, tubelet_size=2)
        >>> masks = masker(2, torch.Generator().manual_seed(0))
        >>> masks.grid, masks.repeats, masks.context.shape[0]  # one mask set per generator, generator-major rows
        ((4, 8, 8), 2, 4)
    """

    config: MultiBlock3DConfig

    def sample(self, batch_size: int, generator: torch.Generator) -> Masks:
        cfg = self.config
        frames, h, w = self.grid
        contexts: list[Tensor] = []
        stats: dict[str, Any] = {"retries": 0, "relaxations": 0, "block_shapes": []}
        for i, k in enumerate(cfg.num_blocks):
            hw = draw_block_shape(cfg.spatial_scale[i], cfg.aspect_ratio, (h, w), generator)
            lo, hi = cfg.temporal_scale[i]
            length = _temporal_length(lo + float(torch.rand((), generator=generator)) * (hi - lo), frames)
            shape = (length, *hw)
            context = torch.empty(batch_size, self.num_patches, dtype=torch.bool)
            draw = functools.partial(self._draw, shape=shape, num_blocks=k, out=context, generator=generator)
            retries, relaxations = draw_until_valid(batch_size, cfg.max_tries, draw)
            stats["retries"] += retries
            stats["relaxations"] += relaxations
            stats["block_shapes"].append(shape)
            contexts.append(context)
        context = torch.cat(contexts)
        ctx_idx, ctx_valid = rows_to_indices(context, cfg.context, generator)
        tgt_idx, tgt_valid = rows_to_indices(~context, cfg.targets, generator)
        stats.update(context_stats(context, ctx_valid, ctx_idx.shape[1]))
        return Masks(
            ctx_idx,
            tgt_idx[:, None],
            self.grid,
            ctx_valid,
            None if tgt_valid is None else tgt_valid[:, None],
            repeats=len(cfg.num_blocks),
            stats=stats,
        )

    def _draw(
        self,
        rows: Tensor,
        stack: bool,
        *,
        shape: tuple[int, ...],
        num_blocks: int,
        out: Tensor,
        generator: torch.Generator,
    ) -> Tensor:
        """Draw the blocks of ``rows``; store the contexts that keep ``min_keep``."""
        starts = draw_starts(len(rows), 1 if stack else num_blocks, shape, self.grid, generator)
        ctx = ~box_union(starts, shape, self.grid)
        ok = ctx.sum(1) >= self.config.min_keep
        out[rows[ok]] = ctx[ok]
        return ok
