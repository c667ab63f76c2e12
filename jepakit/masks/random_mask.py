"""MAE-style random masking: a fixed ratio of patches, uniformly at random, is the target.

Reference: He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import in_range, knob
from ..registry import register
from .base import Masker, MaskerConfig, Masks, check_ratio, random_split

__all__ = ["RandomConfig", "RandomMasker"]


@dataclass(frozen=True)
class RandomConfig(MaskerConfig):
    ratio: float = knob(
        0.75, "fraction of patches that are targets (MAE: 0.75)", valid=in_range(0, 1, low_open=True, high_open=True)
    )

    def validate(self) -> None:
        super().validate()
        if self.has_grid:
            check_ratio(f"{self.type_id()}.ratio", self.ratio, self.grid[0] * self.grid[1])


@register("masker", "random", RandomConfig)
class RandomMasker(Masker):
    """One target set of ``ratio`` of the patches; the context is the rest.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> masker = create("masker", "random", input_size=64, patch_size=8, ratio=0.75)
        >>> masks = masker(2, torch.Generator().manual_seed(0))
        >>> tuple(masks.context.shape), tuple(masks.targets.shape)  # MAE's 25% seen, 75% predicted
        ((2, 16), (2, 1, 48))
    """

    config: RandomConfig

    def sample(self, batch_size: int, generator: torch.Generator) -> Masks:
        k = round(self.config.ratio * self.num_patches)
        targets, context = random_split(batch_size, self.num_patches, k, generator)
        stats = {"context_kept": float(context.shape[1]), "target_size": k}
        return Masks(context, targets[:, None], self.grid, stats=stats)
