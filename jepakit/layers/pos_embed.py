"""Fixed sine-cosine position embeddings (MAE / I-JEPA), built for any grid."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

__all__ = ["Layout3D", "sincos_1d", "sincos_2d", "sincos_3d", "sincos_grid"]

#: How the width of 3-D positions is shared: ``thirds``, V-JEPA's released layout (``uniform_power``: time,
#: row and column each 2 * ceil(dim / 6) wide, in that order, cut to ``dim``); ``quarters``, jepakit's
#: first layout (column and row a quarter each, then time a half).
Layout3D = Literal["thirds", "quarters"]


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """[len(positions), dim]: sin of positions * frequencies, then cos (``dim`` even)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    out = positions.to(torch.float64).reshape(-1, 1) * omega
    return torch.cat([out.sin(), out.cos()], dim=1)


def sincos_2d(dim: int, grid_hw: tuple[int, int]) -> Tensor:
    """[H * W, dim] float32 in raster order; the first half encodes the column, the second the row.

    ``dim`` must be divisible by 4 (checked by the configs that use it).
    """
    h, w = grid_hw
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    emb = torch.cat([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], dim=1)
    return emb.float()


def sincos_3d(dim: int, grid_thw: tuple[int, int, int], layout: Layout3D = "thirds") -> Tensor:
    """[T * H * W, dim] float32 in raster order (time, row, column), the width shared as ``layout`` says
    (``Layout3D``). ``dim`` divisible by 8."""
    t, h, w = grid_thw
    times, rows, cols = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    if layout == "quarters":
        parts = [sincos_1d(dim // 4, cols), sincos_1d(dim // 4, rows), sincos_1d(dim // 2, times)]
    else:
        third = 2 * math.ceil(dim / 6)
        parts = [sincos_1d(third, times), sincos_1d(third, rows), sincos_1d(third, cols)]
    return torch.cat(parts, dim=1)[:, :dim].float()


def sincos_grid(dim: int, grid: tuple[int, ...], layout: Layout3D = "thirds") -> Tensor:
    """The sin-cos positions of a 2-D (H, W) or 3-D (T, H, W) patch grid: [prod(grid), dim]."""
    if len(grid) == 2:
        return sincos_2d(dim, (grid[0], grid[1]))
    if len(grid) == 3:
        return sincos_3d(dim, (grid[0], grid[1], grid[2]), layout)
    raise ValueError(f"positions are built for 2-D or 3-D patch grids; got {grid}")
