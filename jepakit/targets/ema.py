"""Exponential moving average of the online encoder (BYOL, I-JEPA).

θ̄ ← m θ̄ + (1 − m) θ, with the momentum m a pure function of the step (linear from
0.996 to 1.0 over training in I-JEPA), so a resumed run continues the same schedule.
The update is one fused ``torch._foreach_lerp_`` over all parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import Config, ConfigError, knob
from ..registry import register
from .base import TargetUpdater

__all__ = ["EMAConfig", "EMAUpdater", "ema_momentum"]


@dataclass(frozen=True)
class EMAConfig(Config):
    momentum_start: float = knob(0.996, "momentum at step 0 (I-JEPA: 0.996; V-JEPA: 0.998)")
    momentum_end: float = knob(1.0, "momentum at total_steps and after (I-JEPA: 1.0)")
    total_steps: int = knob(100_000, "steps over which the momentum moves (the trainer sets it from the run length)")
    schedule: Literal["linear", "cosine"] = knob("linear", "shape of the momentum ramp (I-JEPA: linear; BYOL: cosine)")

    def __post_init__(self) -> None:
        t = self.type_id()
        for name in ("momentum_start", "momentum_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{t}.{name}={getattr(self, name)!r} must lie in [0, 1]")
        self.require_positive("total_steps")


def ema_momentum(cfg: EMAConfig, step: int) -> float:
    """The momentum after optimiser step ``step`` (clamped to the end value past total_steps)."""
    p = min(max(step, 0) / cfg.total_steps, 1.0)
    if cfg.schedule == "cosine":
        p = (1.0 - math.cos(math.pi * p)) / 2.0
    return cfg.momentum_start + (cfg.momentum_end - cfg.momentum_start) * p


@register("target_updater", "ema", EMAConfig)
class EMAUpdater(TargetUpdater):
    """The target follows the online encoder with momentum ``ema_momentum(step)``."""

    config: EMAConfig

    def momentum(self, step: int) -> float:
        return ema_momentum(self.config, step)

    @torch.no_grad()
    def update(self, online: nn.Module, target: nn.Module | None, step: int) -> None:
        assert target is not None, "EMAUpdater.make_target always makes a target"
        m = self.momentum(step)
        if m == 1.0:
            return
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), 1.0 - m)
