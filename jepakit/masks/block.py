"""One rectangular target block per image (BEiT-style block masking); the context is the rest.

Reference: Bao et al., "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022.
One block shape is drawn per batch (scale and aspect ratio independently), positions
per image over every cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import ConfigError, knob, positive_pair
from ..registry import register
from .base import SCALE, Masker, MaskerConfig, Masks, rows_to_indices
from .boxes import block_area_range, box_indices, box_union, draw_block_shape, draw_starts

__all__ = ["BlockConfig", "BlockMasker"]


@dataclass(frozen=True)
class BlockConfig(MaskerConfig):
    scale: tuple[float, float] = knob((0.15, 0.4), "block area as a fraction of the grid", valid=SCALE)
    aspect: tuple[float, float] = knob(
        (0.3, 3.3), "block aspect ratio height/width (BEiT's range)", valid=positive_pair()
    )

    def validate(self) -> None:
        super().validate()
        if not self.has_grid:
            return
        _, largest = block_area_range(self.scale, self.aspect, self.grid)
        if largest >= self.grid[0] * self.grid[1]:
            raise ConfigError(
                f"{self.type_id()}.scale={self.scale}: a block can cover the whole {self.grid} grid, "
                "leaving no context; lower the maximum scale"
            )


@register("masker", "block", BlockConfig)
class BlockMasker(Masker):
    """A single rectangular target block; every other patch is context.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> masks = create("masker", "block", input_size=64, patch_size=8)(2, torch.Generator().manual_seed(0))
        >>> masks.grid, masks.targets.shape[1], masks.targets.shape[2] + masks.context.shape[1]  # one block; the rest
        ((8, 8), 1, 64)
    """

    config: BlockConfig

    def sample(self, batch_size: int, generator: torch.Generator) -> Masks:
        shape = draw_block_shape(self.config.scale, self.config.aspect, self.grid, generator)
        starts = draw_starts(batch_size, 1, shape, self.grid, generator)
        context, _ = rows_to_indices(~box_union(starts, shape, self.grid), "pad", generator)
        stats = {"target_shape": shape, "context_kept": float(context.shape[1])}
        return Masks(context, box_indices(starts, shape, self.grid), self.grid, stats=stats)
