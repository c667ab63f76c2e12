"""Training: the engine, the input pipeline, schedules as pure functions of the step."""

from ..checkpoint import CheckpointManager, load_checkpoint, save_checkpoint
from .optim import adamw, torch_groups
from .schedules import lr_at, weight_decay_at
from .stages import train
from .trainer import NonFiniteLossError, TrainConfig, Trainer

__all__ = [
    "CheckpointManager",
    "NonFiniteLossError",
    "TrainConfig",
    "Trainer",
    "adamw",
    "load_checkpoint",
    "lr_at",
    "save_checkpoint",
    "torch_groups",
    "train",
    "weight_decay_at",
]
