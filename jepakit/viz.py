"""Pictures: masks drawn over a batch, a dense probe's segmentation, and a run's curves (PNG).

Context patches keep their pixels; patches outside the context are dimmed; each target
block gets its own colour, blended over its patches and outlined. ``jepakit viz masks
RECIPE`` renders the recipe's masker on its data set.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .masks.base import Masks

__all__ = ["TARGET_COLOURS", "mask_overlay", "plot_curves", "save_png", "segmentation_overlay"]

#: One colour per target block (cycled).
TARGET_COLOURS = torch.tensor(
    [[1.0, 0.2, 0.2], [0.2, 0.6, 1.0], [1.0, 0.8, 0.1], [0.8, 0.3, 1.0], [0.2, 0.9, 0.4], [1.0, 0.5, 0.0]]
)


def mask_overlay(images: Tensor, masks: Masks, patch: int, alpha: float = 0.45) -> Tensor:
    """Images [B, 3, H, W] in [0, 1] with the masks drawn over them; returns [B, 3, H, W]."""
    b, _, h, w = images.shape
    gh, gw = h // patch, w // patch
    if (gh, gw) != tuple(masks.grid):
        raise ValueError(f"masks are on a {masks.grid} grid but the images give {(gh, gw)} patches")
    out = images.clone()
    context, _ = masks.dense()  # rows are generator-major: the first b rows are the first mask set
    up = lambda m: m.view(-1, gh, gw).repeat_interleave(patch, 1).repeat_interleave(patch, 2)  # noqa: E731
    out = torch.where(up(context[:b])[:, None], out, out * 0.35)
    for m in range(masks.targets.shape[1]):
        block = torch.zeros(b, gh * gw, dtype=torch.bool)
        block.scatter_(1, masks.targets[:b, m], True)
        if masks.targets_valid is not None:
            block &= torch.zeros_like(block).scatter_(1, masks.targets[:b, m], masks.targets_valid[:b, m])
        pixels = up(block)[:, None]
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


def plot_curves(
    records: list[dict],
    path: str | Path,
    keys: tuple[str, ...] = ("loss", "effective_rank", "embedding_std"),
    size: tuple[int, int] = (480, 200),
) -> Path:
    """One panel per metric of ``records`` (the run's JSONL log) against the step, as a PNG."""
    from PIL import Image, ImageDraw

    panels = [k for k in keys if any(k in r for r in records)]
    w, h = size
    image = Image.new("RGB", (w, h * max(len(panels), 1)), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 48, 12, 18, 22
    for p, key in enumerate(panels):
        points = [(r["step"], float(r[key])) for r in records if key in r]
        y0 = p * h
        steps = [s for s, _ in points]
        values = [v for _, v in points]
        lo, hi = min(values), max(values)
        hi = hi if hi > lo else lo + 1.0
        s_lo, s_hi = min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1

        box = (left, y0 + top, w - right, y0 + h - bottom)
        mapped = [_to_box(st, v, (s_lo, s_hi), (lo, hi), box) for st, v in points]
        draw.rectangle(box, outline="black")
        if len(mapped) > 1:
            draw.line(mapped, fill=(200, 30, 30), width=2)
        else:
            ((x, y),) = mapped
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(200, 30, 30))
        draw.text((left, y0 + 3), key, fill="black")
        draw.text((2, y0 + top), f"{hi:.3g}", fill="black")
        draw.text((2, y0 + h - bottom - 10), f"{lo:.3g}", fill="black")
        draw.text((left, y0 + h - bottom + 4), f"step {s_lo}", fill="black")
        draw.text((w - right - 60, y0 + h - bottom + 4), f"step {s_hi}", fill="black")
    path = Path(path)
    image.save(path)
    return path


def _to_box(
    step: float,
    value: float,
    steps: tuple[float, float],
    values: tuple[float, float],
    box: tuple[float, float, float, float],
) -> tuple[float, float]:
    """Map a (step, value) point into the pixel box (x0, y0, x1, y1), higher values up."""
    x0, y0, x1, y1 = box
    x = x0 + (step - steps[0]) / (steps[1] - steps[0]) * (x1 - x0)
    y = y0 + (1 - (value - values[0]) / (values[1] - values[0])) * (y1 - y0)
    return x, y
