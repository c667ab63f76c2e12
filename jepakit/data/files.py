"""Real data on disk: captioned image folders (JSONL or CSV) and ImageFolder (WebDataset shards:
``shards.py``; Hugging Face datasets: ``hf.py``).

Problems are counted and reported, never silently dropped: a captions file that names
missing images is reported at construction with the count and the first few paths; a
malformed JSONL/CSV line is reported with its line number; an image that cannot be
decoded is skipped and counted when read (``on_error="skip"``, the default) or stops
the run naming the file (``on_error="fail"``). A sample that cannot be read comes back
as ``None``; the trainer skips it and counts it per epoch.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ..config import Config, MissingFileError, at_least, knob, resolved
from ..registry import register
from .base import DataError, DatasetConfig, ProbeSets

__all__ = [
    "CaptionedImages",
    "CaptionsConfig",
    "ImageFolder",
    "ImageFolderConfig",
    "caption_list",
    "decode_image",
]

OnError = Literal["skip", "fail"]
#: Image file extensions the data sets read (without the dot, as webdataset keys samples).
IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp", "bmp")


def decode_image(data: bytes | Path, size: int, where: str) -> torch.Tensor:
    """Decode to RGB, resize the shorter side to ``size`` and centre-crop: float [3, size, size] in [0, 1]."""
    from PIL import Image

    src = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(src) as opened:
        im = opened.convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
        pixels = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    return pixels.view(size, size, 3).permute(2, 0, 1).float() / 255.0


class ReportingDataset(torch.utils.data.Dataset):
    """Shared by the file datasets: the problems found, and reading with the error policy."""

    def __init__(self, on_error: OnError) -> None:
        self.on_error = on_error
        self.problems: list[str] = []  #: found at construction (missing files, malformed lines)
        self.unreadable = 0  #: samples that could not be decoded since construction

    @property
    def report(self) -> str:
        """One paragraph on what was skipped at construction ('' when nothing)."""
        return "\n".join(self.problems)

    def _malformed(self, path: Path, line: int, why: str) -> None:
        """A line of a list file that cannot be read: reported and skipped, or (``on_error="fail"``) an error."""
        message = f"{path}:{line}: malformed line ({why})"
        if self.on_error == "fail":
            raise DataError(message + " (data.on_error=fail; data.on_error=skip skips and counts it)")
        self.problems.append(message + "; skipped")

    def _skip(self, problem: str) -> None:
        """A sample that cannot be read: counted, or (``on_error="fail"``) an error naming ``problem``."""
        if self.on_error == "fail":
            raise DataError(problem + " (data.on_error=fail; data.on_error=skip skips and counts it)")
        self.unreadable += 1

    def _decode(self, read: Any, size: int, where: str) -> torch.Tensor | None:
        try:
            return decode_image(read(), size, where)
        except Exception as e:  # a corrupt, truncated or unsupported file
            self._skip(f"cannot decode image {where}: {e}")
            return None


def caption_list(text: bytes | str | Any, is_json: bool) -> list[str]:
    """Captions from a caption file's content: JSON ``{"caption": ...}`` or ``{"captions": [...]}``
    (bytes, text or already parsed), or text with one caption per non-empty line; malformed JSON is a
    ``ValueError``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if is_json:
        record = json.loads(text) if isinstance(text, str) else text
        if not isinstance(record, dict):
            raise ValueError(f"a caption JSON must be an object with caption or captions, not {type(record).__name__}")
        return [str(c) for c in (record.get("captions") or [record.get("caption", "")]) if c]
    return [line.strip() for line in str(text).splitlines() if line.strip()]


def missing_report(missing: list[str], total: int, source: str, policy: OnError, what: str = "images") -> str:
    """The problem line for the files a list names and the disk lacks, or (``policy="fail"``) the error."""
    first = ", ".join(missing[:5])
    message = f"{source}: {len(missing)} of {total} {what} are missing (first: {first})"
    if policy == "fail":
        raise FileNotFoundError(message)
    return message + "; they are skipped"


@dataclass(frozen=True)
class CaptionsConfig(DatasetConfig):
    captions: str = knob("", "captions file: .jsonl ({image, caption | captions}) or .csv (image, caption rows)")
    root: str = knob("", "folder the image paths are relative to (default: the captions file's folder)")
    image_size: int | None = knob(
        None, "decoded images are resized and centre-cropped to this side", follows="image_size", valid=at_least(1)
    )
    on_error: OnError = knob("skip", "missing or corrupt images and malformed lines: skip and count, or fail")

    def check_files(self) -> None:
        if not Path(self.captions).is_file():
            raise MissingFileError(f"data.captions={self.captions!r} does not exist")


@register("dataset", "captions", CaptionsConfig)
class CaptionedImages(ReportingDataset):
    """A folder of images with a JSONL or CSV captions file (one or many captions per image):
    ``{"image", "captions", "index"}``; images the file names but the folder lacks are skipped and counted.

    Example:
        >>> import json, tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> from jepakit import create
        >>> root = Path(tempfile.mkdtemp())
        >>> for name in ("a.png", "b.png"):
        ...     Image.new("RGB", (20, 20), "red").save(root / name)
        >>> rows = [{"image": "a.png", "captions": ["a red square", "red"]}, {"image": "b.png", "caption": "red too"}]
        >>> rows.append({"image": "gone.png", "caption": "never read"})
        >>> _ = (root / "captions.jsonl").write_text(chr(10).join(json.dumps(r) for r in rows))
        >>> data = create("dataset", "captions", captions=str(root / "captions.jsonl"), image_size=32)
        >>> len(data), tuple(data[0]["image"].shape), data[0]["captions"], data.captions(1)
        (2, (3, 32, 32), ['a red square', 'red'], ['red too'])
        >>> data.report.endswith("1 of 3 images are missing (first: gone.png); they are skipped")
        True
    """

    def __init__(self, cfg: CaptionsConfig) -> None:
        super().__init__(cfg.on_error)
        cfg.check_files()
        self.config = cfg
        path = Path(cfg.captions)
        self.root = Path(cfg.root) if cfg.root else path.parent
        captions: dict[str, list[str]] = defaultdict(list)
        rows = self._read_jsonl(path) if path.suffix == ".jsonl" else self._read_csv(path)
        for image, caps in rows:
            captions[image].extend(caps)
        present = [(k, v) for k, v in captions.items() if (self.root / k).is_file()]
        missing = [k for k in captions if not (self.root / k).is_file()]
        if missing:
            self.problems.append(missing_report(missing, len(captions), str(path), cfg.on_error))
        self.items = present

    def _read_jsonl(self, path: Path) -> list[tuple[str, list[str]]]:
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                image = record["image"]
                caps = record["captions"] if "captions" in record else [record["caption"]]
                if not isinstance(image, str) or not all(isinstance(c, str) for c in caps):
                    raise TypeError("image and captions must be strings")
            except (ValueError, KeyError, TypeError) as e:
                self._malformed(path, n, f"{type(e).__name__}: {e}")
                continue
            rows.append((image, list(caps)))
        return rows

    def _read_csv(self, path: Path) -> list[tuple[str, list[str]]]:
        rows = []
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "image" not in reader.fieldnames:
                raise ValueError(f"{path}: a CSV captions file needs a header with 'image' and 'caption' columns")
            for record in reader:
                n = reader.line_num
                if record.get("image") in (None, "") or record.get("caption") is None or None in record:
                    self._malformed(path, n, "expected the columns image, caption")
                    continue
                rows.append((record["image"], [record["caption"]] if record["caption"] else []))
        return rows

    def __len__(self) -> int:
        return len(self.items)

    def captions(self, index: int) -> list[str]:
        """The captions of sample ``index`` (no image is decoded)."""
        return self.items[index][1]

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        name, captions = self.items[index]
        path = self.root / name
        image = self._decode(lambda: path, resolved(self.config.image_size, "data.image_size"), str(path))
        if image is None:
            return None
        return {"image": image, "captions": captions, "index": index}


@dataclass(frozen=True)
class ImageFolderConfig(DatasetConfig):
    root: str = knob(
        "", "folder of class folders (root/CLASS/IMAGE), or of splits of them (root/train/CLASS/IMAGE, root/test/...)"
    )
    split: str = knob(
        "", "with split folders (root/train/, root/test/): the one read ('': train); the probes test on test/"
    )
    image_size: int | None = knob(
        None, "decoded images are resized and centre-cropped to this side", follows="image_size", valid=at_least(1)
    )
    on_error: OnError = knob("skip", "corrupt images: skip and count, or fail")

    def splits(self) -> list[str]:
        """The split folders under ``root`` that hold class folders (of train, val, test); [] for a plain
        folder of class folders (no ``root/train/`` of class folders)."""
        root = Path(self.root)
        found = [
            s for s in ("train", "val", "test") if (root / s).is_dir() and any(p.is_dir() for p in (root / s).iterdir())
        ]
        return found if "train" in found else []

    def folder(self) -> Path:
        """The folder of class folders read: ``root``, or its split folder."""
        return Path(self.root) / (self.split or "train") if self.splits() else Path(self.root)

    def probe_sets(self, trained: Config | None, images: int) -> ProbeSets:
        """With split folders the probes fit on train/ and test on test/, which pretraining did not read."""
        if "test" in self.splits() and (self.split or "train") != "test":
            return ProbeSets(self, self.replace(split="test"), True, f"held out: {Path(self.root) / 'test'}")
        return super().probe_sets(trained, images)

    def captions_missing(self) -> str | None:
        """Why this data has no captions (None when it has them): an image folder has class labels only."""
        return "it has no caption field: class folders give images and labels only"

    def check_files(self) -> None:
        if not self.root or not Path(self.root).is_dir():
            raise MissingFileError(f"data.root={self.root!r} is not a folder")
        if not any(p.is_dir() for p in Path(self.root).iterdir()):
            raise MissingFileError(f"data.root={self.root!r} has no class folders (root/CLASS/IMAGE)")
        splits = self.splits()
        if self.split and self.split not in splits:
            raise MissingFileError(
                f"data.split={self.split!r}: data.root={self.root!r} has "
                + (f"the split folders {splits}" if splits else "no split folders (root/train/CLASS/IMAGE)")
            )


@register("dataset", "imagefolder", ImageFolderConfig)
class ImageFolder(ReportingDataset):
    """Class-labelled images: ``{"image", "label", "captions": []}``; classes sorted by name.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> from jepakit import create
        >>> root = Path(tempfile.mkdtemp())
        >>> for name, colour in (("cats", "red"), ("dogs", "blue")):
        ...     (root / name).mkdir()
        ...     for i in range(2):
        ...         Image.new("RGB", (20, 20), colour).save(root / name / f"{i}.png")
        >>> _ = (root / "dogs" / "broken.png").write_bytes(b"not an image")
        >>> data = create("dataset", "imagefolder", root=str(root), image_size=32)
        >>> len(data), tuple(data[0]["image"].shape), data[0]["label"], data[2]["label"]  # resized to 32 px
        (5, (3, 32, 32), 0, 1)
        >>> data[4] is None, data.unreadable  # an unreadable file is skipped and counted, never a crash
        (True, 1)
    """

    def __init__(self, cfg: ImageFolderConfig) -> None:
        super().__init__(cfg.on_error)
        cfg.check_files()
        self.config = cfg
        root = cfg.folder()
        # the classes of every split, so that a class has one index in train/ and test/ alike
        folders = [Path(cfg.root) / s for s in cfg.splits()] or [root]
        self.classes = sorted({p.name for f in folders for p in f.iterdir() if p.is_dir()})
        self.items = [
            (p, c)
            for c, name in enumerate(self.classes)
            if (root / name).is_dir()
            for p in sorted((root / name).iterdir())
            if p.suffix.lower()[1:] in IMAGE_SUFFIXES
        ]

    def __len__(self) -> int:
        return len(self.items)

    def captions(self, index: int) -> list[str]:
        """No captions: class labels only."""
        return []

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        path, label = self.items[index]
        image = self._decode(lambda: path, resolved(self.config.image_size, "data.image_size"), str(path))
        if image is None:
            return None
        return {"image": image, "label": label, "captions": [], "index": index}
