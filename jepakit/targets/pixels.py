"""Pixel targets (MAE; SALT's stage 1): the regression targets are the image's own patches.

No teacher network: the "target module" cuts the image, normalised as the encoder sees it,
into patches of ``patch_size`` px flattened to ``patch_size**2 * channels`` values (pixel rows,
then columns, then channels, as MAE's ``patchify``), and by default normalises each patch's
values to zero mean and unit variance (MAE's ``norm_pix_loss``: the unbiased variance, eps 1e-6).
A clip is cut into the encoder's tubelets, ``tubelet * patch_size**2 * channels`` values each
(frames, then rows, columns, channels): SALT's V-Pixel teacher.
The predictor's output width is then the patch's value count (``predictor.out_dim``), and the
method evaluates its online encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from einops import rearrange
from torch import Tensor, nn

from ..config import knob
from ..registry import register
from .base import TargetUpdater, TargetUpdaterConfig

__all__ = ["PatchPixels", "PixelsConfig", "PixelsUpdater"]


@runtime_checkable
class PatchEncoder(Protocol):
    """What pixel targets read of the online encoder (``ViTEncoder``): how it cuts images into tokens
    (patch side, frames per token: 1 for images) and how it normalises them."""

    patch_size: int
    tubelet: int
    pixel_mean: Tensor
    pixel_std: Tensor


@dataclass(frozen=True)
class PixelsConfig(TargetUpdaterConfig):
    norm_pix: bool = knob(True, "normalise each patch's values to zero mean and unit variance (MAE's norm_pix_loss)")
    #: the target is no copy of the encoder: nothing to evaluate, shard or count but the online encoder
    holds_encoder: ClassVar[bool] = False
    #: a target patch is its pixel values: the predictor's output width follows the patch
    pixel_targets: ClassVar[bool] = True
    #: the targets are cut from the images: there is no module to copy
    any_module: ClassVar[bool] = False


class PatchPixels(nn.Module):
    """Images [B, C, H, W] in [0, 1] -> per-patch pixel values [B, N, p * p * C] (raster order of patches);
    clips [B, C, T, H, W] -> per-tubelet values [B, T' * H' * W', u * p * p * C] (``tubelet`` u frames)."""

    mean: Tensor
    std: Tensor

    def __init__(
        self, patch_size: int, mean: Tensor, std: Tensor, norm_pix: bool, eps: float = 1e-6, tubelet: int = 1
    ) -> None:
        super().__init__()
        self.patch_size, self.norm_pix, self.eps, self.tubelet = patch_size, norm_pix, eps, tubelet
        self.register_buffer("mean", mean.detach().clone().view(-1), persistent=False)
        self.register_buffer("std", std.detach().clone().view(-1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        p, u = self.patch_size, self.tubelet
        if images.shape[-2] % p or images.shape[-1] % p:
            raise ValueError(f"images {tuple(images.shape[-2:])} are not divisible into {p} px patches")
        stats = (1, -1) + (1,) * (images.ndim - 2)
        normed = (images - self.mean.view(stats)) / self.std.view(stats)
        if images.ndim == 5:
            if images.shape[2] % u:
                raise ValueError(f"a clip of {images.shape[2]} frames is not divisible into tubelets of {u}")
            x = rearrange(normed, "b c (t u) (h p) (w q) -> b (t h w) (u p q c)", u=u, p=p, q=p)
        else:
            x = rearrange(normed, "b c (h p) (w q) -> b (h w) (p q c)", p=p, q=p)
        if not self.norm_pix:
            return x
        return (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True) + self.eps).sqrt()


@register("target_updater", "pixels", PixelsConfig)
class PixelsUpdater(TargetUpdater):
    """The targets are the image's patches (normalised as the encoder normalises its input); nothing moves.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> encoder = create("encoder", "vit", img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=3)
        >>> cutter = create("target_updater", "pixels").make_target(encoder)
        >>> tuple(cutter(torch.rand(2, 3, 32, 32)).shape)  # each of the 4 x 4 patches' 8 * 8 * 3 values, normalised
        (2, 16, 192)
    """

    config: PixelsConfig

    def make_target(self, online: nn.Module) -> nn.Module:
        if not isinstance(online, PatchEncoder):
            raise TypeError(
                "pixel targets need an encoder with a patch_size, a tubelet and pixel_mean and pixel_std (a ViT); "
                f"got {type(online).__name__}"
            )
        return PatchPixels(
            online.patch_size, online.pixel_mean, online.pixel_std, self.config.norm_pix, tubelet=online.tubelet
        )
