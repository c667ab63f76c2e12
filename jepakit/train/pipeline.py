"""The input pipeline on ``torchdata.nodes``: keys -> thread-parallel loading -> prefetch.

Every item is one micro-batch of one optimiser step: its sample indices (a seeded
permutation per epoch, this rank's share; for a data set that streams, the positions in
the epoch's stream, whose raw samples are read in order and decoded by the workers), the
samples read from the data set (those that cannot be read are left out and counted by
the data set), and what the method's ``make_batch`` makes of them, seeded through a
:class:`~jepakit.methods.base.Draw` by (seed, epoch, index) per sample and (seed, step,
micro-batch) for the micro-batch. Items come out in order whatever the number of worker
threads, so 0, 1 or 2 workers give identical batches, and the pipeline's state is just
the step: a resumed run rebuilds it at the checkpoint's step. Use it as a context
manager: leaving it (normally or by an exception) stops its threads, which would
otherwise abort the interpreter at exit.
"""

from __future__ import annotations

import functools
import gc
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from ..config import ConfigError
from ..data.base import DataError, StreamingData
from ..methods.base import Draw, mix_seed

__all__ = ["EpochOrder", "MicroBatch", "MicroBatches", "micro_batches"]

#: (step, micro-batch, the keyword arguments of the method's forward)
MicroBatch = tuple[int, int, dict[str, Any]]


class EpochOrder:
    """Which samples each optimiser step reads: a permutation per epoch seeded by (seed, epoch),
    ``batch_size`` samples per step, the last partial batch of an epoch dropped. With
    ``shuffle=False`` the order is the data set's own (a stream that shuffles itself)."""

    def __init__(self, num_samples: int, batch_size: int, seed: int, shuffle: bool = True) -> None:
        if num_samples < batch_size:
            raise ConfigError(f"the data set has {num_samples} samples, fewer than train.batch_size={batch_size}")
        self.num_samples, self.batch_size, self.seed, self.shuffle = num_samples, batch_size, seed, shuffle
        self.steps_per_epoch = num_samples // batch_size
        self._perm: tuple[int, torch.Tensor] | None = None

    def __call__(self, step: int) -> tuple[int, torch.Tensor]:
        """(epoch, sample indices) of optimiser step ``step``."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        cached = self._perm  # one read: the pipeline's thread and the loop may both call this
        if cached is None or cached[0] != epoch:
            g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
            order = torch.randperm(self.num_samples, generator=g) if self.shuffle else torch.arange(self.num_samples)
            cached = self._perm = (epoch, order)
        b = self.batch_size
        return epoch, cached[1][pos * b : (pos + 1) * b]


class MicroBatches:
    """An iterator over a run's micro-batches that owns the pipeline's threads (see ``close``)."""

    def __init__(self, it: Iterator[MicroBatch], threaded: bool) -> None:
        self._it: Iterator[MicroBatch] | None = it
        self._threaded = threaded

    def __iter__(self) -> MicroBatches:
        return self

    def __next__(self) -> MicroBatch:
        if self._it is None:
            raise StopIteration
        return next(self._it)

    def close(self) -> None:
        """Stop the worker and prefetch threads (torchdata stops them when its iterator is freed, which a
        reference cycle delays until a collection; without threads there is nothing to wait for)."""
        self._it = None
        if self._threaded:
            gc.collect()

    def __enter__(self) -> MicroBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Key = tuple[int, int, int, torch.Tensor, list[Any] | None]  #: (step, micro, epoch, indices, raw samples)


class _StreamReader:
    """A stream's raw samples step by step: the epoch's stream, read up to each step's first sample (a
    resumed run passes the samples before it undecoded)."""

    def __init__(self, data: StreamingData, order: EpochOrder, seed: int) -> None:
        self.data, self.order, self.seed = data, order, seed
        self.epoch: int | None = None
        self.samples: Iterator[Any] = iter(())
        self.read = 0

    def __call__(self, step: int, epoch: int) -> list[Any]:
        if self.epoch != epoch:
            self.epoch, self.samples, self.read = epoch, self.data.epoch(mix_seed(self.seed, epoch)), 0
        first = step % self.order.steps_per_epoch * self.order.batch_size
        for _ in itertools.islice(self.samples, first - self.read):
            pass
        self.read = first + self.order.batch_size
        return list(itertools.islice(self.samples, self.order.batch_size))


def _load(
    key: Key,
    data: Any,
    make_batch: Callable[[Sequence[Mapping[str, Any]], Draw], dict[str, Any]],
    seed: int,
    rank: int,
    world: int,
) -> MicroBatch:
    """The micro-batch of ``key``: this rank's share of its samples, read (or decoded from the stream's raws),
    unreadable ones left out, made into a batch by the method."""
    step, j, epoch, batch, raws = key
    share = torch.arange(len(batch)).tensor_split(world)[rank]  # this rank's samples
    samples, kept = [], []
    for pos in share.tolist():
        sample = data[int(batch[pos])] if raws is None else data.decode(raws[pos], int(batch[pos]))
        if sample is not None:
            samples.append(sample)
            kept.append(pos)
    if not samples:
        raise DataError(
            f"step {step}: none of the batch's {len(share)} samples could be read (indices "
            f"{batch[share].tolist()[:8]}...); check the data's files (the log counts unreadable samples)"
        )
    rows = torch.tensor(kept, dtype=torch.long)
    draw = Draw(seed=seed, epoch=epoch, step=step, micro=j, indices=batch[rows], rows=rows, size=len(batch))
    return step, j, make_batch(samples, draw)


def micro_batches(
    make_batch: Callable[[Sequence[Mapping[str, Any]], Draw], dict[str, Any]],
    data: Any,
    order: EpochOrder,
    *,
    seed: int,
    accum_steps: int,
    start: int,
    stop: int,
    rank: int = 0,
    world: int = 1,
    num_workers: int = 0,
    prefetch: int = 0,
) -> MicroBatches:
    """Micro-batches of steps ``start`` .. ``stop - 1``, in order (see the module docstring)."""
    from torchdata.nodes import IterableWrapper, Loader, Mapper, ParallelMapper, Prefetcher

    micro = order.batch_size // accum_steps
    stream = _StreamReader(data, order, seed) if isinstance(data, StreamingData) else None

    def keys() -> Iterator[Key]:
        for step in range(start, stop):
            epoch, indices = order(step)
            raws = stream(step, epoch) if stream is not None else None
            for j in range(accum_steps):
                part = slice(j * micro, (j + 1) * micro)
                yield step, j, epoch, indices[part], raws[part] if raws is not None else None

    load = functools.partial(_load, data=data, make_batch=make_batch, seed=seed, rank=rank, world=world)
    node = IterableWrapper(keys())
    if num_workers > 0:
        node = ParallelMapper(node, load, num_workers=num_workers, method="thread", in_order=True)
    else:
        node = Mapper(node, load)
    if prefetch > 0:
        node = Prefetcher(node, prefetch_factor=prefetch)
    return MicroBatches(iter(Loader(node)), threaded=num_workers > 0 or prefetch > 0)
