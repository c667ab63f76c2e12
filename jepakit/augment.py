"""Photometric augmentations (and a flip) as registered components (kind ``transform``), seeded by the sample's draw.

A view-based method lists transform configs in its ``augment`` field; after cropping, each view of a
sample goes through them in order, every random choice (whether to apply, the factors, the jitter's
order) drawn from that view's generator (``Draw.sample``), so a batch is bitwise the same in any
worker, on any rank and after a resume. A transform's ``p`` is its probability per view, cycled:
BYOL blurs its first view always and its second with p = 0.1 (``p=(1.0, 0.1)``). The pixel
operations are torchvision's (``transforms.v2.functional``), which the well-kept pipelines of
SimCLR, BYOL and DINO use, on images [C, H, W] in [0, 1]; a clip [C, T, H, W] gets one draw for all
its frames. Defaults are BYOL's (Grill et al., 2020, table 6).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from .config import Config, ConfigError, each, in_range, knob, ordered_pair
from .registry import register
from .transforms import random_flip, random_resized_crop

__all__ = [
    "BYOL_AUGMENT",
    "ColorJitterConfig",
    "GaussianBlurConfig",
    "GrayscaleConfig",
    "HorizontalFlipConfig",
    "SolarizeConfig",
    "Transform",
    "TransformConfig",
    "augmented",
    "augmented_view",
    "check_transforms",
    "multi_crop_augment",
]


@dataclass(frozen=True)
class TransformConfig(Config):
    """Base of transform configs: the probability of applying the transform, per view (cycled). A bare
    name stands for one at its defaults (``augment=[hflip,grayscale]``)."""

    kind: ClassVar[str] = "transform"

    p: tuple[float, ...] = knob(
        (1.0,), "probability of applying it to view v: p[v % len(p)]", valid=each(in_range(0, 1))
    )


class Transform(abc.ABC):
    """A photometric transform: ``transform(image, g, view)`` -> the image, maybe changed, same shape."""

    config: TransformConfig

    def __init__(self, cfg: TransformConfig) -> None:
        self.config = cfg

    def __call__(self, image: Tensor, g: torch.Generator, view: int = 0) -> Tensor:
        """``image`` [C, H, W] (or a clip [C, T, H, W]) in [0, 1], changed with probability ``p`` of ``view``."""
        p = self.config.p[view % len(self.config.p)]
        if float(torch.rand((), generator=g)) >= p:
            return image
        frames = image.transpose(0, 1) if image.ndim == 4 else image  # torchvision: [..., C, H, W]
        out = self.apply(frames, g)
        return out.transpose(0, 1) if image.ndim == 4 else out

    @abc.abstractmethod
    def apply(self, image: Tensor, g: torch.Generator) -> Tensor:
        """The transform on ``image`` [..., C, H, W], its factors drawn from ``g``."""


def _uniform(low: float, high: float, g: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


@dataclass(frozen=True)
class ColorJitterConfig(TransformConfig):
    p: tuple[float, ...] = knob((0.8,), "probability per view (BYOL, SimCLR: 0.8)", valid=each(in_range(0, 1)))
    brightness: float = knob(0.4, "brightness factor drawn from [1 - b, 1 + b] (BYOL: 0.4)", valid=in_range(0, 1))
    contrast: float = knob(0.4, "contrast factor drawn from [1 - c, 1 + c] (BYOL: 0.4)", valid=in_range(0, 1))
    saturation: float = knob(0.2, "saturation factor drawn from [1 - s, 1 + s] (BYOL: 0.2)", valid=in_range(0, 1))
    hue: float = knob(0.1, "hue shift drawn from [-h, h] of a turn (BYOL: 0.1)", valid=in_range(0, 0.5))


@register("transform", "color-jitter", ColorJitterConfig)
class ColorJitter(Transform):
    """Brightness, contrast, saturation and hue, each by a drawn factor, in a drawn order (torchvision's
    ``ColorJitter``).

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))  # [C, H, W] in [0, 1]
        >>> out = create("transform", "color-jitter", p=(1.0,))(image, torch.Generator().manual_seed(0), view=0)
        >>> tuple(out.shape), bool(0 <= out.min() and out.max() <= 1), bool(torch.equal(out, image))
        ((3, 8, 8), True, False)
    """

    config: ColorJitterConfig

    def apply(self, image: Tensor, g: torch.Generator) -> Tensor:
        import torchvision.transforms.v2.functional as F

        c = self.config
        ops = [
            (F.adjust_brightness, 1.0, c.brightness),
            (F.adjust_contrast, 1.0, c.contrast),
            (F.adjust_saturation, 1.0, c.saturation),
            (F.adjust_hue, 0.0, c.hue),
        ]
        for i in torch.randperm(4, generator=g).tolist():
            op, centre, width = ops[i]
            if width:
                image = op(image, _uniform(centre - width, centre + width, g))
        return image


@dataclass(frozen=True)
class GrayscaleConfig(TransformConfig):
    p: tuple[float, ...] = knob((0.2,), "probability per view (BYOL, SimCLR: 0.2)", valid=each(in_range(0, 1)))


@register("transform", "grayscale", GrayscaleConfig)
class Grayscale(Transform):
    """ITU-R 601 luma, as many channels as the image has.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))  # [C, H, W] in [0, 1]
        >>> grey = create("transform", "grayscale", p=(1.0,))(image, torch.Generator().manual_seed(0), view=0)
        >>> tuple(grey.shape), bool(torch.equal(grey[0], grey[1]))  # ITU-R 601 luma in every channel
        ((3, 8, 8), True)
    """

    def apply(self, image: Tensor, g: torch.Generator) -> Tensor:
        import torchvision.transforms.v2.functional as F

        return F.rgb_to_grayscale(image, num_output_channels=image.shape[-3])


@dataclass(frozen=True)
class GaussianBlurConfig(TransformConfig):
    p: tuple[float, ...] = knob(
        (1.0, 0.1),
        "probability per view (BYOL: 1.0 for the first view, 0.1 for the second)",
        valid=each(in_range(0, 1)),
    )
    sigma: tuple[float, float] = knob(
        (0.1, 2.0), "the blur's std in pixels, drawn (BYOL: 0.1-2)", valid=ordered_pair(0, 100)
    )
    kernel_fraction: float = knob(
        0.1,
        "kernel side as a fraction of the image side, made odd (BYOL: 23 px at 224)",
        valid=in_range(0, 1, low_open=True),
    )


@register("transform", "gaussian-blur", GaussianBlurConfig)
class GaussianBlur(Transform):
    """A Gaussian blur of drawn std, its kernel a fixed fraction of the image's side.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))  # kernel: ~a tenth of the side
        >>> out = create("transform", "gaussian-blur", p=(1.0,))(image, torch.Generator().manual_seed(0), view=0)
        >>> tuple(out.shape), bool(out.diff(dim=-1).abs().mean() < image.diff(dim=-1).abs().mean())  # smoother
        ((3, 64, 64), True)
    """

    config: GaussianBlurConfig

    def apply(self, image: Tensor, g: torch.Generator) -> Tensor:
        import torchvision.transforms.v2.functional as F

        side = max(1, round(self.config.kernel_fraction * image.shape[-1]))
        side += 1 - side % 2  # odd
        sigma = _uniform(*self.config.sigma, g)
        return F.gaussian_blur(image, [side, side], [sigma, sigma])


@dataclass(frozen=True)
class SolarizeConfig(TransformConfig):
    p: tuple[float, ...] = knob(
        (0.0, 0.2),
        "probability per view (BYOL: never on the first view, 0.2 on the second)",
        valid=each(in_range(0, 1)),
    )
    threshold: float = knob(0.5, "pixels at or above it are inverted (BYOL: 0.5)", valid=in_range(0, 1))


@register("transform", "solarize", SolarizeConfig)
class Solarize(Transform):
    """Pixels at or above ``threshold`` become 1 - pixel.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))  # [C, H, W] in [0, 1]
        >>> out = create("transform", "solarize", p=(1.0,))(image, torch.Generator().manual_seed(0), view=0)
        >>> bool(torch.equal(out, torch.where(image >= 0.5, 1 - image, image)))
        True
    """

    config: SolarizeConfig

    def apply(self, image: Tensor, g: torch.Generator) -> Tensor:
        import torchvision.transforms.v2.functional as F

        return F.solarize(image, self.config.threshold)


@dataclass(frozen=True)
class HorizontalFlipConfig(TransformConfig):
    p: tuple[float, ...] = knob((0.5,), "probability per view (torchvision's default: 0.5)", valid=each(in_range(0, 1)))


@register("transform", "hflip", HorizontalFlipConfig)
class HorizontalFlip(Transform):
    """The image mirrored left-right (for a method whose views have no flip of their own: I-JEPA's crops).

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))  # [C, H, W] in [0, 1]
        >>> flip = create("transform", "hflip", p=(1.0,))  # p per view; the default is 0.5
        >>> bool(torch.equal(flip(image, torch.Generator().manual_seed(0), view=0), image.flip(-1)))
        True
    """

    def apply(self, image: Tensor, g: torch.Generator) -> Tensor:
        return image.flip(-1)


#: BYOL's photometric pipeline (after its crop and flip), in its order.
BYOL_AUGMENT: tuple[TransformConfig, ...] = (
    ColorJitterConfig(),
    GrayscaleConfig(),
    GaussianBlurConfig(),
    SolarizeConfig(),
)


def multi_crop_augment(global_views: int = 2, local_views: int = 6) -> tuple[TransformConfig, ...]:
    """DINO's photometric pipeline for ``global_views`` large and ``local_views`` small crops (views in that
    order): jitter and grey as BYOL's; blur 1.0 on the first global view, 0.1 on the others and 0.5 on
    the local ones; solarise 0.2 on the second global view only (Caron et al., 2021)."""
    rest = max(global_views - 1, 0)
    blur = (1.0,) + (0.1,) * rest + (0.5,) * local_views
    solarize = (0.0,) + (0.2,) * min(rest, 1) + (0.0,) * (max(rest - 1, 0) + local_views)
    return (ColorJitterConfig(), GrayscaleConfig(), GaussianBlurConfig(p=blur), SolarizeConfig(p=solarize))


def check_transforms(configs: tuple[Any, ...], where: str) -> None:
    """Raise ``ConfigError`` unless every config of ``configs`` is a registered transform's."""
    from .registry import list_components

    for i, c in enumerate(configs):
        if not isinstance(c, TransformConfig):
            raise ConfigError(
                f"{where}[{i}]={c.type_id() if isinstance(c, Config) else c!r} is not a transform; choose from "
                f"{', '.join(list_components('transform')['transform'])}"
            )


def augmented(image: Tensor, transforms: list[Transform], g: torch.Generator, view: int = 0) -> Tensor:
    """``image`` through ``transforms`` in order, as view ``view``, every draw from ``g``."""
    for t in transforms:
        image = t(image, g, view)
    return image


def augmented_view(
    image: Tensor,
    scale: tuple[float, float],
    g: torch.Generator,
    view: int,
    transforms: list[Transform],
    size: int | None = None,
    flip: bool = False,
) -> Tensor:
    """View ``view`` of ``image`` [C, H, W] (a clip [C, T, H, W]: one draw for every frame), as the view-based
    methods draw it: a RandomResizedCrop of area ``scale`` (resized to ``size``; default: the image's), a
    mirror with probability 1/2 when ``flip``, then ``transforms``; every draw from ``g``, in that order."""
    crop = random_resized_crop(image, scale, g, size)
    return augmented(random_flip(crop, g) if flip else crop, transforms, g, view)
