"""Image augmentations as pure functions of a generator, so a batch is a function of its seeds."""

from __future__ import annotations

import math
import warnings

import torch

__all__ = ["mix_seed", "random_flip", "random_resized_crop", "warn_if_not_unit_range"]


def warn_if_not_unit_range(images: torch.Tensor) -> None:
    """Warn when ``images`` look like 0-255 pixels: the encoders take [0, 1] images and normalise them
    with ``pixel_mean``/``pixel_std``, so 0-255 values train and probe without an error, but on inputs
    two orders of magnitude off."""
    if images.is_floating_point() and images.numel() and float(images.detach().amax()) > 10.0:
        warnings.warn(
            f"the encoder's input reaches {float(images.detach().amax()):.4g}: it takes images in [0, 1] "
            "(divide 0-255 pixels by 255)",
            stacklevel=4,
        )


def mix_seed(*parts: int) -> int:
    """A generator seed mixed from integers (seed, epoch, index, ...): every seeded draw of the library
    (crops, masks, scenes, clips, projections) takes its generator's seed from here."""
    value = 0
    for p in parts:
        value = (value * 1_000_003 + int(p)) % (2**63)
    return value


def random_resized_crop(
    image: torch.Tensor, scale: tuple[float, float], g: torch.Generator, size: int | None = None
) -> torch.Tensor:
    """RandomResizedCrop (area ``scale``, aspect 3/4..4/3) of ``image`` [C, H, W], drawn from ``g``, resized
    to [C, size, size] (default: back to [C, H, W]). A clip [C, T, H, W] gets one crop for every frame."""
    lead, (h, w) = image.shape[:-2], image.shape[-2:]
    image = image.reshape(-1, h, w)
    area = h * w
    for _ in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=g)))
        ratio = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * float(torch.rand((), generator=g)))
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (), generator=g))
            left = int(torch.randint(0, w - cw + 1, (), generator=g))
            break
    else:  # the centre crop, as torchvision does
        ch, cw, top, left = h, w, 0, 0
    crop = image[None, :, top : top + ch, left : left + cw]
    out = (h, w) if size is None else (size, size)
    resized = torch.nn.functional.interpolate(crop, size=out, mode="bilinear", antialias=True, align_corners=False)
    return resized[0].reshape(*lead, *out)


def random_flip(image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """``image`` [C, H, W] mirrored left-right with probability 1/2, drawn from ``g``."""
    return image.flip(-1) if float(torch.rand((), generator=g)) < 0.5 else image
