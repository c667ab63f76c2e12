"""MAE recipes from the JEPA parts: pixel targets, random 75% masking and a light decoder.

Reference: He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022, and
``docs/methods.md``. The ``jepa`` method with ``target_updater=pixels`` (each masked patch's
pixels, normalised per patch), ``masker=random`` (75% of the patches are targets; the encoder
sees the other 25%), the ViT predictor as the decoder (8 blocks x 512 for ViT-B, its output a
patch's 16 x 16 x 3 values) and the squared error on the masked patches (``loss=l2``).
"""

from __future__ import annotations

from ..augment import HorizontalFlipConfig
from ..departures import Departure
from ..encoders.vit import ViTConfig
from ..experiment import Experiment
from ..losses.regression import L2Config
from ..masks.random_mask import RandomConfig
from ..methods.jepa import JEPAConfig
from ..predictors.vit_predictor import ViTPredictorConfig
from ..registry import register_recipe
from ..targets.pixels import PixelsConfig
from .ijepa import cpu_config, cpu_preset, epoch_schedule, preset_departure

__all__ = ["MAE_DEPARTURES", "MAE_FACTS", "mae_config"]

#: The MAE paper's values (He et al., 2022: its pre-training table and section 4), for ``check_recipe``.
MAE_FACTS: dict[str, object] = {
    "masker": "random",
    "masker.ratio": 0.75,
    "target_updater": "pixels",
    "target_updater.norm_pix": True,
    "loss": "l2",
    "predictor.embed_dim": 512,
    "predictor.depth": 8,
    "predictor.num_heads": 16,
    "train.batch_size": 4096,
    "train.lr": 1.5e-4 * 4096 / 256,
    "train.weight_decay": 0.05,
    "train.betas": (0.9, 0.95),
    "train.epochs": 800,
    "train.warmup_epochs": 40,
    "crop_scale": (0.2, 1.0),
    "augment": ("hflip",),
    "encoder.init": "xavier",
    "predictor.init": "xavier",
}

#: Where the MAE recipes depart from the paper, and why.
MAE_DEPARTURES = (
    Departure(
        "encoder",
        "a class token the decoder drops",
        "sin-cos positions and no class token",
        "one encoder for every method of the family, so their probes read the same tokens",
        kind="mechanism",
    ),
)


def mae_config(size: str = "base", image_size: int = 224) -> Experiment:
    """MAE for a ViT ``size``: crops of 20-100% and flips, xavier-uniform init, random 75% masking, an
    8 x 512 decoder with 16 heads, normalised pixel targets, AdamW (0.9, 0.95), weight decay 0.05, base LR 1.5e-4 x batch / 256 with batch 4096,
    40 warm-up epochs of 800, cosine to 0, bf16."""
    encoder = ViTConfig.preset(size, depth_rescale=False, init="xavier")
    method = JEPAConfig(
        image_size=image_size,
        crop_scale=(0.2, 1.0),
        augment=(HorizontalFlipConfig(),),
        masker=RandomConfig(ratio=0.75),
        encoder=encoder,
        predictor=ViTPredictorConfig(embed_dim=512, depth=8, num_heads=16, init="xavier"),  # out_dim: the patch
        target_updater=PixelsConfig(norm_pix=True),
        loss=L2Config(normalize_targets=False),
    )
    train = epoch_schedule(
        800, 40, batch_size=4096, lr=1.5e-4 * 4096 / 256, weight_decay=0.05, final_lr=0.0, betas=(0.9, 0.95)
    )
    return Experiment(method=method, train=train)


@register_recipe(
    "mae",
    help="MAE, ViT-B/16 at 224 px: pixel targets, random 75% masking",
    departures=MAE_DEPARTURES,
    facts=MAE_FACTS,
)
def mae() -> Experiment:
    return mae_config("base")


@register_recipe(
    "mae-cpu",
    help="MAE on the embedded scenes at 64 px, ViT 192/6, decoder 192/3: minutes on a laptop CPU",
    departures=(
        *MAE_DEPARTURES,
        preset_departure(
            "image_size, encoder, predictor, train",
            cpu_preset() + "; the JEPA presets' LR (1e-3 from 2e-4, 30 warm-up steps) and weight decay",
        ),
    ),
    facts=MAE_FACTS,
)
def mae_cpu() -> Experiment:
    return cpu_config(mae_config("tiny"))
