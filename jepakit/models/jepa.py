"""The assembled joint-embedding predictive architecture (I-JEPA and its relatives).

Reads like the paper: encode the target (whole image, no gradient), encode the context
(only the context patches), predict the target patches from the context, add the
losses. Which encoder, predictor, conditioner, target updater and loss are used is the
config's business; the model knows only their contracts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..conditioners.none import NoConditionerConfig
from ..config import Config, ConfigError, knob
from ..encoders.vit import ViTConfig, check_index
from ..layers.transformer import gather_tokens
from ..losses.regression import SmoothL1Config
from ..masks.base import MaskerConfig, Masks
from ..masks.multiblock import MultiBlockConfig
from ..predictors.vit_predictor import ViTPredictorConfig
from ..registry import register
from ..targets.ema import EMAConfig

__all__ = ["JEPAConfig", "JEPA"]


def slot(default: Config, kind: str, doc: str) -> Any:
    """A config field holding the config of one component of ``kind``."""
    return dataclasses.field(default=default, metadata={"doc": doc, "kind": kind})


@dataclass(frozen=True)
class JEPAConfig(Config):
    image_size: int = knob(224, "image side in pixels; the masker grid and the encoder's default follow it")
    masker: MaskerConfig = slot(MultiBlockConfig(), "masker", "which patches are context and which are targets")
    encoder: Config = slot(ViTConfig(), "encoder", "context encoder; the target encoder has the same architecture")
    predictor: Config = slot(ViTPredictorConfig(), "predictor", "predicts target tokens from context tokens")
    conditioner: Config = slot(NoConditionerConfig(), "conditioner", "acts on every predictor layer (none: I-JEPA)")
    target_updater: Config = slot(EMAConfig(), "target_updater", "where targets come from: ema | frozen | copy")
    loss: Config = slot(SmoothL1Config(), "loss", "regression loss on the predicted target tokens")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            kind = f.metadata.get("kind")
            value = getattr(self, f.name)
            if kind and value.kind != kind:
                raise ConfigError(f"{self.type_id()}.{f.name} must be a {kind} config; got {value.type_id()}")
        if self.image_size < 1:
            raise ConfigError(f"{self.type_id()}.image_size={self.image_size!r} must be positive")

    def derived(self) -> dict[tuple[str, str], Any]:
        """Fields that follow others: (slot, field) -> value (see ``jepakit.get_config``)."""
        return {
            ("encoder", "img_size"): self.image_size,
            ("masker", "input_size"): self.image_size,
            ("masker", "patch_size"): getattr(self.encoder, "patch_size", None),
            ("predictor", "encoder_dim"): getattr(self.encoder, "embed_dim", None),
        }

    def check_compatible(self) -> None:
        """Raise ``ConfigError`` naming the fields of components that do not fit together."""
        enc, pred, mask = self.encoder, self.predictor, self.masker
        patch = getattr(enc, "patch_size", None)
        if patch is not None and self.image_size % patch:
            raise ConfigError(f"image_size={self.image_size} is not divisible by encoder.patch_size={patch}")
        if mask.input_size not in (self.image_size, (self.image_size, self.image_size)):
            raise ConfigError(f"masker.input_size={mask.input_size} disagrees with image_size={self.image_size}")
        if patch is not None and mask.patch_size != patch:
            raise ConfigError(f"masker.patch_size={mask.patch_size} disagrees with encoder.patch_size={patch}")
        if len(mask.grid) != 2:
            raise ConfigError(
                f"masker {mask.name!r} draws {len(mask.grid)}-D masks (grid {mask.grid}); encoder {enc.name!r} is 2-D"
            )
        width = getattr(enc, "embed_dim", None)
        if width is not None and getattr(pred, "encoder_dim", width) != width:
            raise ConfigError(
                f"predictor.encoder_dim={pred.encoder_dim} does not match encoder.embed_dim={width}"
            )


@register("model", "jepa", JEPAConfig)
class JEPA(nn.Module):
    """I-JEPA assembled from components; ``forward(images, masks, text)`` gives the losses."""

    def __init__(self, cfg: JEPAConfig) -> None:
        super().__init__()
        cfg.check_compatible()
        self.config = cfg
        self.masker = cfg.masker.build()
        self.encoder = cfg.encoder.build()
        self.predictor = cfg.predictor.build()
        self.conditioner = cfg.conditioner.build()
        self.target_updater = cfg.target_updater.build()
        self.target_encoder = self.target_updater.make_target(self.encoder)
        self.loss_fn = cfg.loss.build()

    # ------------------------------------------------------------------ training

    def forward(self, images: Tensor, masks: Masks, text: Any | None = None) -> dict[str, Tensor]:
        """Losses for a batch: ``{"loss": total, "predict": ..., <conditioner terms>}``.

        Args:
            images: float [B, C, H, W].
            masks: the masker's output for this batch (any device; moved to the images').
            text: captions for a text conditioner (ignored by ``none``).
        """
        grid = self.encoder.grid_of(images)
        self._check_masks(masks, images.shape[0], grid)
        masks = masks.to(images.device, non_blocking=True)
        targets = self.forward_target(images, masks)
        z = self.forward_context(images, masks)
        hook = self.conditioner.bind(text)
        pred = self.predictor(
            z, masks.context, masks.targets, grid, masks.context_valid, masks.targets_valid, masks.repeats, hook
        )
        parts = {"predict": self.loss_fn(pred, targets, masks.targets_valid)}
        parts.update(self.conditioner.losses(hook))
        return {"loss": torch.stack(list(parts.values())).sum(), **parts}

    @torch.no_grad()
    def forward_target(self, images: Tensor, masks: Masks) -> Tensor:
        """Target tokens [R, M, Kt, D]: the target encoder on whole images, gathered at the targets."""
        encoder = self.target_encoder if self.target_encoder is not None else self.encoder
        h = encoder(images)
        if masks.repeats > 1:
            h = h.repeat(masks.repeats, 1, 1)
        return gather_tokens(h, masks.targets)

    def forward_context(self, images: Tensor, masks: Masks) -> Tensor:
        """Context tokens [R, Kc, D]: the online encoder on the context patches only."""
        if masks.repeats > 1:
            images = images.repeat(masks.repeats, 1, 1, 1)
        return self.encoder(images, masks.context, masks.context_valid)

    def _check_masks(self, masks: Masks, batch: int, grid: tuple[int, int]) -> None:
        if not isinstance(masks, Masks):
            raise TypeError(f"masks must be a jepakit Masks (from model.masker); got {type(masks).__name__}")
        if tuple(masks.grid) != tuple(grid):
            raise ValueError(f"masks are drawn on a {masks.grid} patch grid but the images give {grid}")
        rows = masks.context.shape[0]
        if rows != batch * masks.repeats:
            raise ValueError(f"masks have {rows} rows for {batch} images with repeats={masks.repeats}")
        n = grid[0] * grid[1]
        check_index("masks.context", masks.context, masks.context_valid, rows, n)
        check_index("masks.targets", masks.targets.reshape(rows, -1), None, rows, n)

    @torch.no_grad()
    def update_target(self, step: int) -> None:
        """Move the target encoder after optimiser step ``step`` (EMA; no-op for frozen/copy)."""
        self.target_updater.update(self.encoder, self.target_encoder, step)

    def set_target_encoder(self, module: nn.Module) -> None:
        """Install a ready teacher (frozen, eval mode) as the target encoder."""
        module.requires_grad_(False)
        self.target_encoder = module.eval()

    def train(self, mode: bool = True) -> JEPA:
        super().train(mode)
        if self.target_encoder is not None:
            self.target_encoder.eval()  # targets never see dropout or drop-path
        return self

    # ---------------------------------------------------------------- optimiser

    def trainable_modules(self) -> dict[str, nn.Module]:
        """The modules the optimiser updates (never the target encoder)."""
        return {"encoder": self.encoder, "predictor": self.predictor, "conditioner": self.conditioner}

    def param_groups(self, weight_decay: float = 0.04) -> list[dict[str, Any]]:
        """AdamW groups: weight decay on matrices, none on biases and 1-D parameters (I-JEPA)."""
        decay, no_decay = [], []
        for module in self.trainable_modules().values():
            for name, p in module.named_parameters():
                if not p.requires_grad:
                    continue
                (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
