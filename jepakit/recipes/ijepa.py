"""I-JEPA recipes: the paper's setups by encoder size.

Reference: Assran et al., I-JEPA, CVPR 2023, and ``docs/methods.md``. Predictor
width 384 and depth 6 (ViT-B), 12 (L, H) or 16 (G), heads equal to the encoder's;
multi-block masking (4 targets at scale (0.15, 0.2), aspect (0.75, 1.5), one context
block at (0.85, 1.0)); EMA momentum 0.996 -> 1.0; smooth-L1 on layer-normed targets.
"""

from __future__ import annotations

from ..config import apply_overrides
from ..encoders.vit import ViTConfig
from ..experiment import Experiment
from ..losses.regression import SmoothL1Config
from ..masks.multiblock import MultiBlockConfig
from ..methods.jepa import JEPAConfig
from ..predictors.vit_predictor import ViTPredictorConfig
from ..registry import register_recipe
from ..targets.ema import EMAConfig

__all__ = ["cpu_config", "ijepa_config"]

#: Predictor depth by encoder size (I-JEPA); tiny and small are ours (the ViT-B value).
PREDICTOR_DEPTH = {"tiny": 6, "small": 6, "base": 6, "large": 12, "huge": 12, "giant": 16}
#: Predictor width by encoder size: 384 in the paper; ours for tiny (its encoder width).
PREDICTOR_WIDTH = {"tiny": 192}


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
    return Experiment(method=method)


@register_recipe("ijepa", help="I-JEPA, ViT-B/16 at 224 px: the paper's main setup")
def ijepa() -> Experiment:
    return ijepa_config("base")


@register_recipe("ijepa-tiny", help="I-JEPA with ViT-Ti/16 (predictor 6 x 192): CPU runs and benchmarks")
def ijepa_tiny() -> Experiment:
    return ijepa_config("tiny")


@register_recipe("ijepa-small", help="I-JEPA with ViT-S/16 (predictor 6 x 384)")
def ijepa_small() -> Experiment:
    return ijepa_config("small")


@register_recipe("ijepa-large", help="I-JEPA with ViT-L/16 (predictor 12 x 384)")
def ijepa_large() -> Experiment:
    return ijepa_config("large")


@register_recipe("ijepa-huge", help="I-JEPA with ViT-H/14 at 224 px (predictor 12 x 384)")
def ijepa_huge() -> Experiment:
    return ijepa_config("huge")


@register_recipe("ijepa-huge-448", help="I-JEPA with ViT-H/16 at 448 px (predictor 12 x 384)")
def ijepa_huge_448() -> Experiment:
    return ijepa_config("huge", image_size=448, patch_size=16)


@register_recipe("ijepa-giant", help="I-JEPA with ViT-G/16 (predictor 16 x 384)")
def ijepa_giant() -> Experiment:
    return ijepa_config("giant")


#: A small ViT at 64 px on the embedded scenes: the laptop CPU preset (ours).
CPU_SIZE = dict(embed_dim=192, depth=6, num_heads=3, patch_size=8)
CPU_TRAIN = dict(
    steps=300,
    batch_size=32,
    lr=1e-3,
    start_lr=2e-4,
    warmup_steps=30,
    log_every=20,
    monitor_every=50,
    checkpoint_every=100,
)


def cpu_config(cfg: Experiment) -> Experiment:
    """``cfg`` shrunk to the CPU preset: 64 px, ViT 192/6 with 8 px patches, predictor 192/3, 300 steps."""
    return apply_overrides(
        cfg,
        {
            "image_size": 64,
            "encoder": CPU_SIZE,
            "predictor": {"embed_dim": 192, "depth": 3, "num_heads": 3},
            "train": CPU_TRAIN,
        },
    )


@register_recipe("ijepa-cpu", help="I-JEPA on the embedded scenes at 64 px, ViT 192/6: minutes on a laptop CPU")
def ijepa_cpu() -> Experiment:
    return cpu_config(ijepa_config("tiny"))
