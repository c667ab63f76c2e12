"""I-JEPA multi-block masking on a 2-D patch grid, without the reference code's defects.

Reference: Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding
Predictive Architecture", CVPR 2023 (https://arxiv.org/abs/2301.08243).

Per batch one target block shape and one context block shape are drawn (by default as the
official collator draws them: one uniform number gives both the scale and the aspect ratio;
``shape_draw="independent"`` draws them apart), so target blocks stack to [B, M, Kt]; per image the
positions are drawn uniformly over *all* cells. The target patches are removed from the
context. A draw whose context keeps fewer than ``min_keep`` patches is redrawn (targets
and context together: rejection sampling of the joint), at most ``max_tries`` rounds,
all rows at once; rows still short then stack their target blocks on one position,
which the construction check guarantees to leave ``min_keep`` patches (``fallback="overlap"``:
they keep their target patches in the context instead, the official collator's last resort,
so that targets as large as the context may be asked for). Such rows are counted in
``stats["relaxations"]``; nothing is printed and nothing loops forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..config import ConfigError, at_least, knob, positive_pair
from ..registry import register
from .base import (
    SCALE,
    Equalise,
    Masker,
    MaskerConfig,
    Masks,
    context_stats,
    draw_until_valid,
    rows_to_indices,
)
from .boxes import block_area_range, box_indices, box_union, draw_block_shape, draw_starts

__all__ = ["MultiBlockConfig", "MultiBlockMasker", "PaperContextConfig"]

#: The patch grid side of the CPU recipes (64 px in 8 px patches): what advice for small images aims at.
CPU_GRID = 8


@dataclass(frozen=True)
class MultiBlockConfig(MaskerConfig):
    num_targets: int = knob(4, "target blocks per image (I-JEPA: 4)", valid=at_least(1))
    target_scale: tuple[float, float] = knob((0.15, 0.2), "target block area as a fraction of the grid", valid=SCALE)
    target_aspect: tuple[float, float] = knob(
        (0.75, 1.5), "target block aspect ratio height/width", valid=positive_pair()
    )
    num_context: int = knob(1, "context blocks per image; the context is their union", valid=at_least(1))
    context_scale: tuple[float, float] = knob((0.85, 1.0), "context block area as a fraction of the grid", valid=SCALE)
    context_aspect: tuple[float, float] = knob((1.0, 1.0), "context block aspect ratio", valid=positive_pair())
    allow_overlap: bool = knob(False, "keep target patches in the context (I-JEPA: False)")
    min_keep: int = knob(10, "fewest context patches an image may have", valid=at_least(1))
    context: Equalise = knob("pad", "equalise context lengths: pad | random-truncate | reference (biased, compat)")
    block_cap: Literal["grid", "grid-1"] = knob(
        "grid", "longest block side: the grid, or grid-1 as the official collator (no block spans a full row)"
    )
    shape_draw: Literal["coupled", "independent"] = knob(
        "coupled",
        "a block's scale and aspect: coupled, one uniform draw for both, as the official collator (small blocks "
        "wide, large ones tall); independent, two draws (every shape in the ranges)",
    )
    max_tries: int = knob(20, "rejection-sampling rounds before a short row's fallback", valid=at_least(1))
    fallback: Literal["stack", "overlap"] = knob(
        "stack",
        "a row still short of min_keep after max_tries: stack its target blocks on one position (the construction "
        "check guarantees that keeps min_keep), or keep its target patches in its context (the official "
        "collator's last resort; targets as large as the context may then be asked for, e.g. lightly's defaults)",
    )

    @property
    def target_blocks(self) -> int:
        return self.num_targets

    @property
    def margin(self) -> int:
        """Patches short of the grid a block side may reach."""
        return 1 if self.block_cap == "grid-1" else 0

    def validate(self) -> None:
        super().validate()
        t = self.type_id()
        if not self.has_grid:
            return
        cells = self.grid[0] * self.grid[1]
        for name in ("num_targets", "num_context"):
            if getattr(self, name) > cells:  # its size fields by name
                raise ConfigError(
                    f"{t}.{name}={getattr(self, name)} exceeds the {cells} patches of the {self.grid} grid"
                    f"{self._finer_patches()}"
                )
        if self.context_kept(self.grid) < self.min_keep:
            ctx_min, tgt_max = self._block_areas(self.grid)
            advice = self._finer_patches()
            raise ConfigError(
                f"{t}: the grid {self.grid} is too small for these blocks: a context block of "
                f"{ctx_min} patches (context_scale={self.context_scale}) minus a target block of up "
                f"to {tgt_max} (target_scale={self.target_scale}) cannot always keep min_keep={self.min_keep}"
                f"{advice}; {'or ' if advice else ''}lower min_keep or target_scale, raise context_scale, or let "
                "a short row keep its targets in its context (fallback=overlap)"
            )

    def _block_areas(self, grid: tuple[int, ...]) -> tuple[int, int]:
        """(the smallest context block, the largest target block) in patches on ``grid``."""
        coupled = self.shape_draw == "coupled"
        ctx_min, _ = block_area_range(
            self.context_scale, self.context_aspect, grid, margin=self.margin, coupled=coupled
        )
        _, tgt_max = block_area_range(self.target_scale, self.target_aspect, grid, margin=self.margin, coupled=coupled)
        return ctx_min, tgt_max

    def context_kept(self, grid: tuple[int, ...]) -> int:
        """The context patches every draw on ``grid`` is guaranteed to keep."""
        ctx_min, tgt_max = self._block_areas(grid)
        return ctx_min if self.allow_overlap or self.fallback == "overlap" else ctx_min - tgt_max

    def _finer_patches(self) -> str:
        """Advice for images smaller than the recipe was made for (the grid, not the blocks, should follow
        the image size): the largest smaller patch size giving at least the CPU recipes' 8 x 8 grid, else
        any grid, that takes these blocks; or ''."""
        h, w = self.image_hw
        fits = [
            (p, (h // p, w // p))
            for p in range(self.patch - 1, 0, -1)
            if h % p == 0
            and w % p == 0
            and (h // p) * (w // p) >= max(self.num_targets, self.num_context)
            and self.context_kept((h // p, w // p)) >= self.min_keep
        ]
        if not fits:
            return ""
        p, grid = next((f for f in fits if min(f[1]) >= CPU_GRID), fits[0])
        return f": at {h} x {w} px set the encoder's patch_size={p} (a grid of {grid[0]} x {grid[1]} patches takes these blocks)"


@register("masker", "multiblock", MultiBlockConfig)
class MultiBlockMasker(Masker):
    """I-JEPA multi-block masks: M target blocks, a context block without them.

    Shapes: ``masker(B, generator)`` -> ``Masks``: context long [B, Kc] (``context_valid`` bool [B, Kc]
    marks padding, equalised as ``context`` says), targets long [B, M, Kt], patch indices in raster order.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> masker = create("masker", "multiblock", input_size=64, patch_size=8)
        >>> masks = masker(2, torch.Generator().manual_seed(0))
        >>> masks.grid, masks.targets.shape[:2]  # 4 target blocks per image on the 8 x 8 grid
        ((8, 8), torch.Size([2, 4]))
        >>> bool(torch.isin(masks.targets[0], masks.context[0][masks.context_valid[0]]).any())  # disjoint
        False
    """

    config: MultiBlockConfig

    def sample(self, batch_size: int, generator: torch.Generator) -> Masks:
        cfg = self.config
        grid = self.grid
        coupled = cfg.shape_draw == "coupled"
        t_shape = draw_block_shape(cfg.target_scale, cfg.target_aspect, grid, generator, cfg.margin, coupled)
        c_shape = draw_block_shape(cfg.context_scale, cfg.context_aspect, grid, generator, cfg.margin, coupled)

        t_starts = torch.empty(batch_size, cfg.num_targets, 2, dtype=torch.long)
        context = torch.empty(batch_size, self.num_patches, dtype=torch.bool)

        def draw(rows: Tensor, stack: bool) -> Tensor:
            return self._draw(rows, t_shape, c_shape, t_starts, context, generator, stack)

        retries, relaxations = draw_until_valid(batch_size, cfg.max_tries, draw)
        targets = box_indices(t_starts, t_shape, grid)
        ctx_idx, ctx_valid = rows_to_indices(context, cfg.context, generator)
        stats = {
            "target_shape": t_shape,
            "context_shape": c_shape,
            **context_stats(context, ctx_valid, ctx_idx.shape[1]),
            "retries": retries,
            "relaxations": relaxations,
        }
        return Masks(ctx_idx, targets, grid, ctx_valid, None, stats=stats)

    def _draw(
        self,
        rows: Tensor,
        t_shape: tuple[int, int],
        c_shape: tuple[int, int],
        t_starts: Tensor,
        context: Tensor,
        generator: torch.Generator,
        stack: bool,
    ) -> Tensor:
        """Draw targets and context for ``rows``; store the rows that keep ``min_keep``. ``stack``: the
        fallback draw (targets stacked, or left in the context, as ``fallback`` says)."""
        cfg = self.config
        n = len(rows)
        stacked = stack and cfg.fallback == "stack"
        starts = draw_starts(n, 1 if stacked else cfg.num_targets, t_shape, self.grid, generator)
        starts = starts.expand(n, cfg.num_targets, 2)
        ctx = box_union(draw_starts(n, cfg.num_context, c_shape, self.grid, generator), c_shape, self.grid)
        if not (cfg.allow_overlap or (stack and cfg.fallback == "overlap")):
            ctx &= ~box_union(starts, t_shape, self.grid)
        ok = ctx.sum(1) >= cfg.min_keep
        t_starts[rows[ok]] = starts[ok]
        context[rows[ok]] = ctx[ok]
        return ok


@dataclass(frozen=True)
class PaperContextConfig(MultiBlockConfig):
    """The context the paper's models were trained on, without the official code's row bias.

    The official collator caps a block side at grid-1 and truncates every context of a batch to
    the shortest one, keeping its first patches in raster order; at 224/16 that leaves about 49
    context patches where ``multiblock`` (full-grid cap, padding) keeps about 93. This preset
    keeps the cap and the equal length but truncates to a uniform random subset of each row.
    """

    context: Equalise = knob("random-truncate", "equalise context lengths: random-truncate (the paper's length)")
    block_cap: Literal["grid", "grid-1"] = knob("grid-1", "longest block side: grid-1, as the official collator")


@register("masker", "multiblock-paper-context", PaperContextConfig)
class PaperContextMasker(MultiBlockMasker):
    """I-JEPA multi-block masks with the official effective context length, drawn without raster bias.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> masker = create("masker", "multiblock-paper-context", input_size=64, patch_size=8)
        >>> masks = masker(2, torch.Generator().manual_seed(0))
        >>> masks.targets.shape[1], masks.context_valid is None  # 4 targets; contexts cut to the shortest row
        (4, True)
    """
