"""SSL methods: the ``Method`` contract the engine talks to, and the methods built on it."""

from . import byol, contrastive, jepa, lejepa  # noqa: F401  (registers)
from .base import Draw, Method, MethodConfig, ParamGroup
from .contrastive import Contrastive, ContrastiveConfig
from .jepa import JEPA, JEPAConfig

__all__ = ["JEPA", "Contrastive", "ContrastiveConfig", "Draw", "JEPAConfig", "Method", "MethodConfig", "ParamGroup"]
