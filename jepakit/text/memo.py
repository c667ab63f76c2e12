"""Remembered caption embeddings of a frozen text encoder.

A frozen encoder maps a caption's token ids to the same word embeddings every time,
and captions repeat (templated data, class prompts, a caption seen every epoch). The
memo keys each caption row by its ids and attended keys, encodes only the rows it has
not seen (once each, in one batch) and reads the rest. Unlike ``TextCache`` it needs
no pass over the data set first and keys by content, not by sample.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["CaptionMemo"]


class CaptionMemo:
    """Up to ``capacity`` captions' outputs, least recently used dropped first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"memo capacity={capacity} must be positive")
        self.capacity = capacity
        self._store: OrderedDict[bytes, Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def __call__(self, ids: Tensor, keys: Tensor, encode: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """Rows of ``encode(ids, keys)`` ([M, S] each -> [M, S, D]), each distinct row encoded at most once."""
        rows = torch.cat([ids, keys.to(ids.dtype)], dim=1).cpu().numpy()
        names = [row.tobytes() for row in rows]
        new: dict[bytes, int] = {}
        for i, name in enumerate(names):
            if name not in self._store and name not in new:
                new[name] = i
        fresh = {}
        if new:
            where = torch.tensor(list(new.values()), device=ids.device)
            out = encode(ids[where], keys[where])
            fresh = dict(zip(new, out, strict=True))
        self.misses += len(new)
        self.hits += len(names) - len(new)
        result = torch.stack([fresh[n] if n in fresh else self._store[n] for n in names])
        for name in names:
            if name in self._store:
                self._store.move_to_end(name)
        for name, value in fresh.items():
            self._store[name] = value
            if len(self._store) > self.capacity:
                self._store.popitem(last=False)
        return result
