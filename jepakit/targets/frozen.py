"""A fixed teacher (SALT, "Rethinking JEPA", ICLR 2026): targets from frozen weights, no EMA.

Where the teacher comes from (``checkpoint``):

- a weights file (safetensors, or a torch file read with ``weights_only=True``) for an encoder of
  the online encoder's architecture; ``key`` picks an entry of a checkpoint dict and ``prefix``
  the entries under it (a jepakit training checkpoint: ``key='model', prefix='encoder.'``);
- a folder written by ``jepakit export``: the encoder config and weights it holds (any width);
- a run folder or a jepakit training checkpoint: the encoder its method evaluates (I-JEPA's target
  encoder; any width), with its own config, as ``jepakit probe`` reads it;
- with ``timm=NAME``: that timm architecture with the weights of the file (any width; its
  prefix tokens are dropped and images are normalised with the model's own statistics);
- nothing: the online encoder frozen at initialisation (a random teacher).

A ready module can be installed with ``JEPA.set_target_encoder``. The method evaluates and
exports its online encoder (the student), not the teacher.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..checkpoint import evaluated_encoder, export_config, load_encoder, training_checkpoint
from ..config import ConfigError, MissingFileError, knob
from ..encoders.vit import ViTEncoder
from ..registry import register
from .base import TargetUpdater, TargetUpdaterConfig, frozen_copy

__all__ = ["FrozenConfig", "FrozenUpdater", "load_state_dict_file"]


@dataclass(frozen=True)
class FrozenConfig(TargetUpdaterConfig):
    checkpoint: str | None = knob(
        None,
        "the teacher: a run folder or training checkpoint (its evaluated encoder), a jepakit export folder, or "
        "a weights file (.safetensors or torch file, with key/prefix/timm); None: frozen at init",
    )
    key: str | None = knob(None, "entry of a checkpoint dict that holds the encoder weights, e.g. 'model'")
    prefix: str | None = knob(None, "keep the weights under this prefix, stripped (a training checkpoint: 'encoder.')")
    timm: str | None = knob(None, "a timm architecture the weights file is for (e.g. 'vit_small_patch16_224')")
    #: the student is what the method is for: probes and export read the online encoder
    teacher_evaluated: ClassVar[bool] = False
    #: the teacher's weights are an encoder's (a run's, an export's, a timm model's)
    any_module: ClassVar[bool] = False

    def check_files(self) -> None:
        if self.checkpoint is None:
            if self.timm is not None:
                raise ConfigError(f"target_updater.timm={self.timm!r} needs its weights: set target_updater.checkpoint")
            return
        where = self.weights_path()
        if os.path.isdir(where):
            export = (Path(where) / "model.safetensors").is_file()
            if self.timm is not None or not (export or training_checkpoint(where)):
                raise MissingFileError(
                    f"teacher checkpoint {self.checkpoint!r} is a folder but neither a run (checkpoints/step-N.pt) "
                    "nor a jepakit export (model.safetensors + config.json); with timm=NAME give the weights file"
                )
        elif not os.path.isfile(where):
            raise MissingFileError(f"teacher checkpoint {self.checkpoint!r} does not exist (target_updater.checkpoint)")

    def teacher_shape(self) -> tuple[int, int] | None:
        """(token width, patch size) of a teacher that is not the online encoder's architecture (an export,
        a timm model), read from the export's config or a weightless timm model; None: the encoder's."""
        if self.timm is not None:
            return _timm_shape(self.timm)
        where = self.weights_path() if self.checkpoint is not None else None
        if where is not None and os.path.isdir(where) and not self.run():
            enc = export_config(where)["encoder"]
            return int(enc["embed_dim"]), int(enc["patch_size"])
        run = self.run()
        if run is not None:
            encoder = _run_encoder(str(run))[0]
            return int(encoder.config.embed_dim), int(encoder.config.patch_size)
        return None

    def blocks_readable(self) -> bool:
        """A timm teacher's blocks are timm's, which jepakit does not read."""
        return self.timm is None

    def run(self) -> Path | None:
        """The training checkpoint the teacher is read from (a run folder's newest), or None."""
        if self.checkpoint is None or self.timm is not None or self.key is not None or self.prefix is not None:
            return None
        return training_checkpoint(self.weights_path())

    def weights_path(self) -> str:
        """Where the teacher's weights are on this machine: ``checkpoint``, or a hub source's cached copy."""
        from ..hub import local_path

        assert self.checkpoint is not None, "a teacher frozen at init reads no weights"
        return str(local_path(self.checkpoint))


@functools.cache
def _run_encoder(path: str) -> tuple[Any, str]:
    """A training checkpoint's evaluated encoder, read once per process (the wiring asks for its shape)."""
    return evaluated_encoder(path)


@functools.cache
def _timm_shape(name: str) -> tuple[int, int]:
    import timm

    with torch.device("meta"):
        model: Any = timm.create_model(name, pretrained=False, num_classes=0)
    return int(model.num_features), int(model.patch_embed.patch_size[0])


def load_state_dict_file(path: str, key: str | None = None) -> dict:
    """Read a state dict safely: safetensors, or ``torch.load(weights_only=True)``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"teacher checkpoint {path!r} does not exist")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state: Any = load_file(path)
    else:
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
    if key is not None:
        if not isinstance(state, dict) or key not in state:
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ConfigError(f"checkpoint {path!r} has no entry key={key!r}; it holds {found}")
        state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"checkpoint {path!r} does not hold a state dict (got {type(state).__name__})")
    return state


class TimmTeacher(nn.Module):
    """A timm ViT as a teacher: images [B, C, H, W] in [0, 1] -> patch tokens [B, N, D] after its final
    norm (class and register tokens dropped), normalised with the model's own pixel statistics."""

    model: Any  # a timm VisionTransformer (forward_features, num_prefix_tokens)
    mean: Tensor
    std: Tensor

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        # a timm model made without pretrained weights may carry no pretrained_cfg: its statistics default to 0.5
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.5, 0.5, 0.5))).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.5, 0.5, 0.5))).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        tokens = self.model.forward_features((images - self.mean) / self.std)
        # timm ViTs say how many class and register tokens lead; other timm models have none
        return tokens[:, getattr(self.model, "num_prefix_tokens", 0) :]


@register("target_updater", "frozen", FrozenConfig)
class FrozenUpdater(TargetUpdater):
    """The target encoder is fixed: loaded once, never updated.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> encoder = create("encoder", "vit", img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=3)
        >>> frozen = create("target_updater", "frozen")
        >>> teacher = frozen.make_target(encoder)  # a copy at the encoder's weights (no checkpoint given)
        >>> before = teacher.blocks[0].attn.qkv.weight.clone()
        >>> _ = torch.nn.init.ones_(encoder.blocks[0].attn.qkv.weight)
        >>> frozen.update(encoder, teacher, step=0, total_steps=10)  # nothing moves
        >>> bool(torch.equal(before, teacher.blocks[0].attn.qkv.weight)), any(p.requires_grad for p in teacher.parameters())
        (True, False)
    """

    config: FrozenConfig

    def make_target(self, online: nn.Module) -> nn.Module | None:
        """The fixed teacher; ``source`` then says which weights it took."""
        cfg = self.config
        cfg.check_files()
        self.source = f"teacher: the weights of {cfg.checkpoint!r}" if cfg.checkpoint else "teacher: frozen at init"
        where = cfg.weights_path() if cfg.checkpoint is not None else None
        run = cfg.run()
        if run is not None:
            encoder, which = _run_encoder(str(run))
            self.source = f"teacher: {which}"
            return frozen_copy(encoder)
        if cfg.timm is not None:
            import timm

            size: Any = online.config.img_size if isinstance(online, ViTEncoder) else None  # else timm's own size
            model = timm.create_model(
                cfg.timm,
                pretrained=True,
                pretrained_cfg_overlay={"file": where},
                num_classes=0,
                **({"img_size": size} if size else {}),
            )
            return frozen_copy(TimmTeacher(model))
        if where is not None and os.path.isdir(where):
            self.source = f"teacher: the exported encoder of {cfg.checkpoint!r}"
            return frozen_copy(load_encoder(where))
        target = frozen_copy(online)
        if where is None:
            return target
        state = load_state_dict_file(where, cfg.key)
        if cfg.prefix:
            state = {k[len(cfg.prefix) :]: v for k, v in state.items() if k.startswith(cfg.prefix)}
        own = target.state_dict()
        wrong = [
            f"{k} {tuple(v.shape)} (the encoder's {tuple(own[k].shape)})"
            for k, v in state.items()
            if k in own and v.shape != own[k].shape
        ]
        if wrong:
            raise ConfigError(
                f"teacher checkpoint {cfg.checkpoint!r} is for another encoder size: {', '.join(wrong[:3])}; "
                "give the student the teacher's encoder fields (embed_dim, depth, patch_size), or export the "
                "teacher (jepakit export) so that its own config is read"
            )
        missing, unexpected = target.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ConfigError(
                f"teacher checkpoint {cfg.checkpoint!r} does not fit the encoder: "
                f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
            )
        return target
