"""Checkpoints that never lose what a user saved.

A checkpoint is written to a temporary file in the same folder, flushed and fsynced,
then renamed over the final name (atomic on POSIX), and the folder is fsynced; an
interrupted save leaves the previous checkpoint intact. Files hold only tensors and
plain Python values, so they load with ``torch.load(weights_only=True)``: never
unpickling arbitrary objects.

A checkpoint dict carries ``version`` (:data:`CHECKPOINT_VERSION`); :func:`upgrade_checkpoint`
reads older ones (version 1 kept a tokenizer's bytes under ``tokenizer``; version 2 keeps
what the method's ``extra_state`` gives under ``method_state``).

An export folder (``jepakit export``: ``model.safetensors`` + ``config.json``) is read here too,
by :func:`load_encoder`, so that a frozen teacher and the probes load it alike.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, MissingFileError, from_dict

__all__ = [
    "CHECKPOINT_VERSION",
    "BadCheckpointError",
    "CheckpointError",
    "CheckpointManager",
    "RunExistsError",
    "RunFolderError",
    "atomic_path",
    "check_run_folder",
    "checkpoint_encoder",
    "claim_run_folder",
    "evaluated_encoder",
    "export_config",
    "load_checkpoint",
    "load_encoder",
    "resolve_checkpoint",
    "save_checkpoint",
    "upgrade_checkpoint",
]

#: The layout of checkpoint dicts written now.
CHECKPOINT_VERSION = 2


class BadCheckpointError(ConfigError):
    """A file that is not a checkpoint this jepakit can read (corrupt, unsafe, not jepakit's, newer)."""


class RunFolderError(OSError):
    """The run folder cannot take the run: not writable, or too little free space."""


class RunExistsError(RunFolderError):
    """The run folder already holds a run, and neither resuming nor replacing it was asked for."""


class CheckpointError(OSError):
    """A checkpoint could not be written (the last complete one is named, and untouched)."""


def check_run_folder(folder: str | os.PathLike, need: int) -> None:
    """Raise ``RunFolderError`` naming ``folder`` unless it can be created and written and has ``need``
    bytes free (for the next checkpoint), so a run fails before it starts rather than at its first save."""
    folder = Path(folder)
    probe = folder / ".jepakit-write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(probe) as tmp:
            tmp.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise RunFolderError(f"the run folder {str(folder)!r} cannot be written: {e.strerror or e}") from None
    free = shutil.disk_usage(folder).free
    if free < need:
        raise RunFolderError(
            f"the run folder {str(folder)!r} has {free / 2**20:.0f} MB free; a checkpoint of this "
            f"run needs about {need / 2**20:.0f} MB"
        )


#: What marks a folder as holding a run: anything training writes.
RUN_MARKERS = ("config.json", "log.jsonl", "checkpoints", "teacher", "tensorboard")


def claim_run_folder(folder: str | os.PathLike, *, resume: bool, overwrite: bool) -> Path | None:
    """Make ``folder`` ready for a new run, never mixing two: a folder that holds a run (any of
    ``RUN_MARKERS``) raises ``RunExistsError`` naming ``--resume`` and ``--overwrite``, unless ``resume``
    (continue it) or ``overwrite``, which renames the old run to ``FOLDER.replaced-N`` (the first free N)
    and returns that path, so nothing a user saved is deleted. Returns None when nothing was moved."""
    folder = Path(folder)
    held = [m for m in RUN_MARKERS if (folder / m).exists()]
    if resume or not held:
        return None
    if not overwrite:
        latest = CheckpointManager(folder / "checkpoints").latest()
        what = f"its newest checkpoint is {str(latest)!r}" if latest is not None else f"it has {', '.join(held)}"
        raise RunExistsError(
            f"the run folder {str(folder)!r} already holds a run ({what}); continue it with --resume "
            "(resume=True), replace it with --overwrite (overwrite=True: the old run is moved aside, not deleted), "
            "or give another --out"
        )
    n = 1
    while (aside := folder.with_name(f"{folder.name}.replaced-{n}")).exists():
        n += 1
    folder.rename(aside)
    return aside


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; when the block ends without error, fsync it,
    rename it over ``path`` (atomic on POSIX) and fsync the folder. On error nothing changes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temp file, fsync, rename, fsync of the folder)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt, truncated or unsafe content
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadCheckpointError(f"checkpoint {str(path)!r} cannot be read safely: {reason}") from e
    if not isinstance(state, dict):
        raise BadCheckpointError(f"{str(path)!r} holds a {type(state).__name__}, not a checkpoint dict")
    return state


def upgrade_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (a loaded checkpoint dict of any version) in the current layout."""
    state = dict(state)
    version = state.pop("version", 1)
    if version > CHECKPOINT_VERSION:
        raise BadCheckpointError(
            f"this checkpoint was written by a newer jepakit (version {version}); "
            f"this one reads version {CHECKPOINT_VERSION} and older"
        )
    missing = [k for k in ("model", "config", "step") if k not in state]
    if missing:
        raise BadCheckpointError(f"not a jepakit training checkpoint: it has no {', '.join(missing)}")
    if version == 1:
        tokenizer = state.pop("tokenizer", None)
        state["method_state"] = {"tokenizer": tokenizer} if tokenizer is not None else {}
    state["version"] = CHECKPOINT_VERSION
    return state


def resolve_checkpoint(source: str | os.PathLike) -> Path:
    """A checkpoint file as given, or the newest one in a run folder or its ``checkpoints/``."""
    path = Path(source)
    if not path.is_dir():
        return path
    latest = CheckpointManager(path / "checkpoints").latest() or CheckpointManager(path).latest()
    if latest is None:
        raise FileNotFoundError(f"{str(path)!r} holds no checkpoints (nor does its checkpoints/ folder)")
    return latest


class CheckpointManager:
    """``step-00001234.pt`` files in a folder; keeps the newest ``keep``, finds the latest."""

    pattern = re.compile(r"^step-(\d+)\.pt$")

    def __init__(self, folder: str | os.PathLike, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError(f"keep={keep} must be at least 1")
        self.folder = Path(folder)
        self.keep = keep

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path) of every complete checkpoint, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := self.pattern.match(p.name))]
        return sorted(found)

    def clear_partial(self) -> None:
        """Remove the temporary files of saves that never completed (a process killed mid-save)."""
        if self.folder.is_dir():
            for tmp in self.folder.glob(".step-*.pt.*.tmp"):
                tmp.unlink(missing_ok=True)

    def latest(self) -> Path | None:
        """The newest checkpoint, or None."""
        found = self.checkpoints()
        return found[-1][1] if found else None

    def save(self, state: dict[str, Any], step: int) -> Path:
        """Save ``state`` as the checkpoint of ``step``, then drop all but the newest ``keep``.

        A failed write (a full disk) raises ``CheckpointError`` naming the path and the last
        complete checkpoint, which it leaves as it was.
        """
        path = self.folder / f"step-{step:08d}.pt"
        try:
            save_checkpoint(state, path)
        except OSError as e:
            raise CheckpointError(
                f"could not write the checkpoint {str(path)!r} ({e.strerror or e}); the last "
                f"complete checkpoint is {str(self.latest() or 'none')!r}"
            ) from e
        for _, old in self.checkpoints()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path


def checkpoint_encoder(experiment: Any, state: dict[str, Any]) -> tuple[Any, str]:
    """(the evaluated encoder of a training checkpoint with its weights, the state-dict prefix they came
    from); ``experiment``: the checkpoint's stored experiment (its method says which encoder is evaluated)."""
    encoder_cfg, prefixes = experiment.method.eval_encoder()
    model = state["model"]
    for prefix in prefixes:
        weights = {k[len(prefix) + 1 :]: v for k, v in model.items() if k.startswith(prefix + ".")}
        if weights:
            encoder = encoder_cfg.build()
            encoder.load_state_dict(weights, strict=True)
            return encoder, prefix
    raise ValueError(f"checkpoint {state.get('path', '')!r} holds no encoder weights under {list(prefixes)}")


def training_checkpoint(source: str | os.PathLike) -> Path | None:
    """The training checkpoint ``source`` names: a run folder's newest, or a file that holds a jepakit
    training checkpoint (its weights, config and step); None for anything else (a plain weights file)."""
    path = Path(source)
    if path.is_dir():
        return CheckpointManager(path / "checkpoints").latest() or CheckpointManager(path).latest()
    if path.suffix == ".safetensors" or not path.is_file():
        return None
    stat = path.stat()
    return path if _holds_a_run(str(path.resolve()), stat.st_mtime_ns, stat.st_size) else None


@functools.cache
def _holds_a_run(path: str, mtime: int, size: int) -> bool:
    """Whether the file is a jepakit training checkpoint, read once per version of the file (a config that
    names it asks whenever it is made)."""
    return {"model", "config", "step"} <= set(load_checkpoint(path))


def evaluated_encoder(path: str | os.PathLike) -> tuple[Any, str]:
    """(the encoder a training checkpoint's method evaluates, with its own config and weights, a line saying
    which weights it is): what a probe reads, and what a frozen teacher takes from a run."""
    state = upgrade_checkpoint(load_checkpoint(path))
    from .imports import import_recorded

    import_recorded(state.get("imports", []), Path(path))
    experiment = from_dict(state["config"])
    encoder, prefix = checkpoint_encoder(experiment, state)
    return encoder, f"the {prefix} of {str(path)!r} (step {int(state['step'])})"


def is_export(path: Path) -> bool:
    """Whether ``path`` is a ``jepakit export`` folder (``model.safetensors`` and ``config.json``)."""
    return path.is_dir() and (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def export_config(path: str | Path) -> dict[str, Any]:
    """What a ``jepakit export`` folder's ``config.json`` says: the encoder's config under "encoder"."""
    meta_file = Path(path) / "config.json"
    if not meta_file.is_file():
        raise MissingFileError(f"{str(path)!r} holds no config.json (write it with jepakit export)")
    return dict(json.loads(meta_file.read_text()))


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """The encoder exported to ``path`` (a ``jepakit export`` folder: its own architecture and weights), in eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    encoder = from_dict(export_config(path)["encoder"]).build()
    encoder.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
    return encoder.to(device).eval()
