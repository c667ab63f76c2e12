"""Every recipe is its paper's method except where it declares a departure, and a slip is caught.

Each registered recipe carries its paper's facts (config path -> the value the paper or its released
code states) and its declared departures (``jepakit.departures``); ``check_recipe`` finds a fact the
config does not hold with no departure saying why, a departure the config does not hold, and a
departure whose paper value is not the fact.
"""

from __future__ import annotations

import warnings

import pytest

from jepakit import get_config, list_recipes
from jepakit.departures import Departure, check_recipe
from jepakit.registry import recipe_entry

#: The paper-size recipes (the issue's list): their departures are only the justified ones named here.
PAPER_SIZE = ("ijepa", "ijepa-large", "ijepa-huge", "tc-jepa", "tc-jepa-large", "tc-jepa-huge", "c-jepa", "salt")
JUSTIFIED = {"masker.context", "masker.block_cap", "text_encoder", "embedding_loss", "teacher_run"}


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_recipe_holds_its_papers_facts_or_declares_why_not(recipe):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        entry = recipe_entry(recipe)
    assert check_recipe(get_config(recipe), entry.departures, entry.facts) == []
    assert all(d.why for d in entry.departures), "every departure says why"


@pytest.mark.parametrize("recipe", PAPER_SIZE)
def test_the_paper_size_recipes_depart_only_where_the_reason_is_a_defect_or_a_download(recipe):
    entry = recipe_entry(recipe)
    assert entry.facts, "a paper-size recipe records its paper's facts"
    assert {d.field for d in entry.departures} - {"train, teacher_run.train"} <= JUSTIFIED


def test_a_slip_from_the_paper_is_caught_and_so_is_a_stale_departure():
    entry = recipe_entry("ijepa")
    cfg = get_config("ijepa")
    slips = {
        "target_updater": {"momentum_start": 0.99},
        "masker": {"shape_draw": "independent"},
        "predictor": {"depth": 12},
        "loss": "l2",
        "train": {"warmup_epochs": 10},
        "embedding_loss": "vicreg",
    }
    for field, edit in slips.items():
        (problem,) = check_recipe(get_config("ijepa", **{field: edit}), entry.departures, entry.facts)
        assert "no departure says why" in problem and field in problem
    stale = Departure("masker.min_keep", 10, 4, "a departure the config no longer holds")
    assert "declares 4; the config holds 10" in check_recipe(cfg, (*entry.departures, stale), entry.facts)[0]
    wrong = Departure("masker.min_keep", 12, 10, "a paper value that is not the fact")
    assert "its fact is 10" in check_recipe(cfg, (*entry.departures, wrong), entry.facts)[0]
    lost = Departure("masker.no_such_field", 1, 1, "a field that does not exist")
    assert "lacks: ['masker.no_such_field']" in check_recipe(cfg, (*entry.departures, lost), entry.facts)[0]


def test_a_config_built_by_hand_is_the_papers_tc_jepa():
    """Item 3: the conditioner's, the masker's and the method's defaults are the paper's; the CPU choices
    come from the presets only."""
    from jepakit.conditioners.xattn import SparseXAttnConfig
    from jepakit.masks.multiblock import MultiBlockConfig
    from jepakit.methods.jepa import JEPAConfig
    from jepakit.text.hf import MiniLMTextConfig, MiniLMTokenizerConfig

    entry = recipe_entry("tc-jepa")
    text = {"tokenizer": MiniLMTokenizerConfig(), "text_encoder": MiniLMTextConfig()}
    hand = JEPAConfig(masker=MultiBlockConfig(), conditioner=SparseXAttnConfig(), **text)
    recipe = get_config("tc-jepa").method
    for path, fact in entry.facts.items():
        if path.startswith(("masker.", "conditioner.")) and path not in {d.field for d in entry.departures}:
            part, _, name = path.partition(".")
            assert getattr(getattr(hand, part), name) == fact, path
    assert hand.caption_choice == recipe.caption_choice and hand.caption_dropout == recipe.caption_dropout
    cpu = get_config("tc-jepa-cpu").method.conditioner
    assert (cpu.cosine, cpu.reg_grad) == ("centred-keys", "attention"), "the presets' own, declared"


def test_describe_prints_each_departure_with_the_papers_value_ours_and_why(capsys):
    from rich.console import Console

    from jepakit import describe

    describe("tc-jepa-cpu", console=Console(width=400))
    out = capsys.readouterr().out
    assert "conditioner.cosine: centred-keys (paper: keys)" in out
    assert "target_updater.momentum_start" not in out, "tc-jepa-cpu starts its EMA at the paper's 0.996"
    assert "[evidence: benchmarks/RESULTS.md, quality rows (b)" in out
