"""Optimisation schedules as pure functions of the step (I-JEPA), so resuming is trivial.

Reference: I-JEPA code (``WarmupCosineSchedule``, ``CosineWDSchedule``): the learning
rate rises linearly from ``start`` to ``peak`` over ``warmup_steps``, then follows a
half cosine to ``final`` at ``total_steps``; weight decay follows a half cosine from
0.04 up to 0.4 over training. Built on lightly's scheduler helpers.
"""

from __future__ import annotations

__all__ = ["lr_at", "weight_decay_at"]


def _cosine(step: int, steps: int, start: float, end: float) -> float:
    """start -> end along a half cosine over ``steps`` (end from ``steps`` on)."""
    from lightly.utils.scheduler import cosine_schedule

    if steps <= 0:
        return end
    # lightly reaches its end value at max_steps - 1; one more step makes it I-JEPA's cos(pi * step / steps)
    return cosine_schedule(min(max(step, 0), steps), steps + 1, start, end)


def lr_at(
    step: int, *, peak: float, total_steps: int, warmup_steps: int = 0, start: float = 0.0, final: float = 0.0
) -> float:
    """Learning rate after ``step`` optimiser steps: linear warm-up, then cosine decay."""
    from lightly.utils.scheduler import linear_warmup_schedule

    if warmup_steps < 0 or total_steps < warmup_steps:
        raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps})")
    if step < warmup_steps:
        return linear_warmup_schedule(max(step, 0), warmup_steps, start, peak)
    return _cosine(step - warmup_steps, total_steps - warmup_steps, peak, final)


def weight_decay_at(step: int, *, total_steps: int, start: float = 0.04, end: float = 0.4) -> float:
    """Weight decay after ``step`` steps: a half cosine from ``start`` to ``end`` (I-JEPA: 0.04 -> 0.4)."""
    return _cosine(step, total_steps, start, end)
