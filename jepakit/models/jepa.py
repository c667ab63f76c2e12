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
from ..config import Config, ConfigError, knob, slot
from ..encoders.vit import ViTConfig, check_index
from ..layers.transformer import gather_tokens
from ..losses.regression import SmoothL1Config
from ..masks.base import MaskerConfig, Masks
from ..masks.multiblock import MultiBlockConfig
from ..predictors.vit_predictor import ViTPredictorConfig
from ..registry import register
from ..data.scenes import SceneConfig
from ..targets.ema import EMAConfig
from ..train.trainer import TrainConfig
from ..text.batch import TextFeatures, TokenBatch

__all__ = ["JEPAConfig", "JEPA"]


@dataclass(frozen=True)
class JEPAConfig(Config):
    image_size: int = knob(224, "image side in pixels; the masker grid and the encoder's default follow it")
    masker: MaskerConfig = slot(MultiBlockConfig(), "masker", "which patches are context and which are targets")
    encoder: Config = slot(ViTConfig(), "encoder", "context encoder; the target encoder has the same architecture")
    predictor: Config = slot(ViTPredictorConfig(), "predictor", "predicts target tokens from context tokens")
    conditioner: Config = slot(NoConditionerConfig(), "conditioner", "acts on every predictor layer (none: I-JEPA)")
    target_updater: Config = slot(EMAConfig(), "target_updater", "where targets come from: ema | frozen | copy")
    loss: Config = slot(SmoothL1Config(), "loss", "regression loss on the predicted target tokens")
    tokenizer: Config | None = slot(None, "tokenizer", "captions -> token ids (text-conditioned recipes)")
    text_encoder: Config | None = slot(None, "text_encoder", "token ids -> word embeddings (text-conditioned recipes)")
    data: Config = slot(SceneConfig(), "dataset", "training data (default: the embedded captioned scenes)")
    train: Config = slot(TrainConfig(), "trainer", "optimisation, schedules, logging and checkpoints")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            kind = f.metadata.get("kind")
            value = getattr(self, f.name)
            if kind and value is not None and value.kind != kind:
                raise ConfigError(f"{self.type_id()}.{f.name} must be a {kind} config; got {value.type_id()}")
        self.require_positive("image_size")

    def derived(self) -> dict[tuple[str, str], Any]:
        """Fields that follow others: (slot, field) -> value (see ``jepakit.get_config``)."""
        return {
            ("encoder", "img_size"): self.image_size,
            ("masker", "input_size"): self.image_size,
            ("masker", "patch_size"): getattr(self.encoder, "patch_size", None),
            ("predictor", "encoder_dim"): getattr(self.encoder, "embed_dim", None),
            ("conditioner", "dim"): getattr(self.predictor, "embed_dim", None),
            ("conditioner", "depth"): getattr(self.predictor, "depth", None),
            ("conditioner", "text_dim"): getattr(self.text_encoder, "embed_dim", None),
            ("text_encoder", "vocab_size"): getattr(self.tokenizer, "vocab_size", None),
            ("text_encoder", "max_length"): getattr(self.tokenizer, "max_length", None),
            ("data", "image_size"): self.image_size,
            ("target_updater", "total_steps"): getattr(self.train, "steps", None),
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
        _same("predictor.encoder_dim", pred, "encoder_dim", "encoder.embed_dim", enc, "embed_dim")
        cond, text = self.conditioner, self.text_encoder
        _same("conditioner.dim", cond, "dim", "predictor.embed_dim", pred, "embed_dim")
        _same("conditioner.depth", cond, "depth", "predictor.depth", pred, "depth")
        _same("conditioner.text_dim", cond, "text_dim", "text_encoder.embed_dim", text, "embed_dim")
        _same("text_encoder.vocab_size", text, "vocab_size", "tokenizer.vocab_size", self.tokenizer, "vocab_size")
        _same("text_encoder.max_length", text, "max_length", "tokenizer.max_length", self.tokenizer, "max_length")
        if hasattr(cond, "text_dim") and text is None:
            raise ConfigError(f"conditioner {cond.name!r} reads text: set text_encoder (e.g. text_encoder=transformer)")


def _same(a_name: str, a: Any, a_field: str, b_name: str, b: Any, b_field: str) -> None:
    """Raise naming both fields when both exist and differ."""
    if a is None or b is None or not hasattr(a, a_field) or not hasattr(b, b_field):
        return
    if getattr(a, a_field) != getattr(b, b_field):
        raise ConfigError(f"{a_name}={getattr(a, a_field)} does not match {b_name}={getattr(b, b_field)}")


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
        # text last, so the image side initialises exactly as I-JEPA's for the same seed
        self.tokenizer = cfg.tokenizer.build() if cfg.tokenizer is not None else None
        self.text_encoder = cfg.text_encoder.build() if cfg.text_encoder is not None else None
        text_dim = getattr(cfg.conditioner, "text_dim", None)
        if self.text_encoder is not None and text_dim is not None and self.text_encoder.width != text_dim:
            raise ConfigError(
                f"conditioner.text_dim={text_dim} does not match the text encoder's width {self.text_encoder.width}"
            )

    # ------------------------------------------------------------------ training

    def forward(
        self, images: Tensor, masks: Masks, text: Any | None = None, step: int | None = None
    ) -> dict[str, Tensor]:
        """Losses for a batch: ``{"loss": total, "predict": ..., <conditioner terms>, "metric/...": ...}``.

        ``loss`` is the sum of the named parts; keys starting with ``metric/`` are
        detached diagnostics.

        Args:
            images: float [B, C, H, W].
            masks: the masker's output for this batch (any device; moved to the images').
            text: for a text conditioner: captions (a list of lists of strings), a
                ``TokenBatch`` or precomputed ``TextFeatures``; ignored by ``none``.
            step: the optimiser step, for schedules inside the loss (regulariser warm-up).
        """
        grid = self.encoder.grid_of(images)
        self._check_masks(masks, images.shape[0], grid)
        masks = masks.to(images.device, non_blocking=True)
        features = self.encode_text(text, images.shape[0], images.device) if self.conditioner.uses_text else None
        targets = self.forward_target(images, masks)
        z = self.forward_context(images, masks)
        hook = self.conditioner.bind(features, step)
        pred = self.predictor(
            z, masks.context, masks.targets, grid, masks.context_valid, masks.targets_valid, masks.repeats, hook
        )
        parts = {"predict": self.loss_fn(pred, targets, masks.targets_valid)}
        parts.update(self.conditioner.losses(hook))
        return {"loss": torch.stack(list(parts.values())).sum(), **parts, **self.conditioner.metrics(hook)}

    def encode_text(self, text: Any, batch: int, device: torch.device) -> TextFeatures | None:
        """Word embeddings of ``text`` (captions, ``TokenBatch`` or ``TextFeatures``), checked."""
        if text is None:
            return None
        if not isinstance(text, (TokenBatch, TextFeatures)):
            if self.tokenizer is None:
                raise ValueError("raw captions need a tokenizer (set tokenizer=sentencepiece)")
            text = self.tokenizer(text)
        if isinstance(text, TokenBatch):
            if self.text_encoder is None:
                raise ValueError("token ids need a text encoder (set text_encoder=transformer)")
            if text.ids.shape[0] != batch:
                raise ValueError(f"text has {text.ids.shape[0]} images for a batch of {batch}")
            text = self.text_encoder(text.to(device))
        text = text.to(device)
        text.validate(batch, self.conditioner.config.text_dim)
        return text

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

    @torch.compiler.disable  # eager under torch.compile: the range checks read values
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
        modules = {"encoder": self.encoder, "predictor": self.predictor, "conditioner": self.conditioner}
        if self.text_encoder is not None and self.text_encoder.trainable:
            modules["text_encoder"] = self.text_encoder
        return modules

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
