"""A fuzz of the override space: one field of a CPU recipe set to anything, then a tiny forward.

Every example must end one of three clean ways: the config refuses the value when it is
made (``ValueError``/``KeyError``/``TypeError`` naming the field), the memory estimate
refuses to build (``SizeError``, naming the fields that drive it), or the method builds and
a forward on two samples gives a finite loss. Anything else is a defect: an error from
inside torch, a non-finite loss, an error that does not name the field, or a hang (each
example runs under a time limit). ``tests/test_fuzz.py`` runs a derandomised sample in the
suite; ``benchmarks/override_fuzz.py`` runs many more and records the counts.
"""

from __future__ import annotations

import dataclasses
import signal
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from hypothesis import strategies as st

from jepakit import Config, get_config, list_components
from jepakit.registry import KINDS

from conftest import tiny_config

#: The recipes fuzzed, shrunk to the tests' tiny sizes.
RECIPES = ("ijepa-cpu", "tc-jepa-cpu")
#: Small enough that any honest tiny config fits, small enough that absurd ones are refused at once.
MEMORY = 512 * 2**20
SECONDS = 30

INTS = (0, 1, -1, 2, 3, 5, 8, 16, 64, 1000, 10**6, 2**31, 10**12)
FLOATS = (0.0, -0.5, 0.5, 1.0, 1.5, 1e-30, 1e30, -1e9, 0.999, 2.0)
WRONG = ("abc", "", None, "nan", "inf", "-inf", "1e999", "[1, 2]", "(0.1, 0.2, 0.3)", True, 1.5, -7)
TUPLES = ((), (0.1,), (0.1, 0.2), (0.5, 0.2), (0.0, 1.0), (1, 2, 3), ((0.1, 0.2),), (-1.0, 1.0), (1e30, 1e30))


def base(recipe: str) -> Config:
    """``recipe`` at the tests' tiny sizes, on 8 scenes."""
    return tiny_config(recipe, masker={"min_keep": 4}, data={"size": 8})


def leaves(cfg: Config, prefix: str = "") -> Iterator[tuple[str, Any, Any, str | None]]:
    """(override path, field type, current value, slot kind or None) of every field under ``cfg``."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        path = f"{prefix}{f.name}"
        value, kind = getattr(cfg, f.name), f.metadata.get("kind")
        if kind:
            yield path, hints[f.name], value, kind
            if isinstance(value, Config):
                inner = "" if f.name == "method" else f"{path}."  # method fields are named from the root
                yield from leaves(value, inner)
        else:
            yield path, hints[f.name], value, None


def values_for(tp: Any, kind: str | None) -> st.SearchStrategy:
    """Right and wrong values for a field of type ``tp`` (a slot of ``kind``: every registered name)."""
    if kind is not None:  # a component slot (a whole experiment, SALT's teacher_run, takes none by name)
        names = list_components(kind)[kind] if kind in KINDS else []
        return st.sampled_from([*names, "none", "no-such-component", 3])
    options = [o for o in typing.get_args(tp) if o is not type(None)] or [tp]
    right: list[st.SearchStrategy] = []
    for o in options:
        if o is bool:
            right.append(st.sampled_from([True, False, "true", "0", "1", "yes", "maybe", 2]))
        elif o is int:
            right.append(st.sampled_from(INTS) | st.integers(-10, 100))
        elif o is float:
            right.append(st.sampled_from(FLOATS) | st.floats(-2, 2, allow_nan=False))
        elif o is str:
            right.append(st.sampled_from(["", "x", "cpu", "/no/such/path", "inductor"]))
        elif typing.get_origin(o) is Literal:
            right.append(st.sampled_from([*typing.get_args(o), "not-a-choice"]))
        elif typing.get_origin(o) is tuple:
            right.append(st.sampled_from(TUPLES))
    return st.one_of(*right, st.sampled_from(WRONG))


@st.composite
def examples(draw: Any) -> tuple[str, str, Any, bool]:
    """(recipe, override path, value, given as a command-line string)."""
    recipe = draw(st.sampled_from(RECIPES))
    fields = list(leaves(base(recipe)))
    path, tp, _, kind = draw(st.sampled_from(fields))
    return recipe, path, draw(values_for(tp, kind)), draw(st.booleans())


class TimeLimit(Exception):
    """An example ran past its time limit."""


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def alarm(*_: Any) -> None:
        raise TimeLimit(f"no result within {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _named(error: BaseException, path: str) -> bool:
    """Whether the message names the field (its last name, or the slot it belongs to)."""
    text = str(error)
    return any(name in text for name in {path.rsplit(".", 1)[-1], path.split(".")[0], path})


def run(recipe: str, path: str, value: Any, cli: bool) -> tuple[str, str]:
    """(outcome, detail): outcome is ``refused``, ``too large``, ``ran`` or ``DEFECT``."""
    from jepakit.methods.base import Draw
    from jepakit.sizing import SizeError, check_fits

    text = repr(value) if isinstance(value, tuple) else str(value)
    try:
        with time_limit(SECONDS):
            try:
                cfg = (
                    get_config(base(recipe), f"{path}={text}")
                    if cli
                    else get_config(base(recipe), **_nest(path, value))
                )
            except (ValueError, KeyError, TypeError) as e:
                return ("refused", str(e)) if _named(e, path) else ("DEFECT", f"does not name {path}: {e}")
            try:
                check_fits(cfg.method.size(2), torch.device("cpu"), training=True)
            except SizeError as e:
                return "too large", str(e)
            torch.manual_seed(0)
            method = cfg.build()
            data = cfg.data.build()
            method.prepare(data)
            samples = [s for s in (data[i] for i in range(min(len(data), 4))) if s is not None][:2]
            n = len(samples)
            draw = Draw(seed=0, epoch=0, step=0, micro=0, indices=torch.arange(n), rows=torch.arange(n), size=n)
            out = method(**method.make_batch(samples, draw), step=0)
            loss = float(out["loss"].detach())
            if loss != loss or loss in (float("inf"), float("-inf")):
                return "DEFECT", f"loss {loss}"
            return "ran", f"loss {loss:.4f}"
    except TimeLimit as e:
        return "DEFECT", str(e)
    except Exception as e:
        return "DEFECT", f"{type(e).__name__} after the config was made: {e}"


def _nest(path: str, value: Any) -> dict[str, Any]:
    """``"a.b.c", v`` -> ``{"a": {"b": {"c": v}}}`` (a Python override, as ``build(**overrides)`` takes)."""
    out: dict[str, Any] = {}
    node = out
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out
