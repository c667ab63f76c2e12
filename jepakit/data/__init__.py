"""Data: the embedded captioned scenes and moving scenes, real images that install with a package
(digits, faces, textures), and real formats on disk (captioned folders, ImageFolder, WebDataset shards,
Hugging Face datasets, video files and video shards)."""

from .files import CaptionedImages, ImageFolder, caption_list, decode_image
from .hf import HFDataset
from .moving import MovingFrames, MovingFramesConfig, MovingScenes, MovingScenesConfig
from .packaged import Digits, Faces, Textures
from .scenes import COLOURS, RELATIONS, SHAPES, SceneConfig, SyntheticScenes
from .shards import WebDataset
from .video import VideoFiles, VideoShards

__all__ = [
    "COLOURS",
    "RELATIONS",
    "SHAPES",
    "CaptionedImages",
    "Digits",
    "Faces",
    "HFDataset",
    "ImageFolder",
    "MovingFrames",
    "MovingFramesConfig",
    "MovingScenes",
    "MovingScenesConfig",
    "SceneConfig",
    "SyntheticScenes",
    "Textures",
    "VideoFiles",
    "VideoShards",
    "WebDataset",
    "caption_list",
    "decode_image",
]
