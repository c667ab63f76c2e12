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

Wiring: a field declared ``knob(None, doc, follows="encoder.width")`` takes the value an
enclosing :class:`Assembly` provides under that name (a method provides its encoder's
width, its image size, ...). Left unset (None) it follows, on every path that makes a
config (recipes, overrides, ``replace``, ``from_dict``); set explicitly it must agree,
or the error names both fields. An assembly remembers which fields followed, so a later
override of the source moves them too, and writes the list into its dict.

This machinery reads configs' fields by name (``getattr(cfg, f.name)`` over
``dataclasses.fields``): reflection over declared fields, not probes for undeclared ones.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

__all__ = [
    "Assembly",
    "Config",
    "ConfigError",
    "MissingFileError",
    "UnknownChoiceError",
    "Valid",
    "apply_overrides",
    "at_least",
    "config_diff",
    "did_you_mean",
    "each",
    "field_docs",
    "from_dict",
    "in_range",
    "knob",
    "ordered_pair",
    "parse_cli_overrides",
    "positive",
    "positive_pair",
    "resolved",
    "slot",
    "to_dict",
]

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A config value or combination that cannot be built."""


class MissingFileError(ConfigError, FileNotFoundError):
    """A file or folder a config names is not there (caught as ``ValueError`` or ``FileNotFoundError``)."""


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


@dataclasses.dataclass(frozen=True)
class Valid:
    """What a field's value must satisfy, and the words that say it (shown by ``describe``,
    the catalogue and the error)."""

    test: Callable[[Any], bool]
    says: str

    def __call__(self, value: Any) -> bool:
        return bool(self.test(value))


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _say(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def at_least(low: float) -> Valid:
    """``value >= low``."""
    return Valid(lambda x: _number(x) and x >= low, f">= {_say(low)}")


def positive() -> Valid:
    """``value > 0``."""
    return Valid(lambda x: _number(x) and x > 0, "> 0")


def in_range(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Valid:
    """``low <= value <= high``, either end open."""

    def test(x: Any) -> bool:
        return _number(x) and (x > low if low_open else x >= low) and (x < high if high_open else x <= high)

    return Valid(test, f"in {'(' if low_open else '['}{_say(low)}, {_say(high)}{')' if high_open else ']'}")


def ordered_pair(low: float, high: float, *, low_open: bool = True) -> Valid:
    """A (min, max) pair with ``low < min <= max <= high`` (``low <= min`` when ``low_open`` is False)."""
    end = in_range(low, high, low_open=low_open)

    def test(x: Any) -> bool:
        return isinstance(x, tuple) and len(x) == 2 and all(end(v) for v in x) and x[0] <= x[1]

    return Valid(test, f"(min, max) with {_say(low)} {'<' if low_open else '<='} min <= max <= {_say(high)}")


def positive_pair() -> Valid:
    """A (min, max) pair with ``0 < min <= max``."""
    return Valid(
        lambda x: isinstance(x, tuple) and len(x) == 2 and all(_number(v) and v > 0 for v in x) and x[0] <= x[1],
        "(min, max) with 0 < min <= max",
    )


def each(valid: Valid) -> Valid:
    """Every element of a tuple satisfies ``valid``."""
    return Valid(lambda x: isinstance(x, tuple) and len(x) > 0 and all(valid(v) for v in x), f"each {valid.says}")


V = TypeVar("V")


def resolved(value: V | None, where: str) -> V:
    """The value of a following field, which its method must have set by now (else ``ConfigError``)."""
    if value is None:
        raise ConfigError(f"{where} is unset: inside a method it follows the method; set it to use the part alone")
    return value


def knob(
    default: Any, doc: str, *, follows: str | None = None, valid: Valid | None = None, required: bool = True
) -> Any:
    """A config field with a default and a one-line doc (shown by ``describe``).

    ``follows`` names the quantity an enclosing :class:`Assembly` provides for this
    field (e.g. ``"encoder.width"``); such a field defaults to None, "follow it".
    ``required=False``: an assembly that does not provide the quantity leaves the field
    None, which the component reads as its own default (the predictor's output width is
    its input width unless the method says otherwise).
    ``valid`` says what its value must satisfy; it is checked whenever a config is made
    (None, an unset or optional value, is not checked).
    """
    metadata: dict[str, Any] = {"doc": doc}
    if follows is not None:
        metadata["follows"] = follows
        metadata["required"] = required
    if valid is not None:
        metadata["valid"] = valid
    return dataclasses.field(default=default, metadata=metadata)


def offered(part: Config | None, slot: str, name: str, required: bool = True) -> tuple[Any, str]:
    """What ``part`` (in ``slot``) offers as ``name``, as an assembly's ``provides`` gives it: (value,
    "slot.field"); (None, "slot.name") when the slot is empty or, not ``required``, the part does not offer
    it; a part that does not offer what is required is a ``ConfigError`` naming the part and the offer."""
    offers = part.offers() if part is not None else {}
    if name in offers:
        value, field = offers[name]
        return value, f"{slot}.{field}"
    if part is None or not required:
        return None, f"{slot}.{name}"
    raise ConfigError(
        f"{slot}={part.type_id()} does not offer its {name}, which the parts beside it follow: "
        f"its config's offers() must give {name!r}"
    )


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
    #: the version of its dict layout, written into it (the experiment's: old runs upgrade on reading); None: none
    schema_version: ClassVar[int | None] = None

    @classmethod
    def type_id(cls) -> str:
        return f"{cls.kind}/{cls.name}"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            valid, value = f.metadata.get("valid"), getattr(self, f.name)
            if valid is not None and value is not None and not valid(value):
                raise ConfigError(f"{self.type_id()}.{f.name}={value!r} must be {valid.says}")
        self.validate()

    def validate(self) -> None:
        """Raise ``ConfigError`` for values that do not fit together (each field's own range is
        declared with it and checked before this runs)."""

    def offers(self) -> dict[str, tuple[Any, str]]:
        """What this component tells the parts beside it (an assembly's wiring reads it): NAME -> (value,
        the field it comes from), e.g. an encoder's ``width`` and ``patch_size``; none by default."""
        return {}

    def param_count(self) -> tuple[float, float] | None:
        """(parameters, buffer values) the component builds, in closed form (``jepakit.sizing``); None: this
        component does not say (its size is measured once built)."""
        return None

    def build(self) -> Any:
        """Create the component this config describes."""
        from .registry import component_class

        self.check_complete()
        self.check_files()
        return component_class(type(self))(self)

    def check_files(self) -> None:
        """Raise ``MissingFileError`` when a file or folder this config reads is not there (run when an
        assembly holding it is made, and before building)."""

    def check_complete(self) -> None:
        """Raise ``ConfigError`` naming a following field that is still unset (built outside an assembly)."""
        for f in dataclasses.fields(self):
            follows = f.metadata.get("follows")
            if follows is not None and f.metadata.get("required", True) and getattr(self, f.name) is None:
                raise ConfigError(
                    f"{self.type_id()}.{f.name} is unset: inside a method it follows {follows}; "
                    f"set it to build {self.type_id()} on its own"
                )

    def replace(self: C, **fields: Any) -> C:
        """A copy with ``fields`` changed, each coerced to its type and checked."""
        return apply_overrides(self, fields)


@dataclasses.dataclass(frozen=True)
class Assembly(Config):
    """A config of component configs wired to each other: a method, an experiment.

    Its parts' following fields (``knob(None, ..., follows=NAME)``) take the values
    :meth:`provides` gives under NAME; an explicit value must agree. This runs whenever
    an assembly is made, so no path leaves the wiring stale. Fields are named from the
    root in messages (``predictor.depth``), whatever holds the assembly.
    """

    def provides(self) -> dict[str, tuple[Any, str]]:
        """What parts may follow: NAME -> (value, or None when unknown; the field it comes from)."""
        return {}

    def check_sources(self) -> None:
        """Raise ``ConfigError`` for values the parts would follow that cannot work (runs before the wiring)."""

    def check(self) -> None:
        """Raise ``ConfigError`` for parts that do not fit together (runs after the wiring)."""

    def route(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Overrides addressed to this assembly, keyed by its own fields (identity unless a root
        forwards shorthand paths, as ``Experiment`` forwards ``predictor.depth`` to its method)."""
        return dict(overrides)

    def parts(self) -> dict[str, Config]:
        """The components in this assembly's slots, by field (empty slots left out): what callers ask
        instead of probing for attributes a method may not have."""
        fields = (f.name for f in dataclasses.fields(self) if f.metadata.get("kind"))
        return {name: part for name in fields if isinstance(part := getattr(self, name), Config)}

    @property
    def followed(self) -> frozenset[str]:
        """The ``slot.field`` paths that took a provided value (the other following fields were set)."""
        return self.__dict__.get("_followed", frozenset())

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            kind, value = f.metadata.get("kind"), getattr(self, f.name)
            if kind and value is not None and value.kind != kind:
                raise ConfigError(f"{f.name} must be a {kind} config; got {value.type_id()}")
            if kind and value is not None:
                value.check_files()
        self.check_sources()
        self._wire()
        self.check()

    def _wire(self) -> None:
        provided = self.provides()
        followed = set()
        provided_paths: dict[str, list[str]] = {}
        for f in dataclasses.fields(self):
            part = getattr(self, f.name)
            if not f.metadata.get("kind") or part is None or isinstance(part, Assembly):
                continue  # an assembly inside wires itself
            updates = {}
            for pf in dataclasses.fields(part):
                name = pf.metadata.get("follows")
                if name is None:
                    continue
                path, value = f"{f.name}.{pf.name}", getattr(part, pf.name)
                if name not in provided:
                    if value is None and pf.metadata.get("required", True):
                        raise ConfigError(f"{path} follows {name}, which {self.type_id()} does not provide: set {path}")
                    continue
                source, source_path = provided[name]
                if value is None:
                    if source is None and not pf.metadata.get("required", True):
                        continue  # an optional follow of something the source does not say stays unset
                    if source is None:
                        raise ConfigError(f"{path} follows {source_path}, which is unset")
                    updates[pf.name] = source
                    provided_paths.setdefault(f.name, []).append(source_path)
                    followed.add(path)
                elif source is not None and value != source:
                    raise ConfigError(
                        f"{path}={value!r} does not match {source_path}={source!r}; leave {path} unset to follow it"
                    )
            if updates:
                try:
                    object.__setattr__(self, f.name, _construct(type(part), updates, f.name, base=part))
                except ConfigError as e:  # say which provided value made the part invalid
                    given = ", ".join(f"{f.name}.{k}={v!r}" for k, v in updates.items())
                    raise ConfigError(f"{given} (following {', '.join(provided_paths[f.name])}): {e}") from None
        object.__setattr__(self, "_followed", frozenset(followed))

    def unwired(self) -> dict[str, Any]:
        """The field values with every followed field back to None: what overrides start from."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        unset: dict[str, dict[str, None]] = {}
        for path in self.followed:
            part, _, name = path.partition(".")
            unset.setdefault(part, {})[name] = None
        for part, nones in unset.items():
            values[part] = dataclasses.replace(values[part], **nones)
        return values


# ----------------------------------------------------------------------------- types


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")  # classes are named; typing forms not


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
        candidates = [o for o in options if o is not type(None)]
        exact = [o for o in candidates if type(value) is o]  # keep 1 an int in int | float
        for opt in exact + [o for o in candidates if o not in exact]:
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
        if isinstance(value, str) and value[:1] + value[-1:] in ("[]", "()"):  # [a, b]: a list of words
            value = [v.strip() for v in value[1:-1].split(",") if v.strip()]
        if isinstance(value, (int, float, str)):
            value = (value,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}={value!r} is not a {_type_name(tp)}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}={value!r} needs {len(args)} values ({_type_name(tp)})")
        return tuple(coerce(v, a, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if _is_config_type(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return from_dict(value, expected=tp)
        if isinstance(value, str) and tp.kind:  # a registered name: that component at its defaults
            from .registry import config_class

            named = config_class(tp.kind, value, where=where)()
            if isinstance(named, tp):
                return named
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
        if not math.isfinite(value):
            raise ConfigError(f"{where}={value!r} is not a finite number")
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
    """A plain, JSON-ready dict of ``cfg`` (nested configs included), with ``type``.

    Values are the resolved ones; an assembly adds ``_followed``, the fields that follow
    others, so that they keep following after ``from_dict``.
    """
    out: dict[str, Any] = {"type": cfg.type_id()}
    version = cfg.schema_version
    if version is not None:
        out["version"] = version
    for f in dataclasses.fields(cfg):
        out[f.name] = _plain(getattr(cfg, f.name))
    if isinstance(cfg, Assembly) and cfg.followed:
        out["_followed"] = sorted(cfg.followed)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return to_dict(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def from_dict(data: Mapping[str, Any], expected: type[Config] | None = None) -> Config:
    """Rebuild a config from :func:`to_dict` output; unknown names raise with choices."""
    from .registry import config_class, legacy_migration, root_class

    values: dict[str, Any] = dict(data)  # a copy: fields are popped
    type_id = values.pop("type", None)
    migrate = legacy_migration(str(type_id)) if type_id is not None else None
    if migrate is not None:  # an older layout: what followed then (fields equal to their source) follows now
        cfg = from_dict(migrate({"type": type_id, **values}), expected)
        _follow_matching(cfg)
        return cfg
    if type_id is None:
        if expected is None or not expected.name:
            raise ConfigError(f"config dict has no 'type' key: {sorted(values)}")
        cls = expected
    elif (root := root_class(str(type_id))) is not None:
        cls = root
        values = root.upgrade(values)  # type: ignore[attr-defined]  # roots define upgrade (registry.register_root)
    else:
        kind, _, name = str(type_id).rpartition("/")
        if not kind and expected is not None:
            kind = expected.kind
        cls = config_class(kind, name)
    followed = values.pop("_followed", ()) if issubclass(cls, Assembly) else ()
    cfg = _construct(cls, values, where=cls.type_id())
    if followed:
        object.__setattr__(cfg, "_followed", frozenset(followed))
    return cfg


def _follow_matching(cfg: Config) -> None:
    """Mark every following field of ``cfg`` (and of the assemblies inside) that equals its source as followed."""
    if not isinstance(cfg, Assembly):
        return
    provided = cfg.provides()
    followed = set(cfg.followed)
    for f in dataclasses.fields(cfg):
        part = getattr(cfg, f.name)
        if not isinstance(part, Config):
            continue
        _follow_matching(part)
        if isinstance(part, Assembly):
            continue
        for pf in dataclasses.fields(part):
            name = pf.metadata.get("follows")
            if name in provided and getattr(part, pf.name) == provided[name][0]:
                followed.add(f"{f.name}.{pf.name}")
    object.__setattr__(cfg, "_followed", frozenset(followed))


def _construct(cls: type[C], values: Mapping[str, Any], where: str, base: C | Mapping[str, Any] | None = None) -> C:
    """``cls(**values)`` with each value coerced to its field's type, on top of ``base``'s values."""
    types_ = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    if isinstance(base, Mapping):
        kwargs = dict(base)
    else:
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
    """A copy of ``cfg`` with ``overrides`` applied (see the module docstring).

    An assembly starts from its unwired values, so fields that followed a source follow
    its new value; the ones an override sets are explicit from then on.
    """
    if isinstance(cfg, Assembly):
        where, overrides, base = "", cfg.route(overrides), cfg.unwired()
    else:
        where, base = (
            (cfg.type_id() if where is None else where),
            {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.init},
        )
    if not overrides:
        return cfg
    types_ = _field_types(type(cfg))
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields:
            raise _unknown_field(cfg, key, fields, where)
        kind = fields[key].metadata.get("kind")
        if kind:
            changes[key] = _override_slot(base[key], kind, value, types_[key], _join(where, key))
        else:
            changes[key] = value
    return _construct(type(cfg), changes, where, base=base)


def _unknown_field(cfg: Config, key: str, fields: Iterable[str], where: str) -> UnknownChoiceError:
    """The error for a field ``cfg`` lacks; when other components of its kind have it, it names them and
    says to swap first (``target_updater.checkpoint`` before ``target_updater=frozen``)."""
    error = unknown("field", key, fields, where)
    if not cfg.kind:
        return error
    from .registry import _all_configs

    having = sorted(
        n for n, c in _all_configs().get(cfg.kind, {}).items() if key in {f.name for f in dataclasses.fields(c)}
    )
    if not having:
        return error
    slot = where or cfg.kind
    return UnknownChoiceError(
        f"{error} The {cfg.kind} {cfg.name!r} has no field {key!r}; {', '.join(repr(n) for n in having)} "
        f"{'has' if len(having) == 1 else 'have'} it: swap first, e.g. {slot}={having[0]} {slot}.{key}=..."
    )


def _defaults(cls: type[Config]) -> dict[str, Any]:
    """The default of every field of ``cls`` that has one."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _override_slot(current: Config | None, kind: str, value: Any, tp: Any, where: str) -> Config | None:
    """Override one component slot of ``kind``: swap by name, edit fields, or replace outright."""
    from .registry import KINDS, config_class

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
        if kind not in KINDS:  # a slot holding a whole config tree (SALT's teacher_run): no names to swap in
            raise ConfigError(f"{where}={name!r}: {where} takes a whole {kind} (e.g. get_config(RECIPE)), not a name")
        new_cls = config_class(kind, name, where)
        if current is None:
            current = new_cls()
        elif type(current) is not new_cls:
            # a swap keeps the fields both configs have, where the old one's value is not its class default:
            # what a recipe or a user chose carries over, while a preset's own defaults (a path, a policy) win
            names = {f.name for f in dataclasses.fields(new_cls)}
            values = (
                current.unwired()
                if isinstance(current, Assembly)
                else {f.name: getattr(current, f.name) for f in dataclasses.fields(current)}
            )
            defaults = _defaults(type(current))
            kept = {k: v for k, v in values.items() if k in names and not (k in defaults and defaults[k] == v)}
            current = _construct(new_cls, kept, where)
    if current is None:
        raise ConfigError(f"{where} is empty; name a component first ({where}=NAME)")
    return apply_overrides(current, value, where)


def field_docs(cfg_or_cls: Config | type[Config]) -> dict[str, str]:
    """The one-line doc of each field (empty string where a field has none), with what it follows."""
    docs = {}
    for f in dataclasses.fields(cfg_or_cls):
        doc, follows, valid = f.metadata.get("doc", ""), f.metadata.get("follows"), f.metadata.get("valid")
        if valid is not None:
            doc += f" [{valid.says}]"
        docs[f.name] = f"{doc} (unset: follows the method's {follows})" if follows else doc
    return docs


def config_diff(a: Config, b: Config, where: str = "") -> list[str]:
    """The dotted paths of the fields whose values differ between ``a`` and ``b`` (resolved values)."""
    if type(a) is not type(b):
        return [f"{where or 'root'} ({a.type_id()} vs {b.type_id()})"]
    out: list[str] = []
    for f in dataclasses.fields(a):
        x, y, path = getattr(a, f.name), getattr(b, f.name), _join(where, f.name)
        if isinstance(x, Config) and isinstance(y, Config):
            out += config_diff(x, y, path)
        elif x != y:
            out.append(path)
    return out
