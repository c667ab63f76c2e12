"""How much memory a config needs, estimated from its numbers before anything is allocated.

A component config may say how many parameters (and buffer values) it builds
(``param_count()``, a closed form, a few percent off at most); a method config adds up its
parts and says what one training step keeps alive (``Size``). ``check_fits`` compares that
with the memory the machine has and raises ``SizeError`` naming the estimate and the
fields that drive it, so a mistyped width or depth fails in milliseconds instead of
allocating terabytes or building layers until killed. ``train.memory_check=off`` (or a
build on torch's ``meta`` device, e.g. for FSDP) says "I know".
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import torch

from .config import ConfigError

__all__ = [
    "Size",
    "SizeError",
    "available_bytes",
    "check_fits",
    "size_fields",
    "transformer_activations",
    "transformer_params",
]

#: The fields that set a part's size, where it has them.
SIZE_FIELDS = (
    "embed_dim",
    "depth",
    "mlp_ratio",
    "vocab_size",
    "max_length",
    "img_size",
    "patch_size",
    "dim",
    "text_dim",
)

FLOAT = 4  #: bytes per value (fp32 weights, optimiser state and activations)


class SizeError(ConfigError):
    """A config whose estimated memory exceeds what the machine has."""


@dataclass
class Size:
    """Values (not bytes) a build or a training step holds, by part, and the fields that set them.

    ``params``: trained parameters (each also holds a gradient and two AdamW moments when
    training); ``fixed``: parameters and buffers that are not trained (a target encoder, a
    frozen text encoder, position tables); ``activations``: values one step keeps for backward.
    """

    params: dict[str, float] = field(default_factory=dict)
    fixed: dict[str, float] = field(default_factory=dict)
    activations: dict[str, float] = field(default_factory=dict)
    drivers: dict[str, list[str]] = field(default_factory=dict)  #: part -> "field=value" strings
    #: whether ``activations`` were estimated from the config; False: a method that gives no estimate of its
    #: own, whose activations the trainer measures on a dry step before training
    activations_known: bool = True

    def bytes(self, training: bool) -> float:
        """Bytes of a build (weights only) or of a training step (weights, grads, AdamW, activations)."""
        trained = sum(self.params.values()) * (4 if training else 1)
        acts = sum(self.activations.values()) if training else 0.0
        return FLOAT * (trained + sum(self.fixed.values()) + acts)

    def largest(self, training: bool) -> list[str]:
        """Parts by their share of the bytes, largest first."""
        share: dict[str, float] = {}
        for part, n in self.params.items():
            share[part] = share.get(part, 0.0) + n * (4 if training else 1)
        for part, n in self.fixed.items():
            share[part] = share.get(part, 0.0) + n
        if training:
            for part, n in self.activations.items():
                share[part] = share.get(part, 0.0) + n
        return sorted(share, key=share.__getitem__, reverse=True)


def size_fields(where: str, cfg: object) -> list[str]:
    """``where.field=value`` for the size-setting fields ``cfg`` has."""
    # the size fields a component config has, by name (each kind has some of them)
    return [f"{where}.{name}={getattr(cfg, name)}" for name in SIZE_FIELDS if getattr(cfg, name, None) is not None]


def transformer_params(dim: int, depth: int, mlp_ratio: float) -> float:
    """Parameters of ``depth`` pre-LN blocks of width ``dim`` (q, k, v, projection, MLP, two LayerNorms)."""
    hidden = dim * mlp_ratio
    return depth * (4 * dim * dim + 2 * dim * hidden + 9 * dim + hidden)


def transformer_activations(batch: float, length: float, dim: int, depth: int, mlp_ratio: float, heads: int) -> float:
    """Values ``depth`` blocks keep for backward over ``batch`` sequences of ``length`` tokens: per token
    the inputs, q, k, v, read-out, MLP input and hidden layer; per sequence the attention weights
    (an upper bound: fused attention kernels keep less)."""
    per_token = 10 * dim + 2 * dim * mlp_ratio
    return depth * batch * (length * per_token + heads * length * length)


def available_bytes(device: torch.device) -> int:
    """Free memory of ``device``: the GPU's free memory, or the host's available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n < 2**40 else f"{n / 2**40:.1f} TB"


def check_fits(
    size: Size, device: torch.device, training: bool, mode: str = "error", switch: str = "train.memory_check"
) -> None:
    """Raise ``SizeError`` (``mode="error"``) or warn (``"warn"``) when ``size`` cannot fit ``device``'s
    free memory; ``"off"`` checks nothing."""
    if mode == "off" or torch.get_default_device().type == "meta":
        return  # told so, or nothing is allocated
    need, have = size.bytes(training), available_bytes(device)
    if need <= have:
        return
    parts = size.largest(training)
    drivers = list(dict.fromkeys(d for part in parts[:2] for d in size.drivers.get(part, [])))
    what = "a training step" if training else "building it"
    message = (
        f"{what} needs about {_gb(need)} (mostly {', '.join(parts[:3])}; set by {', '.join(drivers)}) but "
        f"{device.type} has {_gb(have)} free; lower those, or set {switch}=off if you know better (e.g. "
        "another machine, or a meta-device build for FSDP)"
    )
    if mode == "warn":
        warnings.warn(message, ResourceWarning, stacklevel=3)
        return
    raise SizeError(message)
