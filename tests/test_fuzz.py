"""The override space, fuzzed: any one field of a CPU recipe set to anything ends cleanly (see fuzz.py)."""

from __future__ import annotations

from unittest import mock

from hypothesis import given, settings

from jepakit import sizing

import fuzz


@settings(max_examples=60)
@given(fuzz.examples())
def test_any_single_override_is_refused_naming_the_field_or_runs(example):
    with mock.patch.object(sizing, "available_bytes", lambda device: fuzz.MEMORY):
        outcome, detail = fuzz.run(*example)
    assert outcome != "DEFECT", f"{example}: {detail}"


def test_the_fuzz_reaches_every_outcome():
    """Guard the harness: a good value runs, a bad one is refused, an absurd size is refused before building,
    and a defect is seen as one."""
    with mock.patch.object(sizing, "available_bytes", lambda device: fuzz.MEMORY):
        assert fuzz.run("ijepa-cpu", "predictor.depth", 1, True)[0] == "ran"
        assert fuzz.run("ijepa-cpu", "predictor.depth", -1, True)[0] == "refused"
        assert fuzz.run("ijepa-cpu", "encoder.depth", 10**6, False)[0] == "too large"
        with mock.patch("jepakit.methods.jepa.JEPA.forward", side_effect=RuntimeError("deep inside torch")):
            assert fuzz.run("ijepa-cpu", "predictor.depth", 2, True)[0] == "DEFECT"
