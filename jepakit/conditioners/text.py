"""What the text conditioners share: their config, caption pooling, and the per-pass hook.

Predictor rows are (image, target block) pairs; the hook maps rows to images. When
the rows of an image are contiguous (the predictor's layout with one mask set per
image), per-image tensors such as projected caption keys are used as they are and
the rows are viewed as [B, rows_per_image * L, D]; nothing is repeated per target
block. Otherwise per-image tensors are gathered per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..config import Config, ConfigError, Valid, at_least, knob, resolved
from ..layers.transformer import Packing, masked_mean
from ..text.batch import TextFeatures
from .base import Conditioner

__all__ = ["CaptionPool", "LayerwiseConfig", "TextConditioner", "TextConditionerConfig", "TextHook"]

Pooling = Literal["max", "mean", "attention"]


@dataclass(frozen=True)
class TextConditionerConfig(Config):
    dim: int | None = knob(None, "predictor width", follows="predictor.width", valid=at_least(1))
    text_dim: int | None = knob(None, "word-embedding width d_t", follows="text.width", valid=at_least(1))
    pooling: Pooling = knob("max", "feature-wise pooling of the N captions: max (TC-JEPA) | mean | attention")


@dataclass(frozen=True)
class LayerwiseConfig(TextConditionerConfig):
    depth: int | None = knob(None, "predictor depth", follows="predictor.depth", valid=at_least(1))
    layers: tuple[int, ...] = knob(
        (),
        "predictor layers to condition (0-based, -1 the last); empty: every layer",
        valid=Valid(lambda x: isinstance(x, tuple), "distinct layers in [-depth, depth)"),
    )

    def validate(self) -> None:
        super().validate()
        if self.depth is None:
            return  # unset: checked again once the method fills it in
        bad = [i for i in self.layers if not -self.depth <= i < self.depth]
        if bad or len(set(self.conditioned)) != len(self.layers or self.conditioned):
            raise ConfigError(
                f"{self.type_id()}.layers={self.layers}: each must be a distinct layer in "
                f"[-{self.depth}, {self.depth}) for depth={self.depth}"
            )

    @property
    def conditioned(self) -> tuple[int, ...]:
        """The conditioned layers, 0-based and ascending."""
        depth = resolved(self.depth, f"{self.type_id()}.depth")
        return tuple(sorted({i % depth for i in self.layers})) if self.layers else tuple(range(depth))


class CaptionPool(nn.Module):
    """Pool per-caption results [B, N, L, D] feature-wise over the valid captions -> [B, L, D].

    Max (TC-JEPA's choice) and mean are order-invariant; attention pooling weighs the
    captions by a learned score. Rows with no caption pool to zero.
    """

    def __init__(self, mode: Pooling, dim: int) -> None:
        super().__init__()
        self.mode = mode
        self.score = nn.Linear(dim, 1) if mode == "attention" else None

    def forward(self, x: Tensor, valid: Tensor, dim: int = 1) -> Tensor:
        """Pool ``x`` over its caption dimension ``dim`` (max and mean allow any layout;
        attention needs [B, N, L, D]); ``valid`` [B, N] marks the captions that exist."""
        if x.shape[dim] == 1:  # one caption: nothing to pool
            return torch.where(valid.view([-1] + [1] * (x.ndim - 2)), x.squeeze(dim), 0.0)
        shape = [valid.shape[0]] + [1] * (x.ndim - 1)
        shape[dim] = valid.shape[1]
        v = valid.view(shape)
        everywhere = bool(valid.all())
        if self.mode == "max":
            # max (not amax): its backward scatters through the indices instead of comparing x
            pooled = (x if everywhere else x.masked_fill(~v, float("-inf"))).max(dim).values
            if everywhere:
                return pooled
            return torch.where(valid.any(1).view([-1] + [1] * (pooled.ndim - 1)), pooled, torch.zeros_like(pooled))
        if self.mode == "mean":
            if everywhere:
                return x.mean(dim)
            return masked_mean(x, v, dim)
        assert self.score is not None and dim == 1
        logits = self.score(x).masked_fill(~v, float("-inf"))  # [B, N, L, 1]
        weights = torch.nan_to_num(logits.softmax(1))  # a row with no caption: all zero
        return (weights * x).sum(1)


class TextHook:
    """State of one predictor pass: the text, the row-to-image map, accumulated terms."""

    def __init__(self, conditioner: TextConditioner, text: TextFeatures, step: int | None) -> None:
        self.conditioner = conditioner
        self.text = text
        self.step = step
        self.sample_index: Tensor | None = None
        self.group: int | None = None  # rows per image when contiguous
        self.store: dict[str, list[Tensor]] = {}
        #: bool [units, tokens]: the real predictor tokens, not padding (None: all are real)
        self.tokens: Tensor | None = None
        #: the predictor's packing of its padded sequence, for the blocks (set by the predictor)
        self.packing: Packing | None = None

    # the predictor's calls ---------------------------------------------------------

    def input(self, x: Tensor, sample_index: Tensor) -> Tensor:
        self.sample_index = sample_index
        images, rows = self.text.tokens.shape[0], x.shape[0]
        if rows % images == 0 and torch.equal(
            sample_index, torch.arange(rows, device=sample_index.device) // (rows // images)
        ):
            self.group = rows // images
        return self.conditioner.condition_input(self, x)

    def layer(self, index: int, block: nn.Module, x: Tensor, attn_bias: Tensor | None) -> Tensor:
        if attn_bias is not None and self.tokens is None:  # the predictor's padding bias: 0 or -inf per key
            self.tokens = self.by_image(torch.isfinite(attn_bias[:, 0, 0])[..., None])[..., 0]
        return self.conditioner.condition_layer(self, index, block, x, attn_bias)

    def output(self, norm: nn.Module, x: Tensor) -> Tensor:
        return self.conditioner.condition_output(self, norm, x)

    # helpers for conditioners -----------------------------------------------------

    def per_unit(self, t: Tensor) -> Tensor:
        """A per-image tensor [B, ...] aligned with ``by_image`` (gathered per row if needed)."""
        assert self.sample_index is not None
        return t if self.group is not None else t.index_select(0, self.sample_index)

    def by_image(self, x: Tensor) -> Tensor:
        """Rows [R, L, D] -> units: [B, group * L, D] when contiguous, else unchanged."""
        return x if self.group is None else x.reshape(x.shape[0] // self.group, -1, x.shape[-1])

    def to_rows(self, y: Tensor, like: Tensor) -> Tensor:
        """Undo ``by_image``."""
        return y.reshape(like.shape)

    def has_text(self) -> Tensor:
        """bool [units]: whether a unit's image has at least one caption."""
        return self.per_unit(self.text.caption_valid.any(1))

    def keep_uncaptioned(self, conditioned: Tensor, plain: Tensor) -> Tensor:
        """``conditioned`` [units, ...] where the image has a caption, else ``plain`` (I-JEPA's)."""
        has = self.has_text()
        if bool(has.all()):
            return conditioned
        return torch.where(has.view(-1, *([1] * (plain.ndim - 1))), conditioned, plain)

    def add(self, name: str, value: Tensor) -> None:
        self.store.setdefault(name, []).append(value)


class TextConditioner(Conditioner):
    """Base of conditioners that read ``TextFeatures``; subclasses override the two actions."""

    uses_text = True
    #: pools the N captions' results (set by the subclasses that pool)
    pool: CaptionPool

    def bind(self, text: TextFeatures | None, step: int | None = None) -> TextHook | None:
        if text is None:
            return None
        text.validate(text.tokens.shape[0], self.config.text_dim)
        return TextHook(self, text, step)

    def condition_input(self, hook: TextHook, x: Tensor) -> Tensor:
        return x

    def condition_layer(self, hook: TextHook, index: int, block: Any, x: Tensor, bias: Tensor | None) -> Tensor:
        return block(x, attn_mask=bias, packing=hook.packing)

    def condition_output(self, hook: TextHook, norm: nn.Module, x: Tensor) -> Tensor:
        """The predictor's final norm on the mask tokens' rows x [R, M*Kt, D] (unconditioned here)."""
        return norm(x)
