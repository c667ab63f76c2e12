"""Refactors keep results: every recipe's CPU preset gives its recorded first 5 steps, bit for bit.

The values in ``data/golden.json`` were recorded by ``python tests/golden.py --write``
(see that module). On the machine kind that recorded them (same torch, same CPU
kernels) they must match exactly; elsewhere float rounding may differ, so they are
compared to a relative 1e-3 and the weights' hash is not compared.
"""

from __future__ import annotations

import json

import pytest

from golden import FILE, machine, run

GOLDEN = json.loads(FILE.read_text())
SAME_MACHINE = GOLDEN["machine"] == machine()


@pytest.mark.parametrize("recipe", sorted(GOLDEN["recipes"]))
def test_recipe_reproduces_its_golden_values(recipe):
    expected, got = GOLDEN["recipes"][recipe], run(recipe)
    assert len(got["steps"]) == len(expected["steps"])
    for want, have in zip(expected["steps"], got["steps"], strict=True):
        assert set(have) == set(want)
        if SAME_MACHINE:
            assert have == want
        else:
            assert have == pytest.approx(want, rel=1e-3, abs=1e-6)
    if SAME_MACHINE:
        assert got["weights_sha256"] == expected["weights_sha256"]
