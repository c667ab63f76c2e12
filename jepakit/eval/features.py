"""Frozen features and their labels, extracted once and cached.

``extract`` runs an encoder (the target encoder: the papers evaluate it) over a data
set in batches and keeps what the probes read: pooled features (the mean of the
patch tokens, optionally of each of the last k blocks, concatenated), the last
block's patch tokens (float16), and the labels the data set provides:

- the embedded scenes: ``count`` (1..6 -> class), ``shapes`` (multi-hot over the 4
  shapes), ``relation`` (one of 5), and the per-pixel shape ``segmentation``;
- an ImageFolder: ``label`` (the class folder).

``Features.save``/``load`` use safetensors (no pickle), so a cache written by one run
is safe to read in another; ``extract(cache=...)`` reuses it when the encoder weights,
data and options are the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = [
    "TASKS",
    "Encoder",
    "Features",
    "encoder_fingerprint",
    "extract",
    "view_embeddings",
]


class Encoder(Protocol):
    """What evaluation reads of an encoder (``ViTEncoder`` and anything shaped like it)."""

    patch_size: int
    config: Any
    training: bool

    def grid_of(self, images: Tensor) -> tuple[int, int]: ...

    def layer_outputs(
        self, images: Tensor, index: Tensor | None = None, valid: Tensor | None = None, last: int = 1
    ) -> list[Tensor]: ...

    def __call__(self, images: Tensor) -> Tensor: ...

    def parameters(self) -> Any: ...

    def state_dict(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...


#: What each label is: a single class per image, or a set of classes (multi-hot).
TASKS: dict[str, str] = {"count": "multiclass", "shapes": "multilabel", "relation": "multiclass", "label": "multiclass"}


@dataclass
class Features:
    """Pooled features [N, D*layers], patch tokens [N, T, D] (float16) or None, labels and segmentation."""

    pooled: Tensor
    patches: Tensor | None
    grid: tuple[int, int]
    labels: dict[str, Tensor] = field(default_factory=dict)
    segmentation: Tensor | None = None  # uint8 [N, H, W], 0 background
    num_seg_classes: int = 0
    skipped: int = 0  # samples the data set could not read

    def __len__(self) -> int:
        return self.pooled.shape[0]

    def save(self, path: str | Path, key: str = "") -> None:
        """Write to one safetensors file (atomically); ``key`` identifies what was extracted."""
        from safetensors.torch import save_file

        from ..checkpoint import atomic_path

        tensors = {"pooled": self.pooled.contiguous(), **{f"label.{k}": v for k, v in self.labels.items()}}
        if self.patches is not None:
            tensors["patches"] = self.patches.contiguous()
        if self.segmentation is not None:
            tensors["segmentation"] = self.segmentation.contiguous()
        meta = {
            "grid": json.dumps(list(self.grid)),
            "key": key,
            "num_seg_classes": str(self.num_seg_classes),
            "skipped": str(self.skipped),
        }
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> tuple[Features, str]:
        """The features saved at ``path`` and the key they were saved with."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        feats = cls(
            pooled=tensors["pooled"],
            patches=tensors.get("patches"),
            grid=tuple(json.loads(meta["grid"])),
            labels={k[6:]: v for k, v in tensors.items() if k.startswith("label.")},
            segmentation=tensors.get("segmentation"),
            num_seg_classes=int(meta["num_seg_classes"]),
            skipped=int(meta["skipped"]),
        )
        return feats, meta["key"]


def encoder_fingerprint(encoder: Encoder) -> str:
    """A hash of the encoder's weights: a cache of its features is valid while it matches."""
    h = hashlib.sha256()
    for name, t in sorted(encoder.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _sample_labels(sample: dict[str, Any]) -> dict[str, Any]:
    from ..data.scenes import RELATIONS, SHAPES

    out: dict[str, Any] = {}
    if "labels" in sample:
        lab = sample["labels"]
        out["count"] = int(lab["count"])
        out["shapes"] = [float(s in lab["shapes"]) for s in SHAPES]
        out["relation"] = RELATIONS.index(lab["relation"])
    if "label" in sample:
        out["label"] = int(sample["label"])
    return out


@torch.no_grad()
def extract(
    encoder: Encoder,
    dataset: Any,
    indices: Sequence[int],
    *,
    batch_size: int = 128,
    layers: int = 1,
    keep_patches: bool = True,
    device: str | torch.device = "cpu",
    cache: str | Path | None = None,
    cache_key: str = "",
    on_batch: Callable[[int], None] | None = None,
) -> Features:
    """Features of ``dataset[i]`` for ``i`` in ``indices`` from ``encoder`` (in eval mode, no grad).

    ``cache``: a file; reused when it was written with the same ``cache_key`` (which should
    name the data set), encoder fingerprint, indices and options, else (re)written.
    ``on_batch(n)``: called after each batch of ``n`` indices is done (for a progress bar).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be positive")
    rows = hashlib.sha256(json.dumps([int(i) for i in indices]).encode()).hexdigest()[:16]
    key = json.dumps(
        {
            "user": cache_key,
            "encoder": encoder_fingerprint(encoder),
            "indices": rows,
            "layers": layers,
            "patches": keep_patches,
        }
    )
    if cache is not None and Path(cache).is_file():
        feats, saved_key = Features.load(cache)
        if saved_key == key:
            return feats
    was_training = encoder.training
    encoder.eval().to(device)
    pooled, patches, segs = [], [], []
    labels: dict[str, list[Any]] = {}
    skipped = 0
    grid: tuple[int, int] = (0, 0)
    done = on_batch or (lambda n: None)
    for start in range(0, len(indices), batch_size):
        batch = indices[start : start + batch_size]
        read = [dataset[int(i)] for i in batch]
        samples = [s for s in read if s is not None]
        skipped += len(read) - len(samples)  # unreadable: the data set counted them; so do we
        if not samples:
            done(len(batch))
            continue
        images = torch.stack([s["image"] for s in samples]).to(device)
        grid = encoder.grid_of(images)
        outs = encoder.layer_outputs(images, last=layers)
        pooled.append(torch.cat([o.mean(1) for o in outs], dim=-1).float().cpu())
        if keep_patches:
            patches.append(outs[-1].to(torch.float16).cpu())
        for s in samples:
            for k, v in _sample_labels(s).items():
                labels.setdefault(k, []).append(v)
            if "segmentation" in s:
                segs.append(s["segmentation"].to(torch.uint8))
        done(len(batch))
    encoder.train(was_training)
    if not pooled:
        raise ValueError(f"no readable samples among the {len(indices)} requested ({skipped} unreadable)")
    seg = torch.stack(segs) if segs and len(segs) == sum(p.shape[0] for p in pooled) else None
    from ..data.scenes import SHAPES

    feats = Features(
        pooled=torch.cat(pooled),
        patches=torch.cat(patches) if keep_patches else None,
        grid=grid,
        labels={
            k: torch.tensor(v, dtype=torch.float32 if TASKS[k] == "multilabel" else torch.long)
            for k, v in labels.items()
        },
        segmentation=seg,
        num_seg_classes=1 + len(SHAPES) if seg is not None else 0,
        skipped=skipped,
    )
    if cache is not None:  # atomic_path makes the folder
        feats.save(cache, key)
    return feats


@torch.no_grad()
def view_embeddings(
    encoder: Encoder,
    dataset: Any,
    indices: Sequence[int],
    *,
    views: int = 8,
    crop_scale: tuple[float, float] = (0.3, 1.0),
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Average-pooled tokens [n, views, D] of ``views`` RandomResizedCrops of each readable ``dataset[i]``,
    drawn per (seed, index): the surrogate classes of LiDAR (the views of one image form a class)."""
    from ..transforms import random_resized_crop

    was_training = encoder.training
    encoder.eval().to(device)
    out = []
    for i in indices:
        sample = dataset[int(i)]
        if sample is None:
            continue
        g = torch.Generator().manual_seed(seed * 1_000_003 + int(i))
        crops = torch.stack([random_resized_crop(sample["image"], crop_scale, g) for _ in range(views)])
        out.append(encoder(crops.to(device)).mean(1).float().cpu())
    encoder.train(was_training)
    if len(out) < 2:
        raise ValueError(f"LiDAR needs at least 2 readable images; {len(out)} of {len(indices)} were")
    return torch.stack(out)
