"""Configs: overrides in three spellings, coercion, round-trips, errors with choices, derived fields."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import jepakit
from jepakit import ConfigError, UnknownChoiceError, from_dict, get_config, list_recipes, parse_cli_overrides, to_dict
from jepakit.config import field_docs
from jepakit.registry import _all_configs

ALL_CONFIGS = [cls for kind in _all_configs().values() for cls in kind.values()]


@pytest.mark.parametrize("cls", ALL_CONFIGS, ids=lambda c: c.type_id())
def test_every_config_is_frozen_documented_and_round_trips(cls):
    cfg = cls()
    assert dataclasses.is_dataclass(cfg) and cls.__dataclass_params__.frozen
    assert all(field_docs(cfg).values()), f"{cls.type_id()} has a field without a doc"
    d = to_dict(cfg)
    assert from_dict(json.loads(json.dumps(d))) == cfg


@pytest.mark.parametrize("recipe", list_recipes())
def test_recipes_round_trip_through_json(recipe):
    cfg = get_config(recipe)
    assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_string_swaps_dict_edits_cli_says_the_same():
    a = get_config("ijepa", masker="random", predictor={"depth": 3})
    b = get_config("ijepa", "masker=random", "predictor.depth=3")
    assert a == b
    assert a.masker.name == "random" and a.predictor.depth == 3
    c = get_config("ijepa", "masker=random", "masker.ratio=0.5")
    assert c.masker.ratio == 0.5 and c == get_config("ijepa", masker={"type": "random", "ratio": 0.5})


def test_swap_keeps_the_grid_in_step():
    cfg = get_config("ijepa", "image_size=96", "masker=block")
    assert cfg.masker.input_size == 96 and cfg.encoder.img_size == 96


@given(depth=st.integers(1, 40), ratio=st.floats(0.2, 0.8), size=st.sampled_from([64, 96, 224]))
def test_cli_values_are_parsed_to_field_types(depth, ratio, size):
    cfg = get_config(
        "ijepa", f"predictor.depth={depth}", "masker=random", f"masker.ratio={ratio!r}", f"image_size={size}"
    )
    assert cfg.predictor.depth == depth and isinstance(cfg.predictor.depth, int)
    assert cfg.masker.ratio == ratio and cfg.image_size == size
    assert from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "text, value",
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("True", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("FALSE", False),
    ],
)
def test_bool_fields_read_every_command_line_spelling(text, value):
    assert get_config("ijepa", f"masker.allow_overlap={text}").masker.allow_overlap is value


def test_tuple_fields_from_strings_and_lists():
    a = get_config("ijepa", "masker.target_scale=(0.1, 0.2)")
    b = get_config("ijepa", masker={"target_scale": [0.1, 0.2]})
    assert a == b and a.masker.target_scale == (0.1, 0.2)


def wired(cfg) -> dict:
    """Every following field of an experiment and the value of what it follows."""
    m = cfg.method
    pairs = {
        "encoder.img_size": (m.encoder.img_size, m.image_size),
        "data.image_size": (cfg.data.image_size, m.image_size),
    }
    if hasattr(m, "masker"):  # the JEPA family
        pairs["masker.input_size"] = (m.masker.input_size, m.image_size)
        pairs["masker.patch_size"] = (m.masker.patch_size, m.encoder.patch_size)
        pairs["predictor.encoder_dim"] = (m.predictor.encoder_dim, m.encoder.embed_dim)
    text = getattr(m, "text_encoder", None)
    if text is not None and hasattr(m, "conditioner"):
        pairs["conditioner.dim"] = (m.conditioner.dim, m.predictor.embed_dim)
        pairs["conditioner.text_dim"] = (m.conditioner.text_dim, m.text_encoder.embed_dim)
    if hasattr(text, "vocab_size"):  # a text encoder trained here sizes its tables by the tokenizer
        pairs["text_encoder.vocab_size"] = (m.text_encoder.vocab_size, m.tokenizer.vocab_size)
        pairs["text_encoder.max_length"] = (m.text_encoder.max_length, m.tokenizer.max_length)
    return pairs


def assert_wired(cfg) -> None:
    for path, (value, source) in wired(cfg).items():
        assert value == source, f"{path}={value} does not follow its source ({source})"


def test_derived_fields_follow_their_sources():
    cfg = get_config("ijepa", encoder={"embed_dim": 384, "num_heads": 6, "patch_size": 8}, image_size=64)
    assert cfg.predictor.encoder_dim == 384
    assert cfg.masker.patch_size == 8 and cfg.masker.input_size == 64 and cfg.encoder.img_size == 64
    assert cfg.data.image_size == 64


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_recipe_is_wired(recipe):
    cfg = get_config(recipe)
    assert_wired(cfg)
    if cfg.teacher_run is not None:  # a first stage (SALT's teacher) is wired in its own right
        assert_wired(cfg.teacher_run)


@given(
    width=st.sampled_from([192, 384]),
    patch=st.sampled_from([8, 16]),
    size=st.sampled_from([64, 96, 128]),
    recipe=st.sampled_from(["ijepa-tiny", "tc-jepa-tiny"]),
    path=st.sampled_from(["overrides", "replace", "dict"]),
)
def test_wiring_holds_on_every_path(width, patch, size, recipe, path):
    """Recipes, overrides, replace and from_dict all re-wire: no path leaves a following field stale."""
    edits = {
        "encoder": {"embed_dim": width, "patch_size": patch},
        "image_size": size,
        "predictor": {"embed_dim": 96, "num_heads": 3, "depth": 2},
        "text_encoder": {"type": "transformer", "embed_dim": 48},
        "tokenizer": "sentencepiece",
    }
    if recipe == "ijepa-tiny":
        del edits["text_encoder"], edits["tokenizer"]
    if path == "overrides":
        cfg = get_config(recipe, **edits)
    elif path == "replace":
        cfg = get_config(recipe).replace(**edits)
    else:
        cfg = from_dict(json.loads(json.dumps(to_dict(get_config(recipe).replace(**edits)))))
    assert_wired(cfg)
    assert_wired(cfg.replace(image_size=size * 2, encoder={"embed_dim": 2 * width}))  # and they keep following


def test_the_issue_examples_follow_the_run():
    from jepakit.recipes.ijepa import ijepa_config

    longer = ijepa_config("tiny").replace(train={"steps": 500, "epochs": None})
    torch.manual_seed(0)
    method = longer.replace(encoder={"depth": 1}, predictor={"depth": 1}).build()
    assert method.after_step(250, longer.train.steps)["ema_momentum"] == pytest.approx(0.998), "the ramp spans the run"
    assert ijepa_config("base").data.image_size == 224


def test_a_swapped_in_component_follows_the_method():
    cfg = get_config("ijepa-cpu", conditioner="sparse-xattn", tokenizer="sentencepiece", text_encoder="transformer")
    assert_wired(cfg)
    assert (cfg.conditioner.dim, cfg.conditioner.depth) == (192, 3)
    back = cfg.replace(conditioner="none", tokenizer=None, text_encoder=None)
    assert back.conditioner.name == "none" and back.text_encoder is None


def test_an_explicit_value_that_agrees_stays_explicit():
    cfg = get_config("ijepa-cpu", predictor={"encoder_dim": 192})
    assert "predictor.encoder_dim" not in cfg.method.followed
    with pytest.raises(ConfigError, match=r"predictor.encoder_dim=192 does not match encoder.embed_dim=384"):
        cfg.replace(encoder={"embed_dim": 384, "num_heads": 6})


def test_fields_read_and_set_from_the_root_or_under_method():
    a = get_config("ijepa-cpu", "predictor.depth=2")
    b = get_config("ijepa-cpu", "method.predictor.depth=2")
    assert a == b and a.predictor is a.method.predictor
    with pytest.raises(UnknownChoiceError, match=r"Did you mean 'predictor'"):
        get_config("ijepa-cpu", "predictr.depth=2")


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"masker": "multiblok"}, ["multiblok", "multiblock", "random", "Did you mean 'multiblock'"]),
        ({"predictor": {"dpeth": 3}}, ["dpeth", "depth", "Did you mean 'depth'"]),
        ({"imagesize": 3}, ["imagesize", "image_size"]),
        ({"loss": "smoth-l1"}, ["smoth-l1", "smooth-l1", "cosine"]),
        ({"target_updater": {"schedule": "cosin"}}, ["cosin", "linear", "cosine"]),
    ],
)
def test_unknown_names_raise_with_choices_and_closest_match(kwargs, words):
    with pytest.raises(UnknownChoiceError) as e:
        get_config("ijepa", **kwargs)
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    for w in words:
        assert w in str(e.value)


def test_unknown_recipe():
    with pytest.raises(KeyError, match=r"Did you mean 'ijepa'"):
        get_config("ijeppa")


@pytest.mark.parametrize(
    "args, words",
    [
        (["predictor.depth=six"], ["predictor.depth", "six", "int"]),
        (["masker.allow_overlap=maybe"], ["allow_overlap", "bool"]),
        (["masker.target_scale=(0.1,)"], ["target_scale", "2 values"]),
        (["predictor.depth"], ["key=value"]),
    ],
)
def test_bad_values_name_field_and_type(args, words):
    with pytest.raises(ConfigError) as e:
        get_config("ijepa", *args)
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize(
    "overrides, fields",
    [
        ({"encoder": {"embed_dim": 100}}, ["embed_dim", "num_heads"]),
        ({"predictor": {"embed_dim": 100}}, ["embed_dim", "num_heads"]),
        ({"image_size": 100}, ["image_size=100", "encoder.patch_size=16"]),
    ],
)
def test_incompatible_fields_raise_naming_both(overrides, fields):
    with pytest.raises(ConfigError) as e:
        jepakit.build("ijepa", **overrides)
    for f in fields:
        assert f in str(e.value)


@pytest.mark.parametrize(
    "overrides, fields",
    [
        ({"predictor": {"encoder_dim": 512}}, ["predictor.encoder_dim=512", "encoder.embed_dim=768"]),
        ({"masker": {"input_size": 96}}, ["masker.input_size=96", "image_size=224"]),
        ({"masker": {"patch_size": 8}}, ["masker.patch_size=8", "encoder.patch_size=16"]),
        ({"data": {"image_size": 96}}, ["data.image_size=96", "image_size=224"]),
        ({"masker": "tube"}, ["3-D", "2-D"]),
    ],
)
def test_explicit_conflicts_raise_when_the_config_is_made(overrides, fields):
    with pytest.raises(ConfigError) as e:
        get_config("ijepa", **overrides)
    for f in fields:
        assert f in str(e.value)


def test_parse_cli_overrides_shapes():
    assert parse_cli_overrides(["a.b=1", "a=x", "c=2"]) == {"a": {"b": "1", "type": "x"}, "c": "2"}
    assert parse_cli_overrides(["a=x", "a.b=1"]) == {"a": {"type": "x", "b": "1"}}


def test_wrong_kind_in_slot():
    from jepakit.masks.random_mask import RandomConfig

    with pytest.raises(ConfigError, match=r"encoder"):
        get_config("ijepa", encoder=RandomConfig())


def test_describe_prints_every_slot(capsys):
    jepakit.describe("ijepa")
    out = capsys.readouterr().out
    for word in ("masker: multiblock", "encoder: vit", "predictor: vit-predictor", "target_scale", "ema"):
        assert word in out


def test_import_is_light():
    code = (
        "import sys, jepakit; heavy = [m for m in ('timm', 'lightly', 'sentencepiece', 'torchdata', 'rich', "
        "'torchvision') if m in sys.modules]; print(heavy); assert not heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_list_components_and_patterns():
    comps = jepakit.list_components()
    assert set(comps) >= {
        "masker",
        "encoder",
        "predictor",
        "conditioner",
        "text_encoder",
        "tokenizer",
        "target_updater",
        "loss",
    }
    assert jepakit.list_components("loss", "l*") == {"loss": ["l1", "l2", "l2-norm"]}
    assert jepakit.list_recipes("ijepa-h*") == ["ijepa-huge", "ijepa-huge-448"]
    with pytest.raises(KeyError, match=r"component kind"):
        jepakit.list_components("encoders")


def test_create_builds_one_component():
    masker = jepakit.create("masker", "random", input_size=32, patch_size=8, ratio=0.5)
    assert masker.grid == (4, 4) and masker.config.ratio == 0.5
    with pytest.raises(KeyError, match=r"Did you mean 'random'"):
        jepakit.create("masker", "randon")


def test_the_committed_component_catalogue_is_current():
    from jepakit.catalogue import CATALOGUE, RECIPES_DOC, render, with_departures

    assert CATALOGUE.read_text() == render(), "stale: run python -m jepakit.catalogue --write"
    text = RECIPES_DOC.read_text()
    assert text == with_departures(text), "docs/recipes.md's departures are stale: python -m jepakit.catalogue --write"


def test_a_swap_keeps_shared_fields():
    cfg = get_config("ijepa", "loss.normalize_targets=false", "loss=l1", "masker.input_size=224")
    assert cfg.loss.name == "l1" and cfg.loss.normalize_targets is False
    tiny = get_config("ijepa-cpu", masker="random")
    assert tiny.masker.input_size == 64 and tiny.masker.patch_size == 8


def _numeric(tp) -> bool:
    """Whether a field type holds numbers (int, float, tuples of them; optional or not)."""
    import typing

    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return any(
        a in (int, float) or (typing.get_origin(a) is tuple and any(_numeric(b) for b in typing.get_args(a)))
        for a in args
        if a is not bool
    )


@pytest.mark.parametrize("cls", ALL_CONFIGS, ids=lambda c: c.type_id())
def test_every_numeric_field_declares_what_it_must_satisfy(cls):
    import typing

    types = typing.get_type_hints(cls)
    missing = [f.name for f in dataclasses.fields(cls) if _numeric(types[f.name]) and "valid" not in f.metadata]
    assert not missing, f"{cls.type_id()}: numeric fields without a declared range: {missing}"
    for f in dataclasses.fields(cls):
        if "valid" in f.metadata:
            assert f"[{f.metadata['valid'].says}]" in field_docs(cls)[f.name], "describe and the catalogue show it"


EDGES = (-(10**9), -1, 0, 0.5, 1, 10**9, -1.5, 1e-12)


@pytest.mark.parametrize("cls", ALL_CONFIGS, ids=lambda c: c.type_id())
def test_values_out_of_range_fail_when_the_config_is_made_naming_field_and_range(cls):
    """Every declared range is enforced on construction and on replace, with the field and the range named."""
    import typing

    types = typing.get_type_hints(cls)
    base = cls()
    for f in dataclasses.fields(cls):
        valid = f.metadata.get("valid")
        if valid is None or not _numeric(types[f.name]):
            continue
        current = getattr(base, f.name)
        candidates = EDGES if not isinstance(current, tuple) else [tuple(e for _ in current) for e in EDGES]
        for value in candidates:
            try:
                value = jepakit.config.coerce(value, types[f.name], f.name)
            except ConfigError:
                continue  # not even the field's type (e.g. 0.5 for an int): refused earlier, by type
            if valid(value):
                continue
            with pytest.raises(ConfigError) as e:
                base.replace(**{f.name: value})
            assert f"{f.name}=" in str(e.value) and valid.says in str(e.value), str(e.value)


def test_an_image_size_the_patches_do_not_divide_names_both_ways_out():
    """A user's 28-pixel images: the error names the nearest sizes the 8-pixel patches divide and the patch
    sizes that divide 28."""
    with pytest.raises(ConfigError, match=r"set image_size=24 or 32 .*encoder\.patch_size to one of 2, 4, 7, 14"):
        get_config("ijepa-cpu", image_size=28)


def test_an_assembly_names_the_components_in_its_slots():
    """``parts()`` is what callers ask instead of probing a method for attributes it may not have."""
    ijepa, byol = get_config("ijepa-cpu"), get_config("byol-cpu")
    assert {"encoder", "masker", "predictor", "target_updater", "loss"} <= set(ijepa.method.parts())
    assert ijepa.method.parts()["masker"] is ijepa.method.masker
    assert "predictor" not in byol.method.parts() and "target_updater" in byol.method.parts()
    assert {"method", "data", "train"} <= set(ijepa.parts()) and "teacher_run" not in ijepa.parts()


def test_a_method_wires_its_parts_from_what_the_encoder_offers_not_its_field_names():
    """An encoder config that names its width and patch otherwise still drives the predictor's input width
    and the masker's grid through ``offers()``; one that offers nothing is refused naming the offer."""
    import dataclasses
    from typing import Any, ClassVar

    from jepakit.config import Config, knob

    @dataclasses.dataclass(frozen=True)
    class Renamed(Config):
        kind: ClassVar[str] = "encoder"
        name: ClassVar[str] = "renamed"
        tokens: int = knob(96, "token width")
        patch: int = knob(8, "patch side")

        def offers(self) -> dict[str, tuple[Any, str]]:
            return {"width": (self.tokens, "tokens"), "patch_size": (self.patch, "patch"), "in_chans": (3, "patch")}

    @dataclasses.dataclass(frozen=True)
    class Silent(Config):
        kind: ClassVar[str] = "encoder"
        name: ClassVar[str] = "silent"

    method = get_config("ijepa-cpu").method.replace(encoder=Renamed(tokens=96, patch=16))
    assert (method.predictor.encoder_dim, method.masker.patch_size, method.masker.grid) == (96, 16, (4, 4))
    with pytest.raises(ConfigError, match=r"encoder=encoder/silent does not offer its patch_size"):
        get_config("ijepa-cpu").method.replace(encoder=Silent())
