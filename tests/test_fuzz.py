"""The override space, fuzzed: any one field of a CPU recipe set to anything ends cleanly (see fuzz.py)."""

from __future__ import annotations

from unittest import mock

import cli_fuzz
import pytest
from hypothesis import HealthCheck, given, settings

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


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny run and the other things a user may point the commands at (cli_fuzz.prepare)."""
    return cli_fuzz.prepare(tmp_path_factory.mktemp("saved"))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cli_fuzz.commands())
def test_the_commands_that_read_a_users_files_run_or_refuse_in_one_line_whatever_one_argument_is(saved, argv):
    outcome, detail = cli_fuzz.run(argv, saved)
    assert outcome != "DEFECT", f"{argv}: {detail}"


def test_the_command_fuzz_reaches_both_outcomes_and_sees_a_defect(saved):
    assert cli_fuzz.run(["probe", "RUN", *cli_fuzz.PROBE_BASE, "--out", "OUT/p"], saved)[0] == "ran"
    assert cli_fuzz.run(["probe", "NOTES", *cli_fuzz.PROBE_BASE], saved)[0] == "refused"
    assert cli_fuzz.run(["probe", "RUN", "--layers", "x"], saved)[0] == "refused"  # argparse's own
    # sizes that once ran out of memory (a billion probe images, 100,000 pictured ones) are refused at once
    assert cli_fuzz.run(["probe", "RUN", *cli_fuzz.PROBE_BASE[:5], "1000000000"], saved)[0] == "refused"
    assert cli_fuzz.run(["viz", "masks", "ijepa-cpu", "--images", "100000"], saved)[0] == "refused"
    # and values the probes once met with a traceback: more layers than blocks, a train split of one class
    assert cli_fuzz.run(["probe", "RUN", *cli_fuzz.PROBE_BASE, "--layers", "99"], saved)[0] == "refused"
    assert (
        cli_fuzz.run(["probe", "RUN", *cli_fuzz.PROBE_BASE[:1], "1", *cli_fuzz.PROBE_BASE[2:]], saved)[0] == "refused"
    )
    with mock.patch("jepakit.export.export_timm", side_effect=RuntimeError("deep inside torch")):
        assert cli_fuzz.run(["export", "RUN", "--out", "OUT/e"], saved)[0] == "DEFECT"
