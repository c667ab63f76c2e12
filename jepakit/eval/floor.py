"""The random-init floor: what an untrained encoder of the same architecture scores on the same probes.

A probe number means little alone: on small data a random ViT's features already solve
part of every task. ``random_floor`` probes encoders built from the same config with
init seeds 0..k-1, on the same data and splits, and keeps the mean and the seed spread
of every number. The result is cached on disk (keyed by the encoder config, the data
config and the content of its first samples, the probe settings, the seeds and the torch
version: a data generator that changes between versions makes a new floor), so a floor is computed
once per architecture and data. A trained number beats the floor when it exceeds its
mean by more than twice its spread.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_path
from ..config import Config, to_dict
from .evaluate import evaluate, summary
from .features import Encoder

__all__ = ["beats", "cache_dir", "flatten", "random_encoder", "random_floor"]

_VERSION = 3  # 3: the centred rank among the monitors; 2: seeded, stratified splits (1: in index order)


def cache_dir() -> Path:
    """Where floors are kept: ``$JEPAKIT_CACHE``, else ``$XDG_CACHE_HOME/jepakit``, else ``~/.cache/jepakit``."""
    if os.environ.get("JEPAKIT_CACHE"):
        return Path(os.environ["JEPAKIT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jepakit"


def flatten(results: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of a probe summary by path: ``{"linear/count": 0.61, "dense/miou": 0.26, ...}``."""
    out: dict[str, float] = {}
    for key, value in results.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[path] = float(value)
    return out


def random_encoder(encoder: Config, seed: int) -> Encoder:
    """``encoder`` built after ``torch.manual_seed(seed)``, in eval mode: an untrained encoder of a floor."""
    torch.manual_seed(seed)
    return encoder.build().eval()


def _fingerprint(data: Any, samples: int = 4) -> str:
    """A hash of the first ``samples`` samples (tensors' bytes, other fields' text): what the data is, beyond its config."""
    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(value, dict):
            for k in sorted(value):
                digest.update(str(k).encode())
                feed(value[k])
        else:
            digest.update(repr(value).encode())

    for i in range(min(samples, len(data))):
        feed(data[i])
    return digest.hexdigest()[:20]


def beats(score: float, mean: float, std: float) -> bool:
    """Whether ``score`` exceeds the floor's ``mean`` by more than twice its seed spread ``std``."""
    return score - mean > 2 * std


def random_floor(
    encoder: Config,
    data: Config,
    *,
    test_set: Config | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    cache: Path | None = None,
    built: tuple[Any, Any | None] | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
    **probe: Any,
) -> dict[str, Any]:
    """Probe randomly initialised ``encoder``s (init seed per ``seeds``) on ``data`` (and a held-out
    ``test_set``, as ``evaluate``'s ``test_data``) with ``evaluate``'s ``probe`` settings; returns
    ``{"seeds", "runs": [summary...], "mean": {path: v}, "std": {path: v}}``.

    ``std`` is the sample standard deviation over the seeds (0 with one seed); ``built``: ``data`` and
    ``test_set`` already built by the caller (they are built here otherwise)."""
    emit = log or (lambda line: None)
    fit, held_out = built if built is not None else (data.build(), test_set.build() if test_set else None)
    spec = {
        "version": _VERSION,
        "encoder": to_dict(encoder),
        "data": to_dict(data),
        "samples": _fingerprint(fit),
        "test": None if test_set is None else {"data": to_dict(test_set), "samples": _fingerprint(held_out)},
        "probe": probe,
        "seeds": list(seeds),
        "torch": torch.__version__.split("+")[0],
    }
    key = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = (cache if cache is not None else cache_dir() / "floors") / f"{key}.json"
    if path.is_file():
        try:
            floor = json.loads(path.read_text())
            emit(f"random-init floor: read from {path}")
            return floor
        except ValueError:
            emit(f"random-init floor: {path} is unreadable; computing it again")
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        emit(f"random-init floor: init seed {seed} ({len(runs) + 1} of {len(seeds)})")
        encoded = evaluate(random_encoder(encoder, seed), fit, test_data=held_out, progress=progress, **probe)
        runs.append(summary(encoded))
    flat = [flatten(r) for r in runs]
    paths = [p for p in flat[0] if all(p in f for f in flat)]
    floor = {
        "seeds": list(seeds),
        "runs": runs,
        "mean": {p: statistics.mean(f[p] for f in flat) for p in paths},
        "std": {p: statistics.stdev(f[p] for f in flat) if len(flat) > 1 else 0.0 for p in paths},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(floor, indent=1))
    emit(f"random-init floor: kept in {path}")
    return floor
