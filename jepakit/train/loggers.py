"""Where a run's scalars go: a JSONL file, TensorBoard, Weights & Biases.

A logger is a registered component of kind ``logger``; ``train.loggers=[jsonl,tensorboard]``
chooses them by name, ``wandb.project=NAME`` (any logger's name, then its field) sets a chosen one's
fields, and each receives every record the trainer makes (loss and its
parts, learning rate, weight decay, EMA momentum, collapse monitors, images/s) and every
event (a stop by signal, unreadable samples). Only rank 0 logs.

A resumed run continues from its last checkpoint, so records logged after that
checkpoint by the run that stopped are dropped first: the JSONL file keeps the records
up to the resumed step, TensorBoard purges later events (``purge_step``), and W&B
continues the same run id. The logs then read as if the run had never stopped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..checkpoint import atomic_path
from ..config import Config, ConfigError, at_least, knob
from ..registry import register

__all__ = ["JsonlLogger", "Logger", "LoggerConfig", "TensorBoardLogger", "WandbLogger", "read_jsonl"]


@dataclass(frozen=True)
class LoggerConfig(Config):
    """Base of the loggers' configs: ``train.loggers`` holds them, and a bare name stands for one at its
    defaults."""

    kind: ClassVar[str] = "logger"


class Logger(ABC):
    """The interface: ``open`` once per fit, ``log`` per record, ``event`` per note, ``close``."""

    @abstractmethod
    def open(self, out: Path, config: Mapping[str, Any], start: int) -> None:
        """Begin logging the run in folder ``out`` (its config as a plain dict) from step ``start``;
        records of steps after ``start`` left by an earlier, interrupted run are dropped."""

    @abstractmethod
    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        """Record ``scalars`` (name -> value) at optimiser step ``step``."""

    @abstractmethod
    def event(self, step: int, text: str) -> None:
        """Record a line of text at ``step`` (a stop, unreadable samples)."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release what ``open`` took."""


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``log.jsonl`` (metric records and events), in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class JsonlConfig(LoggerConfig):
    """``log.jsonl`` in the run folder: one JSON object per record, ``{"step": ..., "event": ...}`` per event."""


@register("logger", "jsonl", JsonlConfig)
class JsonlLogger(Logger):
    """One JSON object per line in ``OUT/log.jsonl``: ``{"step": ..., NAME: value, ...}`` per record,
    ``{"step": ..., "event": TEXT}`` per event.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from jepakit import create
        >>> out = Path(tempfile.mkdtemp())
        >>> logger = create("logger", "jsonl")
        >>> logger.open(out, config={}, start=0)
        >>> logger.log(10, {"loss": 0.5})
        >>> logger.event(10, "a note")
        >>> logger.close()
        >>> read_jsonl(out / "log.jsonl")
        [{'step': 10, 'loss': 0.5}, {'step': 10, 'event': 'a note'}]
    """

    def __init__(self, cfg: JsonlConfig) -> None:
        self.config = cfg
        self.path: Path | None = None
        self._file: Any = None

    def open(self, out: Path, config: Mapping[str, Any], start: int) -> None:
        self.path = out / "log.jsonl"
        if self.path.is_file():  # a resumed run: keep what the checkpoint covers
            kept = [r for r in read_jsonl(self.path) if r.get("step", 0) <= start]
            _write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._file = self.path.open("a")

    def _write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        self._write({"step": step, **scalars})

    def event(self, step: int, text: str) -> None:
        self._write({"step": step, "event": text})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True)
class TensorBoardConfig(LoggerConfig):
    """TensorBoard event files under ``tensorboard/`` in the run folder (``tensorboard --logdir RUN``)."""

    flush_secs: int = knob(120, "seconds between writes of pending events to disk", valid=at_least(1))


@register("logger", "tensorboard", TensorBoardConfig)
class TensorBoardLogger(Logger):
    """Scalars and events for TensorBoard under ``OUT/tensorboard``; the config as text at the start.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        >>> from jepakit import create
        >>> out = Path(tempfile.mkdtemp())
        >>> logger = create("logger", "tensorboard", flush_secs=1)
        >>> logger.open(out, config={"seed": 0}, start=0)
        >>> logger.log(1, {"loss": 0.5})
        >>> logger.close()
        >>> events = EventAccumulator(str(out / "tensorboard"))
        >>> _ = events.Reload()
        >>> [(e.step, e.value) for e in events.Scalars("loss")]
        [(1, 0.5)]
    """

    def __init__(self, cfg: TensorBoardConfig) -> None:
        self.config = cfg
        self._writer: Any = None

    def open(self, out: Path, config: Mapping[str, Any], start: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard drops the events an interrupted run wrote after the checkpoint (steps > start)
        purge = start + 1 if start else None
        self._writer = SummaryWriter(str(out / "tensorboard"), purge_step=purge, flush_secs=self.config.flush_secs)
        if not start:
            self._writer.add_text("config", "```json\n" + json.dumps(config, indent=2) + "\n```", 0)

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        for name, value in scalars.items():
            self._writer.add_scalar(name, value, step)

    def event(self, step: int, text: str) -> None:
        self._writer.add_text("events", text, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


@dataclass(frozen=True)
class WandbConfig(LoggerConfig):
    """Weights & Biases (``pip install jepakit[wandb]``): the run is named after the run folder, and
    ``$WANDB_MODE=offline`` keeps it on disk (``wandb sync`` uploads it later). A resumed run continues
    the same W&B run."""

    project: str | None = knob(None, "the W&B project (unset: $WANDB_PROJECT, else 'jepakit')")
    entity: str | None = knob(None, "the W&B team or user it logs under (unset: W&B's default for the login)")


@register("logger", "wandb", WandbConfig)
class WandbLogger(Logger):
    """Scalars and events for Weights & Biases, one W&B run per run folder (kept across resumes).

    Example:
        >>> import os, tempfile
        >>> from pathlib import Path
        >>> from jepakit import create
        >>> os.environ["WANDB_MODE"] = "offline"  # on disk: `wandb sync` uploads it later
        >>> out = Path(tempfile.mkdtemp())
        >>> logger = create("logger", "wandb", project="demo")
        >>> logger.open(out, config={"seed": 0}, start=0)
        >>> logger.log(1, {"loss": 0.5})
        >>> logger.close()
        >>> run = (out / "wandb-id").read_text()  # a resumed run continues this W&B run
        >>> len(list((out / "wandb").glob(f"offline-run-*-{run}")))
        1
    """

    def __init__(self, cfg: WandbConfig) -> None:
        if importlib.util.find_spec("wandb") is None:
            raise ConfigError("train.loggers names wandb, which is not installed: pip install 'jepakit[wandb]'")
        self.config = cfg
        self._run: Any = None

    def open(self, out: Path, config: Mapping[str, Any], start: int) -> None:
        import wandb

        id_file = out / "wandb-id"  # the same W&B run across resumes
        if not id_file.is_file():
            _write_text(id_file, secrets.token_hex(4))
        self._run = wandb.init(
            project=self.config.project or os.environ.get("WANDB_PROJECT", "jepakit"),
            entity=self.config.entity,
            name=out.resolve().name,
            id=id_file.read_text().strip(),
            resume="allow",
            dir=str(out),
            config=dict(config),
        )

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        self._run.log(dict(scalars), step=step)

    def event(self, step: int, text: str) -> None:
        self._run.log({"event": text}, step=step)

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
