"""Video step cost: how V-JEPA's train step grows with frames and resolution, beside per-frame I-JEPA.

One train step (forward, backward, AdamW, EMA) of ``vjepa-cpu`` (ViT 192/6 with 2 x 8 x 8 tubelets,
predictor 192/3, multi-block 3-D masks) on a batch of clips, fp32 on the CPU, for 4, 8 and 16 frames
at 32 px and for 32, 64 and 96 px at 8 frames; beside it the per-frame baseline, ``ijepa-cpu`` at the
same size on the clips' frames as images (8 px patches, so a frame has the tokens of a tubelet's
worth of space). Times are the median over rounds of the steps alternating in one process; memory is
the peak of live heap bytes during a warm step.

Run: ``python benchmarks/bench_video.py [--rounds 5] [--batch 8] [--record]``.
"""

from __future__ import annotations

import argparse

import torch

from jepakit import build

from _common import alternate, machine, median, publish, step_peak_mb, table, train_step

TITLE = "Video step cost: V-JEPA by frames and resolution, beside per-frame I-JEPA"


def video_step(frames: int, size: int, batch: int):
    """vjepa-cpu's train step on ``batch`` clips of ``frames`` frames at ``size`` px."""
    torch.manual_seed(0)
    model = build("vjepa-cpu", num_frames=frames, image_size=size)
    clips = torch.rand(batch, 3, frames, size, size)
    return train_step(model, clips, model.masker(batch, torch.Generator().manual_seed(0)))


def frame_step(frames: int, size: int, batch: int):
    """ijepa-cpu's train step on the same clips' frames as images (``batch * frames`` of them)."""
    torch.manual_seed(0)
    model = build("ijepa-cpu", image_size=size, masker={"min_keep": 2})
    images = torch.rand(batch * frames, 3, size, size)
    return train_step(model, images, model.masker(batch * frames, torch.Generator().manual_seed(0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="clips per step")
    parser.add_argument("--record", action="store_true", help="write the table into RESULTS.md")
    args = parser.parse_args()
    rows = []
    for frames, size in ((4, 32), (8, 32), (16, 32), (8, 64), (8, 96)):
        steps = {
            "V-JEPA": video_step(frames, size, args.batch),
            "per-frame I-JEPA": frame_step(frames, size, args.batch),
        }
        times = alternate(steps, rounds=args.rounds, repeats=1)
        for name, step in steps.items():
            t = median(times[name])
            tokens = (frames // 2 if name == "V-JEPA" else frames) * (size // 8) ** 2
            peak = step_peak_mb(step)["allocated"]
            rows.append((name, frames, size, tokens, f"{t:.3f}", f"{1000 * t / args.batch:.0f}", f"{peak:.0f}"))
    header = ("method", "frames", "px", "tokens / clip", "s / step", "ms / clip", "peak allocated MB")
    note = (
        f"{machine()}. vjepa-cpu (ViT 192/6, 2 x 8 x 8 tubelets, predictor 192/3) and ijepa-cpu on the same frames, "
        f"{args.batch} clips a step, fp32, median of {args.rounds} alternating rounds. Command: "
        f"`python benchmarks/bench_video.py --rounds {args.rounds} --batch {args.batch} --record`."
    )
    publish(TITLE, note + "\n\n" + table(header, rows), args.record)


if __name__ == "__main__":
    main()
