"""The plain-loop example (examples/ijepa_loop.py) trains, and its hand-written step computes the engine's
loss: the same weights, images and masks give the loss the registered I-JEPA method gives."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from jepakit import get_config

SIZES = {"image_size": 32, "patch": 8, "width": 32, "depth": 2}


def example():
    path = Path(__file__).parents[1] / "examples" / "ijepa_loop.py"
    spec = importlib.util.spec_from_file_location("ijepa_loop", path)
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
