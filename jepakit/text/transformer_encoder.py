"""A small transformer text encoder: the offline default, trainable or frozen.

Token embeddings plus fixed 1-D sin-cos positions, pre-LN timm blocks that never
attend to pad tokens, a final LayerNorm. Every caption of every image is encoded
independently: [B, N, S] ids -> [B, N, S, d_t] word embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import knob
from ..layers.pos_embed import sincos_1d
from ..layers.transformer import TransformerConfig, init_weights, layer_norm, padding_bias
from ..registry import register
from .batch import TextFeatures, TokenBatch

__all__ = ["TransformerTextConfig", "TransformerTextEncoder", "TextEncoder"]


class TextEncoder(nn.Module):
    """Base of text encoders: ``TokenBatch`` -> ``TextFeatures``; frozen ones never train."""

    #: Width d_t of the word embeddings.
    width: int
    #: Whether the optimiser updates it (a frozen encoder runs under no_grad, in eval mode).
    trainable: bool

    def train(self, mode: bool = True) -> TextEncoder:
        return super().train(mode and self.trainable)

    def freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()


@dataclass(frozen=True)
class TransformerTextConfig(TransformerConfig):
    embed_dim: int = knob(256, "word-embedding width d_t")
    depth: int = knob(4, "transformer blocks")
    num_heads: int = knob(4, "attention heads")
    vocab_size: int = knob(1000, "token-embedding rows (a recipe sets it from the tokenizer)")
    max_length: int = knob(32, "longest caption S (a recipe sets it from the tokenizer)")
    trainable: bool = knob(True, "train with the model; False: frozen at its (random or loaded) weights")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_positive("vocab_size", "max_length")


@register("text_encoder", "transformer", TransformerTextConfig)
class TransformerTextEncoder(TextEncoder):
    """Captions' token ids -> contextual word embeddings."""

    def __init__(self, cfg: TransformerTextConfig) -> None:
        super().__init__()
        self.config = cfg
        self.width = cfg.embed_dim
        self.trainable = cfg.trainable
        self.token_embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.register_buffer("pos_embed", sincos_1d(cfg.embed_dim, torch.arange(cfg.max_length)).float())
        self.blocks = cfg.make_blocks()
        self.norm = layer_norm(cfg.embed_dim)
        init_weights(self, self.blocks, cfg.init_std)
        nn.init.trunc_normal_(self.token_embed.weight, std=cfg.init_std)
        if not cfg.trainable:
            self.freeze()

    def forward(self, tokens: TokenBatch) -> TextFeatures:
        ids, mask = tokens.ids, tokens.mask
        b, n, s = ids.shape
        if s > self.config.max_length:
            raise ValueError(f"captions of {s} tokens exceed text_encoder.max_length={self.config.max_length}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size):
            raise ValueError(
                f"token ids range over [{int(ids.min())}, {int(ids.max())}], outside the "
                f"text_encoder.vocab_size={self.config.vocab_size} embedding table"
            )
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            x = self.token_embed(ids.reshape(b * n, s)) + self.pos_embed[:s]
            keys = mask.reshape(b * n, s).clone()
            keys[:, 0] |= ~keys.any(1)  # an absent caption attends to its first pad (masked later)
            bias = padding_bias(keys, x.dtype)
            for blk in self.blocks:
                x = blk(x, attn_mask=bias)
            x = self.norm(x)
        return TextFeatures(x.reshape(b, n, s, -1), mask)
