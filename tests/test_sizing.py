"""Memory estimated from the config: exact enough to trust, and refusing what cannot fit before allocating."""

from __future__ import annotations

import time

import pytest
import torch

from jepakit import get_config, list_recipes
from jepakit.sizing import SizeError
from jepakit.train import train

from conftest import tiny_config


@pytest.mark.parametrize("recipe", list_recipes())
def test_the_estimate_counts_every_parameter_and_buffer(recipe):
    cfg = tiny_config(recipe)
    size = cfg.method.size(1)
    method = cfg.build()
    for part in ("encoder", "predictor", "conditioner", "text_encoder"):
        module = getattr(method, part, None)
        if module is None:
            continue
        params = sum(p.numel() for p in module.parameters())
        buffers = sum(b.numel() for b in module.buffers())
        estimated = size.params.get(part, 0.0) + size.fixed.get(part, 0.0)
        assert estimated == pytest.approx(params + buffers, rel=0.01, abs=2), part
    if hasattr(method, "target_encoder"):
        assert size.fixed.get("target_encoder", 0) == pytest.approx(
            sum(p.numel() for p in method.target_encoder.parameters()), rel=0.01
        )
    if hasattr(method, "image_proj"):  # a contrastive method's two projections
        projections = [*method.image_proj.parameters(), *method.text_proj.parameters()]
        assert size.params["projections"] == sum(p.numel() for p in projections)


@pytest.mark.parametrize(
    "edit, field",
    [
        ({"encoder": {"depth": 1_000_000}}, "encoder.depth=1000000"),
        ({"encoder": {"embed_dim": 2**20, "num_heads": 1}}, "encoder.embed_dim=1048576"),
        ({"image_size": 2**20}, "image_size=1048576"),
        ({"predictor": {"depth": 10**7}}, "predictor.depth=10000000"),
    ],
)
def test_a_build_that_cannot_fit_fails_at_once_naming_the_fields(edit, field):
    cfg = get_config("ijepa-cpu", **edit)  # the config itself is fine
    t0 = time.perf_counter()
    with pytest.raises(SizeError) as e:
        cfg.build()
    assert time.perf_counter() - t0 < 2, "refused from the numbers, not by building"
    assert field in str(e.value) and "GB free" in str(e.value) and "memory_check=off" in str(e.value)


def test_a_training_step_that_cannot_fit_names_the_batch(tmp_path):
    cfg = tiny_config("ijepa", data={"size": 8}, train={"batch_size": 2**30, "steps": 1, "warmup_steps": 0})
    with pytest.raises(SizeError, match=r"train.batch_size=1073741824"):
        train(cfg, tmp_path, progress=False)
    assert not (tmp_path / "checkpoints").exists()


def test_a_run_estimates_its_memory_once(tmp_path, monkeypatch):
    """The trainer checks training's memory (weights, AdamW's moments, activations) before building; the
    build inside it does not check again."""
    import jepakit.train.trainer as trainer

    calls = []
    real = trainer.check_fits
    monkeypatch.setattr(trainer, "check_fits", lambda *a, **k: calls.append(k["training"]) or real(*a, **k))
    monkeypatch.setattr("jepakit.experiment.check_fits", lambda *a, **k: calls.append(k["training"]))
    cfg = tiny_config("ijepa", data={"size": 8}, train={"steps": 1, "warmup_steps": 0, "batch_size": 4})
    train(cfg, tmp_path, progress=False)
    assert calls == [True]


def test_i_know_better_skips_the_check():
    cfg = get_config("ijepa-cpu", encoder={"depth": 1_000_000}, train={"memory_check": "off"})
    with torch.device("meta"):  # and a meta-device build allocates nothing: never checked
        get_config("ijepa-cpu", encoder={"depth": 200}).build()
    with pytest.warns(ResourceWarning, match=r"encoder.depth=1000000"):
        from jepakit.sizing import check_fits

        check_fits(cfg.method.size(1), torch.device("cpu"), training=False, mode="warn")


@pytest.fixture(scope="module")
def user_method(tmp_path_factory):
    """The tutorial's method (docs/tutorial.md), registered from a file as a user's would be: it gives no size()."""
    import re
    from pathlib import Path

    from jepakit.imports import import_user_code

    text = (Path(__file__).parents[1] / "docs" / "tutorial.md").read_text()
    module = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    path = tmp_path_factory.mktemp("user") / "my_data2vec_for_sizing.py"
    path.write_text(module.replace("data2vec-tutorial", "data2vec-sizing"))
    import_user_code(str(path))
    return "data2vec-sizing-cpu"


def test_a_user_method_without_size_is_measured_on_a_dry_step(user_method, tmp_path):
    """Item 3: image_size=128 and a batch of 20,000 passed the parameter count alone; the dry step's saved
    tensors, scaled to the batch, refuse it before a training step allocates anything."""
    cfg = get_config(user_method, image_size=128, train={"batch_size": 20_000, "steps": 1, "warmup_steps": 0})
    assert not cfg.method.size(1).activations_known, "no size() of its own"
    with pytest.raises(
        SizeError, match=r"training step needs about .*activations \(measured\).*train.batch_size=20000"
    ):
        train(cfg, tmp_path / "big", progress=False)
    assert get_config("ijepa-cpu").method.size(1).activations_known, "the library's methods estimate theirs"


def test_the_dry_step_leaves_the_run_as_it_was(user_method, tmp_path):
    small = {
        "encoder": {"embed_dim": 32, "depth": 3, "num_heads": 2},
        "predictor": {"embed_dim": 32, "depth": 1, "num_heads": 2},
    }
    steps = {"steps": 2, "batch_size": 4, "warmup_steps": 0, "num_workers": 0, "loggers": ["jsonl"]}
    runs = [
        train(
            get_config(user_method, data={"size": 8}, train={**steps, "memory_check": check}, **small),
            tmp_path / check,
            progress=False,
        )["losses"]
        for check in ("off", "error")
    ]
    assert runs[0] == runs[1], "bitwise the same losses with and without the measurement"
