"""Reading what training and export wrote: run folders, checkpoints, export folders.

``load_run(source)`` gives a checkpoint's experiment and state (any older layout
upgraded); ``load_method`` the whole method with its weights; ``load_eval_encoder`` the
encoder that probes read (the method's ``eval_encoder``: I-JEPA's target encoder) from a
checkpoint, a run folder or a ``jepakit export`` folder; ``load_encoder`` an export folder.
Nothing here trains or evaluates, so training, evaluation and export all read through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .checkpoint import (
    BadCheckpointError,
    checkpoint_encoder,
    export_config,
    is_export,
    load_checkpoint,
    load_encoder,
    resolve_checkpoint,
    upgrade_checkpoint,
)
from .config import from_dict
from .experiment import Experiment
from .imports import import_recorded

__all__ = ["checkpoint_encoder", "load_encoder", "load_eval_encoder", "load_method", "load_run", "weights_read"]


def load_run(source: str | Path) -> tuple[Experiment, dict[str, Any]]:
    """(the experiment, the checkpoint dict) of a checkpoint file or run folder (its newest checkpoint)."""
    path = resolve_checkpoint(source)
    state = upgrade_checkpoint(load_checkpoint(path))
    state["path"] = str(path)
    import_recorded(state.get("imports", []), path)  # a method or component of the user's own
    experiment = from_dict(state["config"])
    if not isinstance(experiment, Experiment):
        raise BadCheckpointError(f"checkpoint {str(path)!r} holds a {experiment.type_id()} config, not an experiment")
    return experiment, state


def load_method(source: str | Path) -> Any:
    """The method of a checkpoint file or run folder with its weights and extra state, in eval mode."""
    experiment, state = load_run(source)
    method = experiment.build()
    method.load_state_dict(state["model"], strict=True)
    method.prepare(None, state["method_state"])
    return method.eval()


def weights_read(source: str | Path) -> str:
    """Which weights a command reads from ``source``, for the line it prints first: the checkpoint file a
    run folder resolves to (its newest), or the export folder and the checkpoint it came from."""
    from .hub import hub_repo, local_path

    path = local_path(source)
    if hub_repo(source) is not None:
        return f"{source} ({path})"
    if is_export(path):
        origin = export_config(path).get("source", {})
        made = f" (exported from {origin['checkpoint']}, step {origin['step']})" if "checkpoint" in origin else ""
        return f"the export {str(path)!r}{made}"
    return f"the checkpoint {str(resolve_checkpoint(path))!r}"


def load_eval_encoder(source: str | Path) -> tuple[Any, Experiment | None]:
    """(encoder in eval mode, the experiment or None) from a checkpoint file, a run folder
    or its ``checkpoints/`` (the newest checkpoint), a ``jepakit export`` folder, or ``hf://USER/NAME``."""
    from .hub import local_path

    path = local_path(source)
    if is_export(path):
        return load_encoder(path), None
    experiment, state = load_run(path)
    encoder, _ = checkpoint_encoder(experiment, state)
    return encoder.eval(), experiment
