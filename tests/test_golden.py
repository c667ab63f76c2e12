"""Refactors keep results: every recipe's CPU preset gives its recorded first 5 steps, bit for bit.

The values in ``data/golden.json`` were recorded by ``python tests/golden.py --write``
(see that module). On the machine kind that recorded them (same torch, same CPU
kernels, the same thread count available) they must match exactly; elsewhere float
rounding may differ, so they are compared to a relative 1e-3 and the weights' hash is
not compared.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from golden import FILE, machine, run

GOLDEN = json.loads(FILE.read_text())
THREADS = int(GOLDEN["machine"]["threads"])
SAME_MACHINE = all(GOLDEN["machine"][k] == v for k, v in machine().items() if k != "threads") and (
    (os.cpu_count() or 1) >= THREADS
)


@pytest.fixture
def recorded_threads():
    """The thread count the values were recorded with (LAPACK's SVD in the monitors depends on it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("recipe", sorted(GOLDEN["recipes"]))
def test_recipe_reproduces_its_golden_values(recipe, recorded_threads):
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
