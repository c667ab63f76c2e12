"""The registry's generated tests: any registered component or recipe, built tiny, run forward and backward.

Each component kind has a harness that builds a tiny instance from the component's config (the
shrinking fields in :data:`TINY_FIELDS`, where the config has them), runs it on seeded inputs of the
shapes its kind promises, checks the output's shape, back-propagates and checks that a gradient
reaches every trained parameter. :func:`check_component` runs the harness twice (the outputs must be
equal: a component is a function of its seeds) and round-trips the config through ``to_dict`` /
``from_dict``. The library's own suite runs this for every registered name (tests/test_components.py);
``jepakit check my_file.py`` runs it for the components and recipes a user's file registers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .api import get_config, list_components, list_recipes
from .config import Config, apply_overrides, from_dict, to_dict
from .registry import config_class

__all__ = [
    "HARNESS",
    "TINY",
    "Outcome",
    "check_component",
    "check_file",
    "check_recipe",
    "registered",
    "tiny",
    "tiny_config",
]

#: Overrides that shrink any recipe to a model a CPU test runs in milliseconds.
TINY: dict[str, dict[str, int]] = {
    "encoder": {"embed_dim": 32, "depth": 2, "num_heads": 2},
    "predictor": {"embed_dim": 16, "depth": 2, "num_heads": 2},
}
#: Field values that make any component of a kind tiny (applied where the component's config has the field).
TINY_FIELDS: dict[str, dict[str, Any]] = {
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


def tiny_config(recipe: Any = "ijepa", patch: int = 4, grid: int = 8, **overrides: Any) -> Any:
    """``recipe`` shrunk: a ``grid`` x ``grid`` patch grid of ``patch`` px, tiny widths, fp32 steps."""
    base = get_config(recipe)
    merged: dict[str, Any] = {
        "image_size": patch * grid,
        "encoder": {**TINY["encoder"], "patch_size": patch},
        # step counts at the trainer's defaults, not the paper-size recipes' epochs of batch 2048 in bf16
        "train": {
            "steps": 1000,
            "warmup_steps": 100,
            "epochs": None,
            "warmup_epochs": None,
            "batch_size": 64,
            "precision": "fp32",
        },
    }
    parts = base.method.parts()
    if "predictor" in parts:  # a transformer predictor (BYOL's is an MLP's widths, no component)
        merged["predictor"] = dict(TINY["predictor"])
    if "text_encoder" in parts:
        # a tiny text side trained here (the recipes' pretrained MiniLM is tested on its own)
        merged["text_encoder"] = {"type": "transformer", "embed_dim": 16, "depth": 1, "num_heads": 2}
        merged["tokenizer"] = {"type": "sentencepiece", "vocab_size": 300, "max_length": 8, "max_captions": 3}
    if getattr(base.method, "target_blocks", 1) > 1:  # targets averaging blocks: as many as the tiny depth has
        merged["target_blocks"] = TINY["encoder"]["depth"]
    if base.teacher_run is not None:  # a first stage (SALT's teacher) shrinks alike, so its encoder still fits
        shape = {k: overrides[k] for k in ("num_frames", "tubelet_size") if k in overrides}
        merged["teacher_run"] = tiny_config(base.teacher_run, patch, grid, **shape)
    for key, value in overrides.items():  # edits merge into the shrinking; a swap ("type") replaces it
        mergeable = isinstance(value, dict) and "type" not in value and isinstance(merged.get(key), dict)
        merged[key] = {**merged[key], **value} if mergeable else value
    return get_config(recipe, **merged)


def tiny_component_config(kind: str, name: str, fields: Mapping[str, Any] | None = None) -> Config:
    """``kind``/``name``'s config with the kind's tiny fields it has, then ``fields`` (values or
    command-line strings, coerced to each field's type)."""
    cfg = config_class(kind, name)()
    names = {f.name for f in dataclasses.fields(cfg)}
    cfg = cfg.replace(**{k: v for k, v in TINY_FIELDS.get(kind, {}).items() if k in names})
    return apply_overrides(cfg, dict(fields or {}), where=f"{kind} {name}")


def tiny(kind: str, name: str, fields: Mapping[str, Any] | None = None) -> Any:
    """Component ``kind``/``name`` built from :func:`tiny_component_config`, under a fixed seed."""
    cfg = tiny_component_config(kind, name, fields)
    torch.manual_seed(0)
    return cfg.build()


def masks(batch: int = 2) -> Any:
    """Multi-block masks on the 4 x 4 grid of :data:`IMAGES`."""
    from .api import create

    return create("masker", "multiblock", input_size=32, patch_size=8, min_keep=4)(
        batch, torch.Generator().manual_seed(1)
    )


def grads_everywhere(module: torch.nn.Module) -> None:
    """Every trainable parameter of ``module`` got a nonzero gradient."""
    missing = [
        n for n, p in module.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())
    ]
    assert not missing, f"no gradient reached {missing}"


def _images() -> torch.Tensor:
    """Seeded images [2, 3, 32, 32]."""
    return torch.randn(IMAGES, generator=torch.Generator().manual_seed(0))


def run_encoder(name: str, fields: Mapping[str, Any]) -> torch.Tensor:
    """Context tokens of a masked batch: [B, Kc, D]."""
    enc = tiny("encoder", name, fields)
    m = masks()
    out = enc(_images(), m.context, m.context_valid)
    assert out.shape == (*m.context.shape, enc.config.embed_dim), f"encoder output {tuple(out.shape)}"
    out.square().mean().backward()
    grads_everywhere(enc)
    return out


def run_predictor(name: str, fields: Mapping[str, Any]) -> torch.Tensor:
    """Predicted target tokens [B, M, Kt, D] from context tokens [B, Kc, D] of width 32."""
    pred = tiny("predictor", name, fields)
    m = masks()
    z = torch.randn(*m.context.shape, 32, generator=torch.Generator().manual_seed(0))
    out = pred(z, m.context, m.targets, m.grid, m.context_valid, m.targets_valid)
    assert out.shape == (*m.targets.shape, 32), f"predictor output {tuple(out.shape)}"
    out.square().mean().backward()
    grads_everywhere(pred)
    return out


def run_loss(name: str, fields: Mapping[str, Any]) -> torch.Tensor:
    """A scalar >= 0 whose gradient reaches the predictions, for the inputs the loss's family takes."""
    from .losses import ContrastiveLoss, EmbeddingLoss

    loss_fn = tiny("loss", name, fields)
    g = torch.Generator().manual_seed(0)
    if isinstance(loss_fn, ContrastiveLoss):  # L2-normalised image and text embeddings [B, E]
        pred = torch.randn(4, 32, generator=g, requires_grad=True)
        loss = loss_fn(F.normalize(pred, dim=-1), F.normalize(torch.randn(4, 32, generator=g), dim=-1))
    elif isinstance(loss_fn, EmbeddingLoss):  # a batch of per-image embeddings [B, D]: named terms
        pred = torch.randn(6, 32, generator=g, requires_grad=True)
        terms = loss_fn(0.1 * pred)  # std 0.1: the variance hinge is active
        assert terms and all(t.ndim == 0 for t in terms.values()), "an embedding loss returns named scalars"
        loss = torch.stack(list(terms.values())).sum()
    else:  # predicted and target tokens
        pred = torch.randn(2, 4, 6, 32, generator=g, requires_grad=True)
        loss = loss_fn(pred, torch.randn(2, 4, 6, 32, generator=g))
    assert loss.ndim == 0 and float(loss.detach()) >= 0, f"loss {loss.detach()} is not a scalar >= 0"
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0, "no gradient reached the predictions"
    return loss


def run_target_updater(name: str, fields: Mapping[str, Any]) -> torch.Tensor:
    """The target (frozen, if made) after one update from a moved online encoder; its output on images."""
    updater = tiny("target_updater", name, fields)
    online = tiny("encoder", "vit")
    target = updater.make_target(online)
    if target is not None:
        assert all(not p.requires_grad for p in target.parameters()), "the target has trainable parameters"
        with torch.no_grad():
            for p in online.parameters():
                p.add_(0.1)
    updater.update(online, target, step=10, total_steps=20)
    return (target or online)(_images())


def text_features(batch: int = 2, seed: int = 0) -> Any:
    """Random word embeddings of 3 captions x 6 tokens; image 1 has one caption of 2 words."""
    from .text import TextFeatures

    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, 3, 6, dtype=torch.bool)
    mask[1, 1:] = False
    mask[1, 0, 2:] = False
    return TextFeatures(torch.randn(batch, 3, 6, 12, generator=g), mask)


def run_conditioner(name: str, fields: Mapping[str, Any]) -> torch.Tensor:
    """A ViT predictor's output under the conditioner's hook; its auxiliary losses are scalars >= 0."""
    cond = tiny("conditioner", name, fields)
    pred = tiny("predictor", "vit-predictor")
    m = masks()
    z = torch.randn(*m.context.shape, 32, generator=torch.Generator().manual_seed(0))
    hook = cond.bind(text_features() if cond.uses_text else None)
    out = pred(z, m.context, m.targets, m.grid, m.context_valid, m.targets_valid, hook=hook)
    losses = cond.losses(hook)
    assert all(v.ndim == 0 and float(v.detach()) >= 0 for v in losses.values()), "an auxiliary loss is not >= 0"
    (out.square().mean() + sum(losses.values())).backward()
    grads_everywhere(cond)
    return out


def run_tokenizer(name: str, fields: Mapping[str, Any]) -> torch.Tensor:
    """Token ids [B, captions, length] of two images' captions."""
    tok = tiny("tokenizer", name, fields).fit(CAPTIONS * 4)
    batch = tok([CAPTIONS[:2], CAPTIONS])
    assert batch.ids.shape == batch.mask.shape == (2, 3, 6), f"token ids {tuple(batch.ids.shape)}"
    return batch.ids


def run_text_encoder(name: str, fields: Mapping[str, Any]) -> torch.Tensor:
    """Word embeddings [B, captions, length, width] of random token ids."""
    from .text import TokenBatch

    enc = tiny("text_encoder", name, fields)
    ids = torch.randint(0, 50, (2, 3, 6), generator=torch.Generator().manual_seed(0))
    feats = enc(TokenBatch(ids, text_features().mask))
    assert feats.tokens.shape == (2, 3, 6, enc.width), f"text features {tuple(feats.tokens.shape)}"
    if enc.trainable:
        feats.tokens.square().mean().backward()
        grads_everywhere(enc)
    return feats.tokens


def run_masker(name: str, fields: Mapping[str, Any]) -> torch.Tensor:
    """Context and target indices of two images (``repeats`` rows each), every kept one a cell of the grid,
    drawn again alike from an equal generator after the global RNG moved (masks are a function of it)."""
    masker = tiny("masker", name, fields)
    m = masker(2, torch.Generator().manual_seed(0))
    for what, index, valid in (("context", m.context, m.context_valid), ("targets", m.targets, m.targets_valid)):
        assert index.shape[0] == 2 * m.repeats, f"{what} has {index.shape[0]} rows for 2 images x {m.repeats}"
        kept = index if valid is None else index[valid]
        assert kept.numel(), f"no {what} patch is kept"
        assert 0 <= int(kept.min()) and int(kept.max()) < m.num_patches, f"{what} indices outside the {m.grid} grid"
    torch.rand(7)
    again = masker(2, torch.Generator().manual_seed(0))
    same = torch.equal(m.context, again.context) and torch.equal(m.targets, again.targets)
    assert same, "the masks depend on more than the generator they are given (the global RNG?)"
    return m.context


def run_transform(name: str, fields: Mapping[str, Any]) -> torch.Tensor:
    """Two views of an image in [0, 1] and a clip's frames, applied (p = 1): shapes kept, values in [0, 1],
    the clip's frames changed alike."""
    transform = tiny("transform", name, {"p": (1.0,), **fields})
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    views = [transform(image, torch.Generator().manual_seed(v), v) for v in range(2)]
    clip = transform(image[:, None].expand(3, 2, 16, 16), torch.Generator().manual_seed(0))
    for out in (*views, clip):
        assert out.shape[-2:] == image.shape[-2:] and out.dtype == image.dtype, f"output {tuple(out.shape)}"
        assert 0 <= float(out.min()) and float(out.max()) <= 1, "a pixel left [0, 1]"
    assert torch.equal(clip[:, 0], clip[:, 1]), "the frames of a clip were changed differently"
    return torch.stack(views)


def run_method(name: str, fields: Mapping[str, Any]) -> torch.Tensor:
    """The method contract end to end on scenes, for the method's default config shrunk (then ``fields``)."""
    cfg = config_class("method", name)()
    shrink = {
        "image_size": 32,
        "encoder": dict(embed_dim=32, depth=2, num_heads=2, patch_size=8),
        "predictor": dict(embed_dim=16, depth=2, num_heads=2),
        "text_encoder": dict(embed_dim=16, depth=1, num_heads=2),
    }
    # the experiment's own fields by name: a shrink names fields some methods lack
    cfg = apply_overrides(cfg, {k: v for k, v in shrink.items() if isinstance(getattr(cfg, k, None), (Config, int))})
    return run_contract(apply_overrides(cfg, dict(fields), where=f"method {name}"))


def run_contract(cfg: Config) -> torch.Tensor:
    """prepare, make_batch, forward, backward, after_step, embeddings and eval_encoder of method ``cfg``."""
    from .api import create
    from .methods import Draw, Method

    torch.manual_seed(0)
    method = cfg.build()
    assert isinstance(method, Method), f"{type(method).__name__} is not a jepakit.methods.Method"
    data = create("dataset", "scenes", image_size=cfg.image_size, size=8)  # type: ignore[attr-defined]
    method.prepare(data)
    draw = Draw(seed=0, epoch=0, step=0, micro=0, indices=torch.arange(4), rows=torch.arange(4), size=4)
    batch = method.make_batch([data[i] for i in range(4)], draw)
    out = method(**batch, step=0)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"]), f"loss {out['loss']}"
    out["loss"].backward()
    groups = method.param_groups()
    assert len({g.name for g in groups}) == len(groups), "two parameter groups share a name"
    trained = {id(p) for g in groups for p in g.params}
    assert all(p.grad is None for p in method.parameters() if id(p) not in trained), "an untrained part got gradients"
    assert all(isinstance(v, float) for v in method.after_step(0, 10).values()), "after_step returns plain floats"
    with torch.no_grad():
        z = method.embeddings(batch)
    assert z.shape[0] == 4 and z.ndim == 2, f"embeddings {tuple(z.shape)} for 4 images"
    encoder_cfg, prefixes = cfg.eval_encoder()  # type: ignore[attr-defined]
    state = method.state_dict()
    assert any(k.startswith(p + ".") for p in prefixes for k in state), "eval_encoder's prefixes name no weights"
    assert type(method.eval_encoder().config) is type(encoder_cfg), "eval_encoder's config and module differ"
    return out["loss"].detach()


def run_dataset(name: str, fields: Mapping[str, Any]) -> torch.Tensor:
    """The first sample's image [C, H, W] or clip [C, T, H, W]."""
    from .data.base import StreamingData

    data = tiny("dataset", name, fields)
    sample = data.decode(next(data.epoch(0)), 0) if isinstance(data, StreamingData) else data[0]
    assert sample is not None, f"dataset {name}'s first sample could not be read"
    if "video" in sample:
        assert sample["video"].ndim == 4, f"clip {tuple(sample['video'].shape)}"
        return sample["video"]
    assert sample["image"].ndim == 3, f"image {tuple(sample['image'].shape)}"
    return sample["image"]


def run_trainer(name: str, fields: Mapping[str, Any], **train: Any) -> torch.Tensor:
    """The losses of a 2-step tiny I-JEPA run on 8 scenes under trainer ``name``."""
    import tempfile

    from .train import train as run

    cfg = tiny_config(
        "ijepa",
        masker={"min_keep": 4},
        data={"size": 8},
        train={"type": name, "steps": 2, "batch_size": 4, "warmup_steps": 1, "log_every": 1}
        | {"epochs": None, "warmup_epochs": None, "precision": "fp32", **train, **fields},
    )
    with tempfile.TemporaryDirectory() as out:
        return torch.tensor(run(cfg, out, progress=False)["losses"])


def run_logger(name: str, fields: Mapping[str, Any]) -> torch.Tensor:
    """A short run logging to ``name`` only (its files in the run folder), with ``fields``."""
    return run_trainer("default", {}, loggers=({"type": f"logger/{name}", **fields},))


#: The harness of each kind: (name, extra fields) -> a tensor that must be equal on a second run.
HARNESS: dict[str, Callable[[str, Mapping[str, Any]], torch.Tensor]] = {
    "encoder": run_encoder,
    "predictor": run_predictor,
    "loss": run_loss,
    "target_updater": run_target_updater,
    "conditioner": run_conditioner,
    "masker": run_masker,
    "transform": run_transform,
    "tokenizer": run_tokenizer,
    "text_encoder": run_text_encoder,
    "dataset": run_dataset,
    "trainer": run_trainer,
    "logger": run_logger,
    "method": run_method,
}


def check_component(kind: str, name: str, fields: Mapping[str, Any] | None = None) -> torch.Tensor:
    """Run ``kind``/``name``'s harness twice (equal outputs: determinism for a fixed seed) and round-trip
    its config; raises AssertionError (or the component's own error) on the first failure."""
    cfg = tiny_component_config(kind, name, fields)
    assert from_dict(to_dict(cfg)) == cfg, f"{kind} {name}'s config does not round-trip through to_dict"
    a = HARNESS[kind](name, fields or {})
    b = HARNESS[kind](name, fields or {})
    assert torch.equal(a, b), f"{kind} {name} is not deterministic for a fixed seed"
    return a


def check_recipe(recipe: str) -> torch.Tensor:
    """Recipe ``recipe`` shrunk (:func:`tiny_config`, its patch size kept): a JEPA model's forward on random
    images (every view, clips for a video method, captions for a text one) reaches every encoder and
    predictor weight, any other method passes the method contract on scenes; the loss, equal twice."""
    from .text import TokenBatch

    patch = get_config(recipe).encoder.patch_size
    cfg = tiny_config(recipe, patch=patch, grid=4)
    if cfg.method.name != "jepa":
        a, b = run_contract(cfg.method), run_contract(cfg.method)
        assert torch.equal(a, b), f"recipe {recipe} is not deterministic for a fixed seed"
        return a
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
    assert torch.equal(outs[0], outs[1]), f"recipe {recipe} is not deterministic for a fixed seed"
    return outs[0]


@dataclass(frozen=True)
class Outcome:
    """One generated test of a user's file: what was checked, whether it passed, why not, and how long."""

    what: str
    passed: bool
    error: str
    seconds: float


def registered() -> set[tuple[str, str]]:
    """Every registered (kind, name), recipes as ("recipe", name): what a file adds is the difference."""
    return {(k, n) for k, names in list_components().items() for n in names} | {("recipe", r) for r in list_recipes()}


def check_file(
    name: str, fields: Mapping[str, Mapping[str, Any]] | None = None, log: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    """Import ``name`` (a ``.py`` file or a module), then run the generated tests on each component and
    recipe it registers: ``fields[kind]`` are extra fields for that kind's components (a data set's
    root, say). Returns the outcomes in registration order; ``log`` sees each as it ends."""
    from .config import ConfigError
    from .imports import import_user_code

    if name.endswith(".py") and not Path(name).is_file():
        raise ConfigError(f"jepakit check {name}: no such file")
    before = registered()
    try:
        import_user_code(name)
    except ModuleNotFoundError as e:
        raise ConfigError(
            f"jepakit check {name}: no such file or module ({e}); give a .py file or a module name"
        ) from None
    new = _order(registered() - before)
    if not new:
        raise ConfigError(
            f"{name} registers no component or recipe here (registered already, or no @register / register_recipe)"
        )
    outcomes = []
    for kind, item in new:
        start = time.perf_counter()
        try:
            if kind == "recipe":
                check_recipe(item)
            else:
                check_component(kind, item, (fields or {}).get(kind))
            passed, error = True, ""
        except Exception as e:  # the user's component failed a check: reported, not raised
            passed, error = False, f"{type(e).__name__}: {' '.join(str(e).split())}"
        outcomes.append(Outcome(f"{kind} {item}", passed, error, time.perf_counter() - start))
        if log is not None:
            log(outcomes[-1])
    return outcomes


def _order(keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Components kind by kind (parts before methods), then recipes; names sorted."""
    from .registry import KINDS

    rank = {k: i for i, k in enumerate((*KINDS, "recipe"))}
    return sorted(keys, key=lambda key: (rank[key[0]], key[1]))
