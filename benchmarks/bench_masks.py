"""Multi-block masking, I-JEPA paper configuration, 224 px / patch 16, batch 256, CPU.

Side by side in one process with lightly's ``IJEPAMaskCollator`` (a port of the
reference code): milliseconds per batch and the ratio, mean context kept per image
against sampled, and per-row context frequency against the unbiased expectation
(the sampled context's row profile scaled by the overall keep ratio).

Run: ``python benchmarks/bench_masks.py [--rounds 5]``; replaces its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from typing import ClassVar

import torch

from jepakit import create

from _common import LIGHTLY_IJEPA_MASKS, alternate, median, record, table

GRID = 14
BATCH = 256


class RecordingCollator:
    """lightly's collator, recording the context each image drew before truncation."""

    def __init__(self) -> None:
        from lightly.data.ijepa_collate import IJEPAMaskCollator

        class Recording(IJEPAMaskCollator):
            sampled: ClassVar[list[torch.Tensor]] = []

            def _sample_block_mask(self, b_size, acceptable_regions=None):
                mask, complement = super()._sample_block_mask(b_size, acceptable_regions)
                if acceptable_regions is not None:  # the context block, targets removed
                    self.sampled.append(mask.reshape(-1))
                return mask, complement

        self.collator = Recording(input_size=224, patch_size=16, **LIGHTLY_IJEPA_MASKS)
        self.items = [(torch.zeros(()),)] * BATCH  # near-free image collation: time the masks

    def __call__(self):
        self.collator.sampled.clear()
        _, enc, _ = self.collator(self.items)
        return enc[0], list(self.collator.sampled)


def row_profile(indices: list[torch.Tensor]) -> torch.Tensor:
    """How often each grid row appears among the given per-image index sets."""
    counts = torch.zeros(GRID)
    for idx in indices:
        counts += torch.bincount(idx // GRID, minlength=GRID).float()
    return counts


def index_sets(dense: torch.Tensor) -> list[torch.Tensor]:
    return [row.nonzero().squeeze(1) for row in dense]


def draws(name: str, lightly: RecordingCollator, ours: dict, batches: int):
    """Per batch: (sampled context sets, kept context sets) of each image."""
    for seed in range(batches):
        if name == "lightly":
            kept, sampled = lightly()
            yield sampled, list(kept)
        else:  # pad mode on the same seed draws the same blocks and keeps everything
            sampled = index_sets(ours["pad"](BATCH, torch.Generator().manual_seed(seed)).dense()[0])
            kept = index_sets(ours[name](BATCH, torch.Generator().manual_seed(seed)).dense()[0])
            yield sampled, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    parser.add_argument("--repeats", type=int, default=4, help="batches per round")
    parser.add_argument("--stats-batches", type=int, default=20, help="batches for the context statistics")
    args = parser.parse_args()

    torch.set_num_threads(1)  # the collator runs in one data-loader worker
    lightly = RecordingCollator()
    modes = ("pad", "random-truncate", "reference")
    ours = {mode: create("masker", "multiblock", input_size=224, patch_size=16, context=mode) for mode in modes}
    g = torch.Generator().manual_seed(0)
    fns: dict[str, Callable[[], object]] = {
        "lightly": lightly,
        **{mode: partial(ours[mode], BATCH, g) for mode in modes},
    }
    times = alternate(fns, args.rounds, args.repeats)
    base = median(times["lightly"])

    rows = []
    for name in fns:
        sampled_rows, kept_rows = torch.zeros(GRID), torch.zeros(GRID)
        sampled_n = kept_n = 0
        for sampled, kept in draws(name, lightly, ours, args.stats_batches):
            sampled_rows += row_profile(sampled)
            kept_rows += row_profile(kept)
            sampled_n += sum(len(x) for x in sampled)
            kept_n += sum(len(x) for x in kept)
        images = args.stats_batches * BATCH
        expected = sampled_rows * (kept_n / sampled_n)
        seen = expected > 0
        deviation = kept_rows[seen] / expected[seen] - 1
        never = [str(i) for i in range(GRID) if kept_rows[i] == 0]
        label = "lightly IJEPAMaskCollator" if name == "lightly" else f"jepakit multiblock, context={name}"
        ms = median(times[name]) * 1e3
        rows.append(
            (
                label,
                f"{ms:.2f}",
                f"{base * 1e3 / ms:.1f}x",
                f"{sampled_n / images:.1f}",
                f"{kept_n / images:.1f}",
                f"{kept_n / sampled_n:.1%}",
                f"{deviation.min():+.0%} / {deviation.max():+.0%}",
                ", ".join(never) or "-",
                f"{kept_rows[:2].sum() / kept_rows[-2:].sum():.2f}",
            )
        )
    header = (
        "method",
        "ms / batch",
        "speed-up vs lightly",
        "context sampled / img",
        "context kept / img",
        "kept",
        "row freq. vs unbiased (min / max)",
        "rows never in context",
        "top 2 rows / bottom 2 rows kept",
    )
    note = (
        f"Paper config (4 targets at (0.15, 0.2), aspect (0.75, 1.5); context (0.85, 1.0); min_keep 10), "
        f"{GRID}x{GRID} grid, batch {BATCH}, 1 thread, median of {args.rounds} alternating rounds x "
        f"{args.repeats} batches; statistics over {args.stats_batches} batches."
    )
    record("Masking: multiblock vs lightly's IJEPAMaskCollator", note + "\n\n" + table(header, rows))


if __name__ == "__main__":
    main()
