"""The target-updater contract: where the regression targets come from, and how they move."""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["TargetUpdater", "frozen_copy"]


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

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
