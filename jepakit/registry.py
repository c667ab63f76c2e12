"""One registry per component kind, and one for recipes.

A component is a class whose constructor takes its config; registering it ties the
config class to ``(kind, name)``::

    @register("loss", "smooth-l1", SmoothL1Config)
    class SmoothL1Loss(RegressionLoss): ...

Registration only imports torch-light modules; heavy libraries (timm, lightly,
sentencepiece) are imported inside constructors, so ``import jepakit`` stays light.

A renamed component or recipe keeps its old name as a deprecated alias (as timm does):
:func:`register_alias` / ``register_recipe_alias``; using it warns and gives the new one.
Root configs (the experiment) are registered by type id with :func:`register_root`, and
configs of an older layout by :func:`register_legacy` with the function that upgrades them.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .config import Config, ConfigError, unknown

if TYPE_CHECKING:
    from .departures import Departure

__all__ = [
    "KINDS",
    "component_class",
    "config_class",
    "legacy_migration",
    "list_components",
    "list_recipes",
    "recipe_entry",
    "register",
    "register_alias",
    "register_legacy",
    "register_recipe",
    "register_recipe_alias",
    "register_root",
    "root_class",
]

#: The component kinds, parts first; a ``method`` assembles parts into an SSL method.
KINDS: tuple[str, ...] = (
    "masker",
    "encoder",
    "predictor",
    "conditioner",
    "text_encoder",
    "tokenizer",
    "target_updater",
    "loss",
    "transform",
    "method",
    "dataset",
    "trainer",
    "logger",
)

_configs: dict[str, dict[str, type[Config]]] = {k: {} for k in KINDS}
_aliases: dict[str, dict[str, str]] = {k: {} for k in KINDS}
_classes: dict[type[Config], type] = {}
_roots: dict[str, type[Config]] = {}
_legacy: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}

T = TypeVar("T", bound=type)


def register(kind: str, name: str, config: type[Config]) -> Callable[[T], T]:
    """Class decorator: register a component under ``kind``/``name`` with ``config``."""
    if kind not in _configs:
        raise unknown("component kind", kind, KINDS)
    if name in _configs[kind] or name in _aliases[kind]:
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


def register_alias(kind: str, old: str, new: str) -> None:
    """Keep ``old``, a renamed component's name, working as a deprecated alias of ``new``."""
    _check_kind(kind)
    if old in _configs[kind] or old in _aliases[kind]:
        raise ConfigError(f"{kind} {old!r} is already registered")
    _aliases[kind][old] = new


def config_class(kind: str, name: str, where: str = "") -> type[Config]:
    """The config class registered as ``kind``/``name`` (a deprecated alias warns); an unknown name
    is an error naming the choices (and ``where``, the config path it was given at)."""
    _check_kind(kind)
    if name in _aliases[kind]:
        new = _aliases[kind][name]
        warnings.warn(f"{kind} {name!r} was renamed {new!r}; the old name will go", DeprecationWarning, stacklevel=3)
        name = new
    try:
        return _configs[kind][name]
    except KeyError:
        raise unknown(kind, name, _configs[kind], where) from None


def register_root(cls: type[Config]) -> type[Config]:
    """Class decorator: a root config (not a component), found by ``from_dict`` through its type id."""
    _roots[cls.type_id()] = cls
    return cls


def root_class(type_id: str) -> type[Config] | None:
    """The root config registered with ``type_id``, or None."""
    return _roots.get(type_id)


def register_legacy(type_id: str, upgrade: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Dicts whose ``type`` is ``type_id`` (an older layout) are upgraded by ``upgrade`` before loading."""
    _legacy[type_id] = upgrade


def legacy_migration(type_id: str) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """The upgrade of an older layout's ``type_id``, or None."""
    return _legacy.get(type_id)


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
    """A registered recipe: a function returning the config tree, one line of help, where it departs from
    the paper it follows (``describe`` prints them) and the paper's facts it is checked against
    (``jepakit.departures``)."""

    name: str
    fn: Callable[[], Config]
    help: str
    departures: tuple[Departure, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)


_recipes: dict[str, RecipeEntry] = {}
_recipe_aliases: dict[str, str] = {}


def register_recipe(
    name: str, help: str, departures: Sequence[Departure] = (), facts: Mapping[str, Any] | None = None
) -> Callable[[Callable[[], Config]], Callable[[], Config]]:
    """Function decorator: register a recipe (a function returning a config tree); ``departures``: where it
    departs from its paper; ``facts``: the paper's values by config path, which it must hold elsewhere."""

    def deco(fn: Callable[[], Config]) -> Callable[[], Config]:
        if name in _recipes:
            raise ConfigError(f"recipe {name!r} is already registered")
        _recipes[name] = RecipeEntry(name, fn, help, tuple(departures), dict(facts or {}))
        return fn

    return deco


def register_recipe_alias(old: str, new: str) -> None:
    """Keep ``old``, a renamed recipe's name, working as a deprecated alias of ``new``."""
    if old in _recipes or old in _recipe_aliases:
        raise ConfigError(f"recipe {old!r} is already registered")
    _recipe_aliases[old] = new


def recipe_entry(name: str) -> RecipeEntry:
    """The recipe registered as ``name`` (a deprecated alias warns)."""
    if name in _recipe_aliases:
        new = _recipe_aliases[name]
        warnings.warn(f"recipe {name!r} was renamed {new!r}; the old name will go", DeprecationWarning, stacklevel=3)
        name = new
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
