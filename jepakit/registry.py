"""One registry per component kind, and one for recipes.

A component is a class whose constructor takes its config; registering it ties the
config class to ``(kind, name)``::

    @register("loss", "smooth-l1", SmoothL1Config)
    class SmoothL1Loss(RegressionLoss): ...

Registration only imports torch-light modules; heavy libraries (timm, lightly,
sentencepiece) are imported inside constructors, so ``import jepakit`` stays light.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .config import Config, ConfigError, unknown

__all__ = [
    "KINDS",
    "register",
    "register_recipe",
    "config_class",
    "component_class",
    "list_components",
    "list_recipes",
    "recipe_entry",
]

#: The component kinds, in the order a model is assembled; ``model`` holds assemblies.
KINDS: tuple[str, ...] = (
    "masker",
    "encoder",
    "predictor",
    "conditioner",
    "text_encoder",
    "tokenizer",
    "target_updater",
    "loss",
    "dataset",
    "trainer",
    "model",
)

_configs: dict[str, dict[str, type[Config]]] = {k: {} for k in KINDS}
_classes: dict[type[Config], type] = {}

T = TypeVar("T", bound=type)


def register(kind: str, name: str, config: type[Config]) -> Callable[[T], T]:
    """Class decorator: register a component under ``kind``/``name`` with ``config``."""
    if kind not in _configs:
        raise unknown("component kind", kind, KINDS)
    if name in _configs[kind]:
        raise ConfigError(f"{kind} {name!r} is already registered")
    if config.__dict__.get("name"):
        raise ConfigError(f"{config.__name__} is already registered as {config.type_id()}")

    def deco(cls: T) -> T:
        config.kind, config.name = kind, name
        _configs[kind][name] = config
        _classes[config] = cls
        cls.config_class = config  # type: ignore[attr-defined]
        return cls

    return deco


def _check_kind(kind: str) -> None:
    if kind not in _configs:
        raise unknown("component kind", kind, KINDS)


def config_class(kind: str, name: str) -> type[Config]:
    """The config class registered as ``kind``/``name``."""
    _check_kind(kind)
    try:
        return _configs[kind][name]
    except KeyError:
        raise unknown(kind, name, _configs[kind]) from None


def component_class(config: type[Config]) -> type:
    """The component class built from ``config``."""
    try:
        return _classes[config]
    except KeyError:
        raise ConfigError(f"{config.__name__} is not registered with a component") from None


def list_components(kind: str | None = None, pattern: str = "*") -> dict[str, list[str]]:
    """Registered component names matching ``pattern`` (fnmatch), by kind."""
    if kind is not None:
        _check_kind(kind)
    kinds = [kind] if kind else list(KINDS)
    return {k: sorted(n for n in _configs[k] if fnmatch.fnmatch(n, pattern)) for k in kinds}


# ------------------------------------------------------------------------ recipes


@dataclass(frozen=True)
class RecipeEntry:
    """A registered recipe: a function returning the config tree, and one line of help."""

    name: str
    fn: Callable[[], Config]
    help: str


_recipes: dict[str, RecipeEntry] = {}


def register_recipe(name: str, help: str) -> Callable[[Callable[[], Config]], Callable[[], Config]]:
    """Function decorator: register a recipe (a function returning a config tree)."""

    def deco(fn: Callable[[], Config]) -> Callable[[], Config]:
        if name in _recipes:
            raise ConfigError(f"recipe {name!r} is already registered")
        _recipes[name] = RecipeEntry(name, fn, help)
        return fn

    return deco


def recipe_entry(name: str) -> RecipeEntry:
    """The recipe registered as ``name``."""
    try:
        return _recipes[name]
    except KeyError:
        raise unknown("recipe", name, _recipes) from None


def list_recipes(pattern: str = "*") -> list[str]:
    """Registered recipe names matching ``pattern`` (fnmatch)."""
    return sorted(n for n in _recipes if fnmatch.fnmatch(n, pattern))


def _all_configs() -> dict[str, dict[str, type[Config]]]:
    """Every registered config class by kind (for tests and docs)."""
    return {k: dict(v) for k, v in _configs.items()}

