"""Embedded moving scenes: captioned synthetic clips whose labels need motion, generated, never downloaded.

Each clip shows 1 to 3 objects (the scenes' shapes and colours) over a still textured
background. Every object moves in a straight line, left, right, up or down, slowly or fast
(a quarter or half of the frame over the clip, whatever its length), and the squares,
triangles and diamonds also turn, clockwise or anticlockwise. So the direction and speed of
motion are labels no single frame gives; the count and the shapes are labels any frame
gives (the frame-only baseline's). Captions describe the motion ("a red circle moves left",
"a small blue square moves up fast"). Per-frame segmentation of the shapes is the dense
probe's target. A clip is a pure function of (seed, index), as a scene is.

``moving-frames`` gives single frames of the same clips as images, for image methods: the
per-frame baseline trains on them (frame ``index % num_frames`` of clip ``index``), and its
labels are those a frame gives (count, shapes, colours, segmentation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..config import Config, at_least, in_range, knob, resolved
from ..registry import register
from .base import DatasetConfig, ProbeSets, new_draws
from .scenes import _NUMBERS, COLOURS, SHAPES, Generated, check_ranges, shape_mask, texture

__all__ = ["DIRECTIONS", "SPEEDS", "MovingFrames", "MovingFramesConfig", "MovingScenes", "MovingScenesConfig"]

#: Motion directions (x, y steps in image coordinates, y downwards) and the speeds' travel over a clip.
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SPEEDS: dict[str, float] = {"slow": 0.25, "fast": 0.5}
#: Turn over the whole clip (radians) of a shape that turns (an eighth: a square ends as a diamond); circles do not.
TURN = math.pi / 4


@dataclass(frozen=True)
class MovingScenesConfig(DatasetConfig):
    image_size: int | None = knob(None, "frame side in pixels", follows="image_size", valid=at_least(8))
    num_frames: int | None = knob(None, "frames per clip", follows="num_frames", valid=at_least(2))
    min_objects: int = knob(1, "fewest objects per clip", valid=in_range(1, 3))
    max_objects: int = knob(3, "most objects per clip (at least min_objects)", valid=in_range(1, 3))
    min_radius: float = knob(
        0.12, "smallest object half-size, a fraction of the side", valid=in_range(0, 0.25, low_open=True)
    )
    max_radius: float = knob(
        0.2, "largest object half-size (at most 0.25, so a fast object stays in the frame)", valid=in_range(0, 0.25)
    )
    max_captions: int = knob(6, "captions per clip, short to detailed", valid=at_least(1))
    noise: float = knob(0.08, "std of the per-pixel noise, drawn afresh each frame", valid=in_range(0, 1))
    seed: int = knob(0, "the data set's seed: clip i is a pure function of (seed, i)", valid=at_least(0))
    size: int = knob(20_000, "number of clips (any number works)", valid=at_least(1))

    #: samples are clips ("video" [C, T, H, W]): only a method that trains on clips reads them
    clips: ClassVar[bool] = True

    def probe_sets(self, trained: Config | None, images: int) -> ProbeSets:
        return new_draws(self, trained, images)

    def validate(self) -> None:
        check_ranges(self)


@register("dataset", "moving-scenes", MovingScenesConfig)
class MovingScenes(Generated):
    """``clips[i]`` -> {"video": float [3, T, H, W] in [0, 1], "captions": [str], "labels": {"count",
    "direction", "speed", "shapes", "colours"} (direction and speed: the largest object's), "segmentation":
    long [T, H, W] (0 background, 1 + shape index)}.

    Example:
        >>> from jepakit import create
        >>> clips = create("dataset", "moving-scenes", image_size=32, num_frames=4, size=3)
        >>> tuple(clips[0]["video"].shape), tuple(clips[0]["segmentation"].shape)  # [C, T, H, W], [T, H, W]
        ((3, 4, 32, 32), (4, 32, 32))
        >>> clips[0]["labels"]["direction"], clips[0]["labels"]["speed"]
        ('down', 'fast')
    """

    config_class = MovingScenesConfig
    config: MovingScenesConfig

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._render(index)

    def _render(self, index: int, only: int | None = None) -> dict[str, Any]:
        """Clip ``index``, every frame or frame ``only`` alone (T = 1 then): the objects, motion and
        noise are drawn for the whole clip either way, so a frame is bitwise the clip's frame."""
        g = self.generator(index)
        cfg = self.config
        background = texture(self._x, self._y, g)
        count = int(torch.randint(cfg.min_objects, cfg.max_objects + 1, (), generator=g))
        objects = [self._draw_object(g) for _ in range(count)]
        frames = resolved(cfg.num_frames, "data.num_frames")
        t_max = frames - 1
        times = range(frames) if only is None else [only]
        video = background[:, None].repeat(1, len(times), 1, 1)
        seg = torch.zeros(len(times), self.side, self.side, dtype=torch.long)
        for i, t in enumerate(times):
            for obj in objects:
                travel, (ux, uy) = SPEEDS[obj["speed"]] * t / t_max, DIRECTIONS[obj["direction"]]
                at = obj | {"x": obj["x"] + ux * travel, "y": obj["y"] + uy * travel}
                mask = shape_mask(self._x, self._y, at, obj["turn"] * TURN * t / t_max)
                video[:, i, mask] = torch.tensor(COLOURS[obj["colour"]])[:, None]
                seg[i, mask] = 1 + SHAPES.index(obj["shape"])
        noise = torch.randn((3, frames, self.side, self.side), generator=g)
        if only is not None:
            noise = noise[:, only : only + 1]  # a view: the whole clip's draw, so the generator's state agrees
        video = (video + cfg.noise * noise).clamp_(0, 1)
        largest = max(objects, key=lambda o: o["r"])
        labels = {
            "count": count,
            "direction": largest["direction"],
            "speed": largest["speed"],
            "shapes": sorted({o["shape"] for o in objects}),
            "colours": sorted({o["colour"] for o in objects}),
        }
        return {
            "video": video,
            "captions": _captions(objects, cfg.max_captions),
            "labels": labels,
            "segmentation": seg,
            "index": index,
        }

    def _draw_object(self, g: torch.Generator) -> dict[str, Any]:
        """A random object and its motion, its start placed so that it stays whole in every frame."""
        cfg = self.config
        r = cfg.min_radius + (cfg.max_radius - cfg.min_radius) * float(torch.rand((), generator=g))
        direction = list(DIRECTIONS)[int(torch.randint(0, len(DIRECTIONS), (), generator=g))]
        speed = list(SPEEDS)[int(torch.randint(0, len(SPEEDS), (), generator=g))]
        shape = SHAPES[int(torch.randint(0, len(SHAPES), (), generator=g))]
        turn = 0 if shape == "circle" else (1 if float(torch.rand((), generator=g)) < 0.5 else -1)
        ux, uy = DIRECTIONS[direction]
        travel = SPEEDS[speed]
        start = []
        for u in (ux, uy):  # the start leaves room for the whole travel along the motion
            low, high = r + max(0.0, -u * travel), 1 - r - max(0.0, u * travel)
            start.append(low + (high - low) * float(torch.rand((), generator=g)))
        return {
            "shape": shape,
            "colour": list(COLOURS)[int(torch.randint(0, len(COLOURS), (), generator=g))],
            "size": "large" if r > (cfg.min_radius + cfg.max_radius) / 2 else "small",
            "direction": direction,
            "speed": speed,
            "turn": turn,
            "x": start[0],
            "y": start[1],
            "r": r,
        }


@dataclass(frozen=True)
class MovingFramesConfig(MovingScenesConfig):
    num_frames: int | None = knob(8, "frames of the clip a frame is taken from", valid=at_least(2))

    #: samples are images (a frame of a clip): image methods read them
    clips: ClassVar[bool] = False


@register("dataset", "moving-frames", MovingFramesConfig)
class MovingFrames(MovingScenes):
    """``frames[i]`` -> frame ``i % num_frames`` of clip ``i`` of the moving scenes as an image: {"image": float
    [3, H, W], "captions" (the clip's, which tell its motion), "labels": {"count", "shapes", "colours"},
    "segmentation": long [H, W]}; no direction or speed, which no single frame gives.

    Example:
        >>> from jepakit import create
        >>> frames = create("dataset", "moving-frames", image_size=32, num_frames=4, size=3)
        >>> tuple(frames[0]["image"].shape), "direction" in frames[0]["labels"]
        ((3, 32, 32), False)
    """

    config_class = MovingFramesConfig
    config: MovingFramesConfig

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self._render(index, only=index % resolved(self.config.num_frames, "data.num_frames"))
        labels = {k: v for k, v in clip["labels"].items() if k not in ("direction", "speed")}
        return {
            "image": clip["video"][:, 0],
            "captions": clip["captions"],
            "labels": labels,
            "segmentation": clip["segmentation"][0],
            "index": index,
        }


def _captions(objects: list[dict[str, Any]], limit: int) -> list[str]:
    """Captions from short to detailed; every statement is true of the clip."""
    first = objects[0]
    out = [f"a {first['colour']} {first['shape']} moves {first['direction']}"]
    n = len(objects)
    out.append(f"there {'is one object' if n == 1 else f'are {_NUMBERS[n]} objects'}")
    for obj in objects:
        turning = "" if not obj["turn"] else f", turning {'clockwise' if obj['turn'] > 0 else 'anticlockwise'}"
        out.append(f"a {obj['size']} {obj['colour']} {obj['shape']} moves {obj['direction']} {obj['speed']}{turning}")
    if n > 1:
        second = objects[1]
        out.append(
            f"a {first['colour']} {first['shape']} moves {first['direction']} and a {second['colour']} "
            f"{second['shape']} moves {second['direction']}"
        )
    return out[:limit]
