"""The target-updater contract: where the regression targets come from, and how they move."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from ..config import Config

__all__ = ["TargetUpdater", "TargetUpdaterConfig", "frozen_copy"]


@dataclass(frozen=True)
class TargetUpdaterConfig(Config):
    """Base of target-updater configs: what a method may ask of the updater it holds, declared per class."""

    #: whether the target is a second copy of the online module's weights (False: the online module itself,
    #: or the image's pixels)
    holds_encoder: ClassVar[bool] = True
    #: whether probes and export read the target (I-JEPA's EMA teacher) rather than the online encoder
    teacher_evaluated: ClassVar[bool] = True
    #: whether a target patch is its pixel values (the predictor's output width then follows the patch)
    pixel_targets: ClassVar[bool] = False
    #: whether ``make_target`` takes any online module (an encoder with its projector: BYOL), not only an
    #: encoder whose architecture the teacher's weights must fit
    any_module: ClassVar[bool] = True

    def teacher_shape(self) -> tuple[int, int] | None:
        """(token width, patch size) of a teacher that is not the online encoder's architecture; None: the
        encoder's."""
        return None

    def blocks_readable(self) -> bool:
        """Whether the target's transformer blocks can be read (targets averaged over its last blocks)."""
        return not self.pixel_targets


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` in eval mode with every parameter frozen."""
    import copy

    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target.eval()


class TargetUpdater:
    """Base of target updaters: makes the target encoder and updates it every step."""

    def __init__(self, cfg: Any) -> None:
        self.config = cfg
        #: where the targets come from when that is worth a line at the start of a run (a frozen teacher's
        #: weights); "" otherwise
        self.source = ""

    def make_target(self, online: nn.Module) -> nn.Module | None:
        """The target encoder for ``online``, or None to use ``online`` under no_grad."""
        return frozen_copy(online)

    def update(self, online: nn.Module, target: nn.Module | None, step: int, total_steps: int) -> None:
        """Move ``target`` after optimiser step ``step`` of ``total_steps`` (a no-op unless overridden)."""

    def momentum(self, step: int, total_steps: int) -> float | None:
        """The EMA momentum used after step ``step`` (logged), or None for an updater without one."""
        return None

    def after_step(self, online: nn.Module, target: nn.Module | None, step: int, total_steps: int) -> dict[str, float]:
        """``update`` after optimiser step ``step``; the values a method's ``after_step`` logs of it (the
        momentum used, for an EMA)."""
        self.update(online, target, step, total_steps)
        momentum = self.momentum(step, total_steps)
        return {"ema_momentum": momentum} if momentum is not None else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
