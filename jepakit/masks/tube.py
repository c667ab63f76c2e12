"""Tube masking for video: one random spatial mask, repeated over every time step.

Reference: Tong et al., "VideoMAE", NeurIPS 2022 (tube masking, ratio 0.9).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import in_range, knob
from ..registry import register
from .base import Masker, Masks, VideoMaskerConfig, check_ratio, random_split

__all__ = ["TubeConfig", "TubeMasker"]


@dataclass(frozen=True)
class TubeConfig(VideoMaskerConfig):
    ratio: float = knob(
        0.9,
        "fraction of spatial positions masked in every frame (VideoMAE: 0.9)",
        valid=in_range(0, 1, low_open=True, high_open=True),
    )

    def validate(self) -> None:
        super().validate()
        if self.has_grid:
            _, h, w = self.grid
            check_ratio(f"{self.type_id()}.ratio", self.ratio, h * w)


@register("masker", "tube", TubeConfig)
class TubeMasker(Masker):
    """Targets: the masked spatial positions at every time step; context: the rest.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> masker = create("masker", "tube", input_size=64, patch_size=8, num_frames=8, tubelet_size=2)
        >>> masks = masker(2, torch.Generator().manual_seed(0))
        >>> masks.grid, masks.context.shape[1] + masks.targets.shape[2]  # (time, height, width) of tubelets
        ((4, 8, 8), 256)
    """

    config: TubeConfig

    def sample(self, batch_size: int, generator: torch.Generator) -> Masks:
        t, h, w = self.grid
        k = round(self.config.ratio * h * w)
        spatial_t, spatial_c = random_split(batch_size, h * w, k, generator)
        frames = torch.arange(t)[:, None] * (h * w)  # time-major raster order

        def tubes(spatial: torch.Tensor) -> torch.Tensor:
            return (frames + spatial[:, None, :]).reshape(batch_size, -1)

        stats = {"context_kept": float(t * (h * w - k)), "target_size": t * k}
        return Masks(tubes(spatial_c), tubes(spatial_t)[:, None], self.grid, stats=stats)
