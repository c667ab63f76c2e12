"""Cross-attention text conditioning: TC-JEPA's fine-grained ``sparse-xattn`` and ``global-xattn``.

Reference: Huang et al., "TC-JEPA", ICML 2026 (arXiv 2605.03245); facts in ``docs/methods.md``.

At each conditioned predictor layer, after the layer's block, every predictor token
(context and mask tokens) reads each caption with a light residual cross-attention,
q <- q + sum_s softmax(q_l K_l / scale)_s V_l,s with q_l = W_Q q, K_l = W_K t,
V_l = W_V t (per-layer weights, pad words masked). Only this read-out differs per
caption; the N results are pooled feature-wise (max by default), then a two-layer MLP
with a LayerNorm runs once (``per_caption_mlp`` runs it per caption before pooling).
Keys and values are projected once per image and shared by all its target blocks.

``sparse-xattn`` adds the paper's regularisers on O = relu(cos(W_Q q, W_K t)) in [0, 1]^S
(or, with ``cosine="centred-keys"``, against each caption's keys minus their mean over its words),
per token i and layer l: L_sparse = mean_i mean_l ||O_i^l||_1 and
L_consistency = mean_i mean_l ||O_i^l - mean_l O_i^l||_1 (averaged over captions too),
weighted lambda = 0.1 and beta = 0.5, computed with batched matmuls.

Dead zone: the cheapest way to lower L_sparse is to make every cosine negative; then
O = 0 and both regularisers and their gradients vanish (a prototype here went from 35%
positive entries of O to 0 within 25 steps). The fraction of positive cosines is
reported as ``metric/o_positive``; ``reg_warmup_steps`` ramps lambda and beta up from 0.
The softmax over a caption's words is unchanged when the same vector is added to all its
keys, so that move is free for prediction; centred keys remove it (the attention is the
same, and the regularisers then constrain what the attention actually sees).

``global-xattn`` is the holistic baseline: the same layer reading t̄, the mean of each
caption's word embeddings, as a single key (softmax weight 1, so the read-out is
W_V t̄ and the layer has no query or key projection); no regularisers. With
``keys="all-captions"`` it attends once over the N captions' t̄ instead (query and key
projections, the captions as the words of one caption).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from einops import rearrange
from torch import Tensor, nn

from ..config import ConfigError, at_least, knob, positive, resolved
from ..layers.transformer import GeluMlp, layer_norm
from ..registry import register
from .base import PredictorHook
from .text import CaptionPool, LayerwiseConfig, TextConditioner, TextHook

__all__ = ["GlobalXAttnConfig", "SparseXAttnConfig", "XAttnConditioner", "XAttnConfig", "sparse_regularisers"]


@dataclass(frozen=True)
class XAttnConfig(LayerwiseConfig):
    """What the cross-attention conditioners share: the MLP after the read-out."""

    mlp_ratio: float = knob(
        1.0, "hidden width / dim of the two-layer MLP after the read-out (ours: light)", valid=positive()
    )
    per_caption_mlp: bool = knob(False, "run the MLP per caption before pooling (costlier)")

    def validate(self) -> None:
        super().validate()
        if self.dim is not None and int(self.dim * self.mlp_ratio) < 1:
            raise ConfigError(
                f"{self.type_id()}.mlp_ratio={self.mlp_ratio} leaves the MLP no hidden unit at dim={self.dim}"
            )

    def attends(self) -> bool:
        """Whether the layer attends over several keys (query and key projections exist); here
        not: each caption is one key."""
        return False

    def attention(self) -> tuple[int, float | None]:
        """(heads, logit scale or None for 1/sqrt(head width)) of the read-out: one head here."""
        return 1, None

    def param_count(self) -> tuple[float, float]:
        """Per conditioned layer: the value projection (and query and key when it attends), MLP, norm."""
        d, t = self.dim or 0, self.text_dim or 0
        qk = d * d + d * t if self.attends() else 0
        hidden = d * self.mlp_ratio
        pool = d + 1 if self.pooling == "attention" else 0
        return len(self.conditioned) * (qk + d * t + 2 * d * hidden + hidden + 3 * d + pool), 0.0


@dataclass(frozen=True)
class GlobalXAttnConfig(XAttnConfig):
    keys: Literal["each-caption", "all-captions"] = knob(
        "each-caption",
        "each-caption: each caption's t̄ is the one key of its own read-out, the N read-outs max-pooled (the "
        "paper's baseline); all-captions: one attention over the N captions' t̄ (a stronger holistic reading)",
    )

    def attends(self) -> bool:
        return self.keys == "all-captions"


@dataclass(frozen=True)
class SparseXAttnConfig(XAttnConfig):
    num_heads: int = knob(1, "cross-attention heads (the paper's equation: 1)", valid=at_least(1))
    scale: float | None = knob(None, "attention logit scale; None: 1/sqrt(head width) (ours)", valid=positive())
    sparse_weight: float = knob(0.1, "lambda, weight of L_sparse (TC-JEPA: 0.1)", valid=at_least(0))
    consistency_weight: float = knob(0.5, "beta, weight of L_consistency (TC-JEPA: 0.5)", valid=at_least(0))
    reg_warmup_steps: int = knob(0, "steps over which lambda and beta ramp up from 0 (0: none)", valid=at_least(0))
    cosine: Cosine = knob(
        "keys",
        "what O's cosines compare each query with: keys (the paper's text, cos(q, K); W_K can turn every "
        "cosine negative at no cost, which kills both terms) or centred-keys (cos(q, K - mean over the "
        "caption's words of K), what the softmax sees: the same attention, no degenerate minimiser)",
    )

    reg_grad: Literal["all", "attention"] = knob(
        "all",
        "what the regularisers train: all (the paper: through the queries into predictor and encoder too) or "
        "attention (W_Q and W_K only: the queries' inputs are detached, so the terms shape the attention, not "
        "the features)",
    )

    def attends(self) -> bool:
        return True

    def attention(self) -> tuple[int, float | None]:
        return self.num_heads, self.scale

    def validate(self) -> None:
        super().validate()
        if self.dim is not None and self.dim % self.num_heads:
            raise ConfigError(f"{self.type_id()}.dim={self.dim} is not divisible by num_heads={self.num_heads}")


Cosine = Literal["keys", "centred-keys"]

#: Elements of per-caption read-outs computed at once (about 8 MB of float32).
_CHUNK = 2**21


def sparse_regularisers(o: Tensor, captions: Tensor, tokens: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(L_sparse, L_consistency) from O [layers, U, L, N, S], the captions that exist [U, N]
    and the real predictor tokens [U, L] (None: all).

    L_sparse = mean over tokens, captions and layers of ||O||_1; L_consistency the same
    of ||O^l - mean_l O||_1. Absent captions and padding tokens do not count.
    """
    weight = captions.to(o.dtype)[None, :, None, :].expand(o.shape[:4])
    if tokens is not None:
        weight = weight * tokens.to(o.dtype)[None, :, :, None]
    denom = weight.sum().clamp_min(1.0)
    sparse = (o.sum(-1) * weight).sum() / denom
    consistency = ((o - o.mean(0, keepdim=True)).abs().sum(-1) * weight).sum() / denom
    return sparse, consistency


class XAttnLayer(nn.Module):
    """One layer's residual read-out of the captions, caption pooling, then MLP + LayerNorm.

    With ``attend`` the read-out is a cross-attention over each caption's words; without
    it each caption is a single key (t̄), whose softmax weight is 1, so the read-out is
    W_V t̄ and no query or key projection exists.
    """

    def __init__(self, cfg: XAttnConfig, attend: bool) -> None:
        super().__init__()
        self.heads, self.scale = cfg.attention()
        self.per_caption_mlp = cfg.per_caption_mlp
        dim, text_dim = resolved(cfg.dim, "conditioner.dim"), resolved(cfg.text_dim, "conditioner.text_dim")
        self.q = nn.Linear(dim, dim, bias=False) if attend else None
        self.k = nn.Linear(text_dim, dim, bias=False) if attend else None
        self.v = nn.Linear(text_dim, dim, bias=False)
        self.pool = CaptionPool(cfg.pooling, dim)
        self.norm = layer_norm(dim)
        self.mlp = GeluMlp(dim, int(dim * cfg.mlp_ratio))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(
        self, x: Tensor, text: Tensor, words: Tensor, captions: Tensor
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
        """x [U, L, D] reads ``text`` [U, N, S, d_t] (``words`` bool [U, N, S] marks real words,
        ``captions`` bool [U, N] the captions that exist). Returns the new x, the projected
        queries [U, L, D], keys [U, N, S, D] and their dot products [U, L, N*S] over the full
        width (None without attention), from which the regularisers' cosines follow."""
        u, n, s, _ = text.shape
        length, d = x.shape[1], x.shape[2]
        v = self.v(text)  # [U, N, S, D]: once per image, shared by its target blocks
        h, dh = self.heads, d // self.heads
        q = k = dot = None
        if self.q is None or self.k is None:

            def reads(i: int, j: int) -> Tensor:  # t̄ is the only key: weight 1, the read-out is V t̄
                return v[i:j].view(-1, 1, n, 1, d)

        else:
            q, k = self.q(x), self.k(text)
            # all captions' keys in one batched matmul: [U, h, L, N*S]
            qh = rearrange(q, "u l (h d) -> u h l d", h=h)
            kh = rearrange(k, "u n s (h d) -> u h d (n s)", h=h)
            raw = qh @ kh
            dot = raw[:, 0] if h == 1 else raw.sum(1)
            scores = raw * (self.scale if self.scale is not None else dh**-0.5)
            keys = words.clone()
            keys[..., 0] |= ~keys.any(-1)  # an absent caption attends to a pad; it is pooled out below
            scores = scores.masked_fill(~keys.view(u, 1, 1, n * s), float("-inf"))
            attn = scores.view(u, h, length, n, s).softmax(-1).transpose(2, 3).contiguous()  # [U, h, N, L, S]
            vh = rearrange(v, "u n s (h d) -> u h n s d", h=h).contiguous()

            def reads(i: int, j: int) -> Tensor:  # per-caption read-outs [j - i, h, N, L, dh]
                return attn[i:j] @ vh[i:j]

        if self.per_caption_mlp or self.pool.mode == "attention":
            per_caption = rearrange(reads(0, u).expand(u, h, n, length, dh), "u h n l d -> u n l (h d)")
            if self.per_caption_mlp:
                y = x[:, None] + per_caption
                return self.pool(y + self.mlp(self.norm(y)), captions), q, k, dot
            pooled = self.pool(per_caption, captions)
        else:
            # Max / mean are per feature, so pool in the heads layout, a few units at a time:
            # the per-caption read-outs ([U, N, L, D], the largest tensor here) then stay in
            # cache and are never stored; backward keeps only the pooling indices.
            step = max(1, _CHUNK // (h * n * length * dh))
            pooled = torch.cat(
                [self.pool(reads(i, i + step), captions[i : i + step], dim=2) for i in range(0, u, step)]
            )
            pooled = rearrange(pooled.expand(u, h, length, dh), "u h l d -> u l (h d)")
        y = x + pooled
        return y + self.mlp(self.norm(y)), q, k, dot


class XAttnConditioner(TextConditioner):
    """Cross-attention from every predictor token to the captions at the chosen layers."""

    config: XAttnConfig

    def __init__(self, cfg: XAttnConfig) -> None:
        super().__init__(cfg)
        self.layers = nn.ModuleDict({str(i): XAttnLayer(cfg, cfg.attends()) for i in cfg.conditioned})

    def words(self, hook: TextHook) -> tuple[Tensor, Tensor]:
        """What the layers read: word embeddings and their mask (t̄ as one word for global)."""
        return hook.text.tokens, hook.text.mask

    def condition_layer(self, hook: TextHook, index: int, block: Any, x: Tensor, bias: Tensor | None) -> Tensor:
        x = block(x, attn_mask=bias, packing=hook.packing)
        layer = cast(XAttnLayer, self.layers[str(index)]) if str(index) in self.layers else None
        if layer is None:
            return x
        text, words = self.words(hook)
        text, words = hook.per_unit(text), hook.per_unit(words)
        units = hook.by_image(x)
        out, q, k, dot = layer(units, text, words, words.any(-1))
        if q is not None and k is not None and dot is not None:
            self.regularise(hook, layer, units, q, k, dot, words)
        out = hook.keep_uncaptioned(out, units)
        return hook.to_rows(out, x)

    def regularise(
        self, hook: TextHook, layer: XAttnLayer, x: Tensor, q: Tensor, k: Tensor, dot: Tensor, words: Tensor
    ) -> None:
        """Record what the regularisers need from ``layer``'s queries q = W_Q x [U, L, D], keys
        [U, N, S, D] and their products [U, L, N*S] (nothing for the holistic baseline)."""


@register("conditioner", "global-xattn", GlobalXAttnConfig)
class GlobalXAttnConditioner(XAttnConditioner):
    """Holistic baseline: cross-attention to t̄ at every layer, one key per caption (or, with
    ``keys="all-captions"``, one attention over the N captions' t̄ as one caption of N words).

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> from jepakit.text.batch import TextFeatures
        >>> conditioner = create("conditioner", "global-xattn", dim=16, text_dim=4, depth=1)
        >>> hook = conditioner.bind(TextFeatures(torch.randn(3, 2, 5, 4), torch.ones(3, 2, 5, dtype=torch.bool)))
        >>> tuple(conditioner.words(hook)[0].shape)  # one key per caption: its words' mean, [B, N, 1, d_t]
        (3, 2, 1, 4)
    """

    config: GlobalXAttnConfig

    def words(self, hook: TextHook) -> tuple[Tensor, Tensor]:
        if self.config.keys == "all-captions":
            return hook.text.mean()[:, None], hook.text.caption_valid[:, None]
        return hook.text.mean()[:, :, None], hook.text.caption_valid[:, :, None]


@register("conditioner", "sparse-xattn", SparseXAttnConfig)
class SparseXAttnConditioner(XAttnConditioner):
    """TC-JEPA's fine-grained conditioner with the sparsity and consistency regularisers.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> from jepakit.text.batch import TextFeatures
        >>> g = torch.Generator().manual_seed(0)
        >>> text = TextFeatures(torch.randn(2, 3, 5, 16, generator=g), torch.ones(2, 3, 5, dtype=torch.bool))  # [B, N, S, d_t]
        >>> predictor = create("predictor", "vit-predictor", embed_dim=32, depth=2, num_heads=2, encoder_dim=48)
        >>> z, context = torch.randn(2, 4, 48, generator=g), torch.tensor([[0, 1, 2, 5], [3, 4, 8, 9]])
        >>> targets = torch.tensor([[[6, 7], [10, 11]], [[0, 1], [12, 13]]])
        >>> conditioner = create("conditioner", "sparse-xattn", dim=32, text_dim=16, depth=2)
        >>> hook = conditioner.bind(text, step=0)  # one pass's hook: every predictor layer attends to the words
        >>> tuple(predictor(z, context, targets, (4, 4), hook=hook).shape)
        (2, 2, 2, 48)
        >>> sorted(conditioner.losses(hook))  # the regularisers the pass accumulated
        ['consistency', 'sparse']
    """

    config: SparseXAttnConfig

    def regularise(
        self, hook: TextHook, layer: XAttnLayer, x: Tensor, q: Tensor, k: Tensor, dot: Tensor, words: Tensor
    ) -> None:
        # O = relu(cos(q, K)) [U, L, N, S] from the attention's own q.k products (never [U, L, S, D]).
        u, n, s, _ = k.shape
        if self.config.reg_grad == "attention":  # the same O, whose gradient reaches W_Q and W_K only
            assert layer.q is not None  # a sparse-xattn layer attends
            q = layer.q(x.detach())
            dot = q @ k.flatten(1, 2).transpose(1, 2)
        dots = dot.view(u, -1, n, s)
        if self.config.cosine == "centred-keys":  # K - K̄ per caption: q.(K - K̄) = q.K - q.K̄
            real_words = words[..., None].to(k.dtype)  # [U, N, S, 1]
            mean = (k * real_words).sum(2) / real_words.sum(2).clamp_min(1)  # [U, N, D]
            k = k - mean[:, :, None]
            dots = dots - (q @ mean.transpose(1, 2))[..., None]
        eps = 1e-12  # as F.normalize
        norms = q.norm(dim=-1).clamp_min(eps)[:, :, None, None] * k.norm(dim=-1).clamp_min(eps)[:, None]
        cos = dots / norms
        real = words[:, None]  # [U, 1, N, S]
        if hook.tokens is not None:  # padding (a context shorter than the batch's longest) is no token
            real = real & hook.tokens[:, :, None, None]
        hook.add("o", cos.clamp_min(0) * real)
        hook.add("positive", ((cos > 0) & real).sum() / real.expand_as(cos).sum().clamp_min(1))

    def ramp(self, step: int | None) -> float:
        warm = self.config.reg_warmup_steps
        return 1.0 if warm == 0 or step is None else min(max(step, 0) / warm, 1.0)

    def losses(self, hook: PredictorHook | None) -> dict[str, Tensor]:
        if not isinstance(hook, TextHook) or "o" not in hook.store:
            return {}
        sparse, consistency = sparse_regularisers(
            torch.stack(hook.store["o"]), hook.per_unit(hook.text.caption_valid), hook.tokens
        )
        r = self.ramp(hook.step)
        return {
            "sparse": self.config.sparse_weight * r * sparse,
            "consistency": self.config.consistency_weight * r * consistency,
        }

    def metrics(self, hook: PredictorHook | None) -> dict[str, Tensor]:
        if not isinstance(hook, TextHook) or "positive" not in hook.store:
            return {}
        return {"metric/o_positive": torch.stack(hook.store["positive"]).mean().detach()}
