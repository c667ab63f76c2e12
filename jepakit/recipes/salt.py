"""SALT recipes: a pixel-reconstruction teacher, frozen, then a student that regresses its tokens.

Reference: "Rethinking JEPA: Compute-Efficient Video SSL with Frozen Teachers" (SALT), ICLR 2026,
and ``docs/methods.md``. Stage 1 ("V-Pixel") is the ``jepa`` method with pixel targets under
I-JEPA's multi-block masks; stage 2 is I-JEPA with the stage-1 encoder as a frozen teacher
(``target_updater=frozen``, no EMA) and an L1 loss on the teacher's final-norm patch tokens.
The experiment's ``teacher_run`` holds stage 1, so one command trains both
(``jepakit train salt-cpu``; ``--resume`` continues either stage).
"""

from __future__ import annotations

from typing import Any

from ..config import apply_overrides
from ..departures import Departure
from ..experiment import Experiment
from ..losses.regression import L1Config, L2Config
from ..masks.multiblock import MultiBlockConfig
from ..registry import register_recipe
from ..targets.frozen import FrozenConfig
from ..targets.pixels import PixelsConfig
from .ijepa import (
    CONTEXT_DEPARTURES,
    EPOCHS,
    SHAPE_DRAW_DEPARTURE,
    cpu_config,
    cpu_preset,
    ijepa_config,
    preset_departure,
)

__all__ = ["SALT_DEPARTURES", "salt_config", "salt_stages", "two_stages"]

#: The teacher's share of the training (ours: SALT spends most of its compute on the student).
TEACHER_SHARE = 0.2

#: Where the SALT recipes depart from the paper, and why.
SALT_DEPARTURES = (
    Departure(
        "teacher_run",
        "V-Pixel on video clips under V-JEPA's 3-D multi-block masks",
        "pixel targets under I-JEPA's image multi-block masks, regressing the target blocks, the I-JEPA "
        "predictor as decoder",
        "the image recipes' SALT (salt-video-cpu is SALT on clips); one public implementation regresses every "
        "patch outside the context",
        kind="mechanism",
    ),
    Departure(
        "train, teacher_run.train",
        "the paper's video budgets",
        f"I-JEPA's schedule split {TEACHER_SHARE:.0%} teacher / {1 - TEACHER_SHARE:.0%} student of its epochs",
        "the paper's video budgets do not carry over to images (ours)",
        kind="mechanism",
    ),
)
#: What SALT states for the student (stage 2): a frozen teacher, no EMA, L1 on its tokens.
FACTS = {"target_updater": "frozen", "loss": "l1"}


def two_stages(base: Experiment, teacher: dict[str, Any], student: dict[str, Any]) -> tuple[Experiment, Experiment]:
    """SALT's (teacher, student) over a JEPA experiment: stage 1 pixel targets (normalised per patch or
    tubelet, squared error), stage 2 a fresh student and predictor regressing the frozen stage-1 encoder's
    tokens with L1; ``teacher`` and ``student``: further overrides of each stage (its training)."""
    first = {"target_updater": PixelsConfig(norm_pix=True), "loss": L2Config(normalize_targets=False)}
    second = {"target_updater": FrozenConfig(), "loss": L1Config(normalize_targets=False)}
    return apply_overrides(base, first | teacher), apply_overrides(base, second | student)


def salt_stages(size: str = "base") -> tuple[Experiment, Experiment]:
    """SALT's (teacher, student) for a ViT ``size``: the teacher under multi-block masks, I-JEPA's encoder,
    predictor, masks and optimiser in both, the epochs split ``TEACHER_SHARE`` / the rest."""
    epochs = EPOCHS[size]
    teacher_epochs = round(epochs * TEACHER_SHARE)
    return two_stages(
        ijepa_config(size),
        {"masker": MultiBlockConfig(), "train": {"epochs": teacher_epochs}},
        {"train": {"epochs": epochs - teacher_epochs}},
    )


def salt_config(size: str = "base") -> Experiment:
    """SALT for a ViT ``size`` as one experiment: the student's, with the teacher's as its ``teacher_run``."""
    teacher, student = salt_stages(size)
    return student.replace(teacher_run=teacher)


@register_recipe(
    "salt",
    help="SALT, ViT-B/16: a pixel-target teacher (multi-block masks), frozen, then an L1 student; both in one run",
    departures=CONTEXT_DEPARTURES + SALT_DEPARTURES,
    facts=FACTS,
)
def salt() -> Experiment:
    return salt_config("base")


#: The CPU preset's steps: teacher, then student (300 in all, the quality rows' budget).
CPU_STEPS = (100, 200)


@register_recipe(
    "salt-cpu",
    help="SALT on the embedded scenes at 64 px, ViT 192/6: 100 teacher steps, then 200 student steps",
    departures=CONTEXT_DEPARTURES
    + SALT_DEPARTURES
    + (
        preset_departure(
            "image_size, encoder, predictor, train",
            cpu_preset(CPU_STEPS[1])
            + f" (student), after {CPU_STEPS[0]} teacher steps: 300 in all, the quality rows' budget",
        ),
        SHAPE_DRAW_DEPARTURE,
    ),
    facts=FACTS,
)
def salt_cpu() -> Experiment:
    teacher, student = (
        apply_overrides(cpu_config(stage), {"train": {"steps": steps}})
        for stage, steps in zip(salt_stages("tiny"), CPU_STEPS, strict=True)
    )
    return student.replace(teacher_run=teacher)
