"""The pre-LN transformer stack of encoders and predictors (timm blocks), its init, masks.

Init follows I-JEPA: trunc-normal(0.02) on Linear and Conv2d weights, zero biases,
LayerNorm (1, 0); the output projections of attention and MLP in layer i (1-based)
are divided by sqrt(2 i).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from ..config import Config, ConfigError, knob

__all__ = ["TransformerConfig", "make_blocks", "init_weights", "padding_bias", "gather_tokens", "layer_norm"]

#: LayerNorm as in I-JEPA and timm ViTs.
layer_norm = partial(nn.LayerNorm, eps=1e-6)


@dataclass(frozen=True)
class TransformerConfig(Config):
    """The knobs of a pre-LN transformer stack with 2-D sin-cos positions."""

    embed_dim: int = knob(768, "token width (divisible by num_heads, and by 4 for the 2-D sin-cos positions)")
    depth: int = knob(12, "transformer blocks")
    num_heads: int = knob(12, "attention heads")
    mlp_ratio: float = knob(4.0, "MLP hidden width / embed_dim")
    qkv_bias: bool = knob(True, "bias on the query, key and value projections")
    drop_path_rate: float = knob(0.0, "stochastic depth, rising linearly to this rate in the last block")
    init_std: float = knob(0.02, "std of the truncated-normal weight init")

    def __post_init__(self) -> None:
        t = self.type_id()
        self.require_positive("embed_dim", "depth", "num_heads")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"{t}.embed_dim={self.embed_dim} is not divisible by {t}.num_heads={self.num_heads}")
        if self.embed_dim % 4:
            raise ConfigError(f"{t}.embed_dim={self.embed_dim} must be divisible by 4 (2-D sin-cos positions)")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ConfigError(f"{t}.drop_path_rate={self.drop_path_rate} must lie in [0, 1)")

    def make_blocks(self) -> nn.ModuleList:
        """The configured stack of blocks."""
        return make_blocks(self.embed_dim, self.depth, self.num_heads, self.mlp_ratio, self.qkv_bias, self.drop_path_rate)


def make_blocks(
    dim: int, depth: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path_rate: float
) -> nn.ModuleList:
    """``depth`` timm ``Block`` s (fused attention) with linearly increasing drop-path."""
    from timm.models.vision_transformer import Block

    rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
    return nn.ModuleList(
        Block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=r, norm_layer=layer_norm)
        for r in rates
    )


def init_weights(module: nn.Module, blocks: nn.ModuleList, std: float = 0.02) -> None:
    """I-JEPA initialisation of ``module``, with the depth rescaling of ``blocks``."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    with torch.no_grad():
        for i, blk in enumerate(blocks, start=1):
            blk.attn.proj.weight.div_(math.sqrt(2.0 * i))
            blk.mlp.fc2.weight.div_(math.sqrt(2.0 * i))


def padding_bias(valid: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Additive attention bias [B, 1, 1, K] that hides keys where ``valid`` [B, K] is False."""
    if valid is None:
        return None
    bias = torch.zeros(valid.shape, dtype=dtype, device=valid.device)
    return bias.masked_fill_(~valid, float("-inf"))[:, None, None, :]


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """x [B, N, D] gathered at ``index`` [B, *S] -> [B, *S, D]."""
    b, d = x.shape[0], x.shape[-1]
    flat = index.reshape(b, -1)
    out = torch.gather(x, 1, flat[..., None].expand(-1, -1, d))
    return out.reshape(*index.shape, d)
