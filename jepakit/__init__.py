"""jepakit: composable building blocks for joint-embedding predictive architectures.

``build("ijepa")`` assembles a model from registered components; ``get_config`` gives
its config tree, ``create`` one component, ``list_components`` / ``list_recipes`` what
is registered, ``describe`` prints a tree. Heavy libraries (timm, lightly,
sentencepiece) are imported only when a component that needs them is built.
"""

from . import conditioners, data, encoders, losses, masks, models, predictors, recipes, targets, text, train  # noqa: F401
from .api import build, create, describe, get_config, list_components, list_recipes
from .config import Config, ConfigError, UnknownChoiceError, from_dict, parse_cli_overrides, to_dict
from .export import export_timm, load_encoder
from .masks import Masks

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "Masks",
    "UnknownChoiceError",
    "build",
    "create",
    "describe",
    "export_timm",
    "from_dict",
    "get_config",
    "list_components",
    "list_recipes",
    "load_encoder",
    "parse_cli_overrides",
    "to_dict",
]
