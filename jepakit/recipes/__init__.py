"""Recipes: named functions that return a config tree (see ``jepakit.list_recipes``)."""

from . import cjepa, contrastive, ijepa, mae, tcjepa  # noqa: F401  (registers)
