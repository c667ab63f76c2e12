"""Running an experiment: claim its run folder, then train its stages in order.

An experiment is one stage, or (``teacher_run``: SALT's, V-JEPA's SALT) a first stage trained into
``OUT/teacher`` whose final checkpoint becomes the frozen teacher of the second. Staging is the
experiment's business, not the trainer's: ``Trainer.fit`` trains one stage and knows nothing of others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointManager, claim_run_folder
from ..config import ConfigError
from .trainer import _distributed, run_length

__all__ = ["train"]


def train(
    experiment: Any, out_dir: str | Path, resume: bool = False, overwrite: bool = False, **kwargs: Any
) -> dict[str, Any]:
    """Train ``experiment`` (an ``Experiment``) with the trainer its ``train`` field describes.

    A run never mixes with an older one: an ``out_dir`` that holds a run raises ``RunExistsError``
    unless ``resume`` (continue it) or ``overwrite`` (move it to ``OUT.replaced-N`` first, said in the log).
    With a ``teacher_run`` (SALT's two stages) that run is trained first into ``OUT/teacher`` and its
    final checkpoint becomes the frozen teacher of this one, whose ``config.json`` records the file.
    ``resume`` continues whichever stage was interrupted; ``until`` ends each stage trained at that
    step, and a stop signal the stage being trained (the result's ``stage``: ``"teacher"`` or ``"student"``)."""
    if resume and overwrite:
        raise ConfigError("--resume continues the run in the folder and --overwrite replaces it: give one")
    out = Path(out_dir)
    rank, world = _distributed()
    moved = claim_run_folder(out, resume=resume, overwrite=overwrite) if rank == 0 or not overwrite else None
    if world > 1:
        torch.distributed.barrier()  # no rank writes before every rank has seen the folder as it was
    if moved is not None and kwargs.get("log") is not None:
        kwargs["log"](f"--overwrite: the earlier run in {str(out)!r} was moved to {str(moved)!r}")
    return _stages(experiment, out, resume, **kwargs)


def _stages(experiment: Any, out: Path, resume: bool, **kwargs: Any) -> dict[str, Any]:
    """``train``'s work once the folder is claimed: the teacher's stage (if any), then the method's."""
    first = experiment.teacher_run
    if first is None:
        return experiment.train.build().fit(experiment, out, resume=resume, **kwargs)
    started = [CheckpointManager(d / "checkpoints").latest() is not None for d in (out / "teacher", out)]
    if resume and not any(started):
        raise FileNotFoundError(f"--resume: no checkpoint under {str(out / 'teacher' / 'checkpoints')!r}")
    done = _finished(first, out / "teacher")
    if not (resume and started[1] and done):  # the teacher's stage: train it, resume it, or confirm it finished
        result = _stages(first, out / "teacher", resume=resume and started[0], **kwargs)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # rank 0 wrote the teacher's last checkpoint: every rank reads it
        done = _finished(first, out / "teacher")
        if result["stopped"] or not done:
            return {**result, "stage": "teacher"}
    assert done is not None
    student = experiment.teacher_weights(str(done))
    return {**student.train.build().fit(student, out, resume=resume and started[1], **kwargs), "stage": "student"}


def _finished(experiment: Any, out: Path) -> Path | None:
    """The final checkpoint of ``experiment``'s run in ``out`` (its step is the run's length), or None."""
    found = CheckpointManager(out / "checkpoints").checkpoints()
    steps = run_length(experiment.train, len(experiment.data.build()))[0]
    return found[-1][1] if found and found[-1][0] >= steps else None
