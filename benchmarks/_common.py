"""Shared benchmark plumbing: machine header, alternating timing, markdown tables in RESULTS.md."""

from __future__ import annotations

import datetime
import functools
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from jepakit.train import adamw, torch_groups

RESULTS = Path(__file__).with_name("RESULTS.md")

#: lightly's ``IJEPAMaskCollator`` with I-JEPA's settings (besides the image and patch size).
LIGHTLY_IJEPA_MASKS: dict[str, Any] = dict(
    enc_mask_scale=(0.85, 1.0), pred_mask_scale=(0.15, 0.2), aspect_ratio=(0.75, 1.5), nenc=1, npred=4, min_keep=10
)


def machine() -> str:
    """One line: date, CPU, cores, torch version and thread count."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{datetime.date.today()} · {cpu} · {os.cpu_count()} cores · torch {torch.__version__} · "
        f"{torch.get_num_threads()} threads"
    )


def alternate(fns: Mapping[str, Callable[[], object]], rounds: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in alternating rounds (noise hits all alike)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(repeats):
                fn()
            times[name].append((time.perf_counter() - t0) / repeats)
    return times


@dataclass
class Step:
    """One training step on fixed inputs (call it); what it holds stays reachable for FLOP counting."""

    run: Callable[[], None]
    model: Any = None
    inputs: tuple[Any, ...] = ()
    opt: Any = None
    masks: Any = None
    #: The loss of the step's inputs at the current weights (no update): for checking that two
    #: implementations timed side by side compute the same thing.
    loss: Callable[[], torch.Tensor] | None = None

    def __call__(self) -> None:
        self.run()


def train_step(
    model: Any,
    images: torch.Tensor,
    masks: object,
    text: object = None,
    compile: bool = False,
    autocast: torch.dtype | None = None,
    fused: bool | None = None,
) -> Step:
    """One training step (forward, backward, the trainer's AdamW, target update) on fixed inputs."""
    inputs = {"images": images, "masks": masks, "text": text}
    step, opt = engine_step(model, inputs, compile=compile, autocast=autocast, fused=fused)
    return Step(
        step,
        model=model,
        inputs=(images, masks, text),
        opt=opt,
        loss=lambda: model(images, masks, text)["loss"],
    )


def engine_step(
    model: Any,
    inputs: Mapping[str, Any],
    compile: bool = False,
    autocast: torch.dtype | None = None,
    fused: bool | None = None,
) -> tuple[Callable[[], None], Any]:
    """A method's training step as the engine runs it on a fixed batch (``model(**inputs, step=...)``,
    backward, the trainer's AdamW, ``after_step``), and its optimiser."""
    opt = adamw(torch_groups(model.param_groups(), 0.04), 1e-4, fused=fused)
    net = torch.compile(model) if compile else model
    device = next(model.parameters()).device.type
    state = {"step": 0}

    def step() -> None:
        with torch.autocast(device, dtype=autocast or torch.float32, enabled=autocast is not None):
            out = net(**inputs, step=state["step"])
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        model.after_step(state["step"], 1000)
        state["step"] += 1

    return step, opt


def sync(device: str | torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so timings cover it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def matmul_flops_per_s(
    n: int = 1024, dtype: torch.dtype = torch.float32, device: str = "cpu", repeats: int = 10
) -> float:
    """The best rate of ``repeats`` n^3 matmuls over 3 rounds: the roofline MFU is measured against."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = 0.0
    for _ in range(3):
        a @ b
        sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            a @ b
        sync(device)
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - t0))
    return best


def step_flops(step: Step, autocast: torch.dtype | None = None) -> int:
    """FLOPs of one forward + backward of a ``train_step``'s model (the optimiser and the EMA
    are not matmuls), counted by ``torch.utils.flop_counter``."""
    images, masks, text = step.inputs

    def forward_backward() -> None:
        with torch.autocast(images.device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
            step.model(images, masks, text)["loss"].backward()

    flops = closure_flops(forward_backward)
    step.model.zero_grad(set_to_none=True)
    return flops


def closure_flops(step: Callable[[], object]) -> int:
    """FLOPs of one whole call of ``step`` (any implementation), by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


@functools.cache
def _mallinfo2() -> Callable[[], Any]:
    """glibc's ``mallinfo2``, bound once (it is sampled after every operation)."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            )
        ]

    fn = ctypes.CDLL("libc.so.6").mallinfo2
    fn.restype = MallInfo2
    return fn


def _malloc_live_bytes() -> int:
    """Bytes glibc's malloc has handed out and not yet had back (all arenas + mmapped)."""
    info = _mallinfo2()()
    return info.uordblks + info.hblkhd


def step_peak_mb(step: Callable[[], object]) -> dict[str, float]:
    """Peak memory of one (warm) call of ``step``, in MB (Linux, glibc), two ways:

    ``rss``: the resident set's peak above its level before the call (what the OS sees;
    it depends on how much freed memory the allocator kept from earlier steps);
    ``allocated``: the peak of live heap bytes above the level before the call, sampled
    after every tensor operation (what the step's tensors need, independent of the allocator).
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    class Peak(TorchDispatchMode):
        peak = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            Peak.peak = max(Peak.peak, _malloc_live_bytes())
            return out

    step()
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
        f.write("5")
    rest = _status_kb("VmRSS:")
    step()
    rss = (_status_kb("VmHWM:") - rest) / 1024
    gc.collect()
    live = _malloc_live_bytes()
    with Peak():
        step()
    return {"rss": rss, "allocated": (Peak.peak - live) / 2**20}


def peak_memory_mb(module: str, args: list) -> dict[str, float]:
    """``step_peak_mb`` of ``module.make_step(*args)`` in a fresh child process (nothing else
    shares its heap)."""
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import importlib; from _common import step_peak_mb; "
        "b = importlib.import_module(sys.argv[2]); "
        "print(json.dumps(step_peak_mb(b.make_step(*json.loads(sys.argv[3])))))"
    )
    here = str(Path(__file__).resolve().parent)
    out = subprocess.run(
        [sys.executable, "-c", code, here, module, json.dumps(args)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def per_round_ratio(base: Sequence[float], other: Sequence[float]) -> float:
    """Median over rounds of base time / other time (a speed-up; steadier than a ratio of medians
    on a machine whose speed drifts, since both runs of a round see the same drift)."""
    return statistics.median(b / o for b, o in zip(base, other, strict=True))


def mean_std(xs: Sequence[float], single: str = "") -> str:
    """A table cell: "-" for no value, one value (followed by ``single``), or mean ± sample spread."""
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.3f}{single}"
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}"


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a benchmark's log (``*_results.jsonl``, ``*_screens.jsonl``), in order; none if absent."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def record(title: str, body: str) -> None:
    """Print a result and put it into RESULTS.md under ``## title`` with the machine line: it
    replaces the section of that title (the current table; history lives in git) or is appended."""
    section = f"## {title}\n\n{machine()}\n\n{body}\n"
    print(section)
    text = RESULTS.read_text() if RESULTS.is_file() else ""
    start = text.find(f"\n## {title}\n")
    if start < 0:
        RESULTS.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = text.find("\n## ", start + 1)
    RESULTS.write_text(text[: start + 1] + section + (text[end:] if end >= 0 else ""))


def section_lines(title: str) -> list[str]:
    """The lines of RESULTS.md's section ``title``, its heading first; [] when there is none."""
    text = RESULTS.read_text() if RESULTS.is_file() else ""
    start = text.find(f"\n## {title}\n")
    if start < 0:
        return []
    end = text.find("\n## ", start + 1)
    return text[start + 1 : end if end >= 0 else len(text)].rstrip("\n").splitlines()


def section_notes(title: str) -> str:
    """The text of RESULTS.md's section ``title`` after its last table row (its status and reading,
    written by hand), so that re-recording the tables keeps it; "" when there is none."""
    lines = section_lines(title)
    if not lines:
        return ""
    last = max((i for i, line in enumerate(lines) if line.startswith("|")), default=len(lines) - 1)
    return "\n".join(lines[last + 1 :]).strip("\n")


def publish(title: str, text: str, to_results: bool) -> None:
    """Record ``text`` in RESULTS.md under ``title`` (which also prints it), or only print it."""
    if to_results:
        record(title, text)
    else:
        print(text)
