"""Rotary positions (RoPE) on a patch grid, as V-JEPA 2's encoder and predictor place their tokens.

Reference: Su et al., "RoFormer" (2021); Assran et al., "V-JEPA 2" (2025), whose ViTs have no position
table: every attention layer turns each head's queries and keys by angles proportional to the token's
grid coordinates, so attention scores see where tokens are. Each of the grid's A axes (V-JEPA 2: time,
row, column) owns ``2 * ((head_dim // A) // 2)`` consecutive channels of a head, in that order; the
channels left over stay unturned. Within an axis's block of ``2m`` channels the frequencies are
``omega_i = 10000^(-i / m)``, i < m, and channels (2j, 2j+1) turn as a pair:
``(x_2j, x_2j+1) -> (x_2j cos a - x_2j+1 sin a', x_2j+1 cos b + x_2j sin b')``.

Two layouts of the angles (``Positions``):

* ``rope``: both channels of pair j turn by ``coord * omega_j`` (a rotation: scores depend on the
  coordinate differences only);
* ``rope-vjepa2``: channel k turns by ``coord * omega_(k mod m)``, V-JEPA 2's released layout (its code
  tiles the frequency vector where it meant to repeat each entry, so a pair's two channels turn by
  different angles; the authors kept it because the released weights were trained with it). Weights
  imported with ``--format vjepa2`` need it.
"""

from __future__ import annotations

from typing import Literal, TypeGuard

import torch
from torch import Tensor

__all__ = ["Positions", "Rotation", "grid_coords", "rope_angles", "rotary"]

#: Where a ViT's tokens learn their place: ``sincos``, a fixed table added to the tokens (I-JEPA, V-JEPA);
#: ``rope`` or ``rope-vjepa2``, rotary positions in every attention layer (see the module docstring).
Positions = Literal["sincos", "rope", "rope-vjepa2"]


def rotary(positions: Positions | None) -> TypeGuard[Positions]:
    """Whether ``positions`` are rotary (placed by the blocks); None, a part not told otherwise, is sin-cos."""
    return positions not in (None, "sincos")


def grid_coords(index: Tensor, grid: tuple[int, ...]) -> Tensor:
    """Patch indices (raster order of ``grid``, e.g. (T, H, W)) [...] -> their coordinates [..., len(grid)]."""
    coords = []
    for size in reversed(grid):
        coords.append(index % size)
        index = torch.div(index, size, rounding_mode="floor")
    return torch.stack(coords[::-1], dim=-1)


def rope_angles(coords: Tensor, head_dim: int, layout: Positions) -> Tensor:
    """Coordinates [..., A] -> the angle of every channel of a head [..., head_dim] (float64; zero where unturned)."""
    axes = coords.shape[-1]
    width = 2 * ((head_dim // axes) // 2)
    m = width // 2
    omega = 1.0 / 10000 ** (torch.arange(m, dtype=torch.float64, device=coords.device) / m)
    per_channel = omega.repeat(2) if layout == "rope-vjepa2" else omega.repeat_interleave(2)
    angles = (coords.to(torch.float64)[..., None] * per_channel).flatten(-2)  # [..., A * width]
    return torch.nn.functional.pad(angles, (0, head_dim - axes * width))


class Rotation:
    """The rotary positions of one token sequence: cos and sin of every channel's angle [B or 1, 1, L, head_dim],
    applied to queries or keys [B, heads, L', head_dim] (L' = L - ``rows_from``).

    Example:
        >>> import torch
        >>> rot = Rotation.of(torch.tensor([[0, 5]]), (4, 4), head_dim=8, layout="rope")
        >>> q = torch.randn(1, 2, 2, 8)
        >>> torch.allclose(rot(q).norm(dim=-1), q.norm(dim=-1))  # a rotation keeps lengths
        True
    """

    def __init__(self, angles: Tensor, dtype: torch.dtype) -> None:
        self.cos = angles.cos().to(dtype)[:, None]
        self.sin = angles.sin().to(dtype)[:, None]

    @classmethod
    def of(
        cls, index: Tensor, grid: tuple[int, ...], head_dim: int, layout: Positions, dtype: torch.dtype = torch.float32
    ) -> Rotation:
        """The rotation of tokens at patch indices ``index`` [B or 1, L] of ``grid``, for heads of ``head_dim``."""
        return cls(rope_angles(grid_coords(index, grid), head_dim, layout), dtype)

    def __call__(self, x: Tensor, rows_from: int = 0) -> Tensor:
        """x [B, heads, L - rows_from, head_dim] at this sequence's tokens from ``rows_from`` on, turned."""
        cos, sin = self.cos[:, :, rows_from:].to(x.dtype), self.sin[:, :, rows_from:].to(x.dtype)
        pairs = x.unflatten(-1, (-1, 2))
        turned = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return x * cos + turned * sin
