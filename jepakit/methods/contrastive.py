"""Image–text contrastive pretraining (CLIP, SigLIP and a frozen-text control) from registered parts.

Two towers meet in a joint embedding space: the image tower is a registered encoder
whose patch tokens are average-pooled and projected; the text tower is a registered
text encoder whose real word embeddings are average-pooled and projected. The loss
(``clip`` or ``siglip``) contrasts each image with one caption drawn per (epoch, sample)
against the other pairs of the global batch. With a frozen pretrained text encoder only
the text projection trains on that side (``contrastive-frozen-text``: the control that
keeps the text model of TC-JEPA and changes only prediction for contrast).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Config, ConfigError, at_least, knob, offered, ordered_pair, slot
from ..encoders.vit import ViTConfig
from ..losses.contrastive import ClipLossConfig, ContrastiveLoss, ContrastiveLossConfig
from ..registry import register
from ..sizing import Size, transformer_activations
from ..text.batch import TokenBatch
from ..text.spm_tokenizer import SentencePieceConfig
from ..text.transformer_encoder import TransformerTextConfig
from ..transforms import random_resized_crop
from .base import (
    Draw,
    Method,
    MethodConfig,
    ParamGroup,
    blocks_then_modules,
    check_patches,
    image_encoder_provides,
    image_tower_size,
    loss_names,
    prepare_tokenizer,
    text_tower_fixed,
    tokenizer_provides,
    tokenizer_state,
    weight_decay_groups,
)
from .jepa import pick_captions

__all__ = ["Contrastive", "ContrastiveConfig"]


@dataclass(frozen=True)
class ContrastiveConfig(MethodConfig):
    image_size: int = knob(224, "image side in pixels; the encoder and the data follow it", valid=at_least(1))
    crop_scale: tuple[float, float] = knob(
        (0.9, 1.0), "RandomResizedCrop area range (open_clip's training: 0.9-1.0)", valid=ordered_pair(0, 1)
    )
    embed_dim: int = knob(512, "joint embedding width E of both projections (CLIP ViT-B/16: 512)", valid=at_least(1))
    encoder: Config = slot(ViTConfig(), "encoder", "image tower: patch tokens, average-pooled, then projected")
    tokenizer: Config = slot(SentencePieceConfig(max_captions=1), "tokenizer", "captions -> token ids")
    text_encoder: Config = slot(
        TransformerTextConfig(), "text_encoder", "text tower: word embeddings, pooled as text_pool says"
    )
    text_pool: Literal["mean", "last"] = knob(
        "mean",
        "a caption's embedding: the mean of its real tokens, or its last real token (CLIP's end-of-text token, "
        "read after a causal text transformer)",
    )
    loss: Config = slot(ClipLossConfig(), "loss", "clip (symmetric InfoNCE) | siglip (pairwise sigmoid)")

    def provides(self) -> dict[str, tuple[Any, str]]:
        return image_encoder_provides(self.image_size, self.encoder) | tokenizer_provides(self.tokenizer)

    def check_sources(self) -> None:
        check_patches(self.image_size, self.provides()["patch_size"][0])

    def check(self) -> None:
        if not isinstance(self.loss, ContrastiveLossConfig):
            raise ConfigError(
                f"loss {self.loss.name!r} is not an image-text loss; a contrastive method takes "
                f"{loss_names(ContrastiveLossConfig)}"
            )

    def needs_captions(self) -> bool:
        return True

    def joint_embedding(self) -> bool:
        return True

    def min_batch_size(self) -> int:
        return 2

    def eval_encoder(self) -> tuple[Config, tuple[str, ...]]:
        return self.encoder, ("encoder",)

    def size(self, batch: int) -> Size:
        """The towers and projections (a frozen text encoder is fixed), the images, and the activations
        of both towers for ``batch`` pairs."""
        size = super().size(batch)
        enc: Any = self.encoder
        text: Any = self.text_encoder
        tok: Any = self.tokenizer
        size.params["projections"] = float((enc.embed_dim + (text.embed_dim or 0)) * self.embed_dim)
        size.drivers["projections"] = [f"embed_dim={self.embed_dim}"]
        text_tower_fixed(size, text)
        image_tower_size(size, batch, self.image_size, enc)
        if offered(text, "text_encoder", "trainable")[0]:
            size.activations["text_encoder"] = transformer_activations(
                batch, tok.max_length, text.embed_dim, text.depth, text.mlp_ratio, text.num_heads
            )
        return size


@register("method", "contrastive", ContrastiveConfig)
class Contrastive(Method):
    """Two towers and a contrastive loss (CLIP, SigLIP): images [B, C, H, W] and one caption's tokens per image
    [B, 1, S] -> ``{"loss", "contrast", "metric/..."}``; both towers embed into [B, embed_dim].

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> method = create(
        ...     "method", "contrastive", image_size=32, embed_dim=16,
        ...     encoder={"patch_size": 8, "embed_dim": 48, "depth": 1, "num_heads": 3},
        ...     tokenizer={"vocab_size": 300, "max_length": 8},
        ...     text_encoder={"embed_dim": 32, "depth": 1, "num_heads": 2},
        ... )
        >>> captions = ["a red circle", "a blue square", "two green triangles", "one yellow diamond"]
        >>> _ = method.tokenizer.fit(captions * 10)  # what prepare() does with the data's captions
        >>> images = torch.rand(4, 3, 32, 32)
        >>> out = method(images, method.tokenizer([[c] for c in captions]))
        >>> sorted(out), tuple(method.encode_image(images).shape)
        (['contrast', 'loss', 'metric/temperature'], (4, 16))
    """

    config: ContrastiveConfig

    def __init__(self, cfg: ContrastiveConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = cfg.encoder.build()
        self.tokenizer = cfg.tokenizer.build()
        self.text_encoder = cfg.text_encoder.build()
        width: Any = cfg.encoder
        # CLIP's projections: no bias, std width^-0.5
        self.image_proj = nn.Linear(width.embed_dim, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(self.text_encoder.width, cfg.embed_dim, bias=False)
        nn.init.normal_(self.image_proj.weight, std=width.embed_dim**-0.5)
        nn.init.normal_(self.text_proj.weight, std=self.text_encoder.width**-0.5)
        self.loss_fn: ContrastiveLoss = cfg.loss.build()

    # ------------------------------------------------------------------ the towers

    def encode_image(self, images: Tensor) -> Tensor:
        """float [B, C, H, W] in [0, 1] -> L2-normalised embeddings [B, E]."""
        return F.normalize(self.image_proj(self.encoder(images.to(self.device)).mean(1)), dim=-1)

    def tokenize(self, captions: Sequence[str]) -> TokenBatch:
        """One caption per row -> token ids [B, 1, S] (the tokenizer pads to its ``max_captions``; one is kept)."""
        tokens = self.tokenizer([[c] for c in captions])
        return dataclasses.replace(tokens, ids=tokens.ids[:, :1], mask=tokens.mask[:, :1])

    def encode_text(self, text: Sequence[str] | TokenBatch) -> Tensor:
        """Captions (one per row) or their ``TokenBatch`` [B, 1, S] -> L2-normalised embeddings [B, E]."""
        if not isinstance(text, TokenBatch):
            text = self.tokenize(text)
        features = self.text_encoder(text.to(self.device))
        pooled = features.last() if self.config.text_pool == "last" else features.mean()
        return F.normalize(self.text_proj(pooled[:, 0]), dim=-1)

    def forward(
        self,
        images: Tensor,
        text: TokenBatch,
        counts: Mapping[str, float] | None = None,
        step: int | None = None,
    ) -> dict[str, Tensor]:
        """``{"loss", "contrast", "metric/..."}`` for images [B, C, H, W] and their captions' tokens
        [B, 1, S]; ``counts``: ``make_batch``'s caption counts, passed on to the log."""
        if text.ids.shape[0] != images.shape[0] or text.ids.shape[1] != 1:
            raise ValueError(
                f"text ids {tuple(text.ids.shape)} must be [B={images.shape[0]}, 1, S]: one caption per image"
            )
        loss = self.loss_fn(self.encode_image(images), self.encode_text(text))
        logged = {k: torch.tensor(v, device=loss.device) for k, v in (counts or {}).items()}
        return {"loss": loss, "contrast": loss, **self.loss_fn.metrics(), **logged}

    # ------------------------------------------------------------ the contract

    def prepare(self, data: Any, saved: Mapping[str, Any] | None = None) -> None:
        """Fit a SentencePiece tokenizer on the first samples' captions (or restore the saved one)."""
        prepare_tokenizer(self.tokenizer, self.config.tokenizer, data, saved)

    def extra_state(self) -> dict[str, Any]:
        return tokenizer_state(self.tokenizer)

    def make_batch(self, samples: Sequence[Mapping[str, Any]], draw: Draw) -> dict[str, Any]:
        """Cropped images and one caption per image, drawn per (seed, epoch, index). Empty captions
        never pair: they are dropped, and an image left with none is skipped; both are counted
        (``metric/empty_captions``, ``metric/no_caption``)."""
        scale = self.config.crop_scale
        images, captions = [], []
        empty = skipped = 0
        for k, s in enumerate(samples):
            given = [str(c) for c in s.get("captions", [])]
            real = [c for c in given if c.strip()]
            empty += len(given) - len(real)
            if not real:
                skipped += 1
                continue
            images.append(random_resized_crop(s["image"], scale, draw.sample(k)))
            captions.append(pick_captions(real, 1, draw.sample(k, salt=1))[0])
        if not images:
            raise ValueError(
                f"none of the {len(samples)} samples of this batch has a caption: a contrastive method pairs images with captions"
            )
        return {
            "images": torch.stack(images),
            "text": self.tokenize(captions),
            "counts": {"metric/empty_captions": float(empty), "metric/no_caption": float(skipped)},
        }

    def trainable_modules(self) -> dict[str, nn.Module]:
        """Image tower, both projections and the loss's temperature (and bias); the text encoder when trainable."""
        modules: dict[str, nn.Module] = {
            "encoder": self.encoder,
            "image_proj": self.image_proj,
            "text_proj": self.text_proj,
            "loss": self.loss_fn,
        }
        if self.text_encoder.trainable:
            modules["text_encoder"] = self.text_encoder
        return modules

    def param_groups(self) -> list[ParamGroup]:
        """Weight decay on matrices; none on biases, norms, gains, the temperature and the bias (CLIP)."""
        return weight_decay_groups(self.trainable_modules().values())

    def shard_units(self) -> list[nn.Module]:
        """Each transformer block, then its tower (a frozen text encoder stays whole on every rank)."""
        return blocks_then_modules(self.trainable_modules().values())

    def eval_encoder(self) -> nn.Module:
        return self.encoder

    def embeddings(self, batch: Mapping[str, Any]) -> Tensor:
        """The image tower's joint embeddings [B, E] of the batch (what the loss contrasts)."""
        return self.encode_image(batch["images"])
