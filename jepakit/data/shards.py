"""WebDataset tar shards, streamed through the ``webdataset`` library.

Shards are named by brace patterns (``DIR/train-{000000..000099}.tar``), globs, URLs that
``webdataset`` opens (``pipe:``, ``http://``), or a list of these. Each epoch is a
stream: the shards in an order seeded by (seed, epoch), their samples through a
shuffle buffer seeded the same way. The stream has exactly ``len(data)`` samples (the
count of the shards' samples, or ``data.samples``), so the steps of an epoch are fixed
and a resumed run at step s skips the epoch's first samples unread (only their tar
bytes pass) and continues with the same batches: the pipeline's exact-resume guarantee
holds as for a data set with random access.

A sample is a group of files with one key (``key.jpg`` with ``key.txt`` or ``key.json``,
as img2dataset writes). Images are decoded by the worker threads; an image that cannot
be decoded, a sample without image or caption, and samples a truncated shard lost are
skipped and counted (``on_error="skip"``), or stop the run naming them (``"fail"``).
Under torchrun every rank reads the same stream and decodes only its share of each
batch, so batches do not depend on the number of ranks.
"""

from __future__ import annotations

import glob
import itertools
import random
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError, MissingFileError, at_least, knob, resolved
from ..registry import register, register_alias
from .base import DataError, DatasetConfig
from .files import IMAGE_SUFFIXES, OnError, ReportingDataset, caption_list

__all__ = ["WebDataset", "WebDatasetConfig", "caption_file"]

_REMOTE = ("pipe:", "http://", "https://", "gs://", "s3://", "ais://")


@dataclass(frozen=True)
class WebDatasetConfig(DatasetConfig):
    shards: tuple[str, ...] = knob(
        (), "tar shards: brace patterns (DIR/train-{000000..000099}.tar), globs, URLs, or a list of them"
    )
    samples: int | None = knob(
        None, "samples per epoch; None: counted from the shards' tar headers (local shards)", valid=at_least(1)
    )
    shuffle_shards: bool = knob(True, "visit the shards in an order seeded by (seed, epoch)")
    shuffle_buffer: int = knob(
        1000, "samples shuffled in a buffer seeded by (seed, epoch); 0: in shard order", valid=at_least(0)
    )
    image_size: int | None = knob(
        None, "decoded images are resized and centre-cropped to this side", follows="image_size", valid=at_least(1)
    )
    on_error: OnError = knob(
        "skip", "corrupt images, samples without caption, truncated shards: skip and count, or fail"
    )

    def urls(self) -> list[str]:
        """The shards in order: brace patterns expanded (by ``webdataset``), local globs matched (sorted)."""
        from webdataset.shardlists import expand_urls

        out: list[str] = []
        for pattern in self.shards:
            for url in expand_urls(pattern):
                local = not url.startswith(_REMOTE)
                out.extend(sorted(glob.glob(url)) if local and glob.has_magic(url) else [url])
        return out

    def check_files(self) -> None:
        urls = self.urls()
        if not urls:
            raise MissingFileError(f"data.shards={list(self.shards)} names no shard")
        missing = [u for u in urls if not u.startswith(_REMOTE) and not Path(u).is_file()]
        if missing:
            raise MissingFileError(
                f"data.shards: {len(missing)} of {len(urls)} shards do not exist (first: {', '.join(missing[:3])})"
            )
        if self.samples is None and any(u.startswith(_REMOTE) for u in urls):
            raise ConfigError("data.shards names remote shards, whose samples cannot be counted: give data.samples=N")


def _sample_key(name: str) -> str | None:
    """The sample a tar member belongs to, as ``webdataset`` groups them (the name up to its first dot)."""
    from webdataset.tariterators import base_plus_ext

    return base_plus_ext(name)[0]


def caption_file(raw: dict[str, Any]) -> tuple[Any, bool] | None:
    """A raw sample's caption file and whether it is JSON (``key.json`` before ``key.txt``), or None."""
    if "json" in raw:
        return raw["json"], True
    return (raw["txt"], False) if "txt" in raw else None


@register("dataset", "webdataset", WebDatasetConfig)
class WebDataset(ReportingDataset):
    """Samples streamed out of tar shards, epoch by epoch (see the module docstring); a
    :class:`~jepakit.data.base.StreamingData`.

    Example:
        >>> import io, tarfile, tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> from jepakit import create
        >>> root = Path(tempfile.mkdtemp())
        >>> with tarfile.open(root / "shard-0.tar", "w") as tar:  # key.png with key.txt, as img2dataset writes
        ...     for key, colour in (("0", "red"), ("1", "blue")):
        ...         png = io.BytesIO()
        ...         Image.new("RGB", (20, 20), colour).save(png, format="PNG")
        ...         for name, payload in ((key + ".png", png.getvalue()), (key + ".txt", f"a {colour} picture".encode())):
        ...             member = tarfile.TarInfo(name)
        ...             member.size = len(payload)
        ...             tar.addfile(member, io.BytesIO(payload))
        >>> data = create("dataset", "webdataset", shards=(str(root / "shard-0.tar"),), image_size=32)
        >>> samples = [data.decode(raw, i) for i, raw in enumerate(data.epoch(seed=0))]  # an epoch, shuffled by its seed
        >>> len(data), [(tuple(s["image"].shape), s["captions"]) for s in samples]
        (2, [((3, 32, 32), ['a blue picture']), ((3, 32, 32), ['a red picture'])])
    """

    def __init__(self, cfg: WebDatasetConfig) -> None:
        super().__init__(cfg.on_error)
        cfg.check_files()
        self.config = cfg
        self.shard_urls = cfg.urls()
        self.num_samples = cfg.samples if cfg.samples is not None else sum(map(self._count, self.shard_urls))
        if self.num_samples == 0:
            raise MissingFileError(f"data.shards={list(cfg.shards)}: the shards hold no sample")
        self._first_captions: list[list[str]] = []
        self._caption_stream: Iterator[dict[str, Any] | None] | None = None

    def _count(self, url: str) -> int:
        """Samples in one local shard, from its tar headers (nothing is read beyond them)."""
        keys: list[str] = []
        try:
            size = Path(url).stat().st_size
            with tarfile.open(url) as tar:
                for member in tar:
                    if member.offset_data + member.size > size:  # tarfile stops quietly at a cut header
                        raise tarfile.ReadError(f"{member.name} is cut short")
                    key = _sample_key(member.name) if member.isfile() else None
                    if key is not None and (not keys or keys[-1] != key):
                        keys.append(key)
        except (tarfile.TarError, OSError) as e:
            message = f"{url}: unreadable after {len(keys)} samples ({e})"
            if self.on_error == "fail":
                raise DataError(message) from e
            self.problems.append(message + "; the rest of the shard is skipped")
        return len(keys)

    def __len__(self) -> int:
        return self.num_samples

    def _stream(self, urls: list[str], buffer: int, rng: random.Random) -> Iterator[dict[str, Any]]:
        import webdataset as wds

        stages: list[Any] = [wds.SimpleShardList(urls), wds.tarfile_to_samples(handler=self._tar_error)]
        if buffer > 0:
            stages.append(wds.shuffle(buffer, initial=buffer, rng=rng))
        return iter(wds.DataPipeline(*stages))

    def _tar_error(self, error: Exception) -> bool:
        """webdataset's handler for a shard it cannot read on: continue with the next (its samples padded)."""
        if self.on_error == "fail":
            raise DataError(f"cannot read shard: {error}") from error
        return True

    def epoch(self, seed: int) -> Iterator[dict[str, Any] | None]:
        """An epoch's raw samples (tar members by extension, undecoded): exactly ``len(self)`` of
        them, shard order and shuffle buffer seeded by ``seed`` (the pipeline's, from (seed, epoch));
        None for samples a shard cut short lost."""
        rng = random.Random(seed)
        urls = list(self.shard_urls)
        if self.config.shuffle_shards:
            rng.shuffle(urls)
        stream = self._stream(urls, self.config.shuffle_buffer, rng)
        return itertools.islice(itertools.chain(stream, itertools.repeat(None)), self.num_samples)

    def _where(self, raw: dict[str, Any] | None) -> str | None:
        """Where a raw sample comes from (``shard:key``), or None, counted, for a sample a cut shard lost."""
        if raw is None:
            self._skip("a sample of a truncated shard: stopping (data.on_error=fail)")
            return None
        return f"{raw.get('__url__', '?')}:{raw.get('__key__', '?')}"

    def decode(self, raw: dict[str, Any] | None, index: int) -> dict[str, Any] | None:
        """The sample of a raw one: ``{"image", "captions", "index"}``, or None (counted) when it
        has no image or caption, or its image cannot be decoded."""
        where = self._where(raw)
        if raw is None or where is None:
            return None
        image = next((raw[e] for e in IMAGE_SUFFIXES if e in raw), None)
        text = caption_file(raw)
        if image is None or text is None:
            self._skip(f"{where} has {'no image' if image is None else 'no caption'}: stopping (data.on_error=fail)")
            return None
        try:
            captions = caption_list(*text)
        except ValueError as e:
            self._skip(f"{where} has an unreadable caption file: {e}")
            return None
        pixels = self._decode(lambda: image, resolved(self.config.image_size, "data.image_size"), where)
        if pixels is None:
            return None
        return {"image": pixels, "captions": captions, "index": index}

    def captions(self, index: int) -> list[str]:
        """The captions of the ``index``-th sample in shard order (unshuffled; for fitting a tokenizer)."""
        if self._caption_stream is None:
            self._caption_stream = itertools.chain(
                self._stream(self.shard_urls, 0, random.Random(0)), itertools.repeat(None)
            )
        while len(self._first_captions) <= index:
            raw = next(self._caption_stream)
            text = caption_file(raw) if raw is not None else None
            try:
                self._first_captions.append(caption_list(*text) if text is not None else [])
            except ValueError:  # counted when the sample is read for training
                self._first_captions.append([])
        return self._first_captions[index]


register_alias("dataset", "tar", "webdataset")
