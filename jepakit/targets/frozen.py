"""A fixed teacher (SALT, "Rethinking JEPA", ICLR 2026): targets from frozen weights, no EMA.

The teacher has the online encoder's architecture and its weights come from a
checkpoint (safetensors, or a torch file read with ``weights_only=True``), or it is the
online encoder frozen at initialisation (a random teacher) when no checkpoint is given.
A ready module can be installed with ``JEPA.set_target_encoder``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..config import Config, ConfigError, MissingFileError, knob
from ..registry import register
from .base import TargetUpdater, frozen_copy

__all__ = ["FrozenConfig", "FrozenUpdater", "load_state_dict_file"]


@dataclass(frozen=True)
class FrozenConfig(Config):
    checkpoint: str | None = knob(None, "teacher weights (.safetensors or torch file); None: frozen at init")
    key: str | None = knob(None, "entry of a checkpoint dict that holds the encoder weights, e.g. 'target_encoder'")

    def check_files(self) -> None:
        if self.checkpoint is not None and not os.path.isfile(self.checkpoint):
            raise MissingFileError(f"teacher checkpoint {self.checkpoint!r} does not exist (target_updater.checkpoint)")


def load_state_dict_file(path: str, key: str | None = None) -> dict:
    """Read a state dict safely: safetensors, or ``torch.load(weights_only=True)``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"teacher checkpoint {path!r} does not exist")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state: Any = load_file(path)
    else:
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
    if key is not None:
        if not isinstance(state, dict) or key not in state:
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ConfigError(f"checkpoint {path!r} has no entry key={key!r}; it holds {found}")
        state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"checkpoint {path!r} does not hold a state dict (got {type(state).__name__})")
    return state


@register("target_updater", "frozen", FrozenConfig)
class FrozenUpdater(TargetUpdater):
    """The target encoder is fixed: loaded once, never updated."""

    config: FrozenConfig

    def make_target(self, online: nn.Module) -> nn.Module | None:
        self.config.check_files()
        target = frozen_copy(online)
        if self.config.checkpoint is not None:
            state = load_state_dict_file(self.config.checkpoint, self.config.key)
            missing, unexpected = target.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise ConfigError(
                    f"teacher checkpoint {self.config.checkpoint!r} does not fit the encoder: "
                    f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
                )
        return target
