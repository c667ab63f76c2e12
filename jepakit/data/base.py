"""What a data set's config declares to the probes: which images they fit on and which they test on.

A probe number is "held out" only when pretraining never read the test images. Whether it did is a
property of the data, so each data config says it (``DatasetConfig.probe_sets``) instead of the probe
guessing: generated data draws new images with another seed, a folder laid out as ``train/`` and
``test/`` (or a Hugging Face dataset saved with a test split) tests on that split, the data a run
trained on says that its test images are among the training images, and other data says that
whether pretraining read it is unknown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import torch

from ..config import Config, to_dict

__all__ = ["DataError", "DatasetConfig", "ProbeSets", "Reporting", "StreamingData", "new_draws", "stratified_split"]


class DataError(ValueError):
    """The data cannot be read as configured: a corrupt or missing file under ``on_error="fail"``, a
    batch none of whose samples can be read. The command line prints it as one line."""


@runtime_checkable
class StreamingData(Protocol):
    """A data set read as a stream rather than by index (tar shards): the trainer's pipeline takes an
    epoch's raw samples in order and decodes each; the probes, which read by index, refuse it."""

    def epoch(self, seed: int) -> Iterator[Any]:
        """An epoch's raw samples, exactly ``len(self)`` of them, in an order seeded by ``seed``."""
        ...

    def decode(self, raw: Any, index: int) -> dict[str, Any] | None:
        """The sample of a raw one, or None (counted) when it cannot be read."""
        ...


@runtime_checkable
class Reporting(Protocol):
    """A data set that skips what it cannot read and says so (the file, shard and video sets): the trainer
    logs ``report`` once and, per epoch, the samples ``unreadable`` counts."""

    unreadable: int  #: samples that could not be decoded since construction

    @property
    def report(self) -> str:
        """What was skipped at construction ('' when nothing)."""
        ...


class ProbeSets(NamedTuple):
    """The probes' data: ``fit`` gives the train and val images (and the test images when ``test`` is
    None); ``held_out``: whether pretraining never read the test images (None: unknown); ``why``: one
    line saying where the test images come from."""

    fit: Config
    test: Config | None
    held_out: bool | None
    why: str


@dataclasses.dataclass(frozen=True)
class DatasetConfig(Config):
    """Base of the data set configs: what the probes read of a data set."""

    #: fields that change how the images are read, not which images: data that differs from another only
    #: in these holds the same images
    reading: ClassVar[tuple[str, ...]] = ("image_size", "on_error", "decoder")
    #: its samples are clips ("video" [C, T, H, W]), not images: only a method with num_frames takes them
    clips: ClassVar[bool] = False

    def captions_missing(self) -> str | None:
        """Why this data has no captions for a method that pairs images with text (None: it has them)."""
        return None

    def same_images(self, other: Config | None) -> bool:
        """Whether ``other`` is this data, read perhaps at another size."""
        if other is None or type(other) is not type(self):
            return False
        mine, theirs = to_dict(self), to_dict(other)
        return all(mine[k] == theirs[k] for k in mine if k not in self.reading)

    def probe_sets(self, trained: Config | None, images: int) -> ProbeSets:
        """The probes' data when they read this data for an encoder pretrained on ``trained`` (None: not
        known); ``images``: what the probes' splits need, for data that can make any number."""
        return default_probe_sets(self, trained)


def default_probe_sets(data: Config, trained: Config | None) -> ProbeSets:
    """The probe sets of data that has no held-out part: the data itself, its test images pretraining's own
    when it is the data the run trained on, and not known otherwise."""
    same = data.same_images(trained) if isinstance(data, DatasetConfig) else data == trained
    if same:
        why = f"NOT held out: the test images are among those pretraining read ({data.type_id()} has no test split)"
        return ProbeSets(data, None, False, why)
    why = "the test images are not pretraining's data" if trained is not None else "an export does not say"
    return ProbeSets(data, None, None, f"held out: unknown ({why}; whether pretraining read them is not known)")


def new_draws(cfg: Any, trained: Config | None, images: int) -> ProbeSets:
    """The probe sets of generated data (sample i a pure function of (seed, i)): when this is the data a run
    trained on, ``images`` new samples drawn with the next seed, none of which pretraining read; a seed or
    size chosen for the probe is kept."""
    ran = trained if isinstance(trained, type(cfg)) else None
    fresh = cfg
    if ran is None or cfg.seed == ran.seed:
        fresh = cfg.replace(seed=cfg.seed + 1)
    if ran is not None and cfg.size == ran.size:
        fresh = fresh.replace(size=images)
    if ran is None:
        return ProbeSets(
            fresh, None, None, f"held out: unknown (drawn with data.seed={fresh.seed}; an export does not say)"
        )
    return ProbeSets(
        fresh, None, True, f"held out: drawn with data.seed={fresh.seed} (pretraining read seed {ran.seed})"
    )


def stratified_split(labels: torch.Tensor | None, sizes: Sequence[int], seed: int) -> list[torch.Tensor]:
    """Rows [0, N) dealt to ``len(sizes)`` parts of exactly ``sizes[k]`` rows (``sum(sizes) == N``).

    With ``labels`` (class per row, [N]) each class's rows go to the parts in proportion to the parts'
    sizes (each count less than two rows from its share); the order is seeded. Each part's rows come back in a seeded
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
