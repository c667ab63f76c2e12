"""The I-JEPA narrow ViT predictor.

Reference: Assran et al., I-JEPA, CVPR 2023 (``VisionTransformerPredictor``).

Context tokens are projected to the predictor width and given their sin-cos
positions; each target block contributes one learnable mask token per target patch
plus that patch's position. The context is repeated once per target block and
concatenated with the block's mask tokens; after the blocks, a LayerNorm and a
projection back to the encoder width (or to ``out_dim``: a patch's pixels as an MAE decoder) give
the predictions at the mask tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..conditioners.base import PredictorHook
from ..config import at_least, knob, resolved
from ..encoders.vit import check_index
from ..layers.pos_embed import Layout3D, sincos_grid
from ..layers.rope import Positions, Rotation, rotary
from ..layers.transformer import (
    Packing,
    TransformerConfig,
    for_blocks,
    gather_tokens,
    init_weights,
    layer_norm,
    padding_bias,
)
from ..registry import register

__all__ = ["ViTPredictor", "ViTPredictorConfig"]


@dataclass(frozen=True)
class ViTPredictorConfig(TransformerConfig):
    embed_dim: int = knob(384, "predictor width (I-JEPA: 384; divisible by num_heads and by 4)", valid=at_least(1))
    depth: int = knob(6, "transformer blocks (I-JEPA: 6 for ViT-B, 12 for L and H, 16 for G)", valid=at_least(1))
    num_heads: int = knob(12, "attention heads (I-JEPA: the encoder's)", valid=at_least(1))
    encoder_dim: int | None = knob(
        None, "width of the encoder tokens read and predicted", follows="encoder.width", valid=at_least(1)
    )
    out_dim: int | None = knob(
        None,
        "width of the predictions: the targets' (encoder tokens: encoder_dim; pixel targets: patch_size**2 x channels)",
        follows="target.width",
        valid=at_least(1),
        required=False,
    )
    video_positions: Layout3D | None = knob(
        None,
        "a clip's 3-D sin-cos positions, as the encoder's (None: thirds, V-JEPA's)",
        follows="encoder.video_positions",
        required=False,
    )
    positions: Positions | None = knob(
        None,
        "how the tokens know their place, as the encoder's: sincos, rope or rope-vjepa2 (None: sincos)",
        follows="encoder.positions",
        required=False,
    )
    mask_tokens: int = knob(
        1,
        "learnable mask tokens: one, or one per mask generator (V-JEPA: 2; V-JEPA 2 keeps 10), the rows of the "
        "g-th repeat of the masks reading token g",
        valid=at_least(1),
    )
    mask_token_init: Literal["trunc-normal", "zeros"] = knob(
        "trunc-normal", "the mask tokens' initial value: trunc-normal(init_std) (I-JEPA) or zeros (V-JEPA)"
    )

    def param_count(self) -> tuple[float, float]:
        """Blocks and norm, the input and output projections, the mask token."""
        params, _ = super().param_count()
        width, enc = self.embed_dim, self.encoder_dim or self.embed_dim
        out = self.out_dim or enc
        return params + enc * width + width + out * width + out + width, 0.0


@register("predictor", "vit-predictor", ViTPredictorConfig)
class ViTPredictor(nn.Module):
    """Predict the encoder's tokens at target patches from the context tokens.

    Shapes: context tokens [R, Kc, encoder_dim] at patch indices [R, Kc], target indices [R, M, Kt] of
    M blocks on a grid -> predictions [R, M, Kt, encoder_dim] (``forward`` has the padding and repeats).

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> pred = create("predictor", "vit-predictor", embed_dim=32, depth=1, num_heads=2, encoder_dim=48)
        >>> z, context = torch.randn(2, 4, 48), torch.tensor([[0, 1, 2, 5], [3, 4, 8, 9]])
        >>> targets = torch.tensor([[[6, 7], [10, 11]], [[0, 1], [12, 13]]])  # 2 blocks of 2 patches each
        >>> tuple(pred(z, context, targets, (4, 4)).shape)
        (2, 2, 2, 48)
    """

    def __init__(self, cfg: ViTPredictorConfig) -> None:
        super().__init__()
        self.config = cfg
        encoder_dim = resolved(cfg.encoder_dim, "predictor.encoder_dim")
        self.predictor_embed = nn.Linear(encoder_dim, cfg.embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(cfg.mask_tokens, 1, cfg.embed_dim))
        self.blocks = cfg.make_blocks()
        self.predictor_norm = layer_norm(cfg.embed_dim)
        self.predictor_proj = nn.Linear(cfg.embed_dim, cfg.out_dim or encoder_dim)
        init_weights(self, self.blocks, cfg)
        if cfg.mask_token_init == "trunc-normal":
            nn.init.trunc_normal_(self.mask_token, std=cfg.init_std)
        self._pos_cache: dict[tuple[tuple[int, ...], torch.device], Tensor] = {}
        #: run the blocks on the valid tokens only (see ``Packing``; with a hook, when it takes
        #: a ``packing``); False computes the padding too (the same predictions), for comparison
        self.pack_tokens = True

    def _mask_tokens(self, rows: int, m: int, repeats: int) -> Tensor:
        """The mask token of each of the ``rows * m`` query sequences: the one token, or with several the
        token of each row's repeat (its mask generator g reads token g: rows are generator-major; V-JEPA 2's
        predictor keeps more tokens than it has generators), [1 or R*M, 1, width]."""
        count = self.mask_token.shape[0]
        if count == 1:
            return self.mask_token
        if repeats > count:
            raise ValueError(
                f"predictor.mask_tokens={count}: one token per mask generator, and the masks come in {repeats} repeats"
            )
        generator = torch.arange(rows, device=self.mask_token.device) // (rows // repeats)
        return self.mask_token[generator].repeat_interleave(m, dim=0)

    def pos_embed_for(self, grid: tuple[int, ...], device: torch.device) -> Tensor:
        """[1, prod(grid), width] sin-cos positions of a 2-D or 3-D ``grid`` (cached)."""
        key = (tuple(grid), device)
        if key not in self._pos_cache:
            layout = self.config.video_positions or "thirds"
            self._pos_cache[key] = sincos_grid(self.config.embed_dim, tuple(grid), layout)[None].to(device)
        return self._pos_cache[key]

    def forward(
        self,
        z: Tensor,
        context: Tensor,
        targets: Tensor,
        grid: tuple[int, ...],
        context_valid: Tensor | None = None,
        targets_valid: Tensor | None = None,
        repeats: int = 1,
        hook: PredictorHook | None = None,
    ) -> Tensor:
        """Predict target tokens.

        Args:
            z: context tokens [R, Kc, encoder_dim] from the encoder.
            context: long [R, Kc], their patch indices; ``context_valid`` marks padding.
            targets: long [R, M, Kt], patch indices of M target blocks; ``targets_valid``.
            grid: the patch grid, (H, W) or (T, H, W) for clips, the indices refer to.
            repeats: rows per image (row r belongs to image r % (R / repeats)).
            hook: a conditioner's hook, called on the input and at every layer.

        Returns:
            predictions [R, M, Kt, out_dim or encoder_dim].
        """
        rows, kc, _ = z.shape
        if z.shape[-1] != self.config.encoder_dim:
            raise ValueError(
                f"predictor expects encoder tokens of width encoder_dim={self.config.encoder_dim}; got {z.shape[-1]}"
            )
        if targets.ndim != 3 or targets.shape[0] != rows:
            raise ValueError(f"targets must be long [R={rows}, M, Kt]; got {tuple(targets.shape)}")
        n = math.prod(grid)
        check_index("predictor context", context, context_valid, rows, n)
        check_index("predictor targets", targets.reshape(rows, -1), None, rows, n)
        m, kt = targets.shape[1:]
        x, queries = self.predictor_embed(z), self._mask_tokens(rows, m, repeats)
        rotation = None
        if not rotary(self.config.positions):
            pos = self.pos_embed_for(tuple(grid), z.device).expand(rows, -1, -1)
            x, queries = (
                x + gather_tokens(pos, context),
                queries + gather_tokens(pos, targets).reshape(rows * m, kt, -1),
            )
        else:  # rotary positions: the blocks turn queries and keys by the sequence's places
            places = torch.cat([context.repeat_interleave(m, dim=0), targets.reshape(rows * m, kt)], dim=1)
            width, heads = self.config.embed_dim, self.config.num_heads
            dtype = self.predictor_embed.weight.dtype
            rotation = Rotation.of(places, tuple(grid), width // heads, self.config.positions, dtype)
        x = x.repeat_interleave(m, dim=0)  # [R*M, Kc, w]: one copy per target block
        x = torch.cat([x, queries.expand(rows * m, kt, -1)], dim=1)

        valid = _sequence_valid(context_valid, targets_valid, rows, m, kc, kt, z.device)
        packing = None
        if hook is not None:  # conditioners see whole padded sequences at every layer
            bias = padding_bias(valid, x.dtype)
            if hasattr(hook, "packing"):  # the hook may run the blocks on the valid tokens
                hook.packing = Packing.of(valid) if self.pack_tokens else None
            images = rows // repeats
            sample_index = (torch.arange(rows * m, device=z.device) // m) % images
            x = hook.input(x, sample_index)
            for i, blk in enumerate(self.blocks):
                x = hook.layer(i, blk, x, bias)
            output = getattr(hook, "output", None)  # optional: a hook may condition the final norm
            x = output(self.predictor_norm, x[:, kc:]) if output is not None else self.predictor_norm(x[:, kc:])
        else:  # the last layer computes the mask tokens only: nothing reads the context's outputs
            x, packing, bias = for_blocks(x, valid, self.pack_tokens, split=kc)
            for blk in self.blocks[:-1]:
                x = blk(x, attn_mask=bias, packing=packing, rotation=rotation)
            last = self.blocks[-1](x, attn_mask=bias, rows_from=kc, packing=packing, rotation=rotation)
            x = self.predictor_norm(last)
        x = self.predictor_proj(x)
        if packing is not None:  # zeros at padded targets
            x = packing.unpack(x, rows_from=kc)
        return x.reshape(rows, m, kt, -1)


def _sequence_valid(
    context_valid: Tensor | None,
    targets_valid: Tensor | None,
    rows: int,
    m: int,
    kc: int,
    kt: int,
    device: torch.device,
) -> Tensor | None:
    """bool [R*M, Kc+Kt] validity of the predictor sequence, or None when nothing is padded."""
    if context_valid is None and targets_valid is None:
        return None
    cv = context_valid if context_valid is not None else torch.ones(rows, kc, dtype=torch.bool, device=device)
    tv = targets_valid if targets_valid is not None else torch.ones(rows, m, kt, dtype=torch.bool, device=device)
    return torch.cat([cv.repeat_interleave(m, dim=0), tv.reshape(rows * m, kt)], dim=1)
