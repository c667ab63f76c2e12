"""Recipes: named functions that return a config tree (see ``jepakit.list_recipes``)."""

from . import byol, cjepa, contrastive, data2vec, ijepa, lejepa, mae, salt, tcjepa, vjepa  # noqa: F401  (registers)
