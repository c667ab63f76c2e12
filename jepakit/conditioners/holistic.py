"""Holistic text conditioning on t̄ (a caption's mean word embedding): TC-JEPA's baselines.

Reference: Huang et al., "TC-JEPA", ICML 2026, ablations. The N captions' t̄ are
pooled feature-wise first (max by default; ours: pooling before conditioning keeps
these baselines as cheap as the paper describes them), giving one vector per image.

- ``adaln``: t̄ gives the scale and shift of both LayerNorms of each conditioned
  predictor block and of the predictor's final LayerNorm (AdaLN, as in DiT; the paper
  modulates every predictor LayerNorm), from zero-initialised projections, so training
  starts as I-JEPA.
- ``feature``: input level only: z <- z + MLP(LN([z, t̄])) for context and mask tokens.

Images without any caption are left exactly as I-JEPA would see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..config import ConfigError, knob, positive, resolved
from ..layers.transformer import GeluMlp, layer_norm
from ..registry import register
from .text import CaptionPool, LayerwiseConfig, TextConditioner, TextConditionerConfig, TextHook

__all__ = ["AdaLNConditioner", "AdaLNConfig", "FeatureConditioner", "FeatureConfig"]


def pooled_mean(cond: TextConditioner, hook: TextHook) -> Tensor:
    """[units, d_t]: t̄ pooled over each image's captions."""
    text = hook.text
    return hook.per_unit(cond.pool(text.mean()[:, :, None], text.caption_valid)[:, 0])


@dataclass(frozen=True)
class AdaLNConfig(LayerwiseConfig):
    final_norm: bool = knob(
        True,
        "t̄ also modulates the predictor's final LayerNorm (the paper: every predictor LayerNorm; configs saved "
        "before schema 3 read false, what they ran)",
    )

    def param_count(self) -> tuple[float, float]:
        """A (d_t -> 4 d) modulation per conditioned layer, (d_t -> 2 d) for the final norm."""
        t = self.text_dim or 0
        pool = t + 1 if self.pooling == "attention" else 0
        final = 2 * (self.dim or 0) * (t + 1) if self.final_norm else 0
        return len(self.conditioned) * 4 * (self.dim or 0) * (t + 1) + final + pool, 0.0


@register("conditioner", "adaln", AdaLNConfig)
class AdaLNConditioner(TextConditioner):
    """t̄ modulates the LayerNorms of the predictor blocks (zero-initialised).

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> from jepakit.text.batch import TextFeatures
        >>> pred = create("predictor", "vit-predictor", embed_dim=16, depth=2, num_heads=2, encoder_dim=8)
        >>> adaln = create("conditioner", "adaln", dim=16, text_dim=4, depth=2)
        >>> text = TextFeatures(torch.randn(1, 2, 3, 4), torch.ones(1, 2, 3, dtype=torch.bool))
        >>> args = (torch.randn(1, 3, 8), torch.tensor([[0, 1, 2]]), torch.tensor([[[3]]]), (2, 2))
        >>> bool(torch.equal(pred(*args, hook=adaln.bind(text)), pred(*args)))  # zero-initialised: I-JEPA at first
        True
    """

    config: AdaLNConfig

    def __init__(self, cfg: AdaLNConfig) -> None:
        super().__init__(cfg)
        dim, text_dim = resolved(cfg.dim, "conditioner.dim"), resolved(cfg.text_dim, "conditioner.text_dim")
        self.pool = CaptionPool(cfg.pooling, text_dim)
        layers = {str(i): nn.Linear(text_dim, 4 * dim) for i in cfg.conditioned}
        self.final = nn.Linear(text_dim, 2 * dim) if cfg.final_norm else None
        for lin in [*layers.values(), *([self.final] if self.final is not None else [])]:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.modulation = nn.ModuleDict(layers)

    def modulate(self, hook: TextHook, linear: nn.Module, chunks: int) -> tuple[Tensor, ...]:
        """(scale, shift, ...) [units, 1, D] from t̄ (zero for images without a caption)."""
        mod = linear(pooled_mean(self, hook)) * hook.has_text()[:, None]
        return mod[:, None].chunk(chunks, dim=-1)

    def condition_output(self, hook: TextHook, norm: nn.Module, x: Tensor) -> Tensor:
        if self.final is None:
            return norm(x)
        scale, shift = self.modulate(hook, self.final, 2)
        return hook.to_rows(hook.by_image(norm(x)) * (1 + scale) + shift, x)

    def condition_layer(self, hook: TextHook, index: int, block: Any, x: Tensor, bias: Tensor | None) -> Tensor:
        if str(index) not in self.modulation:
            return block(x, attn_mask=bias, packing=hook.packing)
        scale1, shift1, scale2, shift2 = self.modulate(hook, self.modulation[str(index)], 4)

        def norm(ln: Any, y: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
            return hook.to_rows(hook.by_image(ln(y)) * (1 + scale) + shift, y)

        x = x + block.drop_path1(block.ls1(block.attn(norm(block.norm1, x, scale1, shift1), attn_mask=bias)))
        return x + block.drop_path2(block.ls2(block.mlp(norm(block.norm2, x, scale2, shift2))))


@dataclass(frozen=True)
class FeatureConfig(TextConditionerConfig):
    mlp_ratio: float = knob(1.0, "hidden width / dim of the input MLP", valid=positive())

    def validate(self) -> None:
        super().validate()
        if self.dim is not None and int(self.dim * self.mlp_ratio) < 1:
            raise ConfigError(
                f"{self.type_id()}.mlp_ratio={self.mlp_ratio} leaves the MLP no hidden unit at dim={self.dim}"
            )

    def param_count(self) -> tuple[float, float]:
        """LayerNorm and MLP over [z, t̄]."""
        d, width = self.dim or 0, (self.dim or 0) + (self.text_dim or 0)
        hidden = d * self.mlp_ratio
        pool = (self.text_dim or 0) + 1 if self.pooling == "attention" else 0
        return 2 * width + width * hidden + hidden + hidden * d + d + pool, 0.0


@register("conditioner", "feature", FeatureConfig)
class FeatureConditioner(TextConditioner):
    """Input-level conditioning: z <- z + MLP(LN([z, t̄])) on every predictor token.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> from jepakit.text.batch import TextFeatures
        >>> words = TextFeatures(torch.ones(1, 2, 3, 8), torch.ones(1, 2, 3, dtype=torch.bool))  # [B, N, S, d_t]
        >>> predictor = create("predictor", "vit-predictor", embed_dim=16, depth=1, num_heads=2, encoder_dim=24)
        >>> z, index = torch.zeros(1, 2, 24), torch.tensor([[0, 1]])
        >>> hook = create("conditioner", "feature", dim=16, text_dim=8).bind(words)
        >>> targets = torch.tensor([[[2, 3]]])
        >>> hooked, plain = (predictor(z, index, targets, (2, 2), hook=h) for h in (hook, None))
        >>> tuple(hooked.shape), bool(torch.allclose(hooked, plain))  # the text moves the predictions from the start
        ((1, 1, 2, 24), False)
    """

    config: FeatureConfig

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__(cfg)
        dim, text_dim = resolved(cfg.dim, "conditioner.dim"), resolved(cfg.text_dim, "conditioner.text_dim")
        width = dim + text_dim
        self.pool = CaptionPool(cfg.pooling, text_dim)
        self.norm = layer_norm(width)
        self.mlp = GeluMlp(width, int(dim * cfg.mlp_ratio), out_features=dim)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def condition_input(self, hook: TextHook, x: Tensor) -> Tensor:
        units = hook.by_image(x)
        t = pooled_mean(self, hook)[:, None].expand(-1, units.shape[1], -1)
        out = units + self.mlp(self.norm(torch.cat([units, t], dim=-1)))
        return hook.to_rows(hook.keep_uncaptioned(out, units), x)
