"""Where a recipe departs from its paper, as data: one list per recipe that ``describe``, the generated
table in ``docs/recipes.md`` and the paper-facts test all read.

A ``Departure`` names a config field (a dotted path from the experiment, or several joined by ", " for a
preset's sizes), the paper's value, ours, why, and where the evidence is. A *value* departure is checked
against the config (the field holds ``ours``); a *mechanism* departure (no class token, a decoder of
another kind, a preset's sizes) describes what no single value says, and exempts the fields it names.
A recipe's paper facts (``facts``: path -> the value the paper or its released code states) are checked
too: a field that differs from its fact without a declared departure is a slip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .config import Config

__all__ = ["Departure", "check_recipe", "value_at"]


@dataclass(frozen=True)
class Departure:
    """One place a recipe departs from its paper.

    Args:
        field: a dotted config path (``masker.context``), or several joined by ", ".
        paper: the paper's (or its released configuration's) value, or a description.
        ours: the recipe's value (a registry name for a component), or a description.
        why: the reason.
        evidence: where the measurement that supports it is (a ``benchmarks/RESULTS.md`` section).
        kind: ``value`` (``field`` holds ``ours``: checked) or ``mechanism`` (described).
    """

    field: str
    paper: Any
    ours: Any
    why: str
    evidence: str = ""
    kind: Literal["value", "mechanism"] = "value"

    @property
    def paths(self) -> list[str]:
        return [p.strip() for p in self.field.split(",")]

    def covers(self, path: str) -> bool:
        """Whether this departure speaks for ``path`` (its own field, or a field under a mechanism's)."""
        return any(path == p or (self.kind == "mechanism" and path.startswith(p + ".")) for p in self.paths)

    def line(self) -> str:
        """One line for ``describe``: the field, ours against the paper's, why, the evidence."""
        evidence = f" [evidence: {self.evidence}]" if self.evidence else ""
        return f"{self.field}: {_say(self.ours)} (paper: {_say(self.paper)}). {self.why}{evidence}"


def _say(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


_MISSING = object()


def value_at(cfg: Config, path: str) -> Any:
    """The value at a dotted ``path`` of ``cfg`` (a component's registry name stands for the component),
    or ``_MISSING``."""
    value: Any = cfg
    for part in path.split("."):
        value = getattr(value, part, _MISSING)  # a dotted field path, walked by name
        if value is _MISSING:
            return _MISSING
    return value


def _same(value: Any, expected: Any) -> bool:
    if isinstance(value, Config):
        return isinstance(expected, str) and value.name == expected
    if isinstance(value, (tuple, list)) and isinstance(expected, (tuple, list)):
        return len(value) == len(expected) and all(_same(v, e) for v, e in zip(value, expected, strict=True))
    return bool(value == expected)


def check_recipe(cfg: Config, departures: Sequence[Departure], facts: Mapping[str, Any]) -> list[str]:
    """What is wrong with a recipe's declarations, one line each: a departure whose field the config lacks
    or does not hold ``ours``, a departure whose ``paper`` is not the recorded fact, and a field that
    differs from its paper fact with no departure declared."""
    problems = []
    for d in departures:
        missing = [p for p in d.paths if value_at(cfg, p) is _MISSING]
        if missing:
            problems.append(f"departure {d.field!r} names fields the config lacks: {missing}")
        elif d.kind == "value" and not _same(value_at(cfg, d.field), d.ours):
            problems.append(f"departure {d.field!r} declares {d.ours!r}; the config holds {value_at(cfg, d.field)!r}")
        if d.kind == "value" and d.field in facts and not _same(facts[d.field], d.paper):
            problems.append(f"departure {d.field!r} says the paper has {d.paper!r}; its fact is {facts[d.field]!r}")
    for path, fact in facts.items():
        value = value_at(cfg, path)
        if not any(d.covers(path) for d in departures) and (value is _MISSING or not _same(value, fact)):
            got = "nothing" if value is _MISSING else repr(value)
            problems.append(f"{path} is {got}, the paper's is {fact!r}, and no departure says why")
    return problems
