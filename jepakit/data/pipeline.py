"""The input pipeline on ``torchdata.nodes``: keys -> thread-parallel loading -> prefetch.

Every item is one micro-batch of one optimiser step: its sample indices (the trainer's
seeded per-epoch permutation, this rank's share), the decoded and augmented images
(per-sample draws seeded by (seed, epoch, index)), the tokenised captions, and the
masks (drawn for the whole global micro-batch from (seed, step, micro-batch), then
this rank's rows). Items come out in order whatever the number of worker threads, so
0, 1 or 2 workers give identical batches, and the pipeline's state is just the step:
a resumed run rebuilds it at the checkpoint's step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["micro_batches"]


def micro_batches(
    trainer: Any,
    data: Any,
    masker: Any,
    tokenizer: Any | None,
    start: int,
    stop: int,
    rank: int = 0,
    world: int = 1,
) -> Iterator[dict[str, Any]]:
    """Micro-batches of steps ``start`` .. ``stop - 1``, in order (see the module docstring)."""
    from torchdata.nodes import IterableWrapper, Loader, Mapper, ParallelMapper, Prefetcher

    cfg = trainer.config
    micro = cfg.batch_size // cfg.accum_steps

    def keys() -> Iterator[tuple[int, int, int, torch.Tensor]]:
        for step in range(start, stop):
            epoch, indices = trainer.batch_indices(step, len(data))
            for j in range(cfg.accum_steps):
                yield step, j, epoch, indices[j * micro : (j + 1) * micro]

    def load(key: tuple[int, int, int, torch.Tensor]) -> dict[str, Any]:
        step, j, epoch, batch = key
        share = torch.arange(len(batch)).tensor_split(world)[rank]  # this rank's images
        images, captions, kept = trainer.load_batch(data, epoch, batch[share])
        masks = masker(len(batch), trainer.mask_generator(step, j))
        if len(kept) != len(batch):
            masks = masks.take(share[kept])
        text = tokenizer(captions) if tokenizer is not None else captions
        return {"step": step, "micro": j, "images": images, "masks": masks, "text": text}

    node = IterableWrapper(keys())
    if cfg.num_workers > 0:
        node = ParallelMapper(node, load, num_workers=cfg.num_workers, method="thread", in_order=True)
    else:
        node = Mapper(node, load)
    if cfg.prefetch > 0:
        node = Prefetcher(node, prefetch_factor=cfg.prefetch)
    return iter(Loader(node))
