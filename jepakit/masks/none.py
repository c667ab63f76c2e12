"""No masking: the whole grid is the context and the single target.

For feature extraction and evaluation, and for testing conditioners on full images.
Context and targets overlap by design.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..registry import register
from .base import Masker, MaskerConfig, Masks

__all__ = ["NoMaskConfig", "NoMasker"]


@dataclass(frozen=True)
class NoMaskConfig(MaskerConfig):
    pass


@register("masker", "none", NoMaskConfig)
class NoMasker(Masker):
    """Every patch is context, and every patch is a target.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> masks = create("masker", "none", input_size=64, patch_size=8)(2, torch.Generator().manual_seed(0))
        >>> tuple(masks.context.shape), bool((masks.context[0] == torch.arange(64)).all())
        ((2, 64), True)
    """

    allows_overlap = True

    def sample(self, batch_size: int, generator: torch.Generator) -> Masks:
        full = torch.arange(self.num_patches).expand(batch_size, -1)
        return Masks(full.clone(), full[:, None].clone(), self.grid, stats={"context_kept": float(self.num_patches)})
