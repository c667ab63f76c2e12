"""Frozen features and their labels, extracted once and cached.

``extract`` runs an encoder (the target encoder: the papers evaluate it) over a data
set in batches and keeps what the probes read: pooled features (the mean of the
patch tokens, optionally of each of the last k blocks, concatenated), the last
block's patch tokens (float16), and the labels the data set provides:

- the embedded scenes: ``count`` (1..6 -> class), ``shapes`` (multi-hot over the 4
  shapes), ``relation`` (one of 5), and the per-pixel shape ``segmentation``;
- the moving scenes (clips): ``count``, ``shapes``, the motion's ``direction`` (one of
  4) and ``speed`` (one of 2), and the segmentation of every frame;
- an ImageFolder: ``label`` (the class folder).

Clips [C, T, H, W] go whole through a video encoder (tokens over the (T', H', W')
tubelet grid). An image encoder reads them frame by frame (``encode``): the frame-only
baseline, whose probes see each frame's tokens averaged over time, so that a label it
reads cannot have come from the order of the frames.

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
from einops import rearrange
from torch import Tensor

from ..transforms import mix_seed

__all__ = [
    "TASKS",
    "Encoder",
    "Features",
    "encode",
    "encoder_fingerprint",
    "extract",
    "first_frames",
    "sample_input",
    "view_embeddings",
]


class EncoderSpec(Protocol):
    """What evaluation reads of an encoder's config (``ViTConfig``)."""

    in_chans: int
    depth: int
    img_size: int | None

    @property
    def video(self) -> bool:
        """Whether it reads clips."""
        ...

    @property
    def tubelet(self) -> int:
        """Frames per token of a clip."""
        ...


class Encoder(Protocol):
    """What evaluation reads of an encoder (``ViTEncoder`` and anything shaped like it)."""

    patch_size: int
    training: bool

    @property
    def config(self) -> EncoderSpec:
        """Its config: channels, depth, image size, and whether (and how) it reads clips."""
        ...

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
TASKS: dict[str, str] = {
    "count": "multiclass",
    "shapes": "multilabel",
    "relation": "multiclass",
    "direction": "multiclass",
    "speed": "multiclass",
    "label": "multiclass",
}


@dataclass
class Features:
    """Pooled features [N, D*layers], patch tokens [N, K, D] (float16) or None, labels and segmentation.

    ``grid``: the tokens' grid, (H', W') for images, (T', H', W') for clips (time first); ``per_frame``:
    the clips went frame by frame through an image encoder (T' = T, the frame-only baseline)."""

    pooled: Tensor
    patches: Tensor | None
    grid: tuple[int, ...]
    labels: dict[str, Tensor] = field(default_factory=dict)
    segmentation: Tensor | None = None  # uint8 [N, H, W], or [N, T, H, W] for clips; 0 background
    num_seg_classes: int = 0
    skipped: int = 0  # samples the data set could not read
    per_frame: bool = False
    index: Tensor | None = None  # long [N]: the data set's index of each row

    def __len__(self) -> int:
        return self.pooled.shape[0]

    def cat(self, other: Features) -> Features:
        """These rows, then ``other``'s (a held-out test set's), keeping what both have."""
        if other.grid != self.grid or other.per_frame != self.per_frame:
            raise ValueError(
                f"the test data gives tokens on a {other.grid} grid, the data fitted on a {self.grid} grid: "
                "give both the same image size (and frames)"
            )
        both = self.patches is not None and other.patches is not None
        segmented = self.segmentation is not None and other.segmentation is not None
        return Features(
            pooled=torch.cat([self.pooled, other.pooled]),
            patches=torch.cat([self.patches, other.patches]) if both else None,  # type: ignore[list-item]
            grid=self.grid,
            labels={k: torch.cat([v, other.labels[k]]) for k, v in self.labels.items() if k in other.labels},
            segmentation=torch.cat([self.segmentation, other.segmentation]) if segmented else None,  # type: ignore[list-item]
            num_seg_classes=self.num_seg_classes if segmented else 0,
            skipped=self.skipped + other.skipped,
            per_frame=self.per_frame,
            index=None,
        )

    def clip_tokens(self) -> Tensor | None:
        """The tokens a clip-level probe (attentive) reads: ``patches``, or for the frame-only baseline each
        position's tokens averaged over the frames [N, H' * W', D]."""
        if self.patches is None or not self.per_frame:
            return self.patches
        return rearrange(self.patches, "n (t k) d -> n t k d", t=self.grid[0]).float().mean(1).to(self.patches.dtype)

    def frame_tokens(self, tokens: Tensor, segmentation: Tensor) -> tuple[Tensor, Tensor, tuple[int, int]]:
        """The dense probe's samples: one per image, or per frame of a clip, whose tokens are those of the
        time slot (tubelet or frame) that holds it: ([M, H' * W', D], [M, H, W], (H', W'))."""
        if len(self.grid) == 2:
            return tokens, segmentation, (self.grid[0], self.grid[1])
        slots, frames = self.grid[0], segmentation.shape[1]
        per_slot = rearrange(tokens, "n (s k) d -> n s k d", s=slots).repeat_interleave(frames // slots, dim=1)
        return per_slot.flatten(0, 1), segmentation.flatten(0, 1), (self.grid[1], self.grid[2])

    def save(self, path: str | Path, key: str = "") -> None:
        """Write to one safetensors file (atomically); ``key`` identifies what was extracted."""
        from safetensors.torch import save_file

        from ..checkpoint import atomic_path

        tensors = {"pooled": self.pooled.contiguous(), **{f"label.{k}": v for k, v in self.labels.items()}}
        if self.index is not None:
            tensors["index"] = self.index.contiguous()
        if self.patches is not None:
            tensors["patches"] = self.patches.contiguous()
        if self.segmentation is not None:
            tensors["segmentation"] = self.segmentation.contiguous()
        meta = {
            "grid": json.dumps(list(self.grid)),
            "key": key,
            "num_seg_classes": str(self.num_seg_classes),
            "skipped": str(self.skipped),
            "per_frame": json.dumps(self.per_frame),
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
            per_frame=json.loads(meta.get("per_frame", "false")),
            index=tensors.get("index"),
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
    """The probe targets of a sample, those of ``TASKS`` its labels hold, as class indices or multi-hot."""
    from ..data.moving import DIRECTIONS, SPEEDS
    from ..data.scenes import RELATIONS, SHAPES

    out: dict[str, Any] = {}
    lab = sample.get("labels", {})
    if "count" in lab:
        out["count"] = int(lab["count"])
    if "shapes" in lab:
        out["shapes"] = [float(s in lab["shapes"]) for s in SHAPES]
    for task, classes in (("relation", RELATIONS), ("direction", tuple(DIRECTIONS)), ("speed", tuple(SPEEDS))):
        if task in lab:
            out[task] = classes.index(lab[task])
    if "label" in sample:
        out["label"] = int(sample["label"])
    return out


def sample_input(sample: dict[str, Any]) -> Tensor:
    """What an encoder reads of a sample: its clip [C, T, H, W] ("video") or its image [C, H, W]."""
    return sample["video"] if "video" in sample else sample["image"]


def first_frames(dataset: Any, indices: Sequence[int], n: int) -> tuple[Tensor, Tensor]:
    """The first ``n`` images [n, C, H, W] and segmentations [n, H, W] of the samples ``indices``, in order, a
    clip giving its frames in order, unreadable samples skipped: the dense probe's test predictions, aligned."""
    images: list[Tensor] = []
    truth: list[Tensor] = []
    for index in indices:
        if len(images) >= n:
            break
        sample = dataset[int(index)]
        if sample is None:
            continue
        x, seg = sample_input(sample), sample["segmentation"]
        images += list(x.unbind(1)) if x.ndim == 4 else [x]
        truth += list(seg.unbind(0)) if seg.ndim == 3 else [seg]
    if not images:
        raise ValueError(f"no readable sample among the {len(indices)} given")
    return torch.stack(images[:n]), torch.stack(truth[:n])


def encode(encoder: Encoder, x: Tensor, last: int = 1) -> tuple[list[Tensor], tuple[int, ...], bool]:
    """The last ``last`` blocks' tokens of images [B, C, H, W] or clips [B, C, T, H, W], their grid, and
    whether the clips went frame by frame.

    A video encoder reads a clip whole (grid (T', H', W')). An image encoder reads each frame alone, its
    tokens laid out frame after frame, [B, T * H' * W', D] on the grid (T, H', W'): the frame-only baseline.
    A video encoder's image is a clip of one tubelet; its grid is given as (H', W')."""
    if x.ndim == 5 and not encoder.config.video:
        b, t = x.shape[0], x.shape[2]
        frames = rearrange(x, "b c t h w -> (b t) c h w")
        grid = encoder.grid_of(frames)
        outs = [rearrange(o, "(b t) k d -> b (t k) d", b=b) for o in encoder.layer_outputs(frames, last=last)]
        return outs, (t, *grid), True
    grid = encoder.grid_of(x)
    if x.ndim == 4 and len(grid) == 3:
        grid = grid[1:]
    return encoder.layer_outputs(x, last=last), grid, False


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
    fingerprint = {"layout": 2, "user": cache_key, "encoder": encoder_fingerprint(encoder), "indices": rows}
    key = json.dumps(fingerprint | {"layers": layers, "patches": keep_patches})  # layout 2: rows carry their index
    if cache is not None and Path(cache).is_file():
        feats, saved_key = Features.load(cache)
        if saved_key == key:
            return feats
    was_training = encoder.training
    encoder.eval().to(device)
    collected = _Collected(keep_patches)
    for start in range(0, len(indices), batch_size):
        batch = indices[start : start + batch_size]
        collected.add(encoder, [int(i) for i in batch], [dataset[int(i)] for i in batch], layers, device)
        if on_batch is not None:
            on_batch(len(batch))
    encoder.train(was_training)
    feats = collected.features(len(indices))
    if cache is not None:  # atomic_path makes the folder
        feats.save(cache, key)
    return feats


@dataclass
class _Collected:
    """What ``extract`` gathers batch by batch: pooled and patch features, labels, masks, kept rows."""

    keep_patches: bool
    pooled: list[Tensor] = field(default_factory=list)
    patches: list[Tensor] = field(default_factory=list)
    segs: list[Tensor] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    labels: dict[str, list[Any]] = field(default_factory=dict)
    skipped: int = 0
    grid: tuple[int, ...] = (0, 0)
    per_frame: bool = False

    def add(self, encoder: Encoder, batch: list[int], read: list[Any], layers: int, device: Any) -> None:
        """Encode the readable samples of ``read`` (``dataset[i]`` for ``i`` in ``batch``; None: unreadable)."""
        samples = [s for s in read if s is not None]
        self.skipped += len(read) - len(samples)  # unreadable: the data set counted them; so do we
        if not samples:
            return
        outs, self.grid, self.per_frame = encode(
            encoder, torch.stack([sample_input(s) for s in samples]).to(device), layers
        )
        self.pooled.append(torch.cat([o.mean(1) for o in outs], dim=-1).float().cpu())
        if self.keep_patches:
            self.patches.append(outs[-1].to(torch.float16).cpu())
        self.kept += [i for i, s in zip(batch, read, strict=True) if s is not None]
        for s in samples:
            for k, v in _sample_labels(s).items():
                self.labels.setdefault(k, []).append(v)
            if "segmentation" in s:
                self.segs.append(s["segmentation"].to(torch.uint8))

    def features(self, requested: int) -> Features:
        """The gathered rows as ``Features``; an error when none of the ``requested`` could be read."""
        from ..data.scenes import SHAPES

        if not self.pooled:
            raise ValueError(f"no readable samples among the {requested} requested ({self.skipped} unreadable)")
        seg = torch.stack(self.segs) if self.segs and len(self.segs) == len(self.kept) else None
        return Features(
            pooled=torch.cat(self.pooled),
            patches=torch.cat(self.patches) if self.keep_patches else None,
            grid=self.grid,
            labels={
                k: torch.tensor(v, dtype=torch.float32 if TASKS[k] == "multilabel" else torch.long)
                for k, v in self.labels.items()
            },
            segmentation=seg,
            num_seg_classes=1 + len(SHAPES) if seg is not None else 0,
            skipped=self.skipped,
            per_frame=self.per_frame,
            index=torch.tensor(self.kept, dtype=torch.long),
        )


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
    """Average-pooled tokens [n, views, D] of ``views`` RandomResizedCrops of each readable ``dataset[i]``
    (one crop for all frames of a clip), drawn per (seed, index): the surrogate classes of LiDAR (the views
    of one image form a class)."""
    from ..transforms import random_resized_crop

    was_training = encoder.training
    encoder.eval().to(device)
    out = []
    for i in indices:
        sample = dataset[int(i)]
        if sample is None:
            continue
        g = torch.Generator().manual_seed(mix_seed(seed, i))
        crops = torch.stack([random_resized_crop(sample_input(sample), crop_scale, g) for _ in range(views)])
        out.append(encode(encoder, crops.to(device))[0][0].mean(1).float().cpu())
    encoder.train(was_training)
    if len(out) < 2:
        raise ValueError(f"LiDAR needs at least 2 readable images; {len(out)} of {len(indices)} were")
    return torch.stack(out)
