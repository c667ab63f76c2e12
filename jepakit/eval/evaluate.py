"""Evaluate an encoder: extract features once, run every probe on every label the data has.

``evaluate(encoder, data)`` returns the probe results and the collapse monitors;
``probe_data`` says which data a run is probed on. The encoder comes from
``jepakit.runs.load_eval_encoder`` (a checkpoint, a run folder or an export folder);
``jepakit probe SOURCE`` and ``scripts/probe.py`` wrap both.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from ..config import Config, ConfigError, apply_overrides, parse_cli_overrides, slot
from ..data.base import DatasetConfig, ProbeSets, StreamingData, default_probe_sets
from ..progress import Bars
from .features import TASKS, Encoder, Features, extract, sample_input, view_embeddings
from .monitors import collapse_monitors, lidar
from .probes import attentive_probe, dense_probe, knn_probe, linear_probe
from .splits import DEFAULT_SPLITS, chosen_rows, split_sizes, stratified_split

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["PROBES", "evaluate", "online_probe", "probe_data", "results_table", "summary"]

PROBES = ("linear", "knn", "attentive", "dense")
#: LiDAR's surrogate classes in ``evaluate``: at most this many test images, each through this many crops;
#: the online probes read fewer (they run every few steps).
LIDAR_VIEWS = (256, 8)
ONLINE_LIDAR = (64, 8)


@dataclasses.dataclass(frozen=True)
class _ProbeData(Config):
    """A holder for the probe's data slot, so ``data=imagefolder data.root=DIR`` reads as for a recipe."""

    data: Config | None = slot(None, "dataset", "held-out images with labels")


class _Trained(Protocol):
    """What the probe reads of an experiment: the data it trained on."""

    @property
    def data(self) -> Config: ...


def probe_data(
    experiment: _Trained | None,
    encoder: Encoder,
    overrides: Sequence[str] = (),
    *,
    images: int = sum(DEFAULT_SPLITS),
    test_data: Sequence[str] = (),
) -> ProbeSets:
    """What to probe on (``ProbeSets``): the probe sets the experiment's data declares (``probe_sets``:
    new draws for generated data, a folder's ``test/`` split, ...), or for an export the scenes at the
    encoder's size; then ``overrides`` edit them (``data.seed=7``) or swap in other data
    (``data=imagefolder data.root=DIR``); ``test_data`` (a folder of class folders, or edits of the data
    such as ``data.split=test``) gives a separate held-out test set. ``images``: what the splits need of
    data that can make any number."""
    from ..data.scenes import SceneConfig

    edits = parse_cli_overrides(overrides)
    trained = experiment.data if experiment is not None else None
    chosen = trained if trained is not None else SceneConfig(image_size=encoder.config.img_size)
    if edits:
        edited = apply_overrides(_ProbeData(data=chosen), edits, where="").data
        if edited is None:
            raise ConfigError("the probe needs data: give data=NAME")
        chosen = edited
    sets = (
        chosen.probe_sets(trained, images) if isinstance(chosen, DatasetConfig) else default_probe_sets(chosen, trained)
    )
    if test_data:
        why = f"held out: the test images are --test-data {' '.join(test_data)}"
        sets = ProbeSets(sets.fit, _test_config(sets.fit, test_data), True, why)
    return sets


def _test_config(fit: Config, given: Sequence[str]) -> Config:
    """``--test-data``: a folder of class folders at the fitted data's image size, or edits of the fitted data."""
    from ..data.files import ImageFolderConfig

    if len(given) == 1 and "=" not in given[0]:
        size = getattr(fit, "image_size", None)  # the image data sets' knob; a user's data config may lack it
        test = ImageFolderConfig(root=given[0], image_size=size)
        test.check_files()
        return test
    chosen = apply_overrides(_ProbeData(data=fit), parse_cli_overrides(given), where="").data
    assert chosen is not None
    return chosen


def _check_fits(encoder: Encoder, data: Any) -> None:
    sample = next((s for s in map(data.__getitem__, range(min(len(data), 16))) if s is not None), None)
    if sample is None:
        raise ValueError("the probe data has no readable sample among its first 16")
    x = sample_input(sample)
    h, w = x.shape[-2:]
    p = encoder.patch_size
    if h % p or w % p:
        raise ValueError(
            f"probe data: images are {h}x{w}, not divisible by the encoder's patch_size={p}; "
            f"set data.image_size to a multiple of {p}"
        )
    c = encoder.config.in_chans
    if x.shape[0] != c:
        raise ValueError(f"probe data: images have {x.shape[0]} channels; the encoder takes {c}")
    tubelet = encoder.config.tubelet if encoder.config.video else 1
    if x.ndim == 4 and x.shape[1] % tubelet:
        raise ValueError(
            f"probe data: clips of {x.shape[1]} frames are not divisible by the encoder's tubelet_size={tubelet}; "
            f"set data.num_frames to a multiple of {tubelet}"
        )


def evaluate(
    encoder: Encoder,
    data: Any,
    *,
    train: int | None = None,
    val: int | None = None,
    test: int | None = None,
    test_data: Any | None = None,
    tasks: Sequence[str] | None = None,
    probes: Sequence[str] = PROBES,
    layers: int = 1,
    batch_size: int = 128,
    cache: str | Path | None = None,
    cache_key: str = "",
    seed: int = 0,
    lidar_views: tuple[int, int] | None = LIDAR_VIEWS,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Probe ``encoder`` on a seeded random choice of ``data``'s images, dealt to ``train``, ``val`` and
    ``test`` splits stratified by class (``split_sizes``: unset sizes follow what the data has); with
    ``test_data`` (a held-out set) the test split is drawn from it instead. ``lidar_views``: (images,
    crops) of the test images LiDAR reads (None: no LiDAR); ``progress``: rich bars for the extraction
    and the probes; ``log``: a line per result. The probes' classifiers never see the test split.

    Returns ``{"linear": {task: accuracy}, "knn": ..., "attentive": ..., "dense": {"miou", "iou"},
    "monitors": {...}, "n": {split: images}, "details": {...}}``; ``details["dense"]["prediction"]`` holds
    the test segmentation, row by row of ``details["test_rows"]``, the indices into ``details["test_data"]``.
    """
    emit = log or (lambda line: None)
    for given in (data, test_data):
        if isinstance(given, StreamingData):
            raise ConfigError(
                f"probe data: {type(given).__name__} streams its samples; probes read labelled images by index: "
                "give data=imagefolder data.root=DIR, or data=hf data.path=... data.label_column=NAME"
            )
    unknown = sorted(set(probes) - set(PROBES))
    if unknown:
        raise ConfigError(f"unknown probes {unknown}; choose from {list(PROBES)}")
    depth = encoder.config.depth
    if not 1 <= layers <= depth:
        raise ConfigError(f"layers={layers} (--layers): the encoder has {depth} blocks; choose 1 to {depth}")
    sizes = split_sizes(len(data), None if test_data is None else len(test_data), train, val, test)
    for given in (data, test_data):
        if given is not None:
            _check_fits(encoder, given)
    with Bars(progress) as bar:
        results = _run_probes(
            encoder, data, test_data, sizes, tasks, probes, layers, batch_size, cache, cache_key, seed, emit, bar
        )
    if lidar_views is not None and sizes[2] >= 2:
        images, views = lidar_views
        rows = results["details"]["test_rows"][:images].tolist()
        crops = view_embeddings(encoder, results["details"]["test_data"], rows, views=views, seed=seed)
        results["monitors"]["lidar"] = lidar(crops)
    return results


def _features(
    encoder: Encoder,
    data: Any,
    test_data: Any | None,
    sizes: tuple[int, int, int],
    layers: int,
    batch_size: int,
    keep_patches: bool,
    cache: str | Path | None,
    cache_key: str,
    seed: int,
    bar: Bars,
) -> tuple[Features, list[torch.Tensor], torch.Tensor]:
    """The features of the images the probes read and the rows of each split in them (stratified by the
    first single-class task), and the test rows' indices in the data they came from."""
    drawn = sum(sizes) if test_data is None else sizes[0] + sizes[1]
    reads = [(data, chosen_rows(len(data), drawn, seed), cache)]
    if test_data is not None:
        test_cache = None if cache is None else Path(cache).with_suffix(".test" + Path(cache).suffix)
        reads.append((test_data, chosen_rows(len(test_data), sizes[2], seed), test_cache))
    reading = bar.add("extracting features", total=sum(len(chosen) for _, chosen, _ in reads))
    parts = []
    for dataset, chosen, file in reads:
        parts.append(
            extract(
                encoder,
                dataset,
                chosen.tolist(),
                batch_size=batch_size,
                layers=layers,
                keep_patches=keep_patches,
                cache=file,
                cache_key=cache_key,
                on_batch=lambda n: bar.advance(reading, n),
            )
        )
    bar.update(reading, completed=sum(len(chosen) for _, chosen, _ in reads))  # a cached read has no batches
    feats = parts[0]
    n = len(feats)
    single = next((t for t in TASKS if TASKS[t] == "multiclass" and t in feats.labels), None)
    strata = feats.labels[single] if single is not None else None
    if test_data is None:  # split what was readable alike
        a, b = round(n * sizes[0] / drawn), round(n * (sizes[0] + sizes[1]) / drawn)
        rows = stratified_split(strata, (a, b - a, n - b), seed)
    else:
        a = round(n * sizes[0] / drawn)
        rows = [*stratified_split(strata, (a, n - a), seed), n + torch.arange(len(parts[1]))]
        feats = feats.cat(parts[1])
    assert parts[-1].index is not None
    test_rows = parts[-1].index[rows[2] - (0 if test_data is None else n)]
    return feats, rows, test_rows


def _run_probes(
    encoder: Encoder,
    data: Any,
    test_data: Any | None,
    sizes: tuple[int, int, int],
    tasks: Sequence[str] | None,
    probes: Sequence[str],
    layers: int,
    batch_size: int,
    cache: str | Path | None,
    cache_key: str,
    seed: int,
    emit: Callable[[str], None],
    bar: Bars,
) -> dict[str, Any]:
    """``evaluate``'s work once its arguments are checked: extract, then each probe on each task."""
    keep = bool({"attentive", "dense"} & set(probes))
    feats, rows, test_rows = _features(
        encoder, data, test_data, sizes, layers, batch_size, keep, cache, cache_key, seed, bar
    )
    if feats.skipped:
        emit(f"probe data: {feats.skipped} unreadable samples skipped")
    available = sorted(feats.labels)
    tasks = list(available if tasks is None else tasks)
    missing = sorted(set(tasks) - set(available))
    if missing:
        raise ValueError(f"probe tasks {missing} are not labels of this data; it has {available}")

    def split(x: torch.Tensor) -> list[torch.Tensor]:
        return [x[r] for r in rows]

    results: dict[str, Any] = {
        "monitors": {},
        "details": {"test_rows": test_rows, "test_data": data if test_data is None else test_data},
        "n": {k: len(r) for k, r in zip(("train", "val", "test"), rows, strict=True)},
    }
    test_pooled = feats.pooled[rows[2]]
    results["monitors"] = collapse_monitors(test_pooled)
    pooled = split(feats.pooled)
    clip_tokens = feats.clip_tokens()
    tok = split(clip_tokens) if clip_tokens is not None else None

    def linear(y: list[torch.Tensor], multi: bool) -> tuple[dict[str, Any], str]:
        out = linear_probe((pooled[0], y[0]), (pooled[1], y[1]), (pooled[2], y[2]), multilabel=multi)
        return out, f"{out['accuracy']:.4f} (l2 {out['l2']:g})"

    def knn(y: list[torch.Tensor], multi: bool) -> tuple[dict[str, Any], str]:
        out = knn_probe((pooled[0], y[0]), (pooled[2], y[2]), multilabel=multi, k=min(20, pooled[0].shape[0]))
        return out, f"{out['accuracy']:.4f}"

    def attentive(y: list[torch.Tensor], multi: bool) -> tuple[dict[str, Any], str]:
        assert tok is not None  # patches are kept whenever a probe reads them
        heads = _heads(tok[0].shape[-1])
        out = attentive_probe(
            (tok[0], y[0]), (tok[1], y[1]), (tok[2], y[2]), multilabel=multi, seed=seed, num_heads=heads
        )
        return out, f"{out['accuracy']:.4f}"

    fits = {"linear": linear, "knn": knn, "attentive": attentive}
    jobs = [(name, task) for task in tasks for name in fits if name in probes]
    dense = "dense" in probes and feats.segmentation is not None
    fitting = bar.add("probes", total=len(jobs) + dense)
    for name, task in jobs:
        bar.update(fitting, description=f"probe {name}/{task}")
        out, line = fits[name](split(feats.labels[task]), TASKS[task] == "multilabel")
        results.setdefault(name, {})[task] = out["accuracy"]
        if name != "knn":
            results["details"].setdefault(name, {})[task] = out
        emit(f"{name}/{task}: {line}")
        bar.advance(fitting)
    if "dense" in probes and not dense:
        emit("dense probe skipped: the data has no segmentation")
    if dense:
        bar.update(fitting, description="probe dense")
        out = _dense(feats, rows)
        results["dense"] = {"miou": out["miou"], "iou": out["iou"]}
        results["details"]["dense"] = out
        emit(f"dense/miou: {out['miou']:.4f}")
        bar.advance(fitting)
    return results


def _dense(feats: Features, rows: list[torch.Tensor]) -> dict[str, Any]:
    """The dense probe on the splits' patch tokens and segmentations (a clip's frames each a sample)."""
    assert feats.patches is not None and feats.segmentation is not None
    per_frame = [feats.frame_tokens(feats.patches[r], feats.segmentation[r]) for r in rows]
    return dense_probe(*((x, seg) for x, seg, _ in per_frame), grid=per_frame[0][2], num_classes=feats.num_seg_classes)


def _heads(dim: int) -> int:
    return next(h for h in (4, 3, 2, 1) if dim % h == 0)


def online_probe(encoder: Encoder, data: Any, sizes: tuple[int, int, int], seed: int = 0) -> dict[str, float]:
    """Linear and kNN probes of ``encoder``'s average-pooled tokens on the last ``sum(sizes)`` samples of
    ``data`` (train, val, test in that order), as flat records: ``{"probe/linear/count": accuracy, ...}``,
    and LiDAR (``probe/lidar``) on crops of the first test images (each image's crops a class).

    The slice's labels are never seen by pretraining (self-supervised), and the probe's test images are
    never seen by its classifier. Raises ``ValueError`` when the data is shorter or carries no labels."""
    need = sum(sizes)
    if need > len(data):
        raise ValueError(f"online probes need {need} images (train, val, test {sizes}); the data has {len(data)}")
    tail = torch.utils.data.Subset(data, range(len(data) - need, len(data)))
    results = evaluate(
        encoder,
        tail,
        train=sizes[0],
        val=sizes[1],
        test=sizes[2],
        probes=("linear", "knn"),
        seed=seed,
        lidar_views=ONLINE_LIDAR,
    )
    flat = {
        f"probe/{probe}/{task}": float(accuracy)
        for probe in ("linear", "knn")
        for task, accuracy in results.get(probe, {}).items()
    }
    if not flat:
        raise ValueError(f"online probes: {type(data).__name__} samples carry no labels to probe")
    if "lidar" in results["monitors"]:
        flat["probe/lidar"] = results["monitors"]["lidar"]
    return flat


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready part of ``evaluate``'s results (no tensors, no heads)."""
    out = {k: v for k, v in results.items() if k != "details"}
    return json.loads(json.dumps(out))


def results_table(results: dict[str, Any], floor: dict[str, Any] | None = None) -> Table:
    """``evaluate``'s results as a rich table: one row per probe and task (test accuracy, or the
    segmentation's mIoU), the hyper-parameter chosen on val, then the collapse monitors. With a
    ``floor`` (``random_floor``), each score sits beside the random-init mean ± seed spread and
    says whether it beats it by more than twice the spread."""
    from rich.table import Table

    from .floor import beats

    held = {True: "held out", False: "NOT held out", None: "held out: unknown"}[results.get("held_out")]
    table = Table(title=f"probe results ({results['n']['test']} test images, {held})")
    columns = ["probe", "task", "score"]
    if floor is not None:
        columns += [f"random init ({len(floor['seeds'])} seeds)", "vs random"]
    columns.append("chosen on val")
    for column in columns:
        numeric = column not in ("probe", "task", "chosen on val")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=column != "chosen on val")

    def row(probe: str, task: str, path: str, score: float, picked: str) -> None:
        cells = [probe, task, f"{score:.4f}"]
        if floor is not None:
            mean, std = floor["mean"].get(path), floor["std"].get(path)
            if mean is None or std is None:
                cells += ["-", "-"]
            else:
                verdict = "beats" if beats(score, mean, std) else "noise" if score >= mean - 2 * std else "below"
                cells += [f"{mean:.4f} ± {std:.4f}", f"{score - mean:+.4f} {verdict}"]
        table.add_row(*cells, picked)

    details = results["details"]
    for probe in ("linear", "knn", "attentive"):
        for task, accuracy in results.get(probe, {}).items():
            chosen = details.get(probe, {}).get(task, {})
            picked = ", ".join(f"{k} {chosen[k]:g}" for k in ("l2", "lr", "weight_decay") if k in chosen)
            row(probe, task, f"{probe}/{task}", accuracy, picked)
    if "dense" in results:
        row("dense", "mIoU", "dense/miou", results["dense"]["miou"], f"l2 {details['dense']['l2']:g}")
    monitors = results["monitors"]
    lidar_now = f", LiDAR {monitors['lidar']:.2f}" if "lidar" in monitors else ""
    table.caption = (
        (f"{results['held_out_why']}; " if "held_out_why" in results else "")
        + f"accuracy on the test split; embedding std {monitors['embedding_std']:.4f}, "
        f"effective rank {monitors['effective_rank']:.2f}, centred {monitors['centred_rank']:.2f}{lidar_now}"
    )
    if floor is not None:
        mean = floor["mean"]
        lidar_then = f", {mean['monitors/lidar']:.2f}" if lidar_now and "monitors/lidar" in mean else ""
        table.caption += (
            f" (random init: {mean['monitors/embedding_std']:.4f}, {mean['monitors/effective_rank']:.2f}, "
            f"{mean['monitors/centred_rank']:.2f}{lidar_then}); "
            "beats: above the random-init mean by more than twice its seed spread; noise: within it"
        )
    return table
