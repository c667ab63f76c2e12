"""SSL methods: the ``Method`` contract the engine talks to, and the methods built on it."""

from . import jepa  # noqa: F401  (registers)
from .base import Draw, Method, MethodConfig, ParamGroup
from .jepa import JEPA, JEPAConfig

__all__ = ["JEPA", "Draw", "JEPAConfig", "Method", "MethodConfig", "ParamGroup"]
