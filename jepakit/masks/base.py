"""The masker contract: configs on a patch grid, the ``Masks`` value, equalisation.

A masker is configured with the patch grid and called as
``masker(batch_size, generator=None)``. It is stateless: the masks of a batch are a
pure function of the generator's state, so a resumed run draws the same masks.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch
from torch import Tensor

from ..config import Config, ConfigError, Valid, at_least, knob, ordered_pair, resolved

__all__ = [
    "Equalise",
    "Masker",
    "MaskerConfig",
    "Masks",
    "VideoMaskerConfig",
    "rows_to_indices",
]

#: How rows of different lengths are made equal: ``pad`` keeps every index and marks
#: padding invalid; ``random-truncate`` keeps an unbiased random subset of the batch
#: minimum; ``reference`` keeps the first indices in raster order (the public I-JEPA
#: code's behaviour, spatially biased; for compatibility only).
Equalise = Literal["pad", "random-truncate", "reference"]


@dataclass(frozen=True)
class Masks:
    """Patch-index masks for a batch.

    Attributes:
        context: long [B', Kc], patch indices (raster order) the context encoder sees.
        targets: long [B', M, Kt], the patch indices of M target blocks.
        grid: the patch grid, (H, W) or (T, H, W); indices lie in [0, prod(grid)).
        context_valid: bool [B', Kc] or None; False marks padding.
        targets_valid: bool [B', M, Kt] or None; False marks padding.
        repeats: rows per image; B' = repeats * B, row r belongs to image r % B
            (several mask generators per batch, as in V-JEPA).
        stats: sampled and kept sizes, retries and relaxations (plain numbers).
    """

    context: Tensor
    targets: Tensor
    grid: tuple[int, ...]
    context_valid: Tensor | None = None
    targets_valid: Tensor | None = None
    repeats: int = 1
    stats: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def num_patches(self) -> int:
        n = 1
        for g in self.grid:
            n *= g
        return n

    @property
    def batch_size(self) -> int:
        """The number of images (rows divided by ``repeats``)."""
        return self.context.shape[0] // self.repeats

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Masks:
        """The same masks on ``device``."""

        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return dataclasses.replace(
            self,
            context=self.context.to(device, non_blocking=non_blocking),
            targets=self.targets.to(device, non_blocking=non_blocking),
            context_valid=move(self.context_valid),
            targets_valid=move(self.targets_valid),
        )

    def take(self, images: Tensor) -> Masks:
        """The masks of a subset of the images (long indices into the batch), e.g. one rank's share.

        Padding widths stay those of the whole batch, so every share stacks like the whole.
        """
        b = self.batch_size
        rows = (torch.arange(self.repeats)[:, None] * b + images.cpu()[None, :]).reshape(-1).to(self.context.device)

        def pick(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.index_select(0, rows)

        return dataclasses.replace(
            self,
            context=self.context.index_select(0, rows),
            targets=self.targets.index_select(0, rows),
            context_valid=pick(self.context_valid),
            targets_valid=pick(self.targets_valid),
        )

    def dense(self) -> tuple[Tensor, Tensor]:
        """Boolean grids [B', N]: the context and the union of targets (padding excluded)."""
        rows = self.context.shape[0]
        return (
            _scatter_any(self.context, self.context_valid, self.num_patches),
            _scatter_any(
                self.targets.reshape(rows, -1),
                None if self.targets_valid is None else self.targets_valid.reshape(rows, -1),
                self.num_patches,
            ),
        )


def _scatter_any(index: Tensor, valid: Tensor | None, n: int) -> Tensor:
    """[B, N] bool: True where some valid entry of ``index`` points."""
    out = torch.zeros(index.shape[0], n, dtype=torch.uint8, device=index.device)
    src = torch.ones_like(index, dtype=torch.uint8) if valid is None else valid.to(torch.uint8)
    return out.scatter_reduce_(1, index, src, reduce="amax").bool()


#: An image size: one side, or (height, width), in pixels.
IMAGE_SIZE = Valid(
    lambda s: (
        (type(s) is int and s >= 1)
        or (isinstance(s, tuple) and len(s) == 2 and all(type(v) is int and v >= 1 for v in s))
    ),
    "an int >= 1 or (height, width) of ints >= 1",
)
#: A fraction of the grid, (min, max).
SCALE = ordered_pair(0, 1)


@dataclass(frozen=True)
class MaskerConfig(Config):
    """A masker on a 2-D patch grid."""

    input_size: int | tuple[int, int] | None = knob(
        None, "image size in pixels: int or (height, width)", follows="image_size", valid=IMAGE_SIZE
    )
    patch_size: int | None = knob(None, "patch size in pixels", follows="patch_size", valid=at_least(1))

    def validate(self) -> None:
        if not self.has_grid:
            return  # unset: the method fills them in, then the checks run again
        for side in self.image_hw:
            if side % self.patch:
                raise ConfigError(
                    f"{self.type_id()}.input_size={self.input_size!r} is not divisible by "
                    f"{self.type_id()}.patch_size={self.patch_size}"
                )

    @property
    def repeats(self) -> int:
        """Mask sets per image in a batch (``Masks.repeats``: mask generators, masks per image); 1 here."""
        return 1

    @property
    def target_blocks(self) -> int:
        """Target blocks per mask set (``Masks.targets`` [R, M, Kt]: M); 1 here."""
        return 1

    @property
    def has_grid(self) -> bool:
        """Whether input and patch size are set (inside a method they follow it)."""
        return self.input_size is not None and self.patch_size is not None

    @property
    def image_hw(self) -> tuple[int, int]:
        """(height, width) in pixels (an error while the method has not set ``input_size``)."""
        s = cast("int | tuple[int, int]", resolved(self.input_size, f"{self.type_id()}.input_size"))
        return (s, s) if isinstance(s, int) else (s[0], s[1])

    @property
    def patch(self) -> int:
        """The patch side in pixels (an error while the method has not set ``patch_size``)."""
        return resolved(self.patch_size, f"{self.type_id()}.patch_size")

    @property
    def grid(self) -> tuple[int, ...]:
        """The patch grid, (H, W)."""
        h, w = self.image_hw
        return (h // self.patch, w // self.patch)


@dataclass(frozen=True)
class VideoMaskerConfig(MaskerConfig):
    """A masker on a 3-D (time, height, width) patch grid of tubelets."""

    num_frames: int | None = knob(None, "frames per clip", follows="num_frames", valid=at_least(1), required=False)
    tubelet_size: int | None = knob(
        None, "frames per tubelet (temporal patch size)", follows="tubelet_size", valid=at_least(1), required=False
    )

    def validate(self) -> None:
        super().validate()
        if self.num_frames is None or self.tubelet_size is None:
            return  # unset: the method fills them in, then the checks run again
        if self.num_frames % self.tubelet_size:
            raise ConfigError(
                f"{self.type_id()}.num_frames={self.num_frames} is not divisible by "
                f"{self.type_id()}.tubelet_size={self.tubelet_size}"
            )

    @property
    def has_grid(self) -> bool:
        return super().has_grid and self.num_frames is not None and self.tubelet_size is not None

    @property
    def grid(self) -> tuple[int, ...]:
        """The patch grid, (T, H, W)."""
        t = self.type_id()
        frames = resolved(self.num_frames, f"{t}.num_frames") // resolved(self.tubelet_size, f"{t}.tubelet_size")
        return (frames, *super().grid)


class Masker(abc.ABC):
    """Base of maskers: holds the config and grid; subclasses implement ``sample``."""

    #: True when context and targets may share patches (e.g. the ``none`` masker).
    allows_overlap: bool = False

    def __init__(self, cfg: MaskerConfig) -> None:
        self.config = cfg
        self.grid: tuple[int, ...] = cfg.grid
        self.num_patches = 1
        for g in self.grid:
            self.num_patches *= g

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> Masks:
        """Draw masks for ``batch_size`` images from ``generator`` (CPU tensors)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive int")
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ()).item()))
        return self.sample(batch_size, generator)

    @abc.abstractmethod
    def sample(self, batch_size: int, generator: torch.Generator) -> Masks:
        """Draw the masks of one batch; every random draw comes from ``generator``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


def rows_to_indices(mask: Tensor, mode: Equalise, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
    """Turn a boolean [B, N] selection into equal-length index rows [B, K].

    ``pad``: K = the largest row; indices in raster order; padding repeats the row's
    first index and is marked False in the returned validity (None when no row is
    padded). ``random-truncate``: K = the smallest row, an unbiased random subset,
    in raster order. ``reference``: K = the smallest row, its first K indices.
    Every row must select at least one index.
    """
    counts = mask.sum(1)
    if mode == "random-truncate":
        k = int(counts.min())
        keys = torch.rand(mask.shape, generator=generator)
        keys.masked_fill_(~mask, 2.0)
        chosen = torch.topk(keys, k, dim=1, largest=False, sorted=False).indices
        return torch.sort(chosen, dim=1).values, None
    if mode in ("pad", "reference"):
        packed = _pack(mask, int(counts.max()))
        if mode == "reference":
            return packed[:, : int(counts.min())], None
        valid = torch.arange(packed.shape[1]) < counts[:, None]
        if bool(valid.all()):
            return packed, None
        return torch.where(valid, packed, packed[:, :1]), valid
    raise ValueError(f"unknown equalisation mode {mode!r}; valid: pad, random-truncate, reference")


def _pack(mask: Tensor, k: int) -> Tensor:
    """[B, k]: the indices of each row's True entries in raster order (O(N), no sort), 0-padded."""
    b, n = mask.shape
    slot = torch.where(mask, mask.cumsum(1) - 1, k)  # unselected entries go to a spare column
    out = torch.zeros(b, k + 1, dtype=torch.long)
    return out.scatter_(1, slot, torch.arange(n).expand(b, n))[:, :k]


def random_split(batch_size: int, n: int, k: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Per row, a uniform random k-subset of range(n) and its complement, both sorted."""
    order = torch.argsort(torch.rand(batch_size, n, generator=generator), dim=1)
    return torch.sort(order[:, :k], dim=1).values, torch.sort(order[:, k:], dim=1).values


def check_ratio(where: str, ratio: float, n: int) -> int:
    """The number of patches ``ratio`` of ``n`` selects, checked to leave both sides non-empty."""
    k = round(ratio * n)
    if not 0 < ratio < 1 or not 0 < k < n:
        raise ConfigError(f"{where}={ratio!r} must select between 1 and {n - 1} of the {n} patches")
    return k


def draw_until_valid(batch_size: int, max_tries: int, draw: Callable[[Tensor, bool], Tensor]) -> tuple[int, int]:
    """Rejection sampling over rows, vectorised, that always terminates.

    ``draw(rows, stack)`` draws masks for ``rows``, stores the valid ones and returns
    their validity. Rows are redrawn at most ``max_tries`` rounds; the rest are drawn
    once with ``stack=True``, a fallback the masker's construction check guarantees to
    be valid. Returns (rows redrawn, rows that needed the fallback).
    """
    pending = torch.arange(batch_size)
    retries = 0
    for round_ in range(max_tries):
        if round_:
            retries += len(pending)
        pending = pending[~draw(pending, False)]
        if not len(pending):
            return retries, 0
    if not bool(draw(pending, True).all()):
        raise RuntimeError("the fallback draw was invalid; the masker's construction check is wrong")
    return retries, len(pending)


def context_stats(sampled: Tensor, kept_valid: Tensor | None, kept_len: int) -> dict[str, float]:
    """Mean, min and max of the context drawn per row, and the mean kept after equalisation."""
    counts = sampled.sum(1).float()
    kept = kept_valid.sum(1).float().mean() if kept_valid is not None else torch.tensor(float(kept_len))
    return {
        "context_sampled": float(counts.mean()),
        "context_kept": float(kept),
        "context_min": int(counts.min()),
        "context_max": int(counts.max()),
    }
