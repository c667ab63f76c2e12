"""The pre-LN transformer stack of encoders and predictors (timm-compatible blocks), its init, masks.

Init follows I-JEPA: trunc-normal(0.02) on Linear and Conv2d weights, zero biases,
LayerNorm (1, 0); the output projections of attention and MLP in layer i (1-based)
are divided by sqrt(2 i) (``depth_rescale``; the official training undid it by
re-initialising every Linear, so the recipes turn it off). ``init="xavier"`` is MAE's
(and lightly's masked ViT's): xavier-uniform on every Linear and on the patch embedding
as a [out, in * k * k] matrix, zero biases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Config, ConfigError, at_least, in_range, knob, positive
from .rope import Rotation

__all__ = [
    "Block",
    "GeluMlp",
    "Packing",
    "TransformerConfig",
    "for_blocks",
    "gather_tokens",
    "init_weights",
    "layer_norm",
    "make_blocks",
    "masked_mean",
    "padding_bias",
]

#: LayerNorm as in I-JEPA and timm ViTs.
layer_norm = partial(nn.LayerNorm, eps=1e-6)


@dataclass(frozen=True)
class TransformerConfig(Config):
    """The knobs of a pre-LN transformer stack with 2-D sin-cos positions."""

    embed_dim: int = knob(
        768, "token width (divisible by num_heads, and by 4 for the 2-D sin-cos positions)", valid=at_least(1)
    )
    depth: int = knob(12, "transformer blocks", valid=at_least(1))
    num_heads: int = knob(12, "attention heads", valid=at_least(1))
    mlp_ratio: float = knob(4.0, "MLP hidden width / embed_dim", valid=positive())
    qkv_bias: bool = knob(True, "bias on the query, key and value projections")
    drop_path_rate: float = knob(
        0.0, "stochastic depth, rising linearly to this rate in the last block", valid=in_range(0, 1, high_open=True)
    )
    init: Literal["trunc-normal", "xavier"] = knob(
        "trunc-normal",
        "weight init of every Linear and the patch embedding: trunc-normal(init_std) (I-JEPA) or xavier-uniform "
        "(MAE; lightly's masked ViT), whose larger weights give small images richer features at init",
    )
    init_std: float = knob(0.02, "std of the truncated-normal weight init", valid=positive())
    depth_rescale: bool = knob(
        True,
        "divide block i's attention and MLP output projections by sqrt(2 i) at init (I-JEPA's model code; its "
        "training re-initialised every Linear afterwards, so the released models had none: the I-JEPA and "
        "TC-JEPA recipes set false; true by default so runs saved before the option rebuild as they were)",
    )

    def validate(self) -> None:
        t = self.type_id()
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"{t}.embed_dim={self.embed_dim} is not divisible by {t}.num_heads={self.num_heads}")
        if self.embed_dim % 4:
            raise ConfigError(f"{t}.embed_dim={self.embed_dim} must be divisible by 4 (2-D sin-cos positions)")
        if int(self.embed_dim * self.mlp_ratio) < 1:
            raise ConfigError(
                f"{t}.mlp_ratio={self.mlp_ratio} leaves the MLP no hidden unit at embed_dim={self.embed_dim}"
            )

    def offers(self) -> dict[str, tuple[Any, str]]:
        """Its token width and depth."""
        return {"width": (self.embed_dim, "embed_dim"), "depth": (self.depth, "depth")}

    def param_count(self) -> tuple[float, float]:
        """(parameters, buffer values) it builds: the blocks and a final LayerNorm (subclasses add theirs)."""
        from ..sizing import transformer_params

        return transformer_params(self.embed_dim, self.depth, self.mlp_ratio) + 2 * self.embed_dim, 0.0

    def make_blocks(self) -> nn.ModuleList:
        """The configured stack of blocks."""
        return make_blocks(
            self.embed_dim, self.depth, self.num_heads, self.mlp_ratio, self.qkv_bias, self.drop_path_rate
        )


def make_blocks(
    dim: int, depth: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path_rate: float
) -> nn.ModuleList:
    """``depth`` :class:`Block` s with linearly increasing drop-path."""
    rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
    return nn.ModuleList(Block(dim, num_heads, mlp_ratio, qkv_bias, r) for r in rates)


class Packing:
    """The valid tokens of a padded batch laid out as one [T, D] matrix, and the way back.

    Padding (``valid`` [B, L] False) only has to be hidden from the attention; every
    token-wise layer (LayerNorm, projections, MLP) computes each row on its own, so a
    :class:`Block` given a packing runs those on the T valid tokens and pads only the
    attention's q, k, v. With I-JEPA's masks a context is padded to the batch's
    longest: about a fifth of the tokens at batch 16 (measured), more at larger batches.

    Tokens before column ``split`` (the predictor's context) come first in the packed
    order, so the rows from ``split`` on (its mask tokens) are the packed rows from
    ``self.split`` on. Building it reads ``valid`` (a device sync on an accelerator).
    """

    def __init__(self, valid: Tensor, split: int = 0) -> None:
        b, n = valid.shape
        pos = torch.arange(b * n, device=valid.device).view(b, n)
        head, tail = pos[:, :split][valid[:, :split]], pos[:, split:][valid[:, split:]]
        self.shape = (b, n)
        self.valid = valid
        self.index = torch.cat([head, tail])  # packed row -> flat position in B*L
        self.sample = self.index // n  # packed row -> sample, for per-sample drop-path
        self.split = head.numel()
        self.split_column = split
        self.tail_index = self.sample[self.split :] * (n - split) + tail % n - split  # flat position in B*(L-split)
        self._bias: dict[torch.dtype, Tensor] = {}

    @classmethod
    @torch.compiler.disable  # reads values and makes data-dependent shapes: eager under torch.compile
    def of(cls, valid: Tensor | None, split: int = 0) -> Packing | None:
        """The packing of ``valid``, or None when nothing is padded."""
        if valid is None or bool(valid.all()):
            return None
        return cls(valid, split)

    def bias(self, dtype: torch.dtype) -> Tensor:
        """The additive attention bias [B, 1, 1, L] hiding the padding, in ``dtype``."""
        if dtype not in self._bias:
            bias = padding_bias(self.valid, dtype)
            assert bias is not None  # a packing exists only where something is padded
            self._bias[dtype] = bias
        return self._bias[dtype]

    def pack(self, x: Tensor, rows_from: int = 0) -> Tensor:
        """Padded [B, L - rows_from, ...] -> packed [T', ...]: all valid tokens, or those from ``split`` on."""
        index = self.index if rows_from == 0 else self._tail(rows_from)
        return _Rows.apply(x.reshape(-1, *x.shape[2:]), index, None)

    def unpack(self, x: Tensor, rows_from: int = 0) -> Tensor:
        """Inverse of :meth:`pack`, zeros at the padding."""
        b, n = self.shape
        index = self.index if rows_from == 0 else self._tail(rows_from)
        return _Rows.apply(x, index, b * (n - rows_from)).view(b, n - rows_from, *x.shape[1:])

    def _tail(self, rows_from: int) -> Tensor:
        if rows_from != self.split_column:
            raise ValueError(f"rows_from={rows_from} must be 0 or this packing's split={self.split_column}")
        return self.tail_index


def for_blocks(
    x: Tensor, valid: Tensor | None, pack: bool = True, split: int = 0
) -> tuple[Tensor, Packing | None, Tensor | None]:
    """x [B, L, D] as the blocks take it: ``(packed x, its packing, None)`` when ``pack`` and
    ``valid`` marks padding, else ``(x, None, the padding bias or None)``."""
    packing = Packing.of(valid, split) if pack else None
    if packing is None:
        return x, None, padding_bias(valid, x.dtype)
    return packing.pack(x), packing, None


class _Rows(torch.autograd.Function):
    """Rows ``index`` of x (``total`` None), or x's rows placed at ``index`` among ``total`` zero
    rows; each backward is the other. Neither keeps x for backward (torch's ``index_copy``
    keeps its source: a whole q, k, v per block)."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor, total: int | None) -> Tensor:
        ctx.save_for_backward(index)
        ctx.rows = x.shape[0] if total is None else None
        if total is None:
            return x.index_select(0, index)
        return x.new_zeros(total, *x.shape[1:]).index_copy_(0, index, x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        (index,) = ctx.saved_tensors
        if ctx.rows is None:
            return grad.index_select(0, index), None, None
        return grad.new_zeros(ctx.rows, *grad.shape[1:]).index_copy_(0, index, grad), None, None


class Block(nn.Module):
    """timm's pre-LN ViT block (the same submodules and parameter names, so weights load
    strictly into timm; fused attention), with :class:`GeluMlp`, a forward that can
    compute only the rows from ``rows_from`` on, and one over packed tokens.

    Rows before ``rows_from`` stay keys and values, but their queries, attention read-out,
    projection and MLP are skipped and they are left out of the output: the predictor's
    last layer, whose context outputs nobody reads, costs (L - rows_from) / L of a block
    there. Given a :class:`Packing`, x holds the valid tokens only and the padding is
    added around the attention alone. The forward runs through ``__call__``, so FSDP's
    hooks see it.
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

    def forward(
        self,
        x: Tensor,
        attn_mask: Tensor | None = None,
        rows_from: int = 0,
        packing: Packing | None = None,
        rotation: Rotation | None = None,
    ) -> Tensor:
        """x [B, L, D] -> [B, L - rows_from, D]; ``attn_mask`` an additive bias over the L keys;
        ``rotation`` the L tokens' rotary positions, turning queries and keys (RoPE).

        With ``packing``, x is its packed [T, D] (the packing's bias replaces ``attn_mask``)
        and the output is packed too: [T, D], or the rows from its split on. A padded x
        [B, L, D] with a packing is packed here and the output unpacked (zeros at the padding).
        """
        if packing is not None and x.dim() == 3:
            out = self.forward(packing.pack(x), attn_mask, rows_from, packing, rotation)
            return packing.unpack(out, rows_from)
        if rows_from == 0 and packing is None and rotation is None:  # timm's attention, one fused q/k/v projection
            attended = self.attn(self.norm1(x), attn_mask=attn_mask)
        else:
            attended = self._attend(self.norm1(x), rows_from, attn_mask, packing, rotation)
        sample = None  # the sample of each packed row, for drop-path
        if packing is not None:
            x, sample = (x[packing.split :], packing.sample[packing.split :]) if rows_from else (x, packing.sample)
        elif rows_from:
            x = x[:, rows_from:]
        x = x + self._drop_path(self.drop_path1, self.ls1(attended), sample, packing)
        return x + self._drop_path(self.drop_path2, self.ls2(self.mlp(self.norm2(x))), sample, packing)

    def _attend(
        self,
        h: Tensor,
        rows_from: int,
        attn_mask: Tensor | None,
        packing: Packing | None,
        rotation: Rotation | None = None,
    ) -> Tensor:
        """timm's ``Attention`` forward, with queries from row ``rows_from`` on, over packed tokens and/or with
        rotary positions."""
        attn = self.attn
        heads, hd = attn.num_heads, attn.head_dim
        d = heads * hd
        b, n = packing.shape if packing is not None else h.shape[:2]
        w, bias = attn.qkv.weight, attn.qkv.bias
        if rows_from == 0:
            qkv = F.linear(h, w, bias)
            if packing is not None:
                qkv = packing.unpack(qkv)
            q, k, v = qkv.reshape(b, n, 3, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            hq = h[packing.split :] if packing is not None else h[:, rows_from:]
            q = F.linear(hq, w[:d], None if bias is None else bias[:d])
            kv = F.linear(h, w[d:], None if bias is None else bias[d:])
            if packing is not None:
                q, kv = packing.unpack(q, rows_from), packing.unpack(kv)
            q = q.reshape(b, n - rows_from, heads, hd).transpose(1, 2)
            k, v = kv.reshape(b, n, 2, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
        if packing is not None:
            attn_mask = packing.bias(q.dtype)
        q, k = attn.q_norm(q), attn.k_norm(k)
        if rotation is not None:
            q, k = rotation(q, rows_from), rotation(k)
        dropout = attn.attn_drop.p if self.training else 0.0
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        o = o.transpose(1, 2).reshape(b, n - rows_from, d)
        if packing is not None:
            o = packing.pack(o, rows_from)
        return attn.proj_drop(attn.proj(attn.norm(o)))

    def _drop_path(self, module: Any, x: Tensor, sample: Tensor | None, packing: Packing | None) -> Tensor:
        """``module`` (timm's DropPath or Identity) on x; on packed rows (``sample`` given) with
        one draw per sample of ``packing``, as timm draws."""
        if sample is None or packing is None:
            return module(x)
        if isinstance(module, nn.Identity) or not self.training or module.drop_prob == 0.0:
            return x
        keep = 1.0 - module.drop_prob
        draw = x.new_empty(packing.shape[0]).bernoulli_(keep)
        if module.scale_by_keep:
            draw.div_(keep)
        return x * draw[sample, None]


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
    def forward(ctx, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
        if torch.is_autocast_enabled(x.device.type):  # keep the input as the linear reads it
            x = x.to(torch.get_autocast_dtype(x.device.type))
        h = F.linear(x, w1, b1)
        ctx.save_for_backward(x, h, w1, w2)
        return F.linear(F.gelu(h), w2, b2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy: Tensor) -> tuple[Tensor | None, ...]:
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


def init_weights(module: nn.Module, blocks: nn.ModuleList, cfg: TransformerConfig) -> None:
    """``cfg.init`` on every Linear and convolution of ``module`` (zero biases, LayerNorm (1, 0)), then
    the depth rescaling of ``blocks`` when ``cfg.depth_rescale``."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d)):
            if cfg.init == "xavier":  # a convolution as the matrix it applies to each flattened patch
                nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
            else:
                nn.init.trunc_normal_(m.weight, std=cfg.init_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if not cfg.depth_rescale:
        return
    with torch.no_grad():
        for i, blk in enumerate(blocks, start=1):
            block = cast(Block, blk)
            block.attn.proj.weight.div_(math.sqrt(2.0 * i))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * i))


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


def masked_mean(x: Tensor, mask: Tensor, dim: int) -> Tensor:
    """``x`` averaged over ``dim`` where ``mask`` (bool, broadcastable to ``x``) is True; zero where no
    entry is (a row of padding only)."""
    w = mask.to(x.dtype)
    return (x * w).sum(dim) / w.sum(dim).clamp_min(1.0)
