"""Stopping a run cleanly when the cluster preempts it or a user presses Ctrl-C.

While a run trains, the first SIGTERM or SIGINT only asks it to stop: the step in hand
finishes, a checkpoint is written (atomically), the log says why, and the command exits
with :data:`EXIT_STOPPED`; ``--resume`` then continues bit for bit. A second signal exits
at once (``128 + signal``); the last complete checkpoint is untouched, since checkpoints
are only ever renamed into place whole. Under torchrun every rank stops at the same step:
the request is all-reduced once per step.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, TracebackType

import torch

__all__ = ["EXIT_STOPPED", "StopSignals"]

#: The command's exit status after a requested stop (sysexits' EX_TEMPFAIL: try again, with --resume).
EXIT_STOPPED = 75

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """A context manager that turns SIGTERM/SIGINT into a stop request (see the module docstring)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is not None:  # the second signal: go now
            os._exit(128 + signum)
        self.reason = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def requested(self, world: int, device: torch.device) -> bool:
        """Whether any rank was asked to stop (a collective under torchrun: every rank calls it each step)."""
        asked = self.reason is not None
        if world > 1:
            import torch.distributed as dist

            flag = torch.tensor([1.0 if asked else 0.0], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if flag.item() > 0 and self.reason is None:
                self.reason = "another rank's stop request"
            asked = bool(flag.item() > 0)
        return asked
