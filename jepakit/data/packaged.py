"""Real images that install with a package: no download, a fixed held-out test split.

- ``digits``: scikit-learn's 1,797 handwritten digits (8 x 8, 17 grey levels, 10 classes; the UCI
  "Optical Recognition of Handwritten Digits" test set, CC BY 4.0, shipped inside scikit-learn).
- ``faces``: scikit-image's subset of Labeled Faces in the Wild: 100 faces and 100 non-faces cropped
  from the same photographs' backgrounds (25 x 25 grey), face / not a face.
- ``textures``: crops of scikit-image's three CC0 texture photographs (brick, grass, gravel, 512 x 512
  grey), which texture; train crops come from the top three quarters of each photograph, test crops
  from the bottom quarter, so that no test pixel was ever in a training crop.

Each is a ``split`` (``train`` or ``test``) of a fixed, stratified division (seed 0, the same for every
run), so that the probes test on images pretraining never read (``probe_sets``). Images are grey,
given as 3 equal channels (the encoders read RGB) in [0, 1], resized to ``image_size`` with
antialiasing, and labelled ``label``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from ..config import Config, ConfigError, at_least, each, knob, resolved
from ..registry import register
from ..transforms import mix_seed
from .base import DatasetConfig, ProbeSets, stratified_split

__all__ = ["Digits", "DigitsConfig", "Faces", "FacesConfig", "PackagedImages", "Textures", "TexturesConfig"]

Split = Literal["train", "test"]
#: The share of each fixed division held out for the test split.
TEST_SHARE = 0.2


@dataclass(frozen=True)
class PackagedConfig(DatasetConfig, abc.ABC):
    """What the packaged sets share: the split read and the size images are resized to."""

    split: Split = knob("train", "train (what pretraining reads) or test (held out, what the probes test on)")
    image_size: int | None = knob(
        None, "images are resized (antialiased) to this side", follows="image_size", valid=at_least(1)
    )

    #: classes, in label order
    classes: ClassVar[tuple[str, ...]] = ()

    def probe_sets(self, trained: Config | None, images: int) -> ProbeSets:
        """The probes fit on the train split and test on the test split, which pretraining never read."""
        if self.split == "train":
            return ProbeSets(self, self.replace(split="test"), True, f"held out: {self.name}'s test split")
        return super().probe_sets(trained, images)

    @abc.abstractmethod
    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The split's grey images uint8 [N, H, W] and labels long [N]."""


class PackagedImages(torch.utils.data.Dataset):
    """``data[i]`` -> {"image": float [3, S, S] in [0, 1], "label": int, "captions": [], "index": i}."""

    def __init__(self, cfg: PackagedConfig) -> None:
        cfg.check_complete()
        self.config = cfg
        self.side = resolved(cfg.image_size, "data.image_size")
        self.images, self.labels = cfg.load()
        self.classes = cfg.classes

    def __len__(self) -> int:
        return len(self.labels)

    def captions(self, index: int) -> list[str]:
        """No captions: class labels only."""
        return []

    def __getitem__(self, index: int) -> dict[str, Any]:
        grey = self.images[index].float().div(255)[None, None]
        if grey.shape[-1] != self.side:
            grey = F.interpolate(grey, size=(self.side, self.side), mode="bilinear", antialias=True)
        image = grey[0].clamp(0, 1).expand(3, -1, -1).contiguous()
        return {"image": image, "label": int(self.labels[index]), "captions": [], "index": index}


def fixed_split(labels: torch.Tensor, split: Split) -> torch.Tensor:
    """The rows of ``split`` in the fixed, stratified division (seed 0) that holds out ``TEST_SHARE``."""
    test = round(len(labels) * TEST_SHARE)
    train_rows, test_rows = stratified_split(labels, (len(labels) - test, test), seed=0)
    return (train_rows if split == "train" else test_rows).sort().values


@cache
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images).mul(255 / 16).round().to(torch.uint8)  # 17 grey levels
    return images, torch.from_numpy(digits.target).long()


@dataclass(frozen=True)
class DigitsConfig(PackagedConfig):
    classes: ClassVar[tuple[str, ...]] = tuple(str(d) for d in range(10))

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = _digits()
        rows = fixed_split(labels, self.split)
        return images[rows], labels[rows]


@cache
def _faces() -> tuple[torch.Tensor, torch.Tensor]:
    import numpy as np

    with resources.as_file(resources.files("skimage") / "data" / "lfw_subset.npy") as path:
        faces = np.load(path)  # float [200, 25, 25] in [0, 1]: 100 faces, then 100 non-faces
    images = torch.from_numpy(faces).mul(255).round().to(torch.uint8)
    return images, torch.tensor([0] * 100 + [1] * 100)


@dataclass(frozen=True)
class FacesConfig(PackagedConfig):
    classes: ClassVar[tuple[str, ...]] = ("face", "not a face")

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = _faces()
        rows = fixed_split(labels, self.split)
        return images[rows], labels[rows]


@cache
def _texture(name: str) -> torch.Tensor:
    """One of scikit-image's texture photographs, uint8 [512, 512]."""
    from PIL import Image

    with resources.as_file(resources.files("skimage") / "data" / f"{name}.png") as path, Image.open(path) as im:
        grey = im.convert("L")
        return torch.frombuffer(bytearray(grey.tobytes()), dtype=torch.uint8).view(grey.height, grey.width)


@dataclass(frozen=True)
class TexturesConfig(PackagedConfig):
    crop: int = knob(64, "side of a crop, in the photographs' pixels", valid=at_least(8))
    crops_per_class: tuple[int, int] = knob(
        (400, 100), "crops of each texture in the train and test splits", valid=each(at_least(1))
    )

    classes: ClassVar[tuple[str, ...]] = ("brick", "grass", "gravel")

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop ``i`` is of texture ``i % 3``, at a position seeded by (split, i): train crops lie in the
        top three quarters of the photograph, test crops in the bottom quarter."""
        train = self.split == "train"
        n = self.crops_per_class[0 if train else 1] * len(self.classes)
        crops, labels = [], []
        for i in range(n):
            texture = _texture(self.classes[i % len(self.classes)])
            cut = texture.shape[0] * 3 // 4
            top, bottom = (0, cut) if train else (cut, texture.shape[0])
            g = torch.Generator().manual_seed(mix_seed(int(train), i))
            y = top + int(torch.randint(0, bottom - top - self.crop + 1, (), generator=g))
            x = int(torch.randint(0, texture.shape[1] - self.crop + 1, (), generator=g))
            crops.append(texture[y : y + self.crop, x : x + self.crop])
            labels.append(i % len(self.classes))
        return torch.stack(crops), torch.tensor(labels)

    def validate(self) -> None:
        if self.crop > 128:
            raise ConfigError(f"data.crop={self.crop} must be at most 128 (the test quarter of a photograph)")


@register("dataset", "digits", DigitsConfig)
class Digits(PackagedImages):
    """scikit-learn's handwritten digits, 10 classes.

    Example:
        >>> from jepakit import create
        >>> train, test = (create("dataset", "digits", image_size=64, split=s) for s in ("train", "test"))
        >>> len(train), len(test), tuple(train[0]["image"].shape), train[0]["label"]  # [3, H, W] in [0, 1]
        (1438, 359, (3, 64, 64), 0)
    """


@register("dataset", "faces", FacesConfig)
class Faces(PackagedImages):
    """scikit-image's LFW subset: face or not a face.

    Example:
        >>> from jepakit import create
        >>> faces = create("dataset", "faces", image_size=64)
        >>> len(faces), tuple(faces[0]["image"].shape), faces.config.classes
        (160, (3, 64, 64), ('face', 'not a face'))
    """


@register("dataset", "textures", TexturesConfig)
class Textures(PackagedImages):
    """Crops of scikit-image's brick, grass and gravel photographs: which texture.

    Example:
        >>> from jepakit import create
        >>> textures = create("dataset", "textures", image_size=64)
        >>> len(textures), tuple(textures[0]["image"].shape)  # 400 crops of each texture to train on
        (1200, (3, 64, 64))
    """
