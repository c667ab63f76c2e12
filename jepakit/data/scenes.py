"""The embedded default data set: captioned synthetic scenes, generated, never downloaded.

Each image holds 1 to 4 objects (shape, colour, size, position) over a textured,
noisy background, so that a masked patch is not predictable from its neighbours'
low frequencies. Each image comes with up to 8 captions from short to detailed, in
the style of TC-JEPA's sentence-split synthetic captions ("a red circle", "there are
three objects", "a small blue square left of a green triangle"), so the text says
what a masked view lacks; and with evaluation labels: object count, colours and
shapes present, a spatial relation, and a per-pixel segmentation of shapes. A sample
is a pure function of (seed, index): any number of images, any order, any worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..config import Config, ConfigError, at_least, in_range, knob, resolved
from ..registry import register
from ..transforms import mix_seed
from .base import DatasetConfig, ProbeSets, new_draws

__all__ = [
    "COLOURS",
    "RELATIONS",
    "SHAPES",
    "SceneConfig",
    "SyntheticScenes",
    "check_ranges",
    "pixel_grid",
    "shape_mask",
    "texture",
]

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.1, 0.1),
    "green": (0.1, 0.75, 0.2),
    "blue": (0.15, 0.3, 0.95),
    "yellow": (0.95, 0.85, 0.1),
    "purple": (0.6, 0.2, 0.8),
    "orange": (1.0, 0.55, 0.05),
}
SHAPES = ("circle", "square", "triangle", "diamond")
#: Relation of the first object to the second; "alone" when there is one object.
RELATIONS = ("alone", "left of", "right of", "above", "below")
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six")


@dataclass(frozen=True)
class SceneConfig(DatasetConfig):
    image_size: int | None = knob(None, "image side in pixels", follows="image_size", valid=at_least(8))
    min_objects: int = knob(1, "fewest objects per image", valid=in_range(1, 6))
    max_objects: int = knob(4, "most objects per image (at least min_objects)", valid=in_range(1, 6))
    min_radius: float = knob(
        0.18,
        "smallest object half-size, as a fraction of the image side",
        valid=in_range(0, 0.5, low_open=True, high_open=True),
    )
    max_radius: float = knob(
        0.3,
        "largest object half-size, as a fraction of the image side (at least min_radius)",
        valid=in_range(0, 0.5, low_open=True, high_open=True),
    )
    separation: float = knob(
        0.8,
        "object centres at least this times the sum of their half-sizes apart (0: any overlap)",
        valid=in_range(0, 1),
    )
    max_captions: int = knob(8, "captions per image, short to detailed", valid=at_least(1))
    noise: float = knob(
        0.08, "std of the per-pixel noise over the background texture and objects", valid=in_range(0, 1)
    )
    seed: int = knob(0, "the data set's seed: sample i is a pure function of (seed, i)", valid=at_least(0))
    size: int = knob(50_000, "number of images (any number works)", valid=at_least(1))

    def validate(self) -> None:
        check_ranges(self)

    def probe_sets(self, trained: Config | None, images: int) -> ProbeSets:
        return new_draws(self, trained, images)


class Generated(torch.utils.data.Dataset):
    """Base of the embedded data sets: sample i is drawn from a generator seeded by (config.seed, i) on
    the pixel-centre grid of ``config.image_size``; any number of samples, any order, any worker."""

    config_class: ClassVar[type[Config]]
    config: Any  # the subclass's config: seed, size, image_size and its own fields

    def __init__(self, cfg: Any = None, **fields: Any) -> None:
        self.config = (cfg or self.config_class()).replace(**fields)
        self.config.check_complete()
        self.side = resolved(self.config.image_size, "data.image_size")
        self._x, self._y = pixel_grid(self.side)

    def __len__(self) -> int:
        return self.config.size

    def generator(self, index: int) -> torch.Generator:
        """The generator of sample ``index`` (an ``IndexError`` outside the data set)."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample index {index} outside [0, {len(self)})")
        return torch.Generator().manual_seed(mix_seed(self.config.seed, index))

    def captions(self, index: int) -> list[str]:
        """The captions of sample ``index``."""
        return self[index]["captions"]


@register("dataset", "scenes", SceneConfig)
class SyntheticScenes(Generated):
    """``scenes[i]`` -> {"image": float [3, H, W] in [0, 1], "captions": [str], "labels": {...},
    "segmentation": long [H, W] (0 background, 1 + shape index)}.

    Example:
        >>> from jepakit import create
        >>> scenes = create("dataset", "scenes", image_size=64, size=4)
        >>> sample = scenes[0]
        >>> tuple(sample["image"].shape), tuple(sample["segmentation"].shape), sorted(sample["labels"])
        ((3, 64, 64), (64, 64), ['colours', 'count', 'relation', 'shapes'])
        >>> sample["labels"]["count"], sample["captions"][1]
        (2, 'there are two objects')
    """

    config_class = SceneConfig
    config: SceneConfig

    def __getitem__(self, index: int) -> dict[str, Any]:
        g = self.generator(index)
        cfg = self.config
        image = self._background(g)
        seg = torch.zeros(self.side, self.side, dtype=torch.long)
        count = int(torch.randint(cfg.min_objects, cfg.max_objects + 1, (), generator=g))
        objects: list[dict[str, Any]] = []
        for _ in range(count):
            obj = self._draw_object(g, objects)
            mask = self._mask(obj)
            image[:, mask] = torch.tensor(COLOURS[obj["colour"]])[:, None]
            seg[mask] = 1 + SHAPES.index(obj["shape"])
            objects.append(obj | {"area": int(mask.sum())})
        image = (image + cfg.noise * torch.randn(image.shape, generator=g)).clamp_(0, 1)
        labels = {
            "count": count,
            "colours": sorted({o["colour"] for o in objects}),
            "shapes": sorted({o["shape"] for o in objects}),
            # the largest object relative to the second largest: the image decides it (the drawing order the
            # captions follow does not show, so a label by drawing order was a coin flip between left/right)
            "relation": _relation(_by_size(objects)),
        }
        return {
            "image": image,
            "captions": _captions(objects, _relation(objects), cfg.max_captions),
            "labels": labels,
            "segmentation": seg,
            "index": index,
        }

    # ------------------------------------------------------------------ drawing

    def _background(self, g: torch.Generator) -> Tensor:
        return texture(self._x, self._y, g)

    def _draw_object(self, g: torch.Generator, others: list[dict[str, Any]]) -> dict[str, Any]:
        """A random object whose centre keeps ``separation`` from the others' (the last of 50 tries
        if none does), so that no object hides another and the count stays visible."""
        cfg = self.config
        r = cfg.min_radius + (cfg.max_radius - cfg.min_radius) * float(torch.rand((), generator=g))
        for _ in range(50):
            cx, cy = (r + (1 - 2 * r) * torch.rand(2, generator=g)).tolist()
            if all(math.hypot(cx - o["x"], cy - o["y"]) >= cfg.separation * (r + o["r"]) for o in others):
                break
        return {
            "shape": SHAPES[int(torch.randint(0, len(SHAPES), (), generator=g))],
            "colour": list(COLOURS)[int(torch.randint(0, len(COLOURS), (), generator=g))],
            "size": "large" if r > (cfg.min_radius + cfg.max_radius) / 2 else "small",
            "x": cx,
            "y": cy,
            "r": r,
        }

    def _mask(self, obj: dict[str, Any]) -> Tensor:
        return shape_mask(self._x, self._y, obj)


def check_ranges(cfg: Any) -> None:
    """Raise ``ConfigError`` unless a scene config's object count and size ranges are ordered."""
    t = cfg.type_id()
    if cfg.min_objects > cfg.max_objects:
        raise ConfigError(f"{t}: min_objects={cfg.min_objects} exceeds max_objects={cfg.max_objects}")
    if cfg.min_radius > cfg.max_radius:
        raise ConfigError(f"{t}: min_radius={cfg.min_radius} exceeds max_radius={cfg.max_radius}")


def pixel_grid(side: int) -> tuple[Tensor, Tensor]:
    """(x, y) [side, side]: each pixel's centre as a fraction of the side."""
    coords = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return x, y


def texture(x: Tensor, y: Tensor, g: torch.Generator) -> Tensor:
    """[3, H, W] background on the pixel-centre grid ``x``, ``y`` (fractions of the side): two random
    mid/high-frequency gratings per channel around a random grey level."""
    out = torch.empty(3, *x.shape)
    base = 0.3 + 0.4 * torch.rand((), generator=g)
    for c in range(3):
        value = base.expand_as(x).clone()
        for _ in range(2):
            angle = float(torch.rand((), generator=g)) * math.pi
            freq = 6 + 10 * float(torch.rand((), generator=g))
            phase = float(torch.rand((), generator=g)) * 2 * math.pi
            value += 0.12 * torch.sin(2 * math.pi * freq * (x * math.cos(angle) + y * math.sin(angle)) + phase)
        out[c] = value
    return out


def shape_mask(x: Tensor, y: Tensor, obj: dict[str, Any], angle: float = 0.0) -> Tensor:
    """bool [H, W]: the pixels of ``obj`` (shape, centre x/y, half-size r), turned by ``angle`` radians."""
    dx, dy, r = x - obj["x"], y - obj["y"], obj["r"]
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        dx, dy = c * dx + s * dy, -s * dx + c * dy
    shape = obj["shape"]
    if shape == "circle":
        return dx.square() + dy.square() <= r * r
    if shape == "square":
        return (dx.abs() <= r * 0.85) & (dy.abs() <= r * 0.85)
    if shape == "diamond":
        return dx.abs() + dy.abs() <= r
    return (dy <= r * 0.8) & (dy >= -r) & (dx.abs() <= (dy + r) * 0.6)  # triangle, apex up


def _by_size(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects largest first (drawn area in pixels; ties in drawing order): the order the relation
    label names them in, so that it is a function of the image alone. The captions keep the drawing
    order (each of their statements is true either way)."""
    return sorted(objects, key=lambda o: -o["area"])


def _relation(objects: list[dict[str, Any]]) -> str:
    """Where the first object lies relative to the second, along the larger offset."""
    if len(objects) < 2:
        return "alone"
    a, b = objects[0], objects[1]
    dx, dy = a["x"] - b["x"], a["y"] - b["y"]
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


_PLACES = {
    ("top", "left"): "in the top left",
    ("top", "centre"): "at the top",
    ("top", "right"): "in the top right",
    ("middle", "left"): "on the left",
    ("middle", "centre"): "in the centre",
    ("middle", "right"): "on the right",
    ("bottom", "left"): "in the bottom left",
    ("bottom", "centre"): "at the bottom",
    ("bottom", "right"): "in the bottom right",
}


def _place(obj: dict[str, Any]) -> str:
    """Where an object's centre lies, in thirds of the image."""
    v = "top" if obj["y"] < 1 / 3 else "bottom" if obj["y"] > 2 / 3 else "middle"
    h = "left" if obj["x"] < 1 / 3 else "right" if obj["x"] > 2 / 3 else "centre"
    return _PLACES[v, h]


def _captions(objects: list[dict[str, Any]], relation: str, limit: int) -> list[str]:
    """Captions from short to detailed; every statement is true of the image."""
    first = objects[0]
    out = [f"a {first['colour']} {first['shape']}"]
    n = len(objects)
    out.append(f"there {'is one object' if n == 1 else f'are {_NUMBERS[n]} objects'}")
    if relation != "alone":
        second = objects[1]
        out.append(f"a {first['colour']} {first['shape']} {relation} a {second['colour']} {second['shape']}")
    for obj in objects[1:]:
        out.append(f"a {obj['size']} {obj['colour']} {obj['shape']}")
    for obj in objects:
        out.append(f"a {obj['size']} {obj['colour']} {obj['shape']} {_place(obj)}")
    colours = sorted({o["colour"] for o in objects})
    out.append("the colours are " + " and ".join(colours) if len(colours) > 1 else f"everything is {colours[0]}")
    return out[:limit]
