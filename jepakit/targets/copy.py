"""The online encoder itself, under stop-gradient: no extra weights (SimSiam-style)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..registry import register
from .base import TargetUpdater, TargetUpdaterConfig

__all__ = ["CopyConfig", "CopyUpdater"]


@dataclass(frozen=True)
class CopyConfig(TargetUpdaterConfig):
    #: no second copy of the encoder's weights (the online encoder gives the targets)
    holds_encoder: ClassVar[bool] = False


@register("target_updater", "copy", CopyConfig)
class CopyUpdater(TargetUpdater):
    """No target encoder: targets are the online encoder's output, detached.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> encoder = create("encoder", "vit", img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=3)
        >>> create("target_updater", "copy").make_target(encoder) is None  # the online encoder gives the targets
        True
    """

    def make_target(self, online: nn.Module) -> nn.Module | None:
        return None
