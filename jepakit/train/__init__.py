"""Training machinery: schedules as pure functions of the step, atomic checkpoints."""

from .checkpoint import CheckpointManager, load_checkpoint, save_checkpoint
from .schedules import lr_at, weight_decay_at

__all__ = ["CheckpointManager", "load_checkpoint", "lr_at", "save_checkpoint", "weight_decay_at"]
