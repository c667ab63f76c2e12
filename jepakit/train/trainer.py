"""The training engine: one loop for I-JEPA, TC-JEPA and their variants.

Everything that changes over a run is a pure function of the optimiser step: the
learning rate, the weight decay, the EMA momentum, the batch (a per-epoch permutation
seeded by (seed, epoch)), each sample's augmentation (seeded by (seed, epoch, index))
and the masks (seeded by (seed, step)). A checkpoint therefore needs only the
weights, the optimiser state and the step to resume exactly: N straight steps and
k + (N - k) resumed steps give bitwise-identical weights on the CPU.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ..config import Config, ConfigError, knob, to_dict
from ..data.pipeline import micro_batches
from ..registry import register
from .checkpoint import CheckpointManager, load_checkpoint
from .optim import adamw
from .schedules import lr_at, weight_decay_at

__all__ = ["TrainConfig", "Trainer", "NonFiniteLossError", "train"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig(Config):
    steps: int = knob(1000, "optimiser steps")
    batch_size: int = knob(64, "images per optimiser step")
    accum_steps: int = knob(1, "micro-batches per step (gradient accumulation); batch_size must divide")
    lr: float = knob(1e-3, "peak learning rate (I-JEPA: 1e-3 at batch 2048)")
    start_lr: float = knob(2e-4, "learning rate at step 0, before warm-up (I-JEPA: 2e-4)")
    final_lr: float = knob(1e-6, "learning rate at the last step (I-JEPA: 1e-6)")
    warmup_steps: int = knob(100, "linear warm-up steps")
    weight_decay: float = knob(0.04, "weight decay at step 0 (I-JEPA: 0.04)")
    final_weight_decay: float = knob(0.4, "weight decay at the last step (I-JEPA: 0.4)")
    clip_grad: float = knob(0.0, "clip the gradient norm to this (0: off)")
    precision: Literal["fp32", "bf16", "fp16"] = knob("fp32", "autocast precision (bf16/fp16 on a GPU)")
    device: str = knob("auto", "cpu, cuda, cuda:1, ...; auto: cuda when available")
    seed: int = knob(0, "seed of the data order, augmentation, masks and initialisation")
    crop_scale: tuple[float, float] = knob((0.3, 1.0), "RandomResizedCrop area range (I-JEPA: (0.3, 1.0))")
    log_every: int = knob(10, "steps between progress lines and JSONL records")
    monitor_every: int = knob(50, "steps between collapse-monitor readings")
    checkpoint_every: int = knob(200, "steps between checkpoints (and one at the end)")
    keep_checkpoints: int = knob(3, "newest checkpoints kept")
    nonfinite: Literal["stop", "skip"] = knob("stop", "on a NaN/inf loss: stop naming the step, or skip the step")
    tokenizer_samples: int = knob(2000, "captions of this many samples train a tokenizer that has no model")
    fsdp: bool = knob(False, "under torchrun: shard encoder, target, predictor and trainable text parts (FSDP2)")
    compile: bool = knob(False, "run the model's forward through torch.compile")
    compile_backend: str = knob("inductor", "torch.compile backend (inductor; eager for a quick check)")
    num_workers: int = knob(2, "threads decoding, augmenting and tokenising ahead of the step (0: in line)")
    prefetch: int = knob(2, "micro-batches prepared ahead (0: none)")

    def __post_init__(self) -> None:
        self.require_positive("steps", "batch_size", "accum_steps", "lr", "log_every", "monitor_every",
                              "checkpoint_every", "keep_checkpoints", "tokenizer_samples")
        if self.batch_size % self.accum_steps:
            raise ConfigError(f"{self.type_id()}.batch_size={self.batch_size} is not divisible by "
                              f"accum_steps={self.accum_steps}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ConfigError(f"{self.type_id()}.warmup_steps={self.warmup_steps} must lie in [0, steps={self.steps}]")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"{self.type_id()}.crop_scale={self.crop_scale}: need 0 < min <= max <= 1")


def _seed(*parts: int) -> int:
    """A generator seed mixed from integers (seed, epoch, index, ...)."""
    value = 0
    for p in parts:
        value = (value * 1_000_003 + int(p)) % (2**63)
    return value


def random_resized_crop(image: torch.Tensor, scale: tuple[float, float], g: torch.Generator) -> torch.Tensor:
    """RandomResizedCrop (area ``scale``, aspect 3/4..4/3) back to the input size, drawn from ``g``."""
    _, h, w = image.shape
    area = h * w
    for _ in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=g)))
        ratio = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * float(torch.rand((), generator=g)))
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (), generator=g))
            left = int(torch.randint(0, w - cw + 1, (), generator=g))
            break
    else:  # the centre crop, as torchvision does
        ch, cw, top, left = h, w, 0, 0
    crop = image[None, :, top : top + ch, left : left + cw]
    return torch.nn.functional.interpolate(crop, size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0]


@register("trainer", "jepa", TrainConfig)
class Trainer:
    """Trains the model of an experiment config (``JEPAConfig``) on its data set."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.config = cfg
        self._perm: tuple[int, torch.Tensor] | None = None

    # ----------------------------------------------------------------- data

    def steps_per_epoch(self, n: int) -> int:
        """Optimiser steps in one pass over ``n`` samples (the last partial batch is dropped)."""
        per_epoch = n // self.config.batch_size
        if per_epoch < 1:
            raise ConfigError(f"the data set has {n} samples, fewer than train.batch_size={self.config.batch_size}")
        return per_epoch

    def batch_indices(self, step: int, n: int) -> tuple[int, torch.Tensor]:
        """(epoch, sample indices) of optimiser step ``step``: a seeded permutation per epoch, last partial batch dropped."""
        b = self.config.batch_size
        epoch, pos = divmod(step, self.steps_per_epoch(n))
        cached = self._perm  # one read: the pipeline's thread and the loop may both call this
        if cached is None or cached[0] != epoch:
            g = torch.Generator().manual_seed(_seed(self.config.seed, epoch))
            cached = self._perm = (epoch, torch.randperm(n, generator=g))
        return epoch, cached[1][pos * b : (pos + 1) * b]

    def load_batch(
        self, data: Any, epoch: int, indices: torch.Tensor
    ) -> tuple[torch.Tensor, list[list[str]], torch.Tensor]:
        """Augmented images, captions, and the positions in ``indices`` that could be read.

        Each sample's random draws come from (seed, epoch, index); samples a data set
        could not read (``None``) are left out.
        """
        images, captions, kept = [], [], []
        for pos, i in enumerate(indices.tolist()):
            sample = data[i]
            if sample is None:
                continue
            g = torch.Generator().manual_seed(_seed(self.config.seed, epoch, i))
            images.append(random_resized_crop(sample["image"], self.config.crop_scale, g))
            captions.append(sample.get("captions", []))
            kept.append(pos)
        if not images:
            raise ValueError(f"no sample of the batch could be read (indices {indices.tolist()[:8]}...)")
        return torch.stack(images), captions, torch.tensor(kept, dtype=torch.long)

    def mask_generator(self, step: int, micro: int) -> torch.Generator:
        """The generator of the masks of micro-batch ``micro`` of step ``step``."""
        return torch.Generator().manual_seed(_seed(self.config.seed, step, micro, 7))

    # ----------------------------------------------------------------- loop

    def fit(
        self,
        experiment: Config,
        out_dir: str | Path,
        resume: bool = False,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        until: int | None = None,
    ) -> dict[str, Any]:
        """Train ``experiment`` (a recipe's config); write config, log and checkpoints under ``out_dir``.

        ``until`` stops after that many steps (with a checkpoint) without changing any
        schedule: a later ``resume=True`` continues exactly.
        """
        from ..eval.monitors import effective_rank, embedding_std

        cfg = self.config
        out = Path(out_dir)
        manager = CheckpointManager(out / "checkpoints", keep=cfg.keep_checkpoints)
        state = None
        if resume:
            latest = manager.latest()
            if latest is None:
                raise FileNotFoundError(f"--resume: no checkpoint under {str(out / 'checkpoints')!r}")
            state = load_checkpoint(latest)
            _check_same_config(state["config"], to_dict(experiment), latest)
        device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                              "cpu" if cfg.device == "auto" else cfg.device)
        torch.manual_seed(cfg.seed)
        model = experiment.build().to(device)
        data = experiment.data.build()
        if model.tokenizer is not None and getattr(model.tokenizer, "ready", True) is False:
            if state is not None and state.get("tokenizer") is not None:
                model.tokenizer.load_bytes(state["tokenizer"])
            else:
                count = min(cfg.tokenizer_samples, len(data))
                model.tokenizer.fit(c for i in range(count) for c in data.captions(i))
        rank, world = _distributed()
        spread = _Parallel(model, device, world, cfg.fsdp)
        opt = adamw(model.param_groups(cfg.weight_decay), cfg.start_lr)  # sharded (DTensor) parameters: not fused
        scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
        start = 0
        if state is not None:
            spread.load(opt, state)
            scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["rng"]["torch"])  # drop-path and dropout continue their streams
            start = int(state["step"])
        out.mkdir(parents=True, exist_ok=True)
        if rank == 0:  # one writer: rank 0 writes the config, the log and the checkpoints
            (out / "config.json").write_text(json.dumps(to_dict(experiment), indent=2))
        log_file = (out / "log.jsonl").open("a") if rank == 0 else open(os.devnull, "w")
        emit = (log or (lambda line: None)) if rank == 0 else (lambda line: None)
        if getattr(data, "report", ""):
            emit(f"data: {data.report}")
        unreadable_at_epoch = (-1, getattr(data, "unreadable", 0))

        def checkpoint(step: int) -> None:
            model_state, opt_state = spread.state(opt)  # collective under FSDP: every rank calls it
            if rank != 0:
                return
            manager.save(
                {
                    "model": model_state,
                    "optimizer": opt_state,
                    "scaler": scaler.state_dict(),
                    "step": step,
                    "config": to_dict(experiment),
                    "tokenizer": model.tokenizer.to_bytes() if hasattr(model.tokenizer, "to_bytes") else None,
                    "rng": {"torch": torch.get_rng_state()},
                    # the pipeline is a pure function of (seed, step): this is its whole state
                    "data": {"seed": cfg.seed, "step": step, "samples": len(data)},
                },
                step,
            )

        bar = _progress(progress and rank == 0)
        task = bar.add_task("train", total=cfg.steps, completed=start) if bar else None
        history: list[float] = []
        skipped = 0
        amp = dict(device_type=device.type, dtype=torch.bfloat16 if cfg.precision == "bf16" else torch.float16,
                   enabled=cfg.precision != "fp32")
        tic, seen = time.perf_counter(), 0
        net = spread.net
        if cfg.compile:
            net = torch.compile(net, backend=cfg.compile_backend)
        model.train()
        stop = cfg.steps if until is None else min(until, cfg.steps)
        text_tokenizer = model.tokenizer if model.conditioner.uses_text else None
        batches = micro_batches(self, data, model.masker, text_tokenizer, start, stop, rank, world)
        try:
            for step in range(start, stop):
                lr = lr_at(step, peak=cfg.lr, total_steps=cfg.steps, warmup_steps=cfg.warmup_steps,
                           start=cfg.start_lr, final=cfg.final_lr)
                wd = weight_decay_at(step, total_steps=cfg.steps, start=cfg.weight_decay, end=cfg.final_weight_decay)
                for group in opt.param_groups:
                    group["lr"] = lr
                opt.param_groups[0]["weight_decay"] = wd  # the decayed group; biases and norms stay at 0
                epoch = step // self.steps_per_epoch(len(data))
                if epoch != unreadable_at_epoch[0]:  # report the unreadable samples of the epoch that ended
                    count = getattr(data, "unreadable", 0) - unreadable_at_epoch[1]
                    if unreadable_at_epoch[0] >= 0 and count:
                        emit(f"epoch {unreadable_at_epoch[0]}: {count} unreadable samples skipped")
                    unreadable_at_epoch = (epoch, getattr(data, "unreadable", 0))
                parts: dict[str, float] = {}
                for _ in range(cfg.accum_steps):
                    item = next(batches)
                    images = item["images"]
                    text = item["text"] if model.conditioner.uses_text else None
                    with torch.autocast(**amp):
                        result = net(images.to(device), item["masks"], text, step=step)
                    scaler.scale(result["loss"] / cfg.accum_steps).backward()
                    for k, v in result.items():
                        parts[k] = parts.get(k, 0.0) + _mean_over_ranks(v.detach(), world) / cfg.accum_steps
                loss = parts["loss"]
                if not math.isfinite(loss):
                    if cfg.nonfinite == "stop":
                        raise NonFiniteLossError(
                            f"the loss is {loss} at step {step}; last good checkpoint: {manager.latest() or 'none'}"
                        )
                    opt.zero_grad(set_to_none=True)
                    skipped += 1
                    continue
                if cfg.clip_grad > 0:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.clip_grad)
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
                spread.before_target_update()
                model.update_target(step)
                history.append(loss)
                seen += cfg.batch_size
                done = step + 1
                record = {"step": done, **parts, "lr": lr, "weight_decay": wd}
                if hasattr(data, "unreadable"):
                    record["unreadable_samples"] = data.unreadable
                if hasattr(model.target_updater, "momentum"):
                    record["ema_momentum"] = model.target_updater.momentum(step)
                if done % cfg.monitor_every == 0 or done == cfg.steps:
                    with torch.no_grad():
                        target = model.target_encoder if model.target_encoder is not None else model.encoder
                        pooled = target(images.to(device)).mean(1)
                    record.update(embedding_std=embedding_std(pooled), effective_rank=effective_rank(pooled))
                if done % cfg.log_every == 0 or done == cfg.steps:
                    elapsed = time.perf_counter() - tic
                    record["images_per_s"] = seen / elapsed
                    tic, seen = time.perf_counter(), 0
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                    emit(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
                if bar is not None:
                    shown = " ".join(f"{k} {v:.4f}" for k, v in parts.items() if not k.startswith("metric/"))
                    bar.update(task, completed=done, description=f"{shown} lr {lr:.2e}")
                if done % cfg.checkpoint_every == 0 or done in (cfg.steps, stop):
                    checkpoint(done)
        finally:
            log_file.close()
            if bar is not None:
                bar.stop()
        if rank == 0:
            from ..viz import plot_curves

            records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line]
            if records:
                plot_curves(records, out / "curves.png")
        return {
            "steps": cfg.steps,
            "losses": history,
            "skipped": skipped,
            "checkpoint": manager.latest(),
            "rank": rank,
            "log": out / "log.jsonl",
            "model": model,
        }


class _Parallel:
    """How the model is spread over the ranks: one process, DDP, or FSDP2 shards."""

    def __init__(self, model: Any, device: torch.device, world: int, fsdp: bool) -> None:
        self.model = model
        self.sharded: list[Any] = []
        if world > 1 and fsdp:
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            mesh = init_device_mesh(device.type, (world,))
            text = model.text_encoder if model.text_encoder is not None and model.text_encoder.trainable else None
            for module in (model.encoder, model.target_encoder, model.predictor, model.conditioner, text):
                if module is None or not any(True for _ in module.parameters()):
                    continue
                for block in getattr(module, "blocks", []):
                    fully_shard(block, mesh=mesh)
                fully_shard(module, mesh=mesh)
                self.sharded.append(module)
            self.net = model
        elif world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(model)
        else:
            self.net = model

    def before_target_update(self) -> None:
        """FSDP2 keeps root modules gathered after a forward: shard them again, so the EMA is shard-local."""
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


def _progress(enabled: bool):
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    bar.start()
    return bar


def _check_same_config(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Resuming with a different config would not continue the same run: name what differs."""
    if saved != current:
        diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        raise ConfigError(f"--resume: the config differs from the one in {str(path)!r} in: {', '.join(diff)}")


def train(experiment: Any, out_dir: str | Path, resume: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Train ``experiment`` with the trainer its ``train`` field describes."""
    return experiment.train.build().fit(experiment, out_dir, resume=resume, **kwargs)
