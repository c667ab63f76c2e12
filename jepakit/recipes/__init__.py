"""Recipes: named functions that return a config tree (see ``jepakit.list_recipes``)."""

from . import contrastive, ijepa, tcjepa  # noqa: F401  (registers)
