"""Typed, frozen configs: the knobs of every component and recipe.

A config is a frozen dataclass whose fields carry a default and a one-line doc
(:func:`knob`). Configs nest (a model config holds one config per component slot),
round-trip through plain dicts (:func:`to_dict`, :func:`from_dict`; the dict is what
checkpoints store) and accept overrides in three spellings that mean the same thing:

* a string swaps a component by registry name: ``masker="random"`` (fields the old and
  new configs share keep their values: a swapped masker keeps its grid);
* a dict edits fields: ``predictor={"depth": 6}`` (with ``"type"`` it swaps and edits);
* dotted command-line strings: ``predictor.depth=6``, ``masker=random``.

Values are coerced to the field's annotated type, so ``"6"`` from a command line
becomes ``6`` and ``[0.1, 0.2]`` from JSON becomes ``(0.1, 0.2)``.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

__all__ = [
    "Config",
    "slot",
    "ConfigError",
    "UnknownChoiceError",
    "knob",
    "to_dict",
    "from_dict",
    "apply_overrides",
    "parse_cli_overrides",
    "field_docs",
    "did_you_mean",
]

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A config value or combination that cannot be built."""


class UnknownChoiceError(KeyError, ValueError):
    """A name (component, recipe or field) that does not exist.

    Subclasses both ``KeyError`` (it is a failed lookup) and ``ValueError`` (it is a bad
    value), so either ``except`` catches it. The message names the bad value, the valid
    choices and the closest match.
    """

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix for the closest choice, or ''."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown(what: str, value: str, choices: Iterable[str], where: str = "") -> UnknownChoiceError:
    """Build the error for an unknown ``value`` among ``choices`` (at config path ``where``)."""
    choices = sorted(str(c) for c in choices)
    return UnknownChoiceError(
        f"{where + ': ' if where else ''}unknown {what} {value!r}; valid choices: "
        f"{', '.join(choices) or '(none)'}." + did_you_mean(value, choices)
    )


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def knob(default: Any, doc: str) -> Any:
    """A config field with a default and a one-line doc (shown by ``describe``)."""
    return dataclasses.field(default=default, metadata={"doc": doc})


def slot(default: Config | None, kind: str, doc: str) -> Any:
    """A config field holding the config of one component of ``kind`` (None: no component)."""
    return dataclasses.field(default=default, metadata={"doc": doc, "kind": kind})


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every config. Subclasses are frozen dataclasses of knobs.

    ``kind`` and ``name`` are set when the config is registered (see
    :mod:`jepakit.registry`); ``type_id`` (``"kind/name"``) identifies it in dicts.
    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""

    @classmethod
    def type_id(cls) -> str:
        return f"{cls.kind}/{cls.name}"

    def build(self) -> Any:
        """Create the component this config describes."""
        from .registry import component_class

        return component_class(type(self))(self)

    def require_positive(self, *names: str) -> None:
        """Raise ``ConfigError`` naming the first of ``names`` whose value is not > 0."""
        for name in names:
            value = getattr(self, name)
            if value <= 0:
                raise ConfigError(f"{self.type_id()}.{name}={value!r} must be positive")

    def replace(self: C, **fields: Any) -> C:
        """A copy with ``fields`` changed, each coerced to its type and checked."""
        return apply_overrides(self, fields)


# ----------------------------------------------------------------------------- types


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _is_config_type(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Config)


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` to type ``tp`` (parsing strings), or raise naming ``where``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in options:
                return None
        options = [o for o in options if o is not type(None)]
        exact = [o for o in options if type(value) is o]  # keep 1 an int in int | float
        for opt in exact + [o for o in options if o not in exact]:
            try:
                return coerce(value, opt, where)
            except (ConfigError, UnknownChoiceError):
                pass
        raise ConfigError(f"{where}={value!r} is not a valid {_type_name(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        if value in choices:
            return value
        raise unknown("value", value, choices, where)
    if origin is tuple:
        if isinstance(value, str):
            value = _literal(value)
        if isinstance(value, (int, float, str)):
            value = (value,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}={value!r} is not a {_type_name(tp)}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}={value!r} needs {len(args)} values ({_type_name(tp)})")
        return tuple(coerce(v, a, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if _is_config_type(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return from_dict(value, expected=tp)
        raise ConfigError(f"{where}={value!r} is not a {tp.__name__}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}={value!r} is not a bool (true/false)")
    if tp is int:
        if isinstance(value, str):
            value = _literal(value)
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}={value!r} is not an int")
        return value
    if tp is float:
        if isinstance(value, str):
            value = _literal(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}={value!r} is not a float")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}={value!r} is not a str")
        return value
    raise ConfigError(f"{where}: unsupported field type {_type_name(tp)}")


def _literal(text: str) -> Any:
    """Parse a command-line value: Python/JSON literal if it is one, else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# ------------------------------------------------------------------------ dict I/O


def to_dict(cfg: Config) -> dict[str, Any]:
    """A plain, JSON-ready dict of ``cfg`` (nested configs included), with ``type``."""
    out: dict[str, Any] = {"type": cfg.type_id()}
    for f in dataclasses.fields(cfg):
        out[f.name] = _plain(getattr(cfg, f.name))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return to_dict(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def from_dict(data: Mapping[str, Any], expected: type[Config] | None = None) -> Config:
    """Rebuild a config from :func:`to_dict` output; unknown names raise with choices."""
    from .registry import config_class

    data = dict(data)
    type_id = data.pop("type", None)
    if type_id is None:
        if expected is None or not expected.name:
            raise ConfigError(f"config dict has no 'type' key: {sorted(data)}")
        cls = expected
    else:
        kind, _, name = str(type_id).rpartition("/")
        if not kind and expected is not None:
            kind = expected.kind
        cls = config_class(kind, name)
    return _construct(cls, data, where=cls.type_id())


def _construct(cls: type[C], values: Mapping[str, Any], where: str, base: C | None = None) -> C:
    types_ = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {n: getattr(base, n) for n in names} if base is not None else {}
    for key, value in values.items():
        if key not in names:
            raise unknown("field", key, names, where)
        kwargs[key] = coerce(value, types_[key], _join(where, key))
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field without default
        raise ConfigError(f"{where}: {e}") from None


# ----------------------------------------------------------------------- overrides


def parse_cli_overrides(args: Iterable[str]) -> dict[str, Any]:
    """Turn ``["predictor.depth=6", "masker=random"]`` into an override dict.

    ``a=b`` swaps or sets ``a``; ``a.b=c`` edits field ``b`` of ``a``. A swap and an
    edit of the same slot combine into ``{"type": name, field: value}``. Values stay
    strings here and are parsed to each field's type when applied.
    """
    out: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {arg!r} is not of the form key=value (e.g. predictor.depth=6)")
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if isinstance(child, str):  # an earlier swap, now also edited
                child = {"type": child}
            node[part] = child = child if isinstance(child, dict) else {}
            node = child
        last = parts[-1]
        if isinstance(node.get(last), dict):  # an earlier edit, now swapped
            node[last]["type"] = value
        else:
            node[last] = value
    return out


def apply_overrides(cfg: C, overrides: Mapping[str, Any], where: str | None = None) -> C:
    """A copy of ``cfg`` with ``overrides`` applied (see the module docstring)."""
    if where is None:  # a model's fields are named from its root: "predictor.depth"
        where = "" if cfg.kind == "model" else cfg.type_id()
    types_ = _field_types(type(cfg))
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields:
            raise unknown("field", key, fields, where)
        kind = fields[key].metadata.get("kind")
        if kind:
            changes[key] = _override_slot(getattr(cfg, key), kind, value, types_[key], _join(where, key))
        else:
            changes[key] = value
    return _construct(type(cfg), changes, where, base=cfg) if changes else cfg


def _override_slot(current: Config | None, kind: str, value: Any, tp: Any, where: str) -> Config | None:
    """Override one component slot of ``kind``: swap by name, edit fields, or replace outright."""
    from .registry import config_class

    if value is None or isinstance(value, Config):
        return coerce(value, tp, where)
    if isinstance(value, str):
        if value.lower() in ("none", "null") and type(None) in get_args(tp):
            return None
        value = {"type": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}={value!r}: give a component name, a dict of fields or a config")
    value = dict(value)
    name = value.pop("type", None)
    if name is not None:
        name = str(name).rpartition("/")[2]
        new_cls = config_class(kind, name)
        if current is None:
            current = new_cls()
        elif type(current) is not new_cls:  # a swap keeps the values of the fields both configs have
            names = {f.name for f in dataclasses.fields(new_cls)}
            shared = {f.name: getattr(current, f.name) for f in dataclasses.fields(current) if f.name in names}
            current = _construct(new_cls, shared, where)
    if current is None:
        raise ConfigError(f"{where} is empty; name a component first ({where}=NAME)")
    return apply_overrides(current, value, where)


def field_docs(cfg_or_cls: Config | type[Config]) -> dict[str, str]:
    """The one-line doc of each field (empty string where a field has none)."""
    return {f.name: f.metadata.get("doc", "") for f in dataclasses.fields(cfg_or_cls)}
