"""Pictures: masks drawn over a batch, a dense probe's segmentation, and a run's curves (PNG,
with matplotlib).

Context patches keep their pixels; patches outside the context are dimmed; each target
block gets its own colour, blended over its patches and outlined. ``jepakit viz masks
RECIPE`` renders the recipe's masker on its data set (a clip as a row of its frames).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from einops import rearrange
from torch import Tensor

from .masks.base import Masks

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["TARGET_COLOURS", "curves_figure", "mask_overlay", "plot_curves", "save_png", "segmentation_overlay"]

#: One colour per target block (cycled).
TARGET_COLOURS = torch.tensor(
    [[1.0, 0.2, 0.2], [0.2, 0.6, 1.0], [1.0, 0.8, 0.1], [0.8, 0.3, 1.0], [0.2, 0.9, 0.4], [1.0, 0.5, 0.0]]
)


def mask_overlay(images: Tensor, masks: Masks, patch: int, alpha: float = 0.45) -> Tensor:
    """Images [B, 3, H, W] in [0, 1] with the masks drawn over them; returns [B, 3, H, W]. Clips
    [B, 3, T, H, W] (masks on a (T', H', W') tubelet grid) come back frame by frame, [B * T, 3, H, W]:
    a tubelet's mask shows on each of its frames."""
    clips = images if images.ndim == 5 else images[:, :, None]
    b, _, t, h, w = clips.shape
    cells = tuple(masks.grid) if len(masks.grid) == 3 else (1, *masks.grid)
    if cells[1:] != (h // patch, w // patch) or t % cells[0]:
        shape = f"{t} frames of {h}x{w}" if images.ndim == 5 else f"{h}x{w} images"
        raise ValueError(f"masks are on a {tuple(masks.grid)} grid, which {shape} in patches of {patch} do not give")
    tubelet = t // cells[0]
    out = rearrange(clips, "b c t h w -> (b t) c h w").clone()

    def up(m: Tensor) -> Tensor:  # token mask [b, T' * H' * W'] -> pixel mask [b * T, 1, H, W]
        m = m.reshape(-1, *cells).repeat_interleave(tubelet, 1)
        return m.repeat_interleave(patch, 2).repeat_interleave(patch, 3).flatten(0, 1)[:, None]

    context, _ = masks.dense()  # rows are generator-major: the first b rows are the first mask set
    out = torch.where(up(context[:b]), out, out * 0.35)
    for m in range(masks.targets.shape[1]):
        block = torch.zeros(b, math.prod(cells), dtype=torch.bool)
        block.scatter_(1, masks.targets[:b, m], True)
        if masks.targets_valid is not None:
            block &= torch.zeros_like(block).scatter_(1, masks.targets[:b, m], masks.targets_valid[:b, m])
        pixels = up(block)
        colour = TARGET_COLOURS[m % len(TARGET_COLOURS)].view(1, 3, 1, 1)
        out = torch.where(pixels, (1 - alpha) * out + alpha * colour, out)
        edge = pixels & ~_eroded(pixels)
        out = torch.where(edge, colour.expand_as(out), out)
    return out.clamp(0, 1)


def segmentation_overlay(images: Tensor, target: Tensor, pred: Tensor, alpha: float = 0.55) -> Tensor:
    """Rows of (image, ground truth, prediction) for images [B, 3, H, W] and class maps [B, H, W]
    (class 0, background, left uncoloured); returns [3B, 3, H, W] for ``save_png(columns=3)``."""
    if target.shape != pred.shape or target.shape != images.shape[:1] + images.shape[2:]:
        raise ValueError(
            f"images {tuple(images.shape)}, target {tuple(target.shape)} and prediction "
            f"{tuple(pred.shape)} do not match"
        )

    def paint(classes: Tensor) -> Tensor:
        colour = TARGET_COLOURS[(classes.long() - 1) % len(TARGET_COLOURS)].permute(0, 3, 1, 2)
        fg = (classes > 0)[:, None]
        return torch.where(fg, (1 - alpha) * images + alpha * colour, images * 0.5)

    return torch.stack([images, paint(target), paint(pred)], dim=1).flatten(0, 1).clamp(0, 1)


def _eroded(region: Tensor) -> Tensor:
    """A boolean region [B, 1, H, W] shrunk by one pixel (for outlines)."""
    r = region.float()
    kernel = torch.ones(1, 1, 3, 3)
    return torch.nn.functional.conv2d(r, kernel, padding=1) >= 9


def save_png(images: Tensor, path: str | Path, columns: int = 4, pad: int = 2) -> Path:
    """Save [B, 3, H, W] in [0, 1] as one PNG grid."""
    from PIL import Image

    b, _, h, w = images.shape
    rows = (b + columns - 1) // columns
    canvas = torch.ones(3, rows * (h + pad) + pad, columns * (w + pad) + pad)
    for i in range(b):
        r, c = divmod(i, columns)
        canvas[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = (
            images[i]
        )
    array = (canvas.permute(1, 2, 0) * 255).round().to(torch.uint8).contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.numpy()).save(path)
    return path


def curves_figure(records: list[dict], columns: int = 3) -> Figure:
    """One panel per numeric metric of ``records`` (a run's logged records), every logged point
    marked and joined, against the step; the loss first, the others in the order they appear."""
    from matplotlib.figure import Figure

    keys = [k for r in records for k, v in r.items() if k != "step" and isinstance(v, (int, float))]
    keys = sorted(dict.fromkeys(keys), key=lambda k: k != "loss")  # first appearance, loss first (stable)
    rows = max(1, -(-len(keys) // columns))
    width, height = 4.2 * columns, 2.8 * rows
    figure = Figure(figsize=(width, height))
    # fixed margins in inches (a constrained layout measures every label first, which doubles the drawing)
    figure.subplots_adjust(
        left=0.8 / width, right=1 - 0.15 / width, bottom=0.5 / height, top=1 - 0.15 / height, wspace=0.42, hspace=0.4
    )
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, key in zip(axes, keys, strict=False):
        points = [(r["step"], float(r[key])) for r in records if key in r]
        ax.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=2.5, linewidth=1.2)
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    for ax in axes[len(keys) :]:
        ax.set_axis_off()
    return figure


def plot_curves(records: list[dict], path: str | Path) -> Path:
    """``curves_figure(records)`` saved as a PNG at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    curves_figure(records).savefig(path, dpi=100)
    return path
