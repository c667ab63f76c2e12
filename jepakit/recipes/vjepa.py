"""V-JEPA recipes: the JEPA parts on clips (tubelet embedding, 3-D positions, multi-block 3-D masks).

Reference: Bardes et al., "Revisiting Feature Prediction for Learning Visual Representations from
Video" (V-JEPA), 2024, and ``docs/methods.md``. The ``jepa`` method with ``num_frames`` set: the
encoder cuts clips into 2 x 16 x 16 tubelets, ``masker=multiblock3d`` draws a short-range (8
blocks at spatial scale 0.15) and a long-range (2 blocks at 0.7) mask per clip, aspect (0.75, 1.5),
the whole clip in time; the predictor regresses the EMA teacher's layer-normed tokens with L1.
"""

from __future__ import annotations

from ..config import apply_overrides
from ..data.moving import MovingScenesConfig
from ..encoders.vit import ViTConfig
from ..experiment import Experiment
from ..losses.regression import L1Config
from ..masks.multiblock3d import MultiBlock3DConfig
from ..methods.jepa import JEPAConfig
from ..predictors.vit_predictor import ViTPredictorConfig
from ..registry import register_recipe
from ..targets.ema import EMAConfig
from ..train.trainer import TrainConfig
from .ijepa import CPU_TRAIN, cpu_preset

__all__ = ["VJEPA_DEPARTURES", "vjepa_config"]

#: Where the V-JEPA recipes depart from the paper, and why.
VJEPA_DEPARTURES = {
    "data": "the embedded moving scenes by default (a video folder needs data=...; the paper trains on "
    "VideoMix2M), clips of consecutive frames (the paper samples with frame stride 4)",
    "crop_scale": "I-JEPA's RandomResizedCrop (0.3-1), one crop for every frame of a clip (V-JEPA: 0.3-1, "
    "aspect 0.75-1.35)",
}


def vjepa_config() -> Experiment:
    """V-JEPA ViT-L/16: 16 frames at 224 px in 2 x 16 x 16 tubelets, predictor 12 x 384, multi-block 3-D
    masks, L1 on layer-normed targets, EMA 0.998 -> 1.0; AdamW, LR warmed up to 6.25e-4, weight decay
    0.04 -> 0.4, batch 3072, 90,000 steps, bf16."""
    encoder = ViTConfig.preset("large", depth_rescale=False)
    method = JEPAConfig(
        image_size=224,
        num_frames=16,
        tubelet_size=2,
        masker=MultiBlock3DConfig(),
        encoder=encoder,
        predictor=ViTPredictorConfig(embed_dim=384, depth=12, num_heads=12, depth_rescale=False),
        target_updater=EMAConfig(momentum_start=0.998, momentum_end=1.0),
        loss=L1Config(normalize_targets=True),
    )
    train = TrainConfig(
        steps=90_000,
        epochs=None,
        warmup_steps=12_000,
        warmup_epochs=None,
        batch_size=3072,
        lr=6.25e-4,
        start_lr=2e-4,
        final_lr=1e-6,
        weight_decay=0.04,
        final_weight_decay=0.4,
        precision="bf16",
    )
    return Experiment(method=method, data=MovingScenesConfig(), train=train)


@register_recipe(
    "vjepa",
    help="V-JEPA, ViT-L/16 on 16-frame clips at 224 px: tubelets, multi-block 3-D masks, L1, EMA",
    departures=VJEPA_DEPARTURES,
)
def vjepa() -> Experiment:
    return vjepa_config()


@register_recipe(
    "vjepa-cpu",
    help="V-JEPA on the embedded moving scenes: 8 frames at 32 px, ViT 192/6: minutes on a laptop CPU",
    departures={
        **VJEPA_DEPARTURES,
        "image_size, num_frames, encoder, predictor, train, target_updater": cpu_preset()
        + "; clips of 8 frames at 32 px (4 x 4 x 4 tubelets: as many tokens as a 64 px image), the EMA from 0.99 "
        "(the I-JEPA preset's)",
    },
)
def vjepa_cpu() -> Experiment:
    fields = {
        "image_size": 32,
        "num_frames": 8,
        "encoder": {"embed_dim": 192, "depth": 6, "num_heads": 3, "patch_size": 8},
        "predictor": {"embed_dim": 192, "depth": 3, "num_heads": 3},
        "target_updater": {"momentum_start": 0.99},
        "train": CPU_TRAIN,
    }
    return apply_overrides(vjepa_config(), fields)
