"""Evaluate an encoder: extract features once, run every probe on every label the data has.

``evaluate(encoder, data)`` returns the probe results and the collapse monitors;
``probe_data`` says which data a run is probed on. The encoder comes from
``jepakit.runs.load_eval_encoder`` (a checkpoint, a run folder or an export folder);
``jepakit probe SOURCE`` and ``recipes/probe.py`` wrap both.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from ..config import Config, ConfigError, apply_overrides, parse_cli_overrides, slot
from .features import TASKS, Encoder, extract
from .monitors import effective_rank, embedding_std
from .probes import attentive_probe, dense_probe, knn_probe, linear_probe

__all__ = ["PROBES", "evaluate", "probe_data", "summary"]

PROBES = ("linear", "knn", "attentive", "dense")


@dataclasses.dataclass(frozen=True)
class _ProbeData(Config):
    """A holder for the probe's data slot, so ``data=imagefolder data.root=DIR`` reads as for a recipe."""

    data: Config | None = slot(None, "dataset", "held-out images with labels")


class _Trained(Protocol):
    """What the probe reads of an experiment: the data it trained on."""

    @property
    def data(self) -> Config: ...


def probe_data(experiment: _Trained | None, encoder: Encoder, overrides: Sequence[str] = ()) -> Config:
    """The data config to probe on: the experiment's data with ``seed + 1`` (images it never
    trained on), or the scenes at the encoder's size for an export; then ``overrides``
    (``data.seed=7``, ``data=imagefolder data.root=DIR``)."""
    from ..data.scenes import SceneConfig

    data = experiment.data if experiment is not None else SceneConfig(image_size=encoder.config.img_size)
    if hasattr(data, "seed"):
        data = data.replace(seed=data.seed + 1)
    chosen = apply_overrides(_ProbeData(data=data), parse_cli_overrides(overrides), where="").data
    if chosen is None:
        raise ConfigError("the probe needs data: give data=NAME")
    return chosen


def _check_fits(encoder: Encoder, data: Any) -> None:
    sample = next((s for s in map(data.__getitem__, range(min(len(data), 16))) if s is not None), None)
    if sample is None:
        raise ValueError("the probe data has no readable sample among its first 16")
    h, w = sample["image"].shape[-2:]
    p = encoder.patch_size
    if h % p or w % p:
        raise ValueError(
            f"probe data: images are {h}x{w}, not divisible by the encoder's patch_size={p}; "
            f"set data.image_size to a multiple of {p}"
        )
    c = encoder.config.in_chans
    if sample["image"].shape[0] != c:
        raise ValueError(f"probe data: images have {sample['image'].shape[0]} channels; the encoder takes {c}")


def evaluate(
    encoder: Encoder,
    data: Any,
    *,
    train: int = 3000,
    val: int = 500,
    test: int = 3000,
    tasks: Sequence[str] | None = None,
    probes: Sequence[str] = PROBES,
    layers: int = 1,
    batch_size: int = 128,
    cache: str | Path | None = None,
    cache_key: str = "",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Probe ``encoder`` on ``data`` (images ``[0, train)`` train, then ``val``, then ``test``).

    Returns ``{"linear": {task: accuracy}, "knn": ..., "attentive": ..., "dense": {"miou",
    "iou"}, "monitors": {...}, "details": {...}}``; ``details["dense"]["prediction"]`` holds
    the test segmentation for pictures.
    """
    emit = log or (lambda line: None)
    if getattr(data, "streams", False):
        raise ConfigError(
            f"probe data: {type(data).__name__} streams its samples; probes read labelled images by index: "
            "give data=imagefolder data.root=DIR, or data=hf data.path=... data.label_column=NAME"
        )
    unknown = sorted(set(probes) - set(PROBES))
    if unknown:
        raise ValueError(f"unknown probes {unknown}; choose from {list(PROBES)}")
    need = train + val + test
    if min(train, val, test) < 1 or need > len(data):
        raise ValueError(
            f"probe splits train={train} val={val} test={test} need {need} images; the data has {len(data)}"
        )
    _check_fits(encoder, data)
    feats = extract(
        encoder,
        data,
        range(need),
        batch_size=batch_size,
        layers=layers,
        keep_patches=bool({"attentive", "dense"} & set(probes)),
        cache=cache,
        cache_key=cache_key,
    )
    if feats.skipped:
        emit(f"probe data: {feats.skipped} unreadable samples skipped")
    available = sorted(feats.labels)
    tasks = list(available if tasks is None else tasks)
    missing = sorted(set(tasks) - set(available))
    if missing:
        raise ValueError(f"probe tasks {missing} are not labels of this data; it has {available}")
    n = len(feats)
    a, b = round(n * train / need), round(n * (train + val) / need)  # split what was readable alike
    parts = {"train": slice(0, a), "val": slice(a, b), "test": slice(b, n)}

    def split(x: torch.Tensor) -> list[torch.Tensor]:
        return [x[s] for s in parts.values()]

    results: dict[str, Any] = {"monitors": {}, "details": {}, "n": {k: s.stop - s.start for k, s in parts.items()}}
    test_pooled = feats.pooled[parts["test"]]
    results["monitors"] = {"embedding_std": embedding_std(test_pooled), "effective_rank": effective_rank(test_pooled)}
    pooled = split(feats.pooled)
    tok = split(feats.patches) if feats.patches is not None else None
    for task in tasks:
        y = feats.labels[task]
        multi = TASKS[task] == "multilabel"
        tr, va, te = split(y)
        if "linear" in probes:
            out = linear_probe((pooled[0], tr), (pooled[1], va), (pooled[2], te), multilabel=multi, seed=seed)
            results.setdefault("linear", {})[task] = out["accuracy"]
            results["details"].setdefault("linear", {})[task] = out
            emit(f"linear/{task}: {out['accuracy']:.4f} (lr {out['lr']:g}, wd {out['weight_decay']:g})")
        if "knn" in probes:
            out = knn_probe((pooled[0], tr), (pooled[2], te), multilabel=multi, k=min(20, pooled[0].shape[0]))
            results.setdefault("knn", {})[task] = out["accuracy"]
            emit(f"knn/{task}: {out['accuracy']:.4f}")
        if "attentive" in probes:
            assert tok is not None  # patches are kept whenever a probe reads them
            out = attentive_probe(
                (tok[0], tr),
                (tok[1], va),
                (tok[2], te),
                multilabel=multi,
                seed=seed,
                num_heads=_heads(tok[0].shape[-1]),
            )
            results.setdefault("attentive", {})[task] = out["accuracy"]
            results["details"].setdefault("attentive", {})[task] = out
            emit(f"attentive/{task}: {out['accuracy']:.4f}")
    if "dense" in probes:
        if feats.segmentation is None:
            emit("dense probe skipped: the data has no segmentation")
        else:
            assert tok is not None
            out = dense_probe(
                *zip(tok, split(feats.segmentation), strict=True),
                grid=feats.grid,
                num_classes=feats.num_seg_classes,
                seed=seed,
            )
            results["dense"] = {"miou": out["miou"], "iou": out["iou"]}
            results["details"]["dense"] = out
            emit(f"dense/miou: {out['miou']:.4f}")
    return results


def _heads(dim: int) -> int:
    return next(h for h in (4, 3, 2, 1) if dim % h == 0)


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready part of ``evaluate``'s results (no tensors, no heads)."""
    out = {k: v for k, v in results.items() if k != "details"}
    return json.loads(json.dumps(out))
