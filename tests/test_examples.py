"""The plain-loop examples: examples/ijepa_loop.py trains, and its hand-written step computes the engine's
loss (the same weights, images and masks give the loss the registered I-JEPA method gives);
examples/mixed_loop.py mixes parts into a method of its own, and its SIGReg keeps the features spread
where the same loop without it lets them shrink."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from jepakit import get_config

SIZES = {"image_size": 32, "patch": 8, "width": 32, "depth": 2}


EXAMPLES = Path(__file__).parents[1] / "examples"


def example(name: str = "ijepa_loop"):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plain_loop_trains_and_its_step_is_the_engines():
    loop = example()
    losses, parts = loop.train(steps=4, batch=4, log_every=0, **SIZES)
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    cfg = get_config(
        "ijepa-cpu",
        image_size=32,
        encoder={"embed_dim": 32, "depth": 2, "num_heads": 1},
        predictor={"embed_dim": 32, "depth": 1, "num_heads": 1},
        masker={"min_keep": 4},
    )
    method = cfg.build()
    for name in ("encoder", "target_encoder", "predictor"):
        getattr(method, name).load_state_dict(parts[name].state_dict())
    g = torch.Generator().manual_seed(5)
    images = torch.rand(4, 3, 32, 32, generator=g)
    masks = parts["masker"](4, g)
    with torch.no_grad():
        theirs = method(images, masks)["predict"]
        ours = loop.ijepa_loss(parts, images, masks)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_the_mixed_loop_is_ijepa_without_a_teacher_held_up_by_sigreg(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # it imports the shared pieces from ijepa_loop beside it
    mixed = example("mixed_loop")
    sizes = {"image_size": 32, "patch": 8, "width": 64, "depth": 2}
    held, parts = mixed.train(steps=40, batch=16, weight=0.05, **sizes)
    free, _ = mixed.train(steps=40, batch=16, weight=0.0, **sizes)
    assert "target_encoder" not in parts and parts["sigreg"].config.weight == 0.05
    last = held[-1]
    assert last["loss"] == pytest.approx(0.95 * last["predict"] + last["sigreg"], rel=1e-5)
    assert free[-1]["sigreg"] == 0.0 and free[-1]["predict"] < held[-1]["predict"]  # the easy way out ...
    assert held[-1]["spread"] > 2 * free[-1]["spread"]  # ... which SIGReg closes
