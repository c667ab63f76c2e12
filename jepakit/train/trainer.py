"""The training engine: one loop for every method, through the ``Method`` contract.

Everything that changes over a run is a pure function of the optimiser step: the
learning rate, the weight decay, the method's own schedules (EMA momentum), the batch
(a per-epoch permutation seeded by (seed, epoch)), each sample's augmentation (seeded
by (seed, epoch, index)) and the masks (seeded by (seed, step, micro-batch)). A
checkpoint therefore needs only the weights, the optimiser state, the step and the
method's ``extra_state`` to resume exactly: N straight steps and k + (N - k) resumed
steps give bitwise-identical weights on the CPU.

The loop knows a method only through ``jepakit.methods.base.Method``: ``prepare``,
``make_batch`` (in the pipeline), ``forward``, ``param_groups``, ``after_step``,
``shard_units``, ``embeddings`` and ``extra_state``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import torch

from ..checkpoint import (
    CHECKPOINT_VERSION,
    CheckpointManager,
    RunExistsError,
    atomic_path,
    check_run_folder,
    load_checkpoint,
    upgrade_checkpoint,
)
from ..config import (
    Config,
    ConfigError,
    MissingFileError,
    at_least,
    config_diff,
    each,
    in_range,
    knob,
    ordered_pair,
    positive,
    to_dict,
)
from ..data.base import Reporting, StreamingData
from ..progress import Bars
from ..registry import register, register_alias
from ..sizing import FLOAT, check_fits
from ..weights import TIMM, init_weights
from .loggers import JsonlConfig, Logger, LoggerConfig, TensorBoardConfig, read_jsonl
from .optim import adamw, torch_groups
from .pipeline import EpochOrder, micro_batches
from .schedules import lr_at, weight_decay_at
from .signals import StopSignals

if TYPE_CHECKING:
    from ..diagnose import CollapseWatch

__all__ = ["NonFiniteLossError", "TrainConfig", "Trainer", "run_length"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig(Config):
    steps: int | None = knob(1000, "optimiser steps (null: from train.epochs)", valid=at_least(1))
    epochs: float | None = knob(
        None,
        "passes over the data; steps = ceil(epochs x samples / batch_size) when training starts (set steps=null)",
        valid=positive(),
    )
    batch_size: int = knob(64, "images per optimiser step", valid=at_least(1))
    accum_steps: int = knob(
        1, "micro-batches per step (gradient accumulation); batch_size must divide", valid=at_least(1)
    )
    lr: float = knob(1e-3, "peak learning rate (I-JEPA: 1e-3 at batch 2048)", valid=positive())
    start_lr: float = knob(2e-4, "learning rate at step 0, before warm-up (I-JEPA: 2e-4)", valid=at_least(0))
    final_lr: float = knob(1e-6, "learning rate at the last step (I-JEPA: 1e-6)", valid=at_least(0))
    warmup_steps: int | None = knob(
        100, "linear warm-up steps, at most steps (null: from warmup_epochs)", valid=at_least(0)
    )
    warmup_epochs: float | None = knob(
        None, "warm-up in passes over the data, with train.epochs (set warmup_steps=null)", valid=at_least(0)
    )
    weight_decay: float = knob(0.04, "weight decay at step 0 (I-JEPA: 0.04)", valid=at_least(0))
    final_weight_decay: float = knob(0.4, "weight decay at the last step (I-JEPA: 0.4)", valid=at_least(0))
    betas: tuple[float, float] = knob(
        (0.9, 0.999), "AdamW's moment decays (torch's default; CLIP: (0.9, 0.98))", valid=ordered_pair(0, 1)
    )
    eps: float = knob(1e-8, "AdamW's epsilon (torch's default; CLIP: 1e-6)", valid=positive())
    clip_grad: float = knob(0.0, "clip the gradient norm to this (0: off)", valid=at_least(0))
    schedule_scale: float = knob(
        1.0,
        "lay the LR, weight-decay and method schedules (the EMA) over this many times the run's steps, which end "
        "the run (V-JEPA's ipe_scale 1.25: training stops at 80% of every schedule, never at its final value)",
        valid=at_least(1),
    )
    precision: Literal["fp32", "bf16", "fp16"] = knob("fp32", "autocast precision (bf16/fp16 on a GPU)")
    device: str = knob("auto", "cpu, cuda, cuda:1, ...; auto: cuda when available")
    seed: int = knob(0, "seed of the data order, augmentation, masks and initialisation", valid=at_least(0))
    log_every: int = knob(10, "steps between progress lines and logged records", valid=at_least(1))
    loggers: tuple[LoggerConfig, ...] = knob(
        (JsonlConfig(), TensorBoardConfig()),
        "where records go: jsonl (log.jsonl), tensorboard (tensorboard/), wandb; names, each at its defaults "
        "(wandb.project=NAME ... sets a chosen logger's fields)",
    )
    monitor_every: int = knob(50, "steps between collapse-monitor readings", valid=at_least(1))
    collapse_drop: float = knob(
        0.75,
        "warn in the log when the pooled embeddings' centred effective rank falls below this fraction of the run's "
        "first reading (collapse: the features lose directions; read on batches of 8 or more; 0: never)",
        valid=in_range(0, 1),
    )
    online_probe_every: int = knob(
        0,
        "steps between online probes (0: off): linear and kNN on the evaluated encoder's average-pooled tokens "
        "of the data's last images, logged as probe/<probe>/<task> (labelled data only), and LiDAR on crops of "
        "64 of the test images (probe/lidar)",
        valid=at_least(0),
    )
    online_probe_images: tuple[int, int, int] = knob(
        (512, 128, 512),
        "the online probes' train, val and test images, the last of the training data in that order",
        valid=each(at_least(1)),
    )
    checkpoint_every: int = knob(200, "steps between checkpoints (and one at the end)", valid=at_least(1))
    keep_checkpoints: int = knob(3, "newest checkpoints kept", valid=at_least(1))
    nonfinite: Literal["stop", "skip"] = knob("stop", "on a NaN/inf loss: stop naming the step, or skip the step")
    fsdp: bool = knob(False, "under torchrun: shard the method's shard units (FSDP2) instead of DDP")
    memory_check: Literal["error", "warn", "off"] = knob(
        "error", "estimate memory from the config before building; off: you know better (e.g. FSDP on other machines)"
    )
    init_from: str | None = knob(
        None,
        "start from these weights: a run folder or checkpoint (one jepakit import-weights wrote, too), a jepakit "
        "export, an official I-JEPA/V-JEPA checkpoint, or timm:NAME (a timm ViT's pretrained blocks, patch "
        "embedding and norm in the evaluated encoder); no optimiser state, the schedules start at step 0",
    )
    init_prefixes: tuple[str, ...] = knob(
        (), "take only the weights under these prefixes of the method (e.g. [encoder]); (): all the source has"
    )
    compile: bool = knob(False, "run the method's forward through torch.compile")
    compile_backend: str = knob("inductor", "torch.compile backend (inductor; eager for a quick check)")
    num_workers: int = knob(
        2, "threads reading samples and making batches ahead of the step (0: in line)", valid=at_least(0)
    )
    prefetch: int = knob(2, "micro-batches prepared ahead (0: none)", valid=at_least(0))

    def check_files(self) -> None:
        from ..hub import local_path

        # a hub source is fetched (or found in the cache) now, or refused in one line saying why not; timm
        # fetches its own when the run starts
        if self.init_from is None or self.init_from.startswith(TIMM):
            return
        if not local_path(self.init_from).exists():
            raise MissingFileError(
                f"train.init_from={self.init_from!r} does not exist: give a run folder or checkpoint, a jepakit "
                "export folder, an official I-JEPA/V-JEPA checkpoint or timm:NAME"
            )

    def validate(self) -> None:
        if self.batch_size % self.accum_steps:
            raise ConfigError(
                f"{self.type_id()}.batch_size={self.batch_size} is not divisible by accum_steps={self.accum_steps}"
            )
        t = "train"  # as the fields are given: train.steps=... on the command line
        for count, passes in (("steps", "epochs"), ("warmup_steps", "warmup_epochs")):
            a, b = getattr(self, count), getattr(self, passes)  # the field pairs by name
            if (a is None) == (b is None):
                raise ConfigError(
                    f"{t}.{count}={a} and {t}.{passes}={b}: give exactly one "
                    f"(e.g. {t}.{passes}=null {t}.{count}=N, or {t}.{count}=null {t}.{passes}=E)"
                )
        if self.steps is not None and self.warmup_steps is not None and self.warmup_steps > self.steps:
            raise ConfigError(
                f"{t}.warmup_steps={self.warmup_steps} must lie in [0, steps={self.steps}]: shorten the warm-up too "
                f"(e.g. {t}.warmup_steps={self.steps // 10})"
            )
        if self.epochs is not None and self.warmup_epochs is not None and self.warmup_epochs > self.epochs:
            raise ConfigError(f"{t}.warmup_epochs={self.warmup_epochs} must lie in [0, epochs={self.epochs}]")
        if self.fsdp and self.online_probe_every:
            raise ConfigError(
                f"{t}.online_probe_every={self.online_probe_every} with {t}.fsdp=true: the online probes run the "
                "encoder on rank 0 alone, which a sharded encoder cannot; probe the checkpoints with jepakit probe"
            )
        if self.init_prefixes and self.init_from is None:
            raise ConfigError(f"{t}.init_prefixes={list(self.init_prefixes)} filters train.init_from, which is not set")
        names = [c.name for c in self.loggers]
        if len(set(names)) != len(names):
            raise ConfigError(f"{self.type_id()}.loggers={names} names a logger twice")


def run_length(cfg: TrainConfig, samples: int) -> tuple[int, int]:
    """(steps, warm-up steps) of a run on ``samples`` images: given, or from epochs (whole steps, rounded up)."""
    per_epoch = samples / cfg.batch_size
    steps = cfg.steps if cfg.steps is not None else max(1, math.ceil((cfg.epochs or 0) * per_epoch))
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else math.ceil((cfg.warmup_epochs or 0) * per_epoch)
    if warmup > steps:
        raise ConfigError(
            f"train: a warm-up of {warmup} steps (warmup_steps={cfg.warmup_steps}, warmup_epochs="
            f"{cfg.warmup_epochs}) is longer than the run's {steps} (steps={cfg.steps}, epochs={cfg.epochs}) "
            f"on {samples} samples at batch {cfg.batch_size}"
        )
    return steps, warmup


@register("trainer", "default", TrainConfig)
class Trainer:
    """Trains an experiment's method on its data set (``fit``).

    Example:
        >>> import tempfile
        >>> from jepakit.check import tiny_config
        >>> train = {"steps": 2, "batch_size": 4, "warmup_steps": 1, "loggers": ["jsonl"]}
        >>> cfg = tiny_config("ijepa", masker={"min_keep": 4}, data={"size": 8}, train=train)
        >>> out = tempfile.mkdtemp()
        >>> result = Trainer(cfg.train).fit(cfg, out, progress=False)
        >>> result["steps"], len(result["losses"]), result["stopped"], result["checkpoint"].name
        (2, 2, None, 'step-00000002.pt')
    """

    def __init__(self, cfg: TrainConfig) -> None:
        self.config = cfg

    def fit(
        self,
        experiment: Any,
        out_dir: str | Path,
        resume: bool = False,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        until: int | None = None,
        imports: Sequence[str] = (),
        recipe: str | None = None,
    ) -> dict[str, Any]:
        """Train ``experiment`` (an ``Experiment``); write config, log and checkpoints under ``out_dir``;
        ``imports``: the user code it needs (``--import``), recorded in both for whoever reads the run;
        ``recipe``: the recipe it was made from, recorded in config.json (a model card names it).

        ``until`` stops after that many steps (with a checkpoint) without changing any
        schedule: a later ``resume=True`` continues exactly. So does a SIGTERM or SIGINT
        (``StopSignals``): the result's ``stopped`` then names the signal.
        """
        cfg = self.config
        run = _Run.start(cfg, experiment, Path(out_dir), resume, log, imports, recipe)
        stop = run.steps if until is None else min(until, run.steps)
        batches = run.batches(stop)
        stopped: str | None = None
        with contextlib.ExitStack() as cleanup:  # however the loop ends: signals restored, threads stopped, log closed
            signals = cleanup.enter_context(StopSignals())
            cleanup.enter_context(batches)
            run.open(cleanup, progress)
            for step in range(run.first, stop):
                stepped = run.step(step, batches)
                if stepped is None:  # a non-finite loss, skipped
                    continue
                done = step + 1
                run.observe(done, stepped)
                halt = signals.requested(run.world, run.device)
                if done % cfg.checkpoint_every == 0 or done in (run.steps, stop) or halt:
                    run.checkpoint(done)
                if halt:
                    stopped = signals.reason
                    run.note(
                        done,
                        f"stopped by {stopped} after step {done}; checkpoint {run.manager.latest()}; --resume continues",
                    )
                    break
        run.plot()
        return {
            "steps": run.steps,
            "losses": run.history,
            "skipped": run.skipped,
            "checkpoint": run.manager.latest(),
            "rank": run.rank,
            "log": run.out / "log.jsonl",
            "model": run.method,
            "stopped": stopped,
        }


def _resumed_state(experiment: Any, out: Path, manager: CheckpointManager, resume: bool) -> dict[str, Any] | None:
    """The latest checkpoint's state when resuming (None for a new run); a new run's folder must hold no
    other run's checkpoints, and a resumed one the same config's."""
    if not resume:
        if (other := manager.latest()) is not None:  # a new run's checkpoints never sit beside an old run's
            raise RunExistsError(
                f"the run folder {str(out)!r} holds checkpoints of another run ({str(other)!r}); "
                "resume it, or train into a new folder"
            )
        return None
    manager.clear_partial()
    latest = manager.latest()
    if latest is None:
        raise FileNotFoundError(f"--resume: no checkpoint under {str(out / 'checkpoints')!r}")
    state = upgrade_checkpoint(load_checkpoint(latest))
    if "imported" in state:
        raise ConfigError(
            f"{str(latest)!r} holds weights imported from {state['imported']['path']} and no optimiser state: "
            f"start a new run from them with train.init_from={str(out)!r}"
        )
    _check_same_config(state["config"], experiment, latest)
    return state


def _device(cfg: TrainConfig) -> torch.device:
    """The device ``train.device`` names (``auto``: a CUDA GPU when there is one)."""
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={cfg.device!r}: this machine has no CUDA GPU; give train.device=cpu or auto")
    return device


class _Stepped(NamedTuple):
    """What a step hands to ``observe``: its record, the loss parts, the last micro-batch, the LR."""

    record: dict[str, Any]
    losses: dict[str, float]
    batch: dict[str, Any]
    lr: float


@dataclass
class _Run:
    """One fit's state and its parts of the loop: ``step`` (schedules, accumulation, the non-finite
    policy, clipping, the optimiser, ``after_step``), ``observe`` (monitors, online probes, loggers,
    progress) and ``checkpoint``. ``start`` sets it up."""

    cfg: TrainConfig
    experiment: Any
    out: Path
    method: Any
    data: Any
    spread: _Parallel
    net: Any
    groups: list[Any]
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    order: EpochOrder
    manager: CheckpointManager
    watch: CollapseWatch
    device: torch.device
    rank: int
    world: int
    steps: int
    warmup_steps: int
    laid: int  #: the schedules' length (the run's, unless scaled)
    first: int  #: the step this fit starts at (a resumed run's)
    imports: Sequence[str]
    emit: Callable[[str], None]
    loggers: list[Logger] = field(default_factory=list)
    history: list[float] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  #: for the curves when there is no log.jsonl
    skipped: int = 0
    seen: int = 0
    tic: float = 0.0
    unreadable_at_epoch: tuple[int, int] = (-1, 0)
    bar: Bars = field(default_factory=lambda: Bars(False))
    task: Any = None

    @classmethod
    def start(
        cls,
        cfg: TrainConfig,
        experiment: Any,
        out: Path,
        resume: bool,
        log: Callable[[str], None] | None,
        imports: Sequence[str],
        recipe: str | None,
    ) -> _Run:
        """Resume or begin: device, memory check, method, data, optimiser; config.json written."""
        from ..diagnose import CollapseWatch, remedies

        manager = CheckpointManager(out / "checkpoints", keep=cfg.keep_checkpoints)
        state = _resumed_state(experiment, out, manager, resume)
        device, (rank, world) = _device(cfg), _distributed()
        emit = (log or (lambda line: None)) if rank == 0 else (lambda line: None)
        loggers: list[Logger] = [c.build() for c in cfg.loggers] if rank == 0 else []
        method, data = _build(cfg, experiment, out, device, rank, world, state, emit)
        steps, warmup_steps = run_length(cfg, len(data))
        spread = _Parallel(method, device, world, cfg.fsdp)
        groups = method.param_groups()
        # sharded (DTensor) parameters: not fused
        opt = adamw(torch_groups(groups, cfg.weight_decay), cfg.start_lr, betas=cfg.betas, eps=cfg.eps)
        scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
        if state is not None:
            spread.load(opt, state)
            scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng"]["torch"])  # drop-path and dropout continue their streams
        saved_start = state.get("monitors", {}).get("centred_rank_start") if state is not None else None
        net = torch.compile(spread.net, backend=cfg.compile_backend) if cfg.compile else spread.net
        order = EpochOrder(len(data), cfg.batch_size, cfg.seed, shuffle=not isinstance(data, StreamingData))
        method.train()
        run = cls(
            cfg,
            experiment,
            out,
            method,
            data,
            spread,
            net,
            groups,
            opt,
            scaler,
            order,
            manager,
            CollapseWatch(cfg.collapse_drop, remedies(experiment.method, cfg), start=saved_start),
            device,
            rank,
            world,
            steps,
            warmup_steps,
            round(steps * cfg.schedule_scale),
            int(state["step"]) if state is not None else 0,
            imports,
            emit,
            loggers=loggers,
            unreadable_at_epoch=(-1, _unreadable(data)),
        )
        run.announce(state, recipe)
        return run

    def announce(self, state: dict[str, Any] | None, recipe: str | None) -> None:
        """Write config.json (rank 0: the one writer of config, logs and checkpoints) and say what runs."""
        cfg, data = self.cfg, self.data
        self.out.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            with atomic_path(self.out / "config.json") as tmp:
                made = {"imports": list(self.imports)} | ({"recipe": recipe} if recipe else {})
                tmp.write_text(json.dumps({**to_dict(self.experiment), **made}, indent=2))
        if state is not None:
            self.emit(f"resuming from {self.manager.latest()} (step {self.first})")
        if cfg.epochs is not None:
            self.emit(
                f"train.epochs={cfg.epochs:g} of {len(data)} samples at batch {cfg.batch_size}: {self.steps} steps "
                f"(warm-up {self.warmup_steps})"
            )
        if isinstance(data, Reporting) and data.report:
            self.emit(f"data: {data.report}")
        if built_from := self.method.report():
            self.emit(built_from)

    def batches(self, stop: int) -> Any:
        """The pipeline of this rank's micro-batches from the first step to ``stop`` (a context manager)."""
        cfg = self.cfg
        return micro_batches(
            self.method.make_batch,
            self.data,
            self.order,
            seed=cfg.seed,
            accum_steps=cfg.accum_steps,
            start=self.first,
            stop=stop,
            rank=self.rank,
            world=self.world,
            num_workers=cfg.num_workers,
            prefetch=cfg.prefetch,
        )

    def open(self, cleanup: contextlib.ExitStack, progress: bool) -> None:
        """Open the loggers and the progress bar (closed by ``cleanup``); the clock of images per second."""
        for logger in self.loggers:
            logger.open(self.out, to_dict(self.experiment), self.first)
            cleanup.callback(logger.close)
        self.bar = Bars(progress and self.rank == 0)
        self.task = self.bar.add("train", total=self.steps, completed=self.first)
        cleanup.callback(self.bar.stop)
        self.tic = time.perf_counter()

    def note(self, step: int, text: str) -> None:
        """A line of text for the log and every logger."""
        self.emit(text)
        for logger in self.loggers:
            logger.event(step, text)

    def step(self, step: int, batches: Any) -> _Stepped | None:
        """One optimiser step over ``accum_steps`` micro-batches, or None when the loss was not finite and
        the step skipped (``train.nonfinite=skip``)."""
        cfg = self.cfg
        lr = lr_at(
            step,
            peak=cfg.lr,
            total_steps=self.laid,
            warmup_steps=self.warmup_steps,
            start=cfg.start_lr,
            final=cfg.final_lr,
        )
        wd = weight_decay_at(step, total_steps=self.laid, start=cfg.weight_decay, end=cfg.final_weight_decay)
        for group, spec in zip(self.opt.param_groups, self.groups, strict=True):
            group["lr"] = lr * spec.lr_scale
            group["weight_decay"] = wd * spec.weight_decay_scale
        self._report_unreadable(step)
        parts: dict[str, float] = {}
        for _ in range(cfg.accum_steps):
            _, _, batch = next(batches)
            if not self.watch.begun:  # the run's first reading, before any update, drawing no randomness
                with (
                    torch.no_grad(),
                    torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []),
                ):
                    self.watch.begin(self.method.embeddings(batch))
            with torch.autocast(**self._amp):
                result = self.net(**batch, step=step)
            self.scaler.scale(result["loss"] / cfg.accum_steps).backward()
            for k, v in result.items():
                parts[k] = parts.get(k, 0.0) + _mean_over_ranks(v.detach(), self.world) / cfg.accum_steps
        loss = parts["loss"]
        if not math.isfinite(loss):
            if cfg.nonfinite == "stop":
                raise NonFiniteLossError(
                    f"the loss is {loss} at step {step}; last good checkpoint: {self.manager.latest() or 'none'}"
                )
            self.opt.zero_grad(set_to_none=True)
            self.skipped += 1
            return None
        self.scaler.unscale_(self.opt)  # fp16: the norm of the true gradients (a no-op otherwise)
        # the norm before clipping, logged (what a collapsing run is debugged with); an infinite bound clips
        # nothing (the gradients are multiplied by exactly 1)
        bound = cfg.clip_grad if cfg.clip_grad > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], bound)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        self.spread.before_target_update()
        logged = self.method.after_step(step, self.laid)
        self.history.append(loss)
        self.seen += cfg.batch_size
        record = {**parts, "lr": lr, "weight_decay": wd, "grad_norm": _scalar(grad_norm)}
        record.update(self.method.batch_stats(batch))
        if isinstance(self.data, Reporting):
            record["unreadable_samples"] = self.data.unreadable
        return _Stepped(record | logged, parts, batch, lr)

    def observe(self, done: int, stepped: _Stepped) -> None:
        """After step ``done``: the collapse monitors, online probes, the log line, loggers and progress."""
        from ..eval.evaluate import online_probe

        cfg, record, batch = self.cfg, stepped.record, stepped.batch
        monitored = done % cfg.monitor_every == 0 or done == self.steps
        if monitored:
            with torch.no_grad():
                pooled = self.method.embeddings(batch)
            record.update(self.watch.read(pooled))
            warning = self.watch.warning(done, record, len(pooled))
            if warning is not None:
                self.note(done, warning)
        probed = bool(cfg.online_probe_every) and (done % cfg.online_probe_every == 0 or done == self.steps)
        if probed and self.rank == 0:  # the evaluated encoder is whole on rank 0 (DDP's replica)
            record.update(online_probe(self.method.eval_encoder(), self.data, cfg.online_probe_images, cfg.seed))
        logging = done % cfg.log_every == 0 or done == self.steps
        if logging:
            record["images_per_s"] = self.seen / (time.perf_counter() - self.tic)
            self.tic, self.seen = time.perf_counter(), 0
            self.emit(" ".join(f"{k}={v:.4g}" for k, v in {"step": done, **record}.items()))
        if logging or monitored or probed:
            self.records.append({"step": done, **record})
            for logger in self.loggers:
                logger.log(done, record)
        shown = " ".join(f"{k} {v:.4f}" for k, v in stepped.losses.items() if not k.startswith("metric/"))
        self.bar.update(self.task, completed=done, description=f"{shown} lr {stepped.lr:.2e}")

    def checkpoint(self, step: int) -> None:
        """Save the run's whole state at ``step`` (rank 0 writes; every rank joins FSDP's gathering)."""
        model_state, opt_state = self.spread.state(self.opt)  # collective under FSDP: every rank calls it
        if self.rank != 0:
            return
        self.manager.save(
            {
                "version": CHECKPOINT_VERSION,
                "model": model_state,
                "optimizer": opt_state,
                "scaler": self.scaler.state_dict(),
                "step": step,
                "config": to_dict(self.experiment),
                "method_state": self.method.extra_state(),
                "imports": list(self.imports),
                "rng": {"torch": torch.get_rng_state()},
                "monitors": {"centred_rank_start": self.watch.start},
                # the pipeline is a pure function of (seed, step): this is its whole state
                "data": {"seed": self.cfg.seed, "step": step, "samples": len(self.data)},
            },
            step,
        )

    def plot(self) -> None:
        """curves.png from the whole run's records (across resumes), on rank 0."""
        if self.rank != 0:
            return
        from ..viz import plot_curves

        if (self.out / "log.jsonl").is_file():
            self.records = [r for r in read_jsonl(self.out / "log.jsonl") if "event" not in r]
        if self.records:
            plot_curves(self.records, self.out / "curves.png")

    @functools.cached_property
    def _amp(self) -> dict[str, Any]:
        """torch.autocast's arguments for the run's precision (computed once)."""
        return dict(
            device_type=self.device.type,
            dtype=torch.bfloat16 if self.cfg.precision == "bf16" else torch.float16,
            enabled=self.cfg.precision != "fp32",
        )

    def _report_unreadable(self, step: int) -> None:
        """At an epoch's first step, a note on the samples the epoch that ended could not read."""
        epoch = step // self.order.steps_per_epoch
        if epoch == self.unreadable_at_epoch[0]:
            return
        unreadable = _unreadable(self.data)
        count = unreadable - self.unreadable_at_epoch[1]
        if self.unreadable_at_epoch[0] >= 0 and count:
            self.note(step, f"epoch {self.unreadable_at_epoch[0]}: {count} unreadable samples skipped")
        self.unreadable_at_epoch = (epoch, unreadable)


def _unreadable(data: Any) -> int:
    return data.unreadable if isinstance(data, Reporting) else 0


def _build(
    cfg: TrainConfig,
    experiment: Any,
    out: Path,
    device: torch.device,
    rank: int,
    world: int,
    state: dict[str, Any] | None,
    emit: Callable[[str], None],
) -> tuple[Any, Any]:
    """(method, data): the memory check, the seeded build, ``init_from``'s weights, ``prepare``."""
    per_rank = max(1, cfg.batch_size // cfg.accum_steps // world)
    size = experiment.method.size(per_rank)
    for part in size.activations:
        size.drivers.setdefault(part, []).append(f"train.batch_size={cfg.batch_size}")
    check_fits(size, device, training=True, mode=cfg.memory_check)
    if rank == 0:  # fail now, not at the first checkpoint: weights, AdamW's two moments, fixed parts
        check_run_folder(out, int(FLOAT * (3 * sum(size.params.values()) + sum(size.fixed.values()))))
    torch.manual_seed(cfg.seed)
    method = experiment.method.build()  # checked above, with training's memory (Experiment.build checks a forward's)
    if cfg.init_from is not None and state is None:  # a resumed run's own weights come with its state
        emit(init_weights(method, cfg.init_from, cfg.init_prefixes))
    method = method.to(device)
    data = experiment.data.build()
    if cfg.online_probe_every and sum(cfg.online_probe_images) > len(data):
        raise ConfigError(
            f"train.online_probe_images={list(cfg.online_probe_images)} need {sum(cfg.online_probe_images)} "
            f"images; data {experiment.data.name!r} has {len(data)}"
        )
    method.prepare(data, state["method_state"] if state is not None else None)
    if not size.activations_known and cfg.memory_check != "off":  # a user method without size()
        size.activations["activations (measured)"] = _measured_activations(method, data, per_rank, cfg.seed)
        size.drivers["activations (measured)"] = [f"train.batch_size={cfg.batch_size}"]
        check_fits(size, device, training=True, mode=cfg.memory_check)
    return method, data


register_alias("trainer", "jepa", "default")


class _Parallel:
    """How the model is spread over the ranks: one process, DDP, or FSDP2 shards."""

    def __init__(self, method: Any, device: torch.device, world: int, fsdp: bool) -> None:
        if world > 1 and device.type == "cuda":  # BatchNorm over the global batch (torch has none on CPU)
            method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
        self.model = method
        self.sharded: list[Any] = []
        if world > 1 and fsdp:
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            units = method.shard_units()
            if not units:
                raise ConfigError(
                    f"train.fsdp=true, but method {method.config.name!r} names no shard units; "
                    "use DDP (train.fsdp=false)"
                )
            mesh = init_device_mesh(device.type, (world,))
            for unit in units:
                fully_shard(unit, mesh=mesh)
                self.sharded.append(unit)
            self.net = method
        elif world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(method)
        else:
            self.net = method

    def before_target_update(self) -> None:
        """FSDP2 keeps root modules gathered after a forward: shard them again, so ``after_step`` is shard-local."""
        for module in self.sharded:
            module.reshard()

    def state(self, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
        """Full (unsharded, CPU) model and optimiser state dicts."""
        if not self.sharded:
            return self.model.state_dict(), opt.state_dict()
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(self.model, options=options), get_optimizer_state_dict(
            self.model, opt, options=options
        )

    def load(self, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Restore the model and optimiser from a checkpoint written by ``state``."""
        if not self.sharded:
            self.model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            return
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True)
        set_model_state_dict(self.model, state["model"], options=options)
        set_optimizer_state_dict(self.model, opt, state["optimizer"], options=options)


def _measured_activations(method: Any, data: Any, batch: int, seed: int, probe: int = 2) -> float:
    """Values one training step of ``batch`` samples keeps for backward, measured on a dry step of ``probe``
    samples (every tensor autograd saves, counted) and scaled: the memory estimate of a method that gives no
    ``size()``. The dry step runs on a copy, under a forked RNG: the run itself is untouched."""
    import copy

    from ..methods.base import Draw

    samples = [s for s in (data[i] for i in range(min(len(data), 8 * probe))) if s is not None][:probe]
    n = len(samples)
    if n == 0:
        return 0.0
    saved = 0

    def count(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel()
        return t

    draw = Draw(seed=seed, epoch=0, step=0, micro=0, indices=torch.arange(n), rows=torch.arange(n), size=n)
    with torch.random.fork_rng(devices=[]):
        dry = copy.deepcopy(method)
        with torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
            out = dry(**dry.make_batch(samples, draw), step=0)
        out["loss"].backward()
    return saved / n * batch


def _scalar(value: torch.Tensor) -> float:
    """A logged scalar of a tensor that may be a sharded DTensor (FSDP2's gradient norm)."""
    full = getattr(value, "full_tensor", None)  # DTensor's: the value every rank agrees on
    return float(full() if full is not None else value)


def _distributed() -> tuple[int, int]:
    """(rank, world size) of an initialised process group (torchrun), else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _mean_over_ranks(value: torch.Tensor, world: int) -> float:
    """A logged scalar averaged over the ranks (what a single process would have seen)."""
    if world > 1:
        import torch.distributed as dist

        value = value.float().clone()
        dist.all_reduce(value)
        value /= world
    return float(value)


def _check_same_config(saved: dict[str, Any], current: Config, path: Path) -> None:
    """Resuming with a different config would not continue the same run: name what differs.

    The saved config is read as this version reads it (older layouts upgraded, new fields
    at their defaults), so a run in progress resumes across a jepakit update.
    """
    from ..config import from_dict

    differ = config_diff(from_dict(saved), current)
    if differ:
        raise ConfigError(f"--resume: the config differs from the one in {str(path)!r} in: {', '.join(differ)}")
