"""BYOL recipes: two augmented views, an online network predicting an EMA target network's projection.

Reference: Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
NeurIPS 2020, and ``docs/methods.md``. Crops of area 0.08-1 with flips, colour jitter (p 0.8),
grayscale (p 0.2), blur (p 1.0 / 0.1 per view) and solarisation (p 0 / 0.2); a 4096-256 projector
and predictor with BatchNorm; the target (encoder and projector) an EMA from 0.996 to 1 on a
cosine; the symmetrised 2 - 2 cos loss.
"""

from __future__ import annotations

from ..config import apply_overrides
from ..departures import Departure
from ..encoders.vit import ViTConfig
from ..experiment import Experiment
from ..methods.byol import BYOLConfig
from ..registry import register_recipe
from ..targets.ema import EMAConfig
from .ijepa import CPU_SIZE, CPU_TRAIN, cpu_preset, epoch_schedule, preset_departure

__all__ = ["BYOL_DEPARTURES", "BYOL_FACTS", "byol_config"]

#: The BYOL paper's values (Grill et al., 2020, section 3.3 and appendix B), for ``check_recipe``.
BYOL_FACTS: dict[str, object] = {
    "crop_scale": (0.08, 1.0),
    "flip": True,
    "projector": (4096, 256),
    "predictor": (4096, 256),
    "target_updater": "ema",
    "target_updater.momentum_start": 0.996,
    "target_updater.momentum_end": 1.0,
    "target_updater.schedule": "cosine",
}

#: Where the BYOL recipes depart from the paper, and why (``describe`` prints these).
BYOL_DEPARTURES = (
    Departure(
        "encoder",
        "ResNet-50 (its 2048-d pooled output)",
        "ViT-B/16, its patch tokens average-pooled",
        "jepakit's encoders are ViTs, so that BYOL sits beside the JEPA methods on the same encoder and probes",
        kind="mechanism",
    ),
    Departure(
        "train",
        "LARS, LR 0.2 x batch / 256, weight decay 1.5e-6, batch 4096, 10 warm-up epochs then cosine, 1000 epochs",
        "AdamW at LR 1e-3 for batch 1024, weight decay 0.05, 10 warm-up epochs then cosine, 300 epochs",
        "jepakit's trainer is AdamW, the optimiser ViTs train with; LARS's settings are a ResNet's",
        kind="mechanism",
    ),
)


def byol_config(size: str = "base", image_size: int = 224) -> Experiment:
    """BYOL on a ViT ``size`` at ``image_size`` px: BYOL's views, heads and target schedule."""
    method = BYOLConfig(
        image_size=image_size,
        encoder=ViTConfig.preset(size, depth_rescale=False),
        target_updater=EMAConfig(momentum_start=0.996, momentum_end=1.0, schedule="cosine"),
    )
    train = epoch_schedule(300, 10, batch_size=1024, lr=1e-3, weight_decay=0.05)
    return Experiment(method=method, train=train)


@register_recipe(
    "byol",
    help="BYOL, ViT-B/16: two views with BYOL's photometric augmentations, EMA target of encoder and projector",
    departures=BYOL_DEPARTURES,
    facts=BYOL_FACTS,
)
def byol() -> Experiment:
    return byol_config()


@register_recipe(
    "byol-cpu",
    help="BYOL on the embedded scenes at 64 px, ViT 192/6, 1024-128 heads: minutes on a CPU",
    departures=(
        *BYOL_DEPARTURES,
        preset_departure(
            "image_size, encoder, projector, predictor, target_updater.momentum_start, train",
            cpu_preset() + "; heads 1024-128; the target's EMA from 0.99 (a 300-step run), as the JEPA presets'",
        ),
    ),
    facts={k: v for k, v in BYOL_FACTS.items() if k not in ("projector", "predictor", "target_updater.momentum_start")},
)
def byol_cpu() -> Experiment:
    fields = {
        "image_size": 64,
        "encoder": CPU_SIZE,
        "projector": (1024, 128),
        "predictor": (1024, 128),
        "target_updater": {"momentum_start": 0.99},
        "train": CPU_TRAIN,
    }
    return apply_overrides(byol_config(), fields)
