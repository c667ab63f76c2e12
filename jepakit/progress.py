"""Progress bars (rich) for training and evaluation, or nothing when they are off."""

from __future__ import annotations

from typing import Any

__all__ = ["Bars"]


class Bars:
    """Rich progress bars (description, bar, done/total, elapsed, remaining) while ``enabled``;
    every method is a no-op otherwise, so callers need no branches. Printing while bars run
    goes above them; ``stop()`` (or leaving the ``with`` block) removes them."""

    def __init__(self, enabled: bool) -> None:
        self._progress: Any = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._progress.start()

    def add(self, description: str, total: int, completed: int = 0) -> int:
        """A new bar; its id for the other methods."""
        return self._progress.add_task(description, total=total, completed=completed) if self._progress else 0

    def advance(self, bar: int, steps: int = 1) -> None:
        if self._progress:
            self._progress.advance(bar, steps)

    def update(self, bar: int, *, completed: int | None = None, description: str | None = None) -> None:
        if self._progress:
            self._progress.update(bar, completed=completed, description=description)

    def stop(self) -> None:
        if self._progress:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
