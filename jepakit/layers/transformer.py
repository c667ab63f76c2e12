"""The pre-LN transformer stack of encoders and predictors (timm-compatible blocks), its init, masks.

Init follows I-JEPA: trunc-normal(0.02) on Linear and Conv2d weights, zero biases,
LayerNorm (1, 0); the output projections of attention and MLP in layer i (1-based)
are divided by sqrt(2 i).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Config, ConfigError, knob

__all__ = [
    "TransformerConfig", "Block", "GeluMlp", "make_blocks", "init_weights", "padding_bias", "gather_tokens", "layer_norm"
]

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
    """``depth`` :class:`Block` s with linearly increasing drop-path."""
    rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
    return nn.ModuleList(Block(dim, num_heads, mlp_ratio, qkv_bias, r) for r in rates)


class Block(nn.Module):
    """timm's pre-LN ViT block (the same submodules and parameter names, so weights load
    strictly into timm; fused attention), with :class:`GeluMlp` and a forward that can
    compute only the rows from ``rows_from`` on.

    Rows before ``rows_from`` stay keys and values, but their queries, attention read-out,
    projection and MLP are skipped and they are left out of the output: the predictor's
    last layer, whose context outputs nobody reads, costs (L - rows_from) / L of a block
    there. The forward runs through ``__call__``, so FSDP's hooks see it.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path: float) -> None:
        super().__init__()
        from timm.layers import Attention, DropPath

        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.ls1 = nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = layer_norm(dim)
        self.mlp = GeluMlp(dim, int(dim * mlp_ratio))
        self.ls2 = nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, rows_from: int = 0) -> Tensor:
        """x [B, L, D] -> [B, L - rows_from, D]; ``attn_mask`` an additive bias over the L keys."""
        if rows_from == 0:
            x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), attn_mask=attn_mask)))
        else:
            x = x[:, rows_from:] + self.drop_path1(self.ls1(self._attend_rows(self.norm1(x), rows_from, attn_mask)))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))

    def _attend_rows(self, h: Tensor, start: int, attn_mask: Tensor | None) -> Tensor:
        """timm's ``Attention`` forward with queries from rows ``start:`` only."""
        attn = self.attn
        b, n, _ = h.shape
        heads, hd = attn.num_heads, attn.head_dim
        d = heads * hd
        w, bias = attn.qkv.weight, attn.qkv.bias
        q = F.linear(h[:, start:], w[:d], None if bias is None else bias[:d])
        kv = F.linear(h, w[d:], None if bias is None else bias[d:])
        q = attn.q_norm(q.reshape(b, n - start, heads, hd).transpose(1, 2))
        k, v = kv.reshape(b, n, 2, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
        dropout = attn.attn_drop.p if self.training else 0.0
        o = F.scaled_dot_product_attention(q, attn.k_norm(k), v, attn_mask=attn_mask, dropout_p=dropout)
        return attn.proj_drop(attn.proj(attn.norm(o.transpose(1, 2).reshape(b, n - start, d))))


class GeluMlp(nn.Module):
    """timm's ``Mlp`` (fc1, exact GELU, fc2; the same parameter names) that keeps the hidden
    pre-activation for the backward pass but not the GELU output, which the backward
    recomputes: about a quarter less activation memory per block for one elementwise
    GELU (``_GeluMlpFunction``; gradients equal timm's, also under autocast, tested)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            return self.fc2(self.act(self.fc1(x)))
        return _GeluMlpFunction.apply(x, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)


class _GeluMlpFunction(torch.autograd.Function):
    """fc2(gelu(fc1(x))) saving x and fc1(x) only; the backward recomputes gelu(fc1(x)).

    Under autocast the forward's linears run in the autocast dtype, which fc1's output
    carries; the backward computes in that dtype as autocast's own backward would (the
    engine casts each gradient to its input's dtype)."""

    @staticmethod
    def forward(ctx, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:  # type: ignore[override]
        if torch.is_autocast_enabled(x.device.type):  # keep the input as the linear reads it
            x = x.to(torch.get_autocast_dtype(x.device.type))
        h = F.linear(x, w1, b1)
        ctx.save_for_backward(x, h, w1, w2)
        return F.linear(F.gelu(h), w2, b2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, h, w1, w2 = ctx.saved_tensors
        x, w1, w2, gy = (t.to(h.dtype) for t in (x, w1, w2, gy))
        need_x, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad
        gy2 = gy.reshape(-1, gy.shape[-1])
        gw2 = gy2.t() @ F.gelu(h).reshape(-1, h.shape[-1]) if need_w2 else None
        gb2 = gy2.sum(0) if need_b2 else None
        gh = torch.ops.aten.gelu_backward(gy @ w2, h)
        gh2 = gh.reshape(-1, gh.shape[-1])
        gw1 = gh2.t() @ x.reshape(-1, x.shape[-1]) if need_w1 else None
        gb1 = gh2.sum(0) if need_b1 else None
        gx = gh @ w1 if need_x else None
        return gx, gw1, gb1, gw2, gb2


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
