"""Input pipeline throughput against training throughput, CPU.

Images per second delivered by the torchdata.nodes pipeline (embedded scenes:
generation, RandomResizedCrop, mask drawing; TC-JEPA also tokenises) with 0, 1 and 2
worker threads, at 64 px and 224 px, next to the images per second of a full I-JEPA
ViT-Tiny training step at the same size. The loader must never be the bottleneck.

Run: ``python benchmarks/bench_data.py [--batches 20]``; replaces its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time

import torch

from jepakit import get_config
from jepakit.train import adamw, torch_groups

from _common import record, table


def experiment(size: int, recipe: str):
    patch = 8 if size == 64 else 16
    return get_config(recipe, image_size=size, encoder={"patch_size": patch}, train={"batch_size": 32})


def pipeline_rate(size: int, workers: int, batches: int, recipe: str) -> float:
    from jepakit.train.pipeline import EpochOrder, micro_batches

    cfg = experiment(size, recipe)
    model = cfg.build()
    data = cfg.data.build()
    model.prepare(data)
    order = EpochOrder(len(data), cfg.train.batch_size, cfg.train.seed)
    it = micro_batches(
        model.make_batch,
        data,
        order,
        seed=cfg.train.seed,
        accum_steps=1,
        start=0,
        stop=batches + 2,
        num_workers=workers,
        prefetch=workers,
    )
    next(it)
    next(it)  # warm-up
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * 32 / (time.perf_counter() - t0)


def train_rate(size: int, steps: int) -> float:
    cfg = experiment(size, "ijepa-tiny")
    model = cfg.build()
    opt = adamw(torch_groups(model.param_groups(), 0.04), 1e-4)
    x = torch.randn(32, 3, size, size)
    masks = model.masker(32, torch.Generator().manual_seed(0))

    def step() -> None:
        out = model(x, masks)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        model.after_step(0, steps)

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * 32 / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for size in (64, 224):
        training = train_rate(size, args.train_steps)
        for recipe in ("ijepa-tiny", "tc-jepa-tiny"):
            for workers in (0, 1, 2):
                rate = pipeline_rate(size, workers, args.batches, recipe)
                rows.append(
                    (f"{size} px", recipe, workers, f"{rate:.0f}", f"{training:.0f}", f"{rate / training:.1f}x")
                )
    note = (
        f"Batch 32, embedded scenes; pipeline rate over {args.batches} batches after 2 warm-up; training rate: "
        f"I-JEPA ViT-Ti (patch 8 at 64 px, 16 at 224 px) full steps on random images, {args.train_steps} steps."
    )
    header = ("size", "pipeline of", "worker threads", "pipeline img/s", "ViT-Ti train img/s", "pipeline / train")
    record("Input pipeline vs training throughput", note + "\n\n" + table(header, rows))


if __name__ == "__main__":
    main()
