"""Axis-aligned boxes on a patch grid of any dimension, vectorised over a batch.

Shared by the block maskers: draw a box shape from a scale and an aspect ratio, draw
start positions (every cell reachable: a box of size s on a side of length L starts
anywhere in [0, L - s]), and turn boxes into boolean grids or raster-order indices.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["block_area_range", "block_shape", "box_indices", "box_union", "draw_block_shape", "draw_starts"]


def block_shape(scale: float, aspect: float, grid_hw: tuple[int, ...], margin: int = 0) -> tuple[int, int]:
    """(h, w) of a block covering ``scale`` of the grid with h / w = ``aspect``, each side clamped to
    the grid's less ``margin`` (1: the official I-JEPA collator's cap, no block spans a full row)."""
    gh, gw = grid_hw
    area = scale * gh * gw
    h = min(max(round(math.sqrt(area * aspect)), 1), max(gh - margin, 1))
    w = min(max(round(math.sqrt(area / aspect)), 1), max(gw - margin, 1))
    return h, w


def _uniform(lo: float, hi: float, generator: torch.Generator) -> float:
    return lo + float(torch.rand((), generator=generator)) * (hi - lo)


def draw_block_shape(
    scale: tuple[float, float],
    aspect: tuple[float, float],
    grid_hw: tuple[int, ...],
    generator: torch.Generator,
    margin: int = 0,
    coupled: bool = False,
) -> tuple[int, int]:
    """Draw a block shape: scale and aspect ratio uniform and independent, or (``coupled``) as the official
    I-JEPA collator's ``_sample_block_size`` does: one uniform number u gives both (scale = lo + u (hi - lo),
    aspect likewise, so small blocks are always wide and large ones tall) and the area is floored to whole
    patches before the sides are rounded."""
    if not coupled:
        return block_shape(_uniform(*scale, generator), _uniform(*aspect, generator), grid_hw, margin)
    u = float(torch.rand((), generator=generator))
    area = int(grid_hw[0] * grid_hw[1] * (scale[0] + u * (scale[1] - scale[0])))
    return block_shape(area / (grid_hw[0] * grid_hw[1]), aspect[0] + u * (aspect[1] - aspect[0]), grid_hw, margin)


def block_area_range(
    scale: tuple[float, float],
    aspect: tuple[float, float],
    grid_hw: tuple[int, ...],
    steps: int = 257,
    margin: int = 0,
    coupled: bool = False,
) -> tuple[int, int]:
    """Smallest and largest block area the ranges can give (checked on a fine grid); ``coupled``: also with
    the area floored to whole patches, as the coupled draw does."""
    cells = grid_hw[0] * grid_hw[1]
    areas = []
    scales = (*scale, *(int(cells * s) / cells for s in scale)) if coupled else scale
    for i in range(steps):
        a = aspect[0] + (aspect[1] - aspect[0]) * i / (steps - 1)
        for s in scales:
            h, w = block_shape(s, a, grid_hw, margin)
            areas.append(h * w)
    return min(areas), max(areas)


def draw_starts(n: int, k: int, size: tuple[int, ...], grid: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Uniform start corners [n, k, D] of boxes of ``size`` that fit in ``grid``."""
    cols = [torch.randint(0, g - s + 1, (n, k), generator=generator) for s, g in zip(size, grid, strict=True)]
    return torch.stack(cols, dim=-1)


def box_union(starts: Tensor, size: tuple[int, ...], grid: tuple[int, ...]) -> Tensor:
    """[n, N] bool: cells covered by any of the k boxes of ``starts`` [n, k, D]."""
    n, _, dims = starts.shape
    letters = "abcdefgh"[:dims]
    sides = []
    for d, (s, g) in enumerate(zip(size, grid, strict=True)):
        pos = torch.arange(g)
        sides.append(((pos >= starts[..., d, None]) & (pos < starts[..., d, None] + s)).float())  # [n, k, g]
    # union of products of intervals = (sum over boxes of the outer products) > 0
    covered = torch.einsum(",".join(f"nk{c}" for c in letters) + f"->n{letters}", *sides)
    return covered.reshape(n, -1) > 0


def box_indices(starts: Tensor, size: tuple[int, ...], grid: tuple[int, ...]) -> Tensor:
    """[n, k, prod(size)] raster-order indices of the cells of each box."""
    strides = [math.prod(grid[d + 1 :]) for d in range(len(grid))]
    offsets = torch.zeros((), dtype=torch.long)
    for s, st in zip(size, strides, strict=True):
        offsets = offsets[..., None] + torch.arange(s) * st
    origin = (starts * torch.tensor(strides)).sum(-1)  # [n, k]
    return origin[..., None] + offsets.reshape(-1)
