"""Exponential moving average of the online encoder (BYOL, I-JEPA).

θ̄ ← m θ̄ + (1 − m) θ, with the momentum m a pure function of the step and the run's
length (linear from 0.996 to 1.0 over training in I-JEPA), so a resumed run continues
the same schedule.
The update is one fused ``torch._foreach_lerp_`` over all parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..config import at_least, in_range, knob
from ..registry import register
from .base import TargetUpdater, TargetUpdaterConfig

__all__ = ["EMAConfig", "EMAUpdater", "ema_momentum"]


@dataclass(frozen=True)
class EMAConfig(TargetUpdaterConfig):
    momentum_start: float = knob(0.996, "momentum at step 0 (I-JEPA: 0.996; V-JEPA: 0.998)", valid=in_range(0, 1))
    momentum_end: float = knob(1.0, "momentum at total_steps and after (I-JEPA: 1.0)", valid=in_range(0, 1))
    total_steps: int | None = knob(
        None, "steps over which the momentum moves; None: the whole run (train.steps)", valid=at_least(1)
    )
    schedule: Literal["linear", "cosine"] = knob("linear", "shape of the momentum ramp (I-JEPA: linear; BYOL: cosine)")


def ema_momentum(cfg: EMAConfig, step: int, total_steps: int) -> float:
    """The momentum after optimiser step ``step`` of a ``total_steps`` run (``cfg.total_steps``
    when set), clamped to the end value past the ramp's end."""
    ramp = cfg.total_steps if cfg.total_steps is not None else total_steps
    if ramp <= 0:
        raise ValueError(f"the EMA ramp needs a positive number of steps; got {ramp}")
    p = min(max(step, 0) / ramp, 1.0)
    if cfg.schedule == "cosine":
        p = (1.0 - math.cos(math.pi * p)) / 2.0
    return cfg.momentum_start + (cfg.momentum_end - cfg.momentum_start) * p


@register("target_updater", "ema", EMAConfig)
class EMAUpdater(TargetUpdater):
    """The target follows the online encoder with momentum ``ema_momentum(step)``.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> ema = create("target_updater", "ema", momentum_start=0.9, momentum_end=1.0)
        >>> online = torch.nn.Linear(2, 2, bias=False)
        >>> _ = torch.nn.init.ones_(online.weight)
        >>> target = ema.make_target(online)  # a frozen copy
        >>> _ = torch.nn.init.constant_(online.weight, 2.0)
        >>> ema.update(online, target, step=0, total_steps=10)  # 0.9 * 1 + 0.1 * 2
        >>> round(float(target.weight[0, 0]), 4), target.weight.requires_grad, ema.momentum(10, 10)
        (1.1, False, 1.0)
    """

    config: EMAConfig

    def momentum(self, step: int, total_steps: int) -> float:
        return ema_momentum(self.config, step, total_steps)

    @torch.no_grad()
    def update(self, online: nn.Module, target: nn.Module | None, step: int, total_steps: int) -> None:
        assert target is not None, "EMAUpdater.make_target always makes a target"
        m = self.momentum(step, total_steps)
        if m == 1.0:
            return
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), 1.0 - m)
