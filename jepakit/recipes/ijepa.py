"""I-JEPA recipes: the paper's setups by encoder size.

Reference: Assran et al., I-JEPA, CVPR 2023, and ``docs/methods.md``. Predictor
width 384 and depth 6 (ViT-B), 12 (L, H) or 16 (G), heads equal to the encoder's;
multi-block masking (4 targets at scale (0.15, 0.2), aspect (0.75, 1.5), one context
block at (0.85, 1.0)); EMA momentum 0.996 -> 1.0; smooth-L1 on layer-normed targets.
"""

from __future__ import annotations

import functools

from ..config import apply_overrides
from ..departures import Departure
from ..encoders.vit import ViTConfig
from ..experiment import Experiment
from ..losses.regression import SmoothL1Config
from ..masks.multiblock import MultiBlockConfig
from ..methods.jepa import JEPAConfig
from ..predictors.vit_predictor import ViTPredictorConfig
from ..registry import register_recipe
from ..targets.ema import EMAConfig
from ..train.trainer import TrainConfig

__all__ = [
    "CONTEXT_DEPARTURES",
    "CPU_DEPARTURES",
    "IJEPA_FACTS",
    "SHAPE_DRAW_DEPARTURE",
    "cpu_config",
    "cpu_preset",
    "ijepa_config",
    "ijepa_facts",
    "paper_schedule",
    "preset_departure",
]

#: Predictor depth by encoder size (I-JEPA); tiny and small are ours (the ViT-B value).
PREDICTOR_DEPTH = {"tiny": 6, "small": 6, "base": 6, "large": 12, "huge": 12, "giant": 16}
#: Predictor width by encoder size: 384 in the paper; ours for tiny (its encoder width).
PREDICTOR_WIDTH = {"tiny": 192}
#: Epochs by encoder size: 600 for B and L, 300 for H (the paper); tiny, small: the B value, giant: the H
#: value (ours).
EPOCHS = {"tiny": 600, "small": 600, "base": 600, "large": 600, "huge": 300, "giant": 300}


#: Where every I-JEPA-masked recipe departs from the official training, and why (``describe`` prints these).
CONTEXT_DEPARTURES = (
    Departure(
        "masker.context",
        "reference",
        "pad",
        "every sampled context patch is kept (about 93 at 224/16); the official collator truncates a batch's "
        "contexts to the shortest in raster order, keeping the top rows (about 49, biased). "
        "masker=multiblock-paper-context gives the official length without the bias",
        "benchmarks/RESULTS.md, quality rows (a): the paper's context against the padded one, 3 seeds",
    ),
    Departure(
        "masker.block_cap",
        "grid-1",
        "grid",
        "a block may span the whole grid, so every cell can be masked; the official collator caps a side at "
        "grid-1, so the last row and column are never context at 224/16 (multiblock-paper-context keeps the cap)",
    ),
)

#: What the I-JEPA paper and its released code state, by config path (docs/methods.md, docs/recipes.md).
IJEPA_FACTS: dict[str, object] = {
    "masker": "multiblock",
    "masker.num_targets": 4,
    "masker.target_scale": (0.15, 0.2),
    "masker.target_aspect": (0.75, 1.5),
    "masker.num_context": 1,
    "masker.context_scale": (0.85, 1.0),
    "masker.context_aspect": (1.0, 1.0),
    "masker.allow_overlap": False,
    "masker.min_keep": 10,
    "masker.shape_draw": "coupled",
    "masker.context": "reference",
    "masker.block_cap": "grid-1",
    "crop_scale": (0.3, 1.0),
    "encoder.depth_rescale": False,  # the official training re-ran trunc-normal on every Linear after it
    "predictor.embed_dim": 384,
    "predictor.depth_rescale": False,
    "target_updater": "ema",
    "target_updater.momentum_start": 0.996,
    "target_updater.momentum_end": 1.0,
    "loss": "smooth-l1",
    "loss.normalize_targets": True,
    "embedding_loss": None,  # no regulariser of the embeddings (C-JEPA adds one)
    "train.batch_size": 2048,
    "train.lr": 1e-3,
    "train.start_lr": 2e-4,
    "train.final_lr": 1e-6,
    "train.warmup_epochs": 40,
    "train.weight_decay": 0.04,
    "train.final_weight_decay": 0.4,
    "train.precision": "bf16",
}
#: The sizes the paper trains: encoder (width, depth, heads, patch), predictor depth, epochs (None: not stated).
PAPER_SIZES: dict[str, tuple[tuple[int, int, int, int], int, int | None]] = {
    "base": ((768, 12, 12, 16), 6, 600),
    "large": ((1024, 24, 16, 16), 12, 600),
    "huge": ((1280, 32, 16, 14), 12, 300),
    "giant": ((1408, 40, 16, 16), 16, None),
}


def ijepa_facts(size: str, image_size: int = 224, patch_size: int | None = None) -> dict[str, object]:
    """The I-JEPA paper's facts for a recipe at ``size`` (the encoder's only for the sizes the paper trains)."""
    facts: dict[str, object] = {**IJEPA_FACTS, "image_size": image_size}
    if size in PAPER_SIZES:
        (width, depth, heads, patch), predictor_depth, epochs = PAPER_SIZES[size]
        facts |= {"encoder.embed_dim": width, "encoder.depth": depth, "encoder.num_heads": heads}
        facts |= {"encoder.patch_size": patch_size or patch, "predictor.depth": predictor_depth}
        facts["predictor.num_heads"] = heads
        if epochs is not None:
            facts["train.epochs"] = epochs
    return facts


#: ViT-Ti's predictor (ours): the encoder's width, not the paper's 384.
TINY_DEPARTURES = (
    Departure(
        "predictor.embed_dim",
        384,
        192,
        "ViT-Ti/16 is ours (CPU benchmarks); its predictor is as wide as the encoder, as the paper's is no wider",
    ),
)


#: Where the CPU presets depart from the papers' training, and why.
def cpu_preset(steps: int = 300) -> str:
    """What the CPU presets' size and training are (a departure: ours)."""
    return (
        f"a laptop preset (ours): 64 px, ViT 192/6 with 8 px patches, predictor 192/3, {steps} steps of 32 on "
        "the embedded scenes"
    )


def preset_departure(fields: str, ours: str, paper: str = "the paper's model, data and schedule") -> Departure:
    """A CPU preset's sizes and schedule (a mechanism departure over ``fields``)."""
    return Departure(
        fields, paper, ours, "minutes on a laptop CPU, on data that installs with jepakit", kind="mechanism"
    )


SHAPE_DRAW_DEPARTURE = Departure(
    "masker.shape_draw",
    "coupled",
    "independent",
    "a block's scale and aspect ratio drawn apart; every CPU quality row was measured with it, and the coupled "
    "draw is no better (ijepa-coupled-draw, 3 seeds: within noise of ijepa-ema996 on count, relation and dense, "
    "0.011 below on shapes; benchmarks/RESULTS.md, Quality)",
)
CPU_DEPARTURES = (
    preset_departure("image_size, encoder, predictor, train", cpu_preset()),
    Departure(
        "target_updater.momentum_start",
        0.996,
        0.99,
        "in a 300-step run a teacher with a 250-step time constant barely moves",
        "benchmarks/RESULTS.md, quality gate: count 0.59 -> 0.65",
    ),
    SHAPE_DRAW_DEPARTURE,
)


def paper_schedule(size: str) -> TrainConfig:
    """The paper's training in epochs of whatever data the run is given: batch 2048; LR 2e-4 -> 1e-3
    over 40 epochs, then cosine to 1e-6; weight decay 0.04 -> 0.4; bf16 autocast."""
    return TrainConfig(
        steps=None,
        epochs=EPOCHS[size],
        warmup_steps=None,
        warmup_epochs=40,
        batch_size=2048,
        lr=1e-3,
        start_lr=2e-4,
        final_lr=1e-6,
        weight_decay=0.04,
        final_weight_decay=0.4,
        precision="bf16",
    )


def epoch_schedule(
    epochs: int, warmup_epochs: int, batch_size: int, lr: float, weight_decay: float, **extra: object
) -> TrainConfig:
    """A paper's training in epochs: the LR warmed up from 0 over ``warmup_epochs``, then a cosine to
    1e-6 (``final_lr`` in ``extra`` otherwise); a constant weight decay; bf16 autocast; ``extra``: any
    other trainer field (betas, clip_grad)."""
    fields: dict[str, object] = {"final_lr": 1e-6, **extra}
    return TrainConfig(
        steps=None,
        epochs=epochs,
        warmup_steps=None,
        warmup_epochs=warmup_epochs,
        batch_size=batch_size,
        lr=lr,
        start_lr=0.0,
        weight_decay=weight_decay,
        final_weight_decay=weight_decay,
        precision="bf16",
        **fields,  # type: ignore[arg-type]
    )


def ijepa_config(size: str = "base", image_size: int = 224, **encoder_fields: object) -> Experiment:
    """The I-JEPA experiment for a ViT ``size`` at ``image_size`` pixels (the embedded scenes as data)."""
    encoder = ViTConfig.preset(size, **{"depth_rescale": False, **encoder_fields})
    method = JEPAConfig(
        image_size=image_size,
        masker=MultiBlockConfig(),
        encoder=encoder,
        predictor=ViTPredictorConfig(
            embed_dim=PREDICTOR_WIDTH.get(size, 384),
            depth=PREDICTOR_DEPTH[size],
            num_heads=encoder.num_heads,
            depth_rescale=False,  # as the official training ran: its init re-ran trunc-normal on every Linear
        ),
        target_updater=EMAConfig(momentum_start=0.996, momentum_end=1.0),
        loss=SmoothL1Config(normalize_targets=True),
    )
    return Experiment(method=method, train=paper_schedule(size))


#: The I-JEPA sizes: name -> (ViT size, help, image size, patch size override, departures).
SIZES: dict[str, tuple[str, str, int, int | None, tuple[Departure, ...]]] = {
    "ijepa": ("base", "I-JEPA, ViT-B/16 at 224 px: the paper's main setup", 224, None, ()),
    "ijepa-tiny": (
        "tiny",
        "I-JEPA with ViT-Ti/16 (predictor 6 x 192): CPU runs and benchmarks",
        224,
        None,
        TINY_DEPARTURES,
    ),
    "ijepa-small": ("small", "I-JEPA with ViT-S/16 (predictor 6 x 384)", 224, None, ()),
    "ijepa-large": ("large", "I-JEPA with ViT-L/16 (predictor 12 x 384)", 224, None, ()),
    "ijepa-huge": ("huge", "I-JEPA with ViT-H/14 at 224 px (predictor 12 x 384)", 224, None, ()),
    "ijepa-huge-448": ("huge", "I-JEPA with ViT-H/16 at 448 px (predictor 12 x 384)", 448, 16, ()),
    "ijepa-giant": ("giant", "I-JEPA with ViT-G/16 (predictor 16 x 384)", 224, None, ()),
}
for _name, (_size, _help, _image, _patch, _own) in SIZES.items():
    _extra = {"patch_size": _patch} if _patch else {}
    register_recipe(_name, help=_help, departures=CONTEXT_DEPARTURES + _own, facts=ijepa_facts(_size, _image, _patch))(
        functools.partial(ijepa_config, _size, _image, **_extra)
    )


#: A small ViT at 64 px on the embedded scenes: the laptop CPU preset (ours).
CPU_SIZE = dict(embed_dim=192, depth=6, num_heads=3, patch_size=8)
CPU_TRAIN = dict(
    steps=300,
    epochs=None,
    warmup_epochs=None,
    batch_size=32,
    precision="fp32",
    lr=1e-3,
    start_lr=2e-4,
    warmup_steps=30,
    log_every=20,
    monitor_every=50,
    checkpoint_every=100,
)


def cpu_config(cfg: Experiment) -> Experiment:
    """``cfg`` shrunk to the CPU preset: 64 px, ViT 192/6 with 8 px patches, predictor 192/3, 300 steps.

    The EMA teacher starts at momentum 0.99 (time constant 100 steps) instead of 0.996 (250 steps,
    most of a 300-step run): a teacher that barely moves teaches little in a short run (quality gate
    in benchmarks/RESULTS.md: count 0.59 -> 0.65; 0.999 gives 0.51); a target updater without a
    momentum (pixel targets, a frozen teacher) is left as it is."""
    fields: dict[str, object] = {
        "image_size": 64,
        "encoder": CPU_SIZE,
        "predictor": {"embed_dim": 192, "depth": 3, "num_heads": 3},
        "train": CPU_TRAIN,
    }
    parts = cfg.method.parts()
    if isinstance(parts.get("target_updater"), EMAConfig):
        fields["target_updater"] = {"momentum_start": 0.99}
    if isinstance(parts.get("masker"), MultiBlockConfig):  # what the CPU rows were measured with
        fields["masker"] = {"shape_draw": "independent"}
    return apply_overrides(cfg, fields)


@register_recipe(
    "ijepa-cpu",
    help="I-JEPA on the embedded scenes at 64 px, ViT 192/6: minutes on a laptop CPU",
    departures=CONTEXT_DEPARTURES + CPU_DEPARTURES,
    facts=ijepa_facts("tiny"),
)
def ijepa_cpu() -> Experiment:
    return cpu_config(ijepa_config("tiny"))
