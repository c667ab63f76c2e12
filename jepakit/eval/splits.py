"""The probes' train / val / test splits: seeded, stratified by class, sized from what the data has.

A split taken in index order is biased whenever the index order means something: an image folder
is sorted by class, so its first images are all of the first classes. The probes therefore read a
seeded random subset of the data, and deal its rows to the splits so that every class is spread over
them in proportion to their sizes (within two rows), each split of exactly the size asked for.
"""

from __future__ import annotations

import torch

from ..config import ConfigError
from ..data.base import stratified_split

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
