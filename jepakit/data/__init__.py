"""Data: the embedded captioned scenes (more formats and the pipeline follow)."""

from .scenes import COLOURS, RELATIONS, SHAPES, SceneConfig, SyntheticScenes

__all__ = ["COLOURS", "RELATIONS", "SHAPES", "SceneConfig", "SyntheticScenes"]
