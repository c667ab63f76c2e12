"""Versions: runs written by an older jepakit load, probe and resume; renamed names keep working."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from jepakit import ConfigError, Experiment, from_dict, get_config, to_dict
from jepakit.checkpoint import CHECKPOINT_VERSION, load_checkpoint, upgrade_checkpoint
from jepakit.experiment import SCHEMA_VERSION
from jepakit.runs import load_eval_encoder, load_method, load_run
from jepakit.train import train

from golden import recorded_here, weights_sha256

V1 = Path(__file__).parent / "data" / "v1"
EXPECTED = json.loads((V1 / "expected.json").read_text())


@pytest.fixture(params=["ijepa", "tc-jepa"])
def v1_run(request, tmp_path):
    """A copy of a run folder written at schema 1 (stopped after step 2 of 4)."""
    out = tmp_path / request.param
    shutil.copytree(V1 / f"{request.param}-run", out)
    return request.param, out


def test_a_schema_1_config_is_upgraded(v1_run):
    _, run = v1_run
    old = json.loads((run / "config.json").read_text())
    assert old["type"] == "model/jepa" and "version" not in old
    cfg = from_dict(old)
    assert isinstance(cfg, Experiment) and cfg.method.name == "jepa" and cfg.train.name == "default"
    assert cfg.method.crop_scale == tuple(old["train"]["crop_scale"])
    assert cfg.method.target_updater.total_steps is None, "schema 1 copied the run length; schema 2 reads it"
    assert "predictor.encoder_dim" in cfg.method.followed and "data.image_size" in cfg.followed
    assert from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg
    wider = cfg.replace(encoder={"embed_dim": 64})  # the old derived fields follow their sources again
    assert wider.method.predictor.encoder_dim == 64


def test_a_schema_1_checkpoint_resumes_exactly(v1_run, recorded_threads):
    recipe, run = v1_run
    cfg = from_dict(json.loads((run / "config.json").read_text()))
    result = train(cfg, run, resume=True, progress=False)
    if recorded_here(EXPECTED["machine"]):  # the machine kind that wrote the run: bit for bit
        assert result["losses"] == EXPECTED[recipe]["losses"][2:]
        assert weights_sha256(result["model"].state_dict()) == EXPECTED[recipe]["weights_sha256"]
    else:  # elsewhere float rounding may differ
        assert result["losses"] == pytest.approx(EXPECTED[recipe]["losses"][2:], rel=1e-4)
    newest = upgrade_checkpoint(load_checkpoint(result["checkpoint"]))
    assert newest["version"] == CHECKPOINT_VERSION and newest["config"]["version"] == SCHEMA_VERSION


def test_a_schema_1_checkpoint_loads_and_probes(v1_run, tmp_path):
    from jepakit.cli import main

    recipe, run = v1_run
    experiment, state = load_run(run)
    method = load_method(run)
    encoder, _ = load_eval_encoder(run)
    assert state["step"] == 2 and isinstance(experiment, Experiment)
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, method.eval_encoder().state_dict()[k])
    if recipe == "tc-jepa":
        assert method.tokenizer.ready, "the tokenizer comes back from the checkpoint"
    out = tmp_path / "probe"
    assert (
        main(
            [
                "probe",
                str(run),
                "data.size=48",
                "--train",
                "24",
                "--val",
                "8",
                "--test",
                "16",
                "--probes",
                "linear,knn",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "count" in json.loads((out / "probe.json").read_text())["linear"]


def test_a_run_resumes_when_the_config_gained_a_field_with_a_default(tmp_path):
    from conftest import tiny_config

    cfg = tiny_config(
        "ijepa", masker={"min_keep": 4}, data={"size": 8}, train={"steps": 2, "batch_size": 4, "warmup_steps": 1}
    )
    train(cfg, tmp_path, progress=False, until=1)
    path = tmp_path / "checkpoints" / "step-00000001.pt"
    state = load_checkpoint(path)
    del state["config"]["method"]["crop_scale"]  # as written before the field existed
    del state["config"]["train"]["prefetch"]
    torch.save(state, path)
    assert len(train(cfg, tmp_path, resume=True, progress=False)["losses"]) == 1


def test_newer_versions_are_refused_with_a_clear_error():
    d = to_dict(get_config("ijepa-cpu"))
    newer = SCHEMA_VERSION + 1
    with pytest.raises(ConfigError, match=rf"newer jepakit.*schema {newer}"):
        from_dict({**d, "version": newer})
    with pytest.raises(ValueError, match=r"newer jepakit.*version 9"):
        upgrade_checkpoint({"version": 9})


def test_a_schema_3_config_with_the_absolute_collapse_threshold_reads_without_it():
    """Schema 4 warns on a fall of the centred rank (train.collapse_drop); a schema-3 run's train.collapse_rank,
    a warning threshold only, is dropped when it is read: its training is the same."""
    stored = json.loads(json.dumps(to_dict(get_config("ijepa-cpu"))))
    stored["version"] = 3
    stored["train"]["collapse_rank"] = 2.0
    old = from_dict(stored)
    assert old == get_config("ijepa-cpu") and not hasattr(old.train, "collapse_rank")


def test_renamed_names_are_deprecated_aliases(monkeypatch):
    from jepakit import registry
    from jepakit.registry import recipe_entry, register_recipe, register_recipe_alias

    with pytest.warns(DeprecationWarning, match=r"'jepa' was renamed 'default'"):
        cfg = get_config("ijepa-cpu", train={"type": "jepa"})
    assert cfg.train.name == "default"
    monkeypatch.setattr(registry, "_recipes", dict(registry._recipes))  # the test's recipes go with it
    monkeypatch.setattr(registry, "_recipe_aliases", dict(registry._recipe_aliases))
    register_recipe("test-renamed-recipe", help="a recipe under its new name")(lambda: get_config("ijepa-cpu"))
    register_recipe_alias("test-old-recipe", "test-renamed-recipe")
    with pytest.warns(DeprecationWarning, match=r"recipe 'test-old-recipe' was renamed"):
        assert recipe_entry("test-old-recipe").name == "test-renamed-recipe"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_config("ijepa-cpu")  # current names never warn


def test_a_schema_2_config_without_the_fields_schema_3_added_reads_what_it_ran():
    from jepakit import get_config

    stored = json.loads(json.dumps(to_dict(get_config("tc-jepa"))))
    assert stored["version"] == SCHEMA_VERSION and stored["method"]["caption_choice"] == "sample"
    assert stored["method"]["masker"]["shape_draw"] == "coupled"
    stored["version"] = 2
    del stored["method"]["caption_choice"]
    del stored["method"]["masker"]["shape_draw"]
    old = from_dict(stored).method
    assert (old.caption_choice, old.masker.shape_draw) == ("first", "independent"), "schema 2's defaults"
    del stored["version"]  # no version: the current schema, whose defaults are the paper's
    new = from_dict(stored).method
    assert (new.caption_choice, new.masker.shape_draw) == ("sample", "coupled")


def test_a_schema_2_video_config_keeps_the_positions_it_ran_with():
    from jepakit import get_config

    stored = json.loads(json.dumps(to_dict(get_config("vjepa"))))
    assert stored["method"]["encoder"]["video_positions"] == "thirds"
    stored["version"] = 2  # written before the field existed: neither the encoder nor the predictor had it
    del stored["method"]["encoder"]["video_positions"]
    del stored["method"]["predictor"]["video_positions"]
    stored["method"]["_followed"] = [f for f in stored["method"]["_followed"] if "video_positions" not in f]
    method = from_dict(stored).method
    assert method.encoder.video_positions == "quarters" and method.predictor.video_positions == "quarters"


def test_a_schema_2_adaln_without_final_norm_reads_false_and_a_swapped_in_adaln_is_the_papers():
    from jepakit import get_config

    assert get_config("tc-jepa-cpu", conditioner="adaln").method.conditioner.final_norm, "the paper's form"
    stored = json.loads(json.dumps(to_dict(get_config("tc-jepa-adaln"))))
    stored["version"] = 2
    del stored["method"]["conditioner"]["final_norm"]
    assert from_dict(stored).method.conditioner.final_norm is False, "what schema 2 ran"
