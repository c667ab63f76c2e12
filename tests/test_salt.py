"""SALT: two stages in one run (a pixel-target teacher, frozen, then a student), exact resume within
either stage, and frozen teachers from a training checkpoint, a jepakit export or a timm model."""

from __future__ import annotations

import json

import pytest
import torch

from jepakit import ConfigError, get_config
from jepakit.export import export_timm
from jepakit.runs import load_run
from jepakit.train import train

from conftest import batch, tiny_config

STAGE = {"batch_size": 4, "warmup_steps": 1, "log_every": 1, "monitor_every": 2, "checkpoint_every": 1}


def salt(teacher_steps: int = 2, student_steps: int = 3):
    """salt-cpu with both stages on an 8 x 8 grid of 4 px patches, tiny widths."""
    masker, data = {"min_keep": 4}, {"size": 16}
    cfg = tiny_config("salt-cpu", masker=masker, data=data, train={**STAGE, "steps": student_steps})
    first = tiny_config(cfg.teacher_run, masker=masker, data=data, train={**STAGE, "steps": teacher_steps})
    return cfg.replace(teacher_run=first)


def test_the_recipe_is_pixels_then_a_frozen_teacher_with_l1():
    cfg = get_config("salt-cpu")
    first = cfg.teacher_run
    assert (first.method.target_updater.name, first.method.loss.name, first.method.masker.name) == (
        "pixels",
        "l2",
        "multiblock",
    )
    assert (cfg.method.target_updater.name, cfg.method.loss.name) == ("frozen", "l1")
    assert (first.train.steps, cfg.train.steps) == (100, 200)
    assert get_config("salt-cpu", "teacher_run.train.steps=50").teacher_run.train.steps == 50


def test_config_errors_name_the_fields():
    with pytest.raises(ConfigError, match=r"teacher_run is set.*target_updater=frozen.*'ema'"):
        get_config("salt-cpu", target_updater="ema")
    with pytest.raises(ConfigError, match=r"differs from this method's encoder in depth"):
        get_config("salt-cpu", encoder={"depth": 2})
    get_config("salt-cpu", encoder={"drop_path_rate": 0.1})  # a training-only field: the teacher still fits


def test_one_run_trains_both_stages_and_the_student_reads_the_final_teacher(tmp_path):
    cfg = salt()
    result = train(cfg, tmp_path, progress=False)
    assert result["stage"] == "student" and len(result["losses"]) == 3
    saved = json.loads((tmp_path / "config.json").read_text())
    read = saved["method"]["target_updater"]
    assert read["checkpoint"] == str(tmp_path / "teacher" / "checkpoints" / "step-00000002.pt")
    assert (read["key"], read["prefix"]) == ("model", "encoder.")
    _, teacher_state = load_run(tmp_path / "teacher")
    student = result["model"]
    for k, v in student.target_encoder.state_dict().items():
        assert torch.equal(v, teacher_state["model"][f"encoder.{k}"]), f"the teacher is stage 1's encoder ({k})"
    assert student.eval_encoder() is student.encoder, "the student is what is probed and exported"


@pytest.mark.parametrize("until", [1, 3], ids=["within-the-teacher", "within-the-student"])
def test_resume_within_either_stage_is_bitwise_a_straight_run(tmp_path, until):
    cfg = salt()
    straight = train(cfg, tmp_path / "straight", progress=False)["model"].state_dict()
    first = train(cfg, tmp_path / "resumed", progress=False, until=until)
    assert first["stage"] == ("teacher" if until < 2 else "student")
    resumed = train(cfg, tmp_path / "resumed", resume=True, progress=False)
    assert resumed["stage"] == "student"
    state = resumed["model"].state_dict()
    assert state.keys() == straight.keys() and all(torch.equal(state[k], straight[k]) for k in state)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(cfg, tmp_path / "empty", resume=True, progress=False)


def test_an_exported_encoder_is_a_teacher_of_its_own_width(tmp_path):
    source = tiny_config("ijepa", masker={"min_keep": 4}, data={"size": 16}, train={**STAGE, "steps": 1})
    train(source, tmp_path / "run", progress=False)
    folder = export_timm(tmp_path / "run", tmp_path / "export")
    wider = {"embed_dim": 48, "num_heads": 3}
    cfg = tiny_config(
        "ijepa", masker={"min_keep": 4}, encoder=wider, target_updater={"type": "frozen", "checkpoint": str(folder)}
    )
    assert cfg.method.predictor.out_dim == 32, "the predictor's output follows the teacher's width"
    model = cfg.build()
    x, m = batch(model)
    teacher = load_run(tmp_path / "run")[1]["model"]
    want = {k.removeprefix("target_encoder."): v for k, v in teacher.items() if k.startswith("target_encoder.")}
    original = source.method.encoder.build()
    original.load_state_dict(want)
    torch.testing.assert_close(model.target_encoder(x), original(x), rtol=1e-5, atol=1e-5)
    model(x, m)["loss"].backward()


def test_a_timm_vit_with_local_weights_is_a_teacher(tmp_path):
    import timm
    from safetensors.torch import save_file

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=64)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    cfg = tiny_config(
        "ijepa",
        patch=16,
        grid=4,
        masker={"min_keep": 2},
        target_updater={"type": "frozen", "timm": "vit_tiny_patch16_224", "checkpoint": str(path)},
    )
    assert cfg.method.predictor.out_dim == 192
    model = cfg.build()
    x, m = batch(model)
    mean, std = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)
    vit.eval()
    torch.testing.assert_close(model.target_encoder(x), vit.forward_features((x - mean) / std)[:, 1:])
    model(x, m)["loss"].backward()
    with pytest.raises(ConfigError, match=r"cuts 16 px patches and encoder.patch_size=4"):
        tiny_config("ijepa", target_updater={"type": "frozen", "timm": "vit_tiny_patch16_224", "checkpoint": str(path)})
    with pytest.raises(ConfigError, match=r"needs its weights"):
        tiny_config("ijepa", patch=16, grid=4, target_updater={"type": "frozen", "timm": "vit_tiny_patch16_224"})


def test_a_teacher_file_of_another_width_is_refused_naming_the_shapes(tmp_path):
    wide = tiny_config("ijepa", encoder={"embed_dim": 48, "num_heads": 3}).encoder.build()
    path = tmp_path / "wide.pt"
    torch.save(wide.state_dict(), path)
    cfg = tiny_config("ijepa", masker={"min_keep": 4}, target_updater={"type": "frozen", "checkpoint": str(path)})
    with pytest.raises(ConfigError, match=r"another encoder size: .*\(48,.*the encoder's \(32,"):
        cfg.build()


def test_a_run_folder_or_its_training_checkpoint_is_a_teacher_of_its_own_width(tmp_path, capsys):
    """target_updater=frozen checkpoint=RUN (or RUN/checkpoints/step-N.pt) takes the encoder the run's method
    evaluates (I-JEPA's target encoder), with its own config, and the run says which weights it took."""
    source = tiny_config("ijepa", masker={"min_keep": 4}, data={"size": 16}, train={**STAGE, "steps": 2})
    train(source, tmp_path / "run", progress=False)
    teacher = load_run(tmp_path / "run")[1]["model"]
    want = {k.removeprefix("target_encoder."): v for k, v in teacher.items() if k.startswith("target_encoder.")}
    original = source.method.encoder.build()
    original.load_state_dict(want)
    step_file = tmp_path / "run" / "checkpoints" / "step-00000002.pt"
    for given in (tmp_path / "run", step_file):
        wider = {"embed_dim": 48, "num_heads": 3}
        frozen = {"type": "frozen", "checkpoint": str(given)}
        cfg = tiny_config("ijepa", masker={"min_keep": 4}, encoder=wider, target_updater=frozen)
        assert cfg.method.predictor.out_dim == 32, "the predictor's output follows the teacher's width"
        model = cfg.build()
        x, _ = batch(model)
        torch.testing.assert_close(model.target_encoder(x), original(x), rtol=1e-5, atol=1e-5)
        assert model.report() == f"teacher: the target_encoder of {str(step_file)!r} (step 2)"
    student = {"type": "frozen", "checkpoint": str(tmp_path / "run")}
    cfg = tiny_config("ijepa", masker={"min_keep": 4}, data={"size": 16}, target_updater=student, train=STAGE)
    train(cfg, tmp_path / "student", progress=False, log=print)
    assert f"teacher: the target_encoder of {str(step_file)!r} (step 2)" in capsys.readouterr().out
