"""The public entry points: configs from recipes and overrides, components, descriptions."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .config import Config, ConfigError, apply_overrides, field_docs, parse_cli_overrides

if TYPE_CHECKING:
    from .experiment import Experiment
from .departures import Departure
from .registry import config_class, list_components, list_recipes, recipe_entry

__all__ = ["build", "create", "describe", "get_config", "list_components", "list_recipes"]


def get_config(recipe: str | Config, *cli: str, **overrides: Any) -> Experiment:
    """The experiment of ``recipe`` (a registered name or a config) with overrides applied; nothing is built.

    ``overrides`` swap components by name (``masker="random"``) or edit fields
    (``predictor={"depth": 6}``); ``cli`` strings say the same from a command line
    (``"predictor.depth=6"``, ``"masker=random"``). A method field may be named from the
    root (``predictor``) or under ``method``; ``data`` and ``train`` name the others.
    Fields that follow others (the masker grid, the predictor's input width, the data's
    image size, ...) follow their sources unless set; an explicit value that disagrees
    raises ``ConfigError`` naming both fields.
    """
    from .experiment import Experiment

    cfg = recipe_entry(recipe).fn() if isinstance(recipe, str) else recipe
    if not isinstance(cfg, Experiment):
        raise ConfigError(f"{recipe!r} is a {cfg.type_id()} config, not an experiment (method, data, train)")
    merged = _merge(parse_cli_overrides(cli), overrides)
    return apply_overrides(cfg, merged) if merged else cfg


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge override dicts (``b`` wins); a swap plus edits becomes ``{"type": ...}``."""
    out = dict(a)
    for key, value in b.items():
        old = out.get(key)
        if isinstance(old, (dict, str)) and isinstance(value, Mapping):
            old = {"type": old} if isinstance(old, str) else old
            out[key] = _merge(old, value)
        elif isinstance(old, dict) and isinstance(value, str):
            out[key] = {**old, "type": value}
        else:
            out[key] = value
    return out


def build(recipe: str | Config, *cli: str, **overrides: Any) -> Any:
    """The method (a ready model) of ``recipe`` (a registered name or a config), with overrides applied."""
    return get_config(recipe, *cli, **overrides).build()


def create(kind: str, name: str, **fields: Any) -> Any:
    """One component: ``create("masker", "multiblock", input_size=96)``."""
    return config_class(kind, name)().replace(**fields).build()


def describe(recipe_or_config: str | Config, console: Any | None = None, departures: Sequence[Departure] = ()) -> None:
    """Print a config tree with rich: each field, its value and its one-line doc; then where the recipe
    departs from its paper, with the paper's value, ours, why and the evidence (a recipe's own declared
    departures, or ``departures``)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    declared = tuple(departures)
    if isinstance(recipe_or_config, str):
        entry = recipe_entry(recipe_or_config)
        cfg = entry.fn()
        root = Tree(f"[bold]{entry.name}[/bold] - {escape(entry.help)}")
        declared = entry.departures + declared
    else:
        cfg = recipe_or_config
        root = Tree(f"[bold]{cfg.type_id()}[/bold]")
    _add_fields(root, cfg)
    if declared:
        branch = root.add("[yellow]departs from the paper[/yellow]")
        for d in declared:
            field, _, rest = d.line().partition(": ")
            branch.add(f"[cyan]{escape(field)}[/cyan]: {escape(rest)}")
    (console or Console()).print(root)


def _add_fields(tree: Any, cfg: Config, followed: frozenset[str] = frozenset()) -> None:
    """Add ``cfg``'s fields under ``tree``; ``followed`` names the fields that follow another."""
    from rich.markup import escape

    docs = field_docs(cfg)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)  # each field of the config
        doc = f"  [dim]# {escape(docs[f.name])}[/dim]" if docs[f.name] else ""
        if isinstance(value, Config):
            # an assembly records what it wired in ``followed``; a component config has no such field
            inner = frozenset(p.partition(".")[2] for p in getattr(cfg, "followed", ()) if p.startswith(f.name + "."))
            _add_fields(
                tree.add(f"[cyan]{f.name}[/cyan]: [bold]{value.name or value.type_id()}[/bold]{doc}"), value, inner
            )
        else:
            mark = " [green](followed)[/green]" if f.name in followed else ""
            tree.add(f"{f.name} = {escape(repr(value))}{mark}{doc}")
