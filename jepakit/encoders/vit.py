"""The I-JEPA Vision Transformer encoder: timm-compatible blocks, no [cls], fixed 2-D sin-cos positions.

Reference: Assran et al., I-JEPA, CVPR 2023; Dosovitskiy et al., ViT, ICLR 2021.

Pixel rule: the encoder takes images in [0, 1] and normalises them itself (I-JEPA's
ImageNet statistics, ``pixel_mean``/``pixel_std``). Call ``forward`` or ``layer_outputs``;
calling ``patch_embed`` on raw pixels skips the normalisation, so two paths that should
see the same input (a teacher and a student) would not. Export folds the normalisation
into the patch embedding, so timm's model takes the same [0, 1] images.

The encoder takes patch-index masks (positions are added before tokens are dropped,
so a kept patch knows where it is) and honours a padding mask. It works at any image
size divisible by the patch: positions are built for the actual grid. Its state dict
has timm's key names, so it loads strictly into ``timm.create_model(*timm_args())``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..config import ConfigError, at_least, each, in_range, knob, positive, resolved
from ..layers.pos_embed import Layout3D, sincos_grid
from ..layers.rope import Positions, Rotation, rotary
from ..layers.transformer import TransformerConfig, for_blocks, gather_tokens, init_weights, layer_norm
from ..registry import register
from ..transforms import warn_if_not_unit_range

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VIT_PRESETS",
    "TubeletEmbed",
    "ViTConfig",
    "ViTEncoder",
    "check_index",
    "renormalised",
]

#: The per-channel pixel statistics I-JEPA normalises its inputs with (images in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The sizes of the papers (I-JEPA uses B/16, L/16, H/14, H/16 at 448 and G/16), and the
#: matching timm architecture (built with ``class_token=False, global_pool="avg"``).
VIT_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(embed_dim=192, depth=12, num_heads=3, patch_size=16),
    "small": dict(embed_dim=384, depth=12, num_heads=6, patch_size=16),
    "base": dict(embed_dim=768, depth=12, num_heads=12, patch_size=16),
    "large": dict(embed_dim=1024, depth=24, num_heads=16, patch_size=16),
    "huge": dict(embed_dim=1280, depth=32, num_heads=16, patch_size=14),
    "giant": dict(embed_dim=1408, depth=40, num_heads=16, patch_size=16, mlp_ratio=48 / 11),
}
_TIMM_NAMES = {
    "tiny": "vit_tiny_patch16_224",
    "small": "vit_small_patch16_224",
    "base": "vit_base_patch16_224",
    "large": "vit_large_patch16_224",
    "huge": "vit_huge_patch14_gap_224",
    "giant": "vit_giant_patch16_gap_224",
}


def check_index(where: str, index: Tensor, valid: Tensor | None, batch: int, n: int) -> None:
    """Raise ``ValueError`` unless ``index`` is a long [batch, K] in [0, n) (with a matching ``valid``).

    The range is checked on host tensors outside ``torch.compile`` only: on an accelerator
    it would stall the queue every step, and under compile it would split the graph
    (``JEPA.forward`` checks its masks eagerly, on the host, before moving them).
    """
    if index.dtype != torch.long or index.ndim != 2 or index.shape[0] != batch:
        raise ValueError(
            f"{where}: patch indices must be a long tensor [B={batch}, K]; got {index.dtype} {tuple(index.shape)}"
        )
    host = index.device.type == "cpu" and not torch.compiler.is_compiling()
    if host and index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
        raise ValueError(
            f"{where}: patch indices range over [{int(index.min())}, {int(index.max())}], "
            f"outside the grid's [0, {n - 1}]"
        )
    if valid is not None and (valid.shape != index.shape or valid.dtype != torch.bool):
        raise ValueError(
            f"{where}: the padding mask must be bool {tuple(index.shape)}; got {valid.dtype} {tuple(valid.shape)}"
        )


@dataclass(frozen=True)
class ViTConfig(TransformerConfig):
    img_size: int | None = knob(
        None,
        "default image size: the stored position table (any multiple of patch_size runs)",
        follows="image_size",
        valid=at_least(1),
    )
    patch_size: int = knob(16, "patch size in pixels", valid=at_least(1))
    in_chans: int = knob(3, "image channels", valid=at_least(1))
    pixel_mean: tuple[float, ...] = knob(
        IMAGENET_MEAN, "per-channel mean subtracted from [0, 1] images (I-JEPA)", valid=each(in_range(0, 1))
    )
    pixel_std: tuple[float, ...] = knob(
        IMAGENET_STD, "per-channel std the images are divided by (I-JEPA)", valid=each(positive())
    )
    num_frames: int | None = knob(
        None,
        "frames of the clips [B, C, T, H, W] the stored position table is built for (V-JEPA: 16); None: an "
        "image encoder",
        follows="num_frames",
        valid=at_least(1),
        required=False,
    )
    tubelet_size: int | None = knob(
        None,
        "frames per token of a clip (V-JEPA: 2; None: 2); an image is a clip of one tubelet",
        follows="tubelet_size",
        valid=at_least(1),
        required=False,
    )
    video_positions: Layout3D = knob(
        "thirds",
        "a clip's 3-D sin-cos positions: thirds (V-JEPA's released layout: time, row, column, a third of the "
        "width each) or quarters (column and row a quarter each, time a half: the video CPU presets')",
    )
    positions: Positions = knob(
        "sincos",
        "how tokens know their place: sincos (a fixed table added to the patch embeddings: I-JEPA, V-JEPA), or "
        "rotary positions in every attention layer, rope, or rope-vjepa2 (V-JEPA 2's released layout, which its "
        "weights need; docs/methods.md)",
    )

    def validate(self) -> None:
        super().validate()
        t = self.type_id()
        if self.num_frames is not None:
            if self.num_frames % self.tubelet:
                raise ConfigError(
                    f"{t}.num_frames={self.num_frames} is not divisible by {t}.tubelet_size={self.tubelet}"
                )
            if self.embed_dim % 8:
                raise ConfigError(f"{t}.embed_dim={self.embed_dim} must be divisible by 8 (3-D sin-cos positions)")
        for name, stats in (("pixel_mean", self.pixel_mean), ("pixel_std", self.pixel_std)):
            if len(stats) != self.in_chans:
                raise ConfigError(f"{t}.{name}={stats} needs one value per channel (in_chans={self.in_chans})")
        if rotary(self.positions) and (self.embed_dim // self.num_heads) // len(self.grid_axes) < 2:
            raise ConfigError(
                f"{t}.positions={self.positions} turns {len(self.grid_axes)} pairs of channels per head; "
                f"{t}.embed_dim={self.embed_dim} / num_heads={self.num_heads} leaves too few"
            )
        if self.img_size is not None and self.img_size % self.patch_size:
            raise ConfigError(f"{t}.img_size={self.img_size} is not divisible by {t}.patch_size={self.patch_size}")

    @classmethod
    def preset(cls, size: str, **fields: Any) -> ViTConfig:
        """The config of a named size (tiny, small, base, large, huge, giant), with ``fields`` changed."""
        if size not in VIT_PRESETS:
            from ..config import unknown

            raise unknown("ViT size", size, VIT_PRESETS)
        return cls().replace(**{**VIT_PRESETS[size], **fields})

    @property
    def tubelet(self) -> int:
        """Frames per token of a clip (``tubelet_size``, 2 when unset)."""
        return self.tubelet_size or 2

    @property
    def grid_axes(self) -> str:
        """The axes of its patch grid: "thw" for clips, "hw" for images."""
        return "thw" if self.video else "hw"

    @property
    def video(self) -> bool:
        """Whether this encoder takes clips (``num_frames`` set): tubelet embedding, 3-D positions."""
        return self.num_frames is not None

    def offers(self) -> dict[str, tuple[Any, str]]:
        """Its token width and depth, patch size, image channels, positions, and whether (frames) it reads clips."""
        mine = {
            "patch_size": (self.patch_size, "patch_size"),
            "in_chans": (self.in_chans, "in_chans"),
            "video_positions": (self.video_positions, "video_positions"),
            "positions": (self.positions, "positions"),
            "num_frames": (self.num_frames, "num_frames"),
        }
        return super().offers() | mine | {"video": (self.video, "num_frames")}

    def param_count(self) -> tuple[float, float]:
        """Blocks and norm, the patch (or tubelet) projection; the position table is a buffer."""
        params, _ = super().param_count()
        side = (self.img_size or 224) // self.patch_size
        cells = side * side * ((self.num_frames or 0) // self.tubelet if self.video else 1)
        depth = self.tubelet if self.video else 1
        patch = self.in_chans * depth * self.patch_size**2 * self.embed_dim + self.embed_dim
        return params + patch, float(0 if rotary(self.positions) else cells * self.embed_dim)

    @property
    def grid(self) -> tuple[int, ...]:
        """The patch grid of ``img_size``: (H, W), or (T, H, W) for clips of ``num_frames``."""
        side = resolved(self.img_size, f"{self.type_id()}.img_size") // self.patch_size
        if self.num_frames is not None:
            return (self.num_frames // self.tubelet, side, side)
        return (side, side)

    def timm_args(self) -> tuple[str, dict[str, Any]]:
        """``(name, kwargs)`` for the ``timm.create_model`` model this encoder's weights load into."""
        if self.video:
            raise ConfigError(
                f"{self.type_id()}.num_frames={self.num_frames}: a video encoder (tubelet embedding, 3-D positions) "
                "has no timm architecture to load into; timm's ViTs take images"
            )
        if rotary(self.positions):
            raise ConfigError(
                f"{self.type_id()}.positions={self.positions}: timm's plain ViT adds a position table; an encoder "
                "with rotary positions has no timm architecture to load into"
            )
        name = "vit_base_patch16_224"
        for size, preset in VIT_PRESETS.items():
            if all(getattr(self, k) == v for k, v in preset.items()):  # a preset's fields by name
                name = _TIMM_NAMES[size]
        kwargs = dict(
            img_size=self.img_size,
            patch_size=self.patch_size,
            in_chans=self.in_chans,
            embed_dim=self.embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias,
            class_token=False,
            global_pool="avg",
            fc_norm=False,
            num_classes=0,
        )
        return name, kwargs


class TubeletEmbed(nn.Module):
    """Clips [B, C, T, H, W] -> tokens [B, T' * H' * W', D]: a 3-D convolution over tubelets of ``tubelet``
    frames x ``patch`` x ``patch`` pixels (V-JEPA), in (time, row, column) raster order."""

    def __init__(self, in_chans: int, dim: int, tubelet: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch))
        self.norm = nn.Identity()  # as timm's PatchEmbed without a norm layer: the encoder reads both

    def forward(self, clips: Tensor) -> Tensor:
        return self.proj(clips).flatten(2).transpose(1, 2)


def renormalised(
    state: dict[str, Tensor], source: tuple[Tensor, Tensor], target: tuple[Tensor, Tensor]
) -> dict[str, Tensor]:
    """``state`` with its patch embedding changed so that, on images normalised by ``target`` (mean, std),
    it computes what it computed on images normalised by ``source``: W' = (W / s) s', b' = b - sum((W / s) m)
    + sum((W / s) m'). Folding the normalisation into the weights (an export for timm) is ``target`` = (0, 1);
    reading such an export back into a normalising encoder is the reverse."""
    (mean, std), (mean_to, std_to) = source, target
    w, b = state["patch_embed.proj.weight"], state["patch_embed.proj.bias"]
    shape = (1, -1) + (1,) * (w.ndim - 2)  # [1, C, k, k] (a tubelet: [1, C, t, k, k])
    scaled = w / std.view(shape)
    out = dict(state)
    out["patch_embed.proj.weight"] = scaled * std_to.view(shape)
    out["patch_embed.proj.bias"] = (
        b
        - (scaled * mean.view(shape)).sum(tuple(range(1, w.ndim)))
        + (scaled * mean_to.view(shape)).sum(tuple(range(1, w.ndim)))
    )
    return out


@register("encoder", "vit", ViTConfig)
class ViTEncoder(nn.Module):
    """ViT over the patches of an image, optionally only those in a patch-index mask.

    Shapes: images [B, 3, H, W] in [0, 1] (it normalises them itself) -> tokens [B, N, D] of the
    (H / p) x (W / p) grid in raster order; with ``index`` long [B, K] only those patches -> [B, K, D].

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> enc = create("encoder", "vit", img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3)
        >>> images = torch.rand(2, 3, 32, 32)
        >>> tuple(enc(images).shape), enc.grid_of(images)
        ((2, 16, 48), (4, 4))
        >>> tuple(enc(images, torch.tensor([[0, 1, 2, 5], [3, 4, 8, 9]])).shape)
        (2, 4, 48)
    """

    patch_embed: Any  # timm's PatchEmbed, or TubeletEmbed for clips: both have .proj and .norm
    pos_embed: Tensor
    pixel_mean: Tensor
    pixel_std: Tensor

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        from timm.layers import PatchEmbed

        self.config = cfg
        self.patch_size = cfg.patch_size
        self.embed_dim = cfg.embed_dim
        self.tubelet = cfg.tubelet if cfg.video else 1
        if cfg.video:
            self.patch_embed = TubeletEmbed(cfg.in_chans, cfg.embed_dim, cfg.tubelet, cfg.patch_size)
        else:
            self.patch_embed = PatchEmbed(
                img_size=cfg.img_size,
                patch_size=cfg.patch_size,
                in_chans=cfg.in_chans,
                embed_dim=cfg.embed_dim,
                strict_img_size=False,
            )
        if not rotary(cfg.positions):  # rotary positions have no table: the blocks turn queries and keys
            self.register_buffer("pos_embed", sincos_grid(cfg.embed_dim, cfg.grid, cfg.video_positions)[None])
        # not in the state dict (timm's keys stay exact); export folds them into the patch embedding
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(1, -1, 1, 1), persistent=False)
        self.blocks = cfg.make_blocks()
        self.norm = layer_norm(cfg.embed_dim)
        init_weights(self, self.blocks, cfg)
        self._pos_cache: dict[tuple[int, ...], Tensor] = {}
        self.range_checked = False  #: the first images read were checked for a [0, 1] range (once)
        #: run the blocks on the valid tokens only when given padding (see ``Packing``); False
        #: computes the padding too (the same outputs at the valid tokens; zeros at the padding
        #: when packed), for comparison
        self.pack_tokens = True

    def timm_state_dict(self) -> dict[str, Tensor]:
        """The weights with the pixel normalisation folded into the patch embedding, so that timm's
        model gives this encoder's features on the same [0, 1] images: W/s and b - sum(W m/s)."""
        self.config.timm_args()  # a video encoder has no timm model: the error says so
        state = {k: v.detach().clone() for k, v in self.state_dict().items()}
        plain = (torch.zeros_like(self.pixel_mean), torch.ones_like(self.pixel_std))
        return renormalised(state, (self.pixel_mean, self.pixel_std), plain)

    def as_clip(self, images: Tensor) -> Tensor:
        """Images [B, C, H, W] for a video encoder: clips of one tubelet (the frame repeated); else as given."""
        if self.config.video and images.ndim == 4:
            return images.unsqueeze(2).expand(-1, -1, self.tubelet, -1, -1)
        return images

    def grid_of(self, images: Tensor) -> tuple[int, ...]:
        """The patch grid of ``images`` [B, C, H, W], (H', W'), or of clips [B, C, T, H, W] for a video
        encoder, (T', H', W') (an image: T' = 1), after checking shape, channels and dtype."""
        c, video = self.config.in_chans, self.config.video
        shape = f"[B, {c}, T, H, W] or [B, {c}, H, W]" if video else f"[B, {c}, H, W]"
        if images.ndim not in ((4, 5) if video else (4,)) or images.shape[1] != c:
            raise ValueError(f"images must be {shape}; got shape {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"images must be a floating-point tensor; got {images.dtype}")
        h, w = images.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not divisible by patch_size={self.patch_size}")
        if images.ndim == 4:
            return (
                (1, h // self.patch_size, w // self.patch_size)
                if video
                else (h // self.patch_size, w // self.patch_size)
            )
        t = images.shape[2]
        if t % self.tubelet:
            raise ValueError(f"a clip of {t} frames is not divisible by tubelet_size={self.tubelet}")
        return (t // self.tubelet, h // self.patch_size, w // self.patch_size)

    def pos_embed_for(self, grid: tuple[int, ...]) -> Tensor:
        """[1, prod(grid), D] positions for ``grid`` (the stored table for the default grid)."""
        if grid == self.config.grid:
            return self.pos_embed
        pos = self._pos_cache.get(grid)
        if pos is None or pos.device != self.pos_embed.device:
            table = sincos_grid(self.embed_dim, grid, self.config.video_positions)
            pos = self._pos_cache[grid] = table[None].to(self.pos_embed.device)
        return pos

    def embed(self, images: Tensor, grid: tuple[int, ...], index: Tensor | None) -> Tensor:
        """Patch embeddings plus positions [B, K, D] of the patches at ``index`` (all if None).

        With an index only the kept patches are projected (the patch embedding is a linear
        map of each patch's pixels; the context encoder keeps about a quarter of them), and
        the tokens are laid out contiguously so no later LayerNorm has to copy them.
        """
        placed = rotary(self.config.positions)  # positions come in the blocks
        if index is None:
            x = self.patch_embed(images).contiguous()
            return x if placed else x + self.pos_embed_for(grid)
        b = images.shape[0]
        p, proj = self.patch_size, self.patch_embed.proj
        if images.ndim == 5:  # tubelets, in the 3-D conv's weight order
            patches = rearrange(images, "b c (t u) (h p) (w q) -> b (t h w) (c u p q)", u=self.tubelet, p=p, q=p)
        else:
            patches = rearrange(images, "b c (h p) (w q) -> b (h w) (c p q)", p=p, q=p)  # the conv's weight order
        x = self.patch_embed.norm(F.linear(gather_tokens(patches, index), proj.weight.flatten(1), proj.bias))
        return x if placed else x + gather_tokens(self.pos_embed_for(grid).expand(b, -1, -1), index)

    def rotation(self, grid: tuple[int, ...], index: Tensor | None, device: torch.device) -> Rotation | None:
        """The rotary positions of the tokens at ``index`` [B, K] (all of ``grid`` if None); None with sin-cos."""
        cfg = self.config
        if not rotary(cfg.positions):
            return None
        where = index if index is not None else torch.arange(math.prod(grid), device=device)[None]
        dtype = self.patch_embed.proj.weight.dtype
        return Rotation.of(where, grid, cfg.embed_dim // cfg.num_heads, cfg.positions, dtype)

    def forward(self, images: Tensor, index: Tensor | None = None, valid: Tensor | None = None) -> Tensor:
        """Encode ``images`` [B, C, H, W] -> tokens [B, K, D].

        Args:
            index: long [B, K] patch indices (raster order) to keep; all patches if None.
            valid: bool [B, K]; False marks padding, which no other token attends to
                (its outputs are zeros, or, with ``pack_tokens`` off, unused values).
        """
        return self.layer_outputs(images, index, valid, last=1)[0]

    def layer_outputs(
        self,
        images: Tensor,
        index: Tensor | None = None,
        valid: Tensor | None = None,
        last: int = 1,
        norm: bool = True,
    ) -> list[Tensor]:
        """The tokens after each of the ``last`` blocks, each through the final norm unless ``norm`` is
        False (I-JEPA's evaluation concatenates the last 4; data2vec 2.0 averages raw block outputs);
        ``forward`` is ``last=1``."""
        if not 1 <= last <= len(self.blocks):
            raise ValueError(f"last={last} must lie in [1, depth={len(self.blocks)}]")
        images = self.as_clip(images)
        grid = self.grid_of(images)
        if not torch.compiler.is_compiling() and not self.range_checked:
            self.range_checked = True  # once per encoder: a reduction of every batch would cost a GPU sync
            warn_if_not_unit_range(images)
        if index is not None:
            check_index("encoder", index, valid, images.shape[0], math.prod(grid))
        stats = (1, -1) + (1,) * (images.ndim - 2)
        x = self.embed((images - self.pixel_mean.view(stats)) / self.pixel_std.view(stats), grid, index)
        x, packing, bias = for_blocks(x, valid, self.pack_tokens)
        rotation = self.rotation(grid, index, images.device)
        outs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x, attn_mask=bias, packing=packing, rotation=rotation)
            if i >= len(self.blocks) - last:
                out = self.norm(x) if norm else x
                outs.append(out if packing is None else packing.unpack(out))
        return outs
