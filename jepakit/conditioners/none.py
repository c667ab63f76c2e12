"""The identity conditioner: the predictor runs exactly as in I-JEPA."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..registry import register
from .base import Conditioner

__all__ = ["NoConditioner", "NoConditionerConfig"]


@dataclass(frozen=True)
class NoConditionerConfig(Config):
    pass


@register("conditioner", "none", NoConditionerConfig)
class NoConditioner(Conditioner):
    """Binds no hook, adds no loss: I-JEPA's predictor.

    Example:
        >>> from jepakit import create
        >>> none = create("conditioner", "none")
        >>> none.bind(text=None) is None, none.losses(None)  # the predictor runs unhooked; no extra loss
        (True, {})
    """
