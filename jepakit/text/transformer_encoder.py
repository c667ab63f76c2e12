"""A small transformer text encoder: the offline default, trainable or frozen.

Token embeddings plus fixed 1-D sin-cos positions, pre-LN timm-compatible blocks that never
attend to pad tokens (and, ``causal``, to no later token: CLIP's text transformer), a final LayerNorm. Every caption of every image is encoded
independently: [B, N, S] ids -> [B, N, S, d_t] word embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..config import at_least, knob, positive, resolved
from ..layers.pos_embed import sincos_1d
from ..layers.transformer import TransformerConfig, init_weights, layer_norm, padding_bias
from ..registry import register
from .batch import TextFeatures, TokenBatch
from .memo import CaptionMemo

__all__ = ["TextEncoder", "TransformerTextConfig", "TransformerTextEncoder"]


class TextEncoder(nn.Module):
    """Base of text encoders: ``TokenBatch`` -> ``TextFeatures``; frozen ones never train.

    A subclass encodes flat rows of captions (``encode_rows``); the base checks the ids,
    gives an absent caption one attended key (its output is masked later), and for a
    frozen encoder reads repeated captions from a ``CaptionMemo`` instead of encoding
    them again.
    """

    #: Width d_t of the word embeddings.
    width: int
    #: Whether the optimiser updates it (a frozen encoder runs under no_grad, in eval mode).
    trainable: bool
    #: Remembered outputs of a frozen encoder (None: off).
    memo: CaptionMemo | None = None

    def train(self, mode: bool = True) -> TextEncoder:
        return super().train(mode and self.trainable)

    def freeze(self, memo: int = 0) -> None:
        """No gradients, eval mode, and remember up to ``memo`` distinct captions (0: none)."""
        self.requires_grad_(False)
        self.eval()
        self.memo = CaptionMemo(memo) if memo else None

    def check_ids(self, ids: Tensor) -> None:
        """Raise if ``ids`` [B, N, S] cannot be encoded (length, vocabulary)."""

    def encode_rows(self, ids: Tensor, keys: Tensor) -> Tensor:
        """[M, S] token ids and attended keys (each row has one) -> [M, S, d_t] float."""
        raise NotImplementedError  # abstract: each encoder defines it

    def forward(self, tokens: TokenBatch) -> TextFeatures:
        ids, mask = tokens.ids, tokens.mask
        b, n, s = ids.shape
        self.check_ids(ids)
        keys = mask.reshape(b * n, s).clone()
        keys[:, 0] |= ~keys.any(1)  # an absent caption attends to its first pad (masked later)
        rows = ids.reshape(b * n, s)
        if self.trainable:
            x = self.encode_rows(rows, keys)
        else:
            with torch.no_grad():
                x = self.memo(rows, keys, self.encode_rows) if self.memo is not None else self.encode_rows(rows, keys)
        return TextFeatures(x.reshape(b, n, s, -1), mask)


@dataclass(frozen=True)
class TransformerTextConfig(TransformerConfig):
    embed_dim: int = knob(256, "word-embedding width d_t", valid=at_least(1))
    depth: int = knob(4, "transformer blocks", valid=at_least(1))
    num_heads: int = knob(4, "attention heads", valid=at_least(1))
    vocab_size: int | None = knob(None, "token-embedding rows", follows="tokenizer.vocab_size", valid=at_least(1))
    max_length: int | None = knob(None, "longest caption S", follows="tokenizer.max_length", valid=at_least(1))
    pos_scale: float = knob(
        1.0,
        "multiplier on the fixed sin-cos positions (rms 0.71 at 1, beside word embeddings of std init_std): "
        "pooled over a caption, positions that loud make every caption nearly the same vector (cos 0.9998 "
        "at init); CLIP's learnt positions start at std 0.01, which 0.014 matches (the contrastive recipes)",
        valid=positive(),
    )
    causal: bool = knob(
        False, "each token attends to itself and earlier tokens only (CLIP's text transformer); False: both ways"
    )
    trainable: bool = knob(True, "train with the model; False: frozen at its (random or loaded) weights")

    def offers(self) -> dict[str, tuple[Any, str]]:
        """Its width and depth, and whether it trains."""
        return super().offers() | {"trainable": (self.trainable, "trainable")}

    memo: int = knob(
        4096, "frozen: remember this many distinct captions' embeddings (0: off); repeats are read", valid=at_least(0)
    )

    def param_count(self) -> tuple[float, float]:
        """Blocks and norm, the token embedding; the position table is a buffer."""
        params, _ = super().param_count()
        return params + (self.vocab_size or 0) * self.embed_dim, float((self.max_length or 0) * self.embed_dim)


@register("text_encoder", "transformer", TransformerTextConfig)
class TransformerTextEncoder(TextEncoder):
    """Captions' token ids -> contextual word embeddings.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> from jepakit.text.batch import TokenBatch
        >>> ids = torch.randint(3, 300, (2, 2, 8), generator=torch.Generator().manual_seed(0))  # [B, N, S]
        >>> mask = torch.arange(8) < torch.tensor([[5, 8], [3, 0]])[..., None]  # the last caption is absent
        >>> encoder = create("text_encoder", "transformer", vocab_size=300, max_length=8, embed_dim=16, num_heads=2)
        >>> out = encoder(TokenBatch(ids, mask))
        >>> tuple(out.tokens.shape), bool(torch.equal(out.mask, mask))  # [B, N, S, width], the real tokens
        ((2, 2, 8, 16), True)
    """

    pos_embed: Tensor

    def __init__(self, cfg: TransformerTextConfig) -> None:
        super().__init__()
        self.config = cfg
        self.width = cfg.embed_dim
        self.trainable = cfg.trainable
        self.vocab_size = resolved(cfg.vocab_size, "text_encoder.vocab_size")
        self.max_length = resolved(cfg.max_length, "text_encoder.max_length")
        self.token_embed = nn.Embedding(self.vocab_size, cfg.embed_dim)
        self.register_buffer(
            "pos_embed", cfg.pos_scale * sincos_1d(cfg.embed_dim, torch.arange(self.max_length)).float()
        )
        self.blocks = cfg.make_blocks()
        self.norm = layer_norm(cfg.embed_dim)
        init_weights(self, self.blocks, cfg)
        nn.init.trunc_normal_(self.token_embed.weight, std=cfg.init_std)
        if not cfg.trainable:
            self.freeze(cfg.memo)

    def check_ids(self, ids: Tensor) -> None:
        s = ids.shape[-1]
        if s > self.max_length:
            raise ValueError(f"captions of {s} tokens exceed text_encoder.max_length={self.max_length}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ValueError(
                f"token ids range over [{int(ids.min())}, {int(ids.max())}], outside the "
                f"text_encoder.vocab_size={self.vocab_size} embedding table"
            )

    def encode_rows(self, ids: Tensor, keys: Tensor) -> Tensor:
        x = self.token_embed(ids) + self.pos_embed[: ids.shape[1]]
        bias = padding_bias(keys, x.dtype)
        if self.config.causal:  # no token reads a later one: [M, 1, S, S]
            s = ids.shape[1]
            later = torch.ones(s, s, dtype=torch.bool, device=ids.device).triu(1)
            bias = bias.expand(-1, -1, s, -1).masked_fill(later, float("-inf"))  # type: ignore[union-attr]
        for blk in self.blocks:
            x = blk(x, attn_mask=bias)
        return self.norm(x)
