"""The probes' train / val / test splits: seeded, stratified by class, sized from what the data has.

A split taken in index order is biased whenever the index order means something: an image folder
is sorted by class, so its first images are all of the first classes. The probes therefore read a
seeded random subset of the data, and deal its rows to the splits so that every class is spread over
them in proportion to their sizes (within one row), each split of exactly the size asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..config import ConfigError

__all__ = ["DEFAULT_SPLITS", "chosen_rows", "split_sizes", "stratified_split"]

#: train, val and test images when the data has this many or more (``split_sizes``).
DEFAULT_SPLITS = (3000, 500, 3000)


def split_sizes(
    available: int, held_out: int | None, train: int | None, val: int | None, test: int | None
) -> tuple[int, int, int]:
    """(train, val, test) sizes: those given, the rest from what the data has.

    ``available``: images of the data the splits are drawn from; ``held_out``: images of a separate test
    set (None: the test split is drawn from the same data). An unset size is ``DEFAULT_SPLITS``'s, or,
    where the data has fewer images than that, its share (in ``DEFAULT_SPLITS``'s proportions) of what the
    sizes given leave, all of it read. Sizes that do not fit raise ``ConfigError`` naming them and what the data has."""
    asked = {"train": train, "val": val, "test": test}
    for name, n in asked.items():
        if n is not None and n < 1:
            raise ConfigError(f"probe split --{name}={n} must be at least 1")
    default = dict(zip(asked, DEFAULT_SPLITS, strict=True))
    sizes = {k: v for k, v in asked.items() if v is not None}
    if held_out is not None and "test" not in sizes:
        sizes["test"] = min(held_out, default["test"])
    drawn = [k for k in asked if held_out is None or k != "test"]  # the splits drawn from the data
    free = [k for k in drawn if k not in sizes]
    room = available - sum(sizes[k] for k in drawn if k in sizes)
    scale = min(1.0, room / sum(default[k] for k in free)) if free else 1.0
    sizes.update({k: max(1, int(default[k] * scale)) for k in free})
    if free and scale < 1:  # what rounding down left goes to the largest unset split
        largest = max(free, key=lambda k: default[k])
        sizes[largest] += max(0, room - sum(sizes[k] for k in free))
    if sum(sizes[k] for k in drawn) > available or (held_out is not None and sizes["test"] > held_out):
        given = " ".join(f"{k}={sizes[k]}" for k in asked)
        has = f"{available} images" if held_out is None else f"{available} images to fit on and {held_out} to test on"
        raise ConfigError(
            f"probe splits {given} need more images than the data has ({has}); give smaller --train/--val/--test"
        )
    return sizes["train"], sizes["val"], sizes["test"]


def chosen_rows(available: int, count: int, seed: int) -> torch.Tensor:
    """``count`` of the indices [0, available), a seeded random choice, in increasing order (all of them when
    ``count == available``): the images the probes read."""
    if count >= available:
        return torch.arange(available)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(available, generator=g)[:count].sort().values


def stratified_split(labels: torch.Tensor | None, sizes: Sequence[int], seed: int) -> list[torch.Tensor]:
    """Rows [0, N) dealt to ``len(sizes)`` parts of exactly ``sizes[k]`` rows (``sum(sizes) == N``).

    With ``labels`` (class per row, [N]) each class's rows go to the parts in proportion to the parts'
    sizes, to within one row per part; the order is seeded. Each part's rows come back in a seeded
    random order."""
    n = int(sum(sizes))
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for splits of {list(sizes)} rows")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    if labels is not None:  # the classes one after another, each in a random order
        order = order[torch.sort(labels[order], stable=True).indices]
    # deal the positions 0..N-1 so that every prefix holds each part in proportion to its size
    dealt = [0] * len(sizes)
    part = []
    for i in range(1, n + 1):
        k = max(range(len(sizes)), key=lambda j: sizes[j] * i / n - dealt[j])
        part.append(k)
        dealt[k] += 1
    parts = torch.tensor(part, dtype=torch.long)
    return [order[parts == k][torch.randperm(int(s), generator=g)] for k, s in enumerate(sizes)]
