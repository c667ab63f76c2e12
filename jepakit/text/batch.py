"""Text on its way to the predictor: token ids, then word embeddings, N captions per image."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from ..layers.transformer import masked_mean

__all__ = ["TextFeatures", "TokenBatch"]


@dataclass(frozen=True)
class TokenBatch:
    """Token ids of N captions per image, padded to S.

    Attributes:
        ids: long [B, N, S].
        mask: bool [B, N, S], True on real tokens; a caption with no True is absent
            (an image with fewer than N captions), never fabricated.
        truncated: how many captions were cut to S tokens.
    """

    ids: Tensor
    mask: Tensor
    truncated: int = 0

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TokenBatch:
        return dataclasses.replace(
            self,
            ids=self.ids.to(device, non_blocking=non_blocking),
            mask=self.mask.to(device, non_blocking=non_blocking),
        )


@dataclass(frozen=True)
class TextFeatures:
    """Word embeddings of N captions per image.

    Attributes:
        tokens: float [B, N, S, d_t].
        mask: bool [B, N, S], True on real tokens (pad tokens never change a result).
    """

    tokens: Tensor
    mask: Tensor

    @property
    def caption_valid(self) -> Tensor:
        """bool [B, N]: the captions that exist."""
        return self.mask.any(-1)

    def mean(self) -> Tensor:
        """[B, N, d_t]: the mean of each caption's real word embeddings (t̄; zero for absent captions)."""
        return masked_mean(self.tokens, self.mask[..., None], -2)

    def last(self) -> Tensor:
        """[B, N, d_t]: each caption's last real token (its end-of-text token when the tokenizer appends one,
        as CLIP pools; zero for absent captions)."""
        position = (self.mask.long() * torch.arange(1, self.mask.shape[-1] + 1, device=self.mask.device)).argmax(-1)
        picked = self.tokens.gather(-2, position[..., None, None].expand(*position.shape, 1, self.tokens.shape[-1]))
        return picked[..., 0, :] * self.mask.any(-1, keepdim=True).to(self.tokens.dtype)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TextFeatures:
        return dataclasses.replace(
            self,
            tokens=self.tokens.to(device, non_blocking=non_blocking),
            mask=self.mask.to(device, non_blocking=non_blocking),
        )

    def validate(self, batch: int, text_dim: int) -> None:
        """Raise ``ValueError`` unless these are [batch, N, S, text_dim] features with a matching mask."""
        t, m = self.tokens, self.mask
        if t.ndim != 4 or t.shape[0] != batch or t.shape[-1] != text_dim:
            raise ValueError(f"text features must be [B={batch}, N, S, d_t={text_dim}]; got {tuple(t.shape)}")
        if m.shape != t.shape[:3] or m.dtype != torch.bool:
            raise ValueError(f"text mask must be bool {tuple(t.shape[:3])}; got {m.dtype} {tuple(m.shape)}")
