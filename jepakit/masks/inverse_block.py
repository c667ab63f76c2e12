"""data2vec 2.0's inverse block masking, several masks per image: the student sees a union of blocks.

Reference: Baevski et al., "Efficient Self-supervised Learning with Contextualized Target
Representations for Vision, Speech and Language" (data2vec 2.0), 2022, and its image config
(mask_prob 0.8, inverse_mask, mask_length 3, clone_batch 16). Square blocks of ``block`` x
``block`` patches are placed until their union holds ``keep`` of the grid, then random cells
of the union are dropped so that every row sees exactly round(keep * N) patches (no padding);
the other patches are the targets (one set per row). Each image gets ``masks_per_image`` rows
(``Masks.repeats``), so the student sees several masked versions per teacher pass. A block's
corner is drawn over every position that leaves some of it on the grid, so every cell is as
likely to be covered as any other (no edge or raster bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import at_least, in_range, knob
from ..registry import register
from .base import Masker, MaskerConfig, Masks, check_ratio

__all__ = ["InverseBlockConfig", "InverseBlockMasker"]


@dataclass(frozen=True)
class InverseBlockConfig(MaskerConfig):
    keep: float = knob(
        0.2,
        "fraction of patches the student sees, a union of blocks (data2vec 2.0: 1 - mask_prob 0.8)",
        valid=in_range(0, 1, low_open=True, high_open=True),
    )
    block: int = knob(3, "side in patches of the square blocks (data2vec 2.0: mask_length 3)", valid=at_least(1))
    masks_per_image: int = knob(
        16, "masked versions of each image per teacher pass (data2vec 2.0: clone_batch 16)", valid=at_least(1)
    )

    @property
    def repeats(self) -> int:
        """One set of masks per masked version."""
        return self.masks_per_image

    def validate(self) -> None:
        super().validate()
        if self.has_grid:
            check_ratio(f"{self.type_id()}.keep", self.keep, self.grid[0] * self.grid[1])


@register("masker", "inverse-block", InverseBlockConfig)
class InverseBlockMasker(Masker):
    """Per row, exactly round(keep * N) visible patches from a union of blocks; the rest are targets.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> masker = create("masker", "inverse-block", input_size=64, patch_size=8)
        >>> masks = masker(2, torch.Generator().manual_seed(0))
        >>> masks.repeats, masks.context.shape[0]  # several masks per image, image-major rows
        (16, 32)
        >>> masks.targets.shape[2] + masks.context.shape[1]  # each row: the kept blocks' patches, the rest targets
        64
    """

    config: InverseBlockConfig

    def visible(self, generator: torch.Generator) -> torch.Tensor:
        """One row's visible cells, bool [H * W]: blocks until their union reaches the count, then trimmed."""
        (h, w), b = self.grid, self.config.block
        k = round(self.config.keep * self.num_patches)
        seen = torch.zeros(h, w, dtype=torch.bool)
        while int(seen.sum()) < k:
            top = int(torch.randint(1 - b, h, (), generator=generator))
            left = int(torch.randint(1 - b, w, (), generator=generator))
            seen[max(top, 0) : top + b, max(left, 0) : left + b] = True
        flat = seen.reshape(-1)
        cells = flat.nonzero()[:, 0]
        drop = cells[torch.randperm(len(cells), generator=generator)[: len(cells) - k]]
        flat[drop] = False
        return flat

    def sample(self, batch_size: int, generator: torch.Generator) -> Masks:
        rows = self.config.masks_per_image * batch_size  # row r is image r % batch_size
        seen = torch.stack([self.visible(generator) for _ in range(rows)])
        order = torch.arange(self.num_patches).expand(rows, -1)
        context = order[seen].view(rows, -1)
        targets = order[~seen].view(rows, 1, -1)
        stats = {"context_kept": float(context.shape[1]), "target_size": targets.shape[2]}
        return Masks(context, targets, self.grid, repeats=self.config.masks_per_image, stats=stats)
