"""Precomputed caption embeddings: run a frozen text encoder once, read a memory map after.

The paper's text encoder is frozen, so the word embeddings of every caption are a
fixed function of the data set. ``TextCache.build`` encodes all samples once into a
float16 memory-mapped file keyed by sample index (plus the padding mask and a JSON
header); ``TextCache.open`` maps it, and ``cache[indices]`` returns the
``TextFeatures`` of a batch without running the text encoder. Files are written under
temporary names and renamed when complete, so an interrupted build leaves no cache
that looks valid.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .batch import TextFeatures, TokenBatch
from .transformer_encoder import TextEncoder

__all__ = ["TextCache"]

_VERSION = 1


class TextCache:
    """Word embeddings [num_samples, N, S, d_t] (float16) and their mask, memory-mapped."""

    def __init__(self, path: str | os.PathLike, header: dict, tokens: np.memmap, mask: np.memmap) -> None:
        self.path = Path(path)
        self.header = header
        self._tokens = tokens
        self._mask = mask

    @staticmethod
    def _files(path: str | os.PathLike) -> tuple[Path, Path, Path]:
        p = Path(path)
        return p.with_suffix(".json"), p.with_suffix(".tokens.f16"), p.with_suffix(".mask.u8")

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        path: str | os.PathLike,
        captions: Sequence[Sequence[str]],
        tokenizer: Callable[[Sequence[Sequence[str]]], TokenBatch],
        encoder: TextEncoder,
        batch_size: int = 64,
        device: torch.device | str = "cpu",
    ) -> TextCache:
        """Encode ``captions`` (one list per sample, in sample order) and write the cache at ``path``."""
        if encoder.trainable:
            raise ValueError("only a frozen text encoder can be cached (its output would change in training)")
        meta_f, tok_f, mask_f = cls._files(path)
        n_samples = len(captions)
        first = tokenizer(captions[:1])
        _, n, s = first.ids.shape
        width = int(encoder.width)
        tmp = [f.with_name(f.name + ".tmp") for f in (meta_f, tok_f, mask_f)]
        tokens = np.memmap(tmp[1], dtype=np.float16, mode="w+", shape=(n_samples, n, s, width))
        mask = np.memmap(tmp[2], dtype=np.uint8, mode="w+", shape=(n_samples, n, s))
        encoder = encoder.to(device).eval()
        for start in range(0, n_samples, batch_size):
            batch = tokenizer(captions[start : start + batch_size])
            feats = encoder(batch.to(device))
            stop = start + batch.ids.shape[0]
            tokens[start:stop] = feats.tokens.to(torch.float16).cpu().numpy()
            mask[start:stop] = feats.mask.cpu().numpy()
        tokens.flush()
        mask.flush()
        header = {"version": _VERSION, "num_samples": n_samples, "captions": n, "length": s, "width": width}
        with open(tmp[0], "w") as f:
            json.dump(header, f)
            f.flush()
            os.fsync(f.fileno())
        for t, final in zip(
            tmp[1:] + tmp[:1], (tok_f, mask_f, meta_f), strict=True
        ):  # header last: it marks completion
            os.replace(t, final)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | os.PathLike) -> TextCache:
        """Map an existing cache (read-only)."""
        meta_f, tok_f, mask_f = cls._files(path)
        if not meta_f.is_file():
            raise FileNotFoundError(f"no text cache at {str(path)!r} (missing {meta_f.name})")
        header = json.loads(meta_f.read_text())
        if header.get("version") != _VERSION:
            raise ValueError(f"text cache {meta_f} has version {header.get('version')}, expected {_VERSION}")
        shape = (header["num_samples"], header["captions"], header["length"])
        expected = {tok_f: np.prod(shape) * header["width"] * 2, mask_f: np.prod(shape)}
        for f, size in expected.items():
            if not f.is_file() or f.stat().st_size != size:
                raise ValueError(f"text cache file {f} is missing or truncated (expected {size} bytes)")
        tokens = np.memmap(tok_f, dtype=np.float16, mode="r", shape=(*shape, header["width"]))
        mask = np.memmap(mask_f, dtype=np.uint8, mode="r", shape=shape)
        return cls(path, header, tokens, mask)

    def __len__(self) -> int:
        return int(self.header["num_samples"])

    @property
    def width(self) -> int:
        return int(self.header["width"])

    def __getitem__(self, indices: int | Sequence[int] | torch.Tensor) -> TextFeatures:
        """The ``TextFeatures`` of the given samples (float32 tokens, a batch dimension always)."""
        idx = np.asarray(torch.as_tensor(indices).reshape(-1))
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"sample indices {idx.min()}..{idx.max()} outside the cache's {len(self)} samples")
        tokens = torch.from_numpy(np.ascontiguousarray(self._tokens[idx])).float()
        mask = torch.from_numpy(np.ascontiguousarray(self._mask[idx])).bool()
        return TextFeatures(tokens, mask)
