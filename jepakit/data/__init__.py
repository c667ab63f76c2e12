"""Data: the embedded captioned scenes and real formats on disk (captioned folders, ImageFolder,
WebDataset shards, Hugging Face datasets)."""

from .files import CaptionedImages, ImageFolder, caption_list, decode_image
from .hf import HFDataset
from .moving import MovingFrames, MovingFramesConfig, MovingScenes, MovingScenesConfig
from .scenes import COLOURS, RELATIONS, SHAPES, SceneConfig, SyntheticScenes
from .shards import WebDataset

__all__ = [
    "COLOURS",
    "RELATIONS",
    "SHAPES",
    "CaptionedImages",
    "HFDataset",
    "ImageFolder",
    "MovingFrames",
    "MovingFramesConfig",
    "MovingScenes",
    "MovingScenesConfig",
    "SceneConfig",
    "SyntheticScenes",
    "WebDataset",
    "caption_list",
    "decode_image",
]
