"""Refactors keep results: every recipe, shrunk alike, gives its recorded first 5 steps, bit for bit.

The values in ``data/golden.json`` were recorded by ``python tests/golden.py --write``
(see that module). On the machine kind that recorded them (same torch, same CPU
kernels, the same thread count available) they must match exactly; elsewhere float
rounding may differ, so numbers are compared to a relative 1e-3, event lines without
their numbers, and the weights' hash is not compared.
"""

from __future__ import annotations

from typing import Any

import pytest

from golden import close, config, golden_values, record, recorded_here

GOLDEN = golden_values()
SAME_MACHINE = recorded_here(GOLDEN["machine"])


#: The records made so far, by the config that made them. Recipes that shrink to one config (the I-JEPA
#: sizes, the TC-JEPA sizes) train the same steps, and training is a pure function of the config (what
#: this test asserts), so each config trains once and every recipe's golden values are checked on it.
RECORDS: list[tuple[Any, dict]] = []


def recorded(recipe: str) -> dict:
    """The record of ``recipe``'s shrunk config, made once per distinct config."""
    cfg = config(recipe)
    made = next((result for seen, result in RECORDS if seen == cfg), None)
    if made is None:
        made = record(cfg)
        RECORDS.append((cfg, made))
    return made


@pytest.mark.parametrize("recipe", sorted(GOLDEN["recipes"]))
def test_recipe_reproduces_its_golden_values(recipe, recorded_threads):
    expected, got = GOLDEN["recipes"][recipe], recorded(recipe)
    # a recipe recorded again after its method changed names its own machine
    same = recorded_here(expected["machine"]) if "machine" in expected else SAME_MACHINE
    assert len(got["steps"]) == len(expected["steps"])
    for want, have in zip(expected["steps"], got["steps"], strict=True):
        assert set(have) == set(want)
        assert have == want if same else close(have, want), (have, want)
    if same:
        assert got["weights_sha256"] == expected["weights_sha256"]
