"""jepakit: composable building blocks for joint-embedding predictive architectures.

``build("ijepa")`` assembles a method (a ready model) from registered components;
``get_config`` gives its experiment (method, data, training), ``create`` one component,
``list_components`` / ``list_recipes`` what is registered, ``describe`` prints a tree.
Heavy libraries (timm, lightly, sentencepiece) are imported only when a component that
needs them is built.
"""

from . import (  # noqa: F401
    augment,
    conditioners,
    data,
    encoders,
    losses,
    masks,
    methods,
    predictors,
    recipes,
    targets,
    text,
    train,
)
from .api import build, create, describe, get_config, list_components, list_recipes
from .config import Config, ConfigError, UnknownChoiceError, from_dict, parse_cli_overrides, to_dict
from .experiment import Experiment
from .export import export_timm
from .masks import Masks
from .methods import Method, MethodConfig
from .runs import load_encoder

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "Experiment",
    "Masks",
    "Method",
    "MethodConfig",
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
