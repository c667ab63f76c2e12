"""LeJEPA recipes: one encoder, multi-crop views, a BatchNorm projector and SIGReg.

Reference: Balestriero & LeCun, "LeJEPA: Provable and Scalable Self-Supervised Learning Without
the Heuristics", 2025 (arXiv 2511.08544), its minimal example (``MINIMAL.md`` of the authors'
repository), and ``docs/methods.md``. 2 global views at 224 px (crop area 0.3-1) and 6 local
views at 96 px (0.05-0.3); every view's projection regresses the mean of the global views';
SIGReg with 1,024 directions redrawn each step and 17 trapezoid nodes on [0, 3]; lambda 0.05.
"""

from __future__ import annotations

from ..augment import multi_crop_augment
from ..config import apply_overrides
from ..departures import Departure
from ..encoders.vit import ViTConfig
from ..experiment import Experiment
from ..losses.embedding import SIGRegConfig
from ..methods.lejepa import LeJEPAConfig
from ..registry import register_recipe
from .ijepa import CPU_SIZE, CPU_TRAIN, cpu_preset, epoch_schedule, preset_departure

__all__ = ["LEJEPA_DEPARTURES", "LEJEPA_FACTS", "lejepa_config"]

#: The LeJEPA paper's values (Balestriero & LeCun, 2025), for ``check_recipe``.
LEJEPA_FACTS: dict[str, object] = {
    "global_views": 2,
    "local_views": 6,
    "image_size": 224,
    "local_size": 96,
    "global_scale": (0.3, 1.0),
    "local_scale": (0.05, 0.3),
    "lam": 0.05,
    "regulariser": "sigreg",
    "regulariser.num_slices": 1024,
    "regulariser.t_max": 3.0,
    "regulariser.points": 17,
}

#: Where the LeJEPA recipes depart from the paper, and why (``describe`` prints these).
LEJEPA_DEPARTURES = (
    Departure(
        "augment",
        "colour jitter, greying, blur and solarisation after the crops and flips",
        "DINO's settings of them: jitter 0.8 (0.4, 0.4, 0.2, 0.1), grey 0.2, blur 1.0 on the first global view, "
        "0.1 on the second and 0.5 on the local ones, solarise 0.2 on the second global view",
        "the text we hold names the transforms, not their settings; DINO's multi-crop pipeline is the one "
        "they come from",
        kind="mechanism",
    ),
    Departure(
        "encoder",
        "the paper's ViT-L row with its class token",
        "ViT-L/16 with average-pooled patch tokens, no class token",
        "/16 so that 96 px local views are whole patches",
        kind="mechanism",
    ),
    Departure(
        "train",
        "not stated in the text we hold (its minimal example: ViT-S/8, LR 2e-3 at batch 256, weight decay 0.05)",
        "AdamW at LR 5e-4 for batch 512, weight decay 0.05, 10 warm-up epochs then cosine, 100 epochs",
        "ours where the paper's text is silent",
        kind="mechanism",
    ),
)


def lejepa_config(size: str = "large", image_size: int = 224, local_size: int = 96) -> Experiment:
    """LeJEPA for a ViT ``size``: 2 global views at ``image_size`` and 6 local at ``local_size``, a
    2048-2048-128 projector, SIGReg at lambda 0.05."""
    method = LeJEPAConfig(
        image_size=image_size,
        augment=multi_crop_augment(2, 6),
        local_size=local_size,
        encoder=ViTConfig.preset(size, depth_rescale=False),
        regulariser=SIGRegConfig(weight=1.0, num_slices=1024, t_max=3.0, points=17),
        lam=0.05,
    )
    train = epoch_schedule(100, 10, batch_size=512, lr=5e-4, weight_decay=0.05)
    return Experiment(method=method, train=train)


@register_recipe(
    "lejepa",
    help="LeJEPA, ViT-L/16: 2 global (224 px) + 6 local (96 px) views, SIGReg, no teacher or predictor",
    departures=LEJEPA_DEPARTURES,
    facts=LEJEPA_FACTS,
)
def lejepa() -> Experiment:
    return lejepa_config()


@register_recipe(
    "lejepa-cpu",
    help="LeJEPA on the embedded scenes: 2 global views at 64 px, 6 local at 32 px, ViT 192/6: minutes on a CPU",
    departures=(
        *LEJEPA_DEPARTURES,
        preset_departure(
            "image_size, local_size, encoder, train, augment",
            cpu_preset() + "; local views at 32 px (half the global side, as 96 is of 224 roughly); the JEPA "
            "presets' LR; crops and flips only (the embedded scenes' colours are labels the probes read)",
        ),
    ),
    facts=LEJEPA_FACTS,
)
def lejepa_cpu() -> Experiment:
    fields = {"encoder": CPU_SIZE, "train": CPU_TRAIN, "augment": ()}
    return apply_overrides(lejepa_config(image_size=64, local_size=32), fields)
