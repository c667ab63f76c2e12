"""V-JEPA recipes: the JEPA parts on clips (tubelet embedding, 3-D positions, multi-block 3-D masks).

Reference: Bardes et al., "Revisiting Feature Prediction for Learning Visual Representations from
Video" (V-JEPA), 2024, and ``docs/methods.md``. The ``jepa`` method with ``num_frames`` set: the
encoder cuts clips into 2 x 16 x 16 tubelets, ``masker=multiblock3d`` draws a short-range (8
blocks at spatial scale 0.15) and a long-range (2 blocks at 0.7) mask per clip, aspect (0.75, 1.5),
the whole clip in time; the predictor regresses the EMA teacher's layer-normed tokens with L1.

``salt-video-cpu`` runs SALT's two stages on clips (a V-Pixel teacher regressing tubelet pixels under
the same 3-D masks, frozen, then an L1 student), and ``tc-vjepa-cpu`` puts TC-JEPA's sparse text
conditioner on the video predictor, reading the clips' motion captions.
"""

from __future__ import annotations

from ..config import apply_overrides
from ..data.moving import MovingScenesConfig
from ..departures import Departure
from ..encoders.vit import ViTConfig
from ..experiment import Experiment
from ..losses.regression import L1Config
from ..masks.multiblock3d import MultiBlock3DConfig
from ..methods.jepa import JEPAConfig
from ..predictors.vit_predictor import ViTPredictorConfig
from ..registry import register_recipe
from ..targets.ema import EMAConfig
from ..train.trainer import TrainConfig
from .ijepa import CPU_TRAIN, cpu_preset, preset_departure
from .salt import CPU_STEPS as SALT_CPU_STEPS
from .salt import FACTS as SALT_FACTS
from .salt import two_stages
from .tcjepa import CENTRED_REGULARISER, REGULARISER_DEPARTURES, TEXT_DEPARTURES, text_conditioning

__all__ = ["VJEPA_DEPARTURES", "vjepa_config", "vjepa_cpu_config"]

#: Where the V-JEPA recipes depart from the paper, and why.
VJEPA_DEPARTURES = (
    Departure(
        "data",
        "VideoMix2M, frames 4 apart",
        "the embedded moving scenes, clips of consecutive frames (a video folder: data=videos ...)",
        "data that installs with jepakit; a video folder needs data=...",
        kind="mechanism",
    ),
    Departure(
        "crop_scale",
        "RandomResizedCrop (0.3, 1) with aspect (0.75, 1.35)",
        "I-JEPA's RandomResizedCrop (0.3, 1), one crop for every frame of a clip",
        "the family's crop",
        kind="mechanism",
    ),
)


#: What V-JEPA's paper and released configuration (vitl16, ``configs/pretrain``) state (docs/methods.md).
FACTS: dict[str, object] = {
    "image_size": 224,
    "num_frames": 16,
    "tubelet_size": 2,
    "encoder.patch_size": 16,
    "encoder.embed_dim": 1024,
    "encoder.depth": 24,
    "encoder.num_heads": 16,
    "encoder.video_positions": "thirds",
    "masker": "multiblock3d",
    "masker.num_blocks": (8, 2),
    "masker.spatial_scale": ((0.15, 0.15), (0.7, 0.7)),
    "masker.temporal_scale": ((1.0, 1.0), (1.0, 1.0)),
    "masker.aspect_ratio": (0.75, 1.5),
    "predictor.embed_dim": 384,
    "predictor.depth": 12,
    "predictor.num_heads": 16,
    "predictor.video_positions": "thirds",
    "predictor.mask_tokens": 2,
    "predictor.mask_token_init": "zeros",
    "loss": "l1",
    "loss.normalize_targets": True,
    "target_updater": "ema",
    "target_updater.momentum_start": 0.998,
    "target_updater.momentum_end": 1.0,
    "train.steps": 90_000,
    "train.warmup_steps": 12_000,
    "train.batch_size": 3072,
    "train.lr": 6.25e-4,
    "train.start_lr": 2e-4,
    "train.final_lr": 1e-6,
    "train.weight_decay": 0.04,
    "train.final_weight_decay": 0.4,
    "train.clip_grad": 10.0,
    "train.schedule_scale": 1.25,
    "train.precision": "bf16",
}


def vjepa_config() -> Experiment:
    """V-JEPA ViT-L/16 as its released configuration runs it: 16 frames at 224 px in 2 x 16 x 16 tubelets with
    3-D sin-cos positions in equal thirds, predictor 12 x 384 with the encoder's heads and two zero-initialised
    mask tokens (one per mask generator), multi-block 3-D masks, L1 on layer-normed targets, EMA 0.998 -> 1.0;
    AdamW, LR warmed up to 6.25e-4, weight decay 0.04 -> 0.4, gradients clipped at 10, batch 3072, 90,000
    steps of schedules laid over 1.25 times as many (ipe_scale), bf16."""
    encoder = ViTConfig.preset("large", depth_rescale=False)
    method = JEPAConfig(
        image_size=224,
        num_frames=16,
        tubelet_size=2,
        masker=MultiBlock3DConfig(),
        encoder=encoder,
        predictor=ViTPredictorConfig(
            embed_dim=384,
            depth=12,
            num_heads=encoder.num_heads,
            depth_rescale=False,
            mask_tokens=2,  # one per mask generator, zero-initialised
            mask_token_init="zeros",
        ),
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
        clip_grad=10.0,
        schedule_scale=1.25,  # ipe_scale: every schedule laid over 1.25x the steps, the run stops at 80%
        precision="bf16",
    )
    return Experiment(method=method, data=MovingScenesConfig(), train=train)


@register_recipe(
    "vjepa",
    help="V-JEPA, ViT-L/16 on 16-frame clips at 224 px: tubelets, multi-block 3-D masks, L1, EMA",
    departures=VJEPA_DEPARTURES,
    facts=FACTS,
)
def vjepa() -> Experiment:
    return vjepa_config()


#: The CPU preset's departures: its size and schedule.
#: What the video CPU presets keep of jepakit's first V-JEPA: every video quality row was measured with it.
MEASURED = (
    "every video CPU quality row was measured with it; the released configuration's (video-vjepa-released, 3 "
    "seeds: benchmarks/RESULTS.md, Quality) is within noise of it on every task"
)
CPU_DEPARTURES = (
    *VJEPA_DEPARTURES,
    Departure(
        "encoder.video_positions", "thirds", "quarters", "column and row a quarter each, time a half: " + MEASURED
    ),
    Departure("predictor.mask_tokens", 2, 1, "one mask token for both generators: " + MEASURED),
    Departure("predictor.mask_token_init", "zeros", "trunc-normal", "I-JEPA's initialisation: " + MEASURED),
    Departure("train.clip_grad", 10.0, 0.0, "no clip: " + MEASURED),
    Departure("train.schedule_scale", 1.25, 1.0, "the schedules end with the run: " + MEASURED),
    preset_departure(
        "image_size, num_frames, encoder, predictor, train, target_updater",
        cpu_preset()
        + "; clips of 8 frames at 32 px (4 x 4 x 4 tubelets: as many tokens as a 64 px image), the EMA from "
        "0.996 (the main job's; on the moving scenes it keeps the motion 0.99 loses: benchmarks/RESULTS.md, 3 "
        "seeds)",
    ),
)


@register_recipe(
    "vjepa-cpu",
    help="V-JEPA on the embedded moving scenes: 8 frames at 32 px, ViT 192/6: minutes on a laptop CPU",
    departures=CPU_DEPARTURES,
    facts=FACTS,
)
def vjepa_cpu() -> Experiment:
    return vjepa_cpu_config()


def vjepa_cpu_config() -> Experiment:
    """vjepa-cpu: ViT 192/6 with 8 px patches on clips of 8 frames at 32 px, predictor 192/3, EMA from 0.996;
    the positions, mask token and schedule its quality rows were measured with (declared departures)."""
    fields = {
        "image_size": 32,
        "num_frames": 8,
        "encoder": {"embed_dim": 192, "depth": 6, "num_heads": 3, "patch_size": 8, "video_positions": "quarters"},
        "predictor": {
            "embed_dim": 192,
            "depth": 3,
            "num_heads": 3,
            "mask_tokens": 1,
            "mask_token_init": "trunc-normal",
        },
        "target_updater": {"momentum_start": 0.996},
        "train": {**CPU_TRAIN, "clip_grad": 0.0, "schedule_scale": 1.0},
    }
    return apply_overrides(vjepa_config(), fields)


#: What SALT states (its student: a frozen teacher, L1, no EMA) on V-JEPA's clips and masks, which it builds on.
SALT_VIDEO_FACTS: dict[str, object] = {
    **{k: v for k, v in FACTS.items() if not k.startswith(("target_updater", "loss"))},
    **SALT_FACTS,
}


@register_recipe(
    "salt-video-cpu",
    help=f"SALT on the embedded moving scenes (vjepa-cpu's clips and masks): {SALT_CPU_STEPS[0]} V-Pixel teacher "
    f"steps, frozen, then {SALT_CPU_STEPS[1]} L1 student steps",
    departures=(
        *CPU_DEPARTURES,
        Departure(
            "train, teacher_run.train",
            "the teacher trained for a fraction of the student's compute",
            f"{SALT_CPU_STEPS[0]} teacher + {SALT_CPU_STEPS[1]} student steps: the 300 of vjepa-cpu's budget",
            "ours: the CPU budget of the other video rows",
            kind="mechanism",
        ),
        Departure(
            "teacher_run.loss",
            "V-Pixel's reconstruction loss",
            "squared error on tubelet pixels normalised per tubelet at the target positions",
            "one public implementation regresses every position outside the context; ours the target positions",
            kind="mechanism",
        ),
    ),
    facts=SALT_VIDEO_FACTS,
)
def salt_video_cpu() -> Experiment:
    """SALT's two stages on clips: V-Pixel (tubelet pixels, normalised per tubelet, squared error) under
    V-JEPA's 3-D masks, then a fresh student and predictor regressing the frozen teacher's tokens (L1)."""
    teacher, student = two_stages(
        vjepa_cpu_config(), {"train": {"steps": SALT_CPU_STEPS[0]}}, {"train": {"steps": SALT_CPU_STEPS[1]}}
    )
    return student.replace(teacher_run=teacher)


@register_recipe(
    "tc-vjepa-cpu",
    help="text-conditioned V-JEPA (ours): vjepa-cpu with TC-JEPA's sparse text cross-attention in the predictor, "
    "reading the moving scenes' motion captions",
    departures=(
        *CPU_DEPARTURES,
        *TEXT_DEPARTURES,
        *REGULARISER_DEPARTURES,
        Departure(
            "method",
            "no paper trains a text-conditioned video JEPA",
            "TC-JEPA's conditioner, regulariser and frozen text side on V-JEPA's predictor",
            "everything else is vjepa-cpu's, so the two differ only in the text",
            kind="mechanism",
        ),
    ),
    facts=FACTS,  # V-JEPA's, which it extends
)
def tc_vjepa_cpu() -> Experiment:
    conditioned = apply_overrides(vjepa_cpu_config(), text_conditioning(CENTRED_REGULARISER))
    return apply_overrides(conditioned, {"tokenizer": {"max_length": 16}})  # the motion captions are short
