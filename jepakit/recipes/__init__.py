"""Recipes: named functions that return a config tree (see ``jepakit.list_recipes``)."""

from . import cjepa, contrastive, ijepa, lejepa, mae, salt, tcjepa  # noqa: F401  (registers)
