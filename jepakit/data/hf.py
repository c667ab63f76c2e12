"""Hugging Face ``datasets``: image–text corpora from the hub, a folder ``save_to_disk`` wrote,
or a local ``imagefolder`` with a ``metadata.jsonl``/``.csv`` of captions.

The data set is memory-mapped Arrow with random access, so the trainer's pipeline reads
it by index like any map-style data set (seeded order, exact resume). Images are read
undecoded from the image column and decoded by the worker threads with the same resize,
crop and error policy as the other formats: a corrupt image is skipped and counted.
"""

from __future__ import annotations

import importlib.util
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config, ConfigError, MissingFileError, at_least, knob, resolved, unknown
from ..registry import register
from .base import DatasetConfig, ProbeSets
from .files import OnError, ReportingDataset

__all__ = ["HFDataset", "HFDatasetConfig"]


@dataclass(frozen=True)
class HFDatasetConfig(DatasetConfig):
    path: str = knob(
        "", "a folder written by save_to_disk, a hub id (user/name), or a builder (imagefolder) with data_dir"
    )
    data_dir: str = knob("", "load_dataset's data_dir: the folder a builder such as imagefolder reads")
    subset: str = knob("", "the configuration (subset) of a hub dataset that has several")
    revision: str = knob("", "a hub dataset's git revision (a tag or commit), for a reproducible run")
    split: str = knob("train", "the split to read")
    cache_dir: str = knob("", "where load_dataset keeps its Arrow cache; '': the datasets default (HF_DATASETS_CACHE)")
    image_column: str = knob("image", "column of images (an Image feature, bytes or paths)")
    caption_column: str = knob("caption", "column of captions: a string or a list of strings per row; '': none")
    label_column: str = knob("", "column of integer class labels (for probes); '': none")
    image_size: int | None = knob(
        None, "decoded images are resized and centre-cropped to this side", follows="image_size", valid=at_least(1)
    )
    on_error: OnError = knob("skip", "corrupt images: skip and count, or fail")

    def captions_missing(self) -> str | None:
        """Why this data has no captions (None when it has them)."""
        return "data.caption_column is '' (no caption field)" if not self.caption_column else None

    def probe_sets(self, trained: Config | None, images: int) -> ProbeSets:
        """A ``save_to_disk`` folder with a test split: the probes test on it (pretraining read ``split``)."""
        listed = Path(self.path) / "dataset_dict.json"
        if self.split != "test" and listed.is_file() and "test" in json.loads(listed.read_text()).get("splits", []):
            return ProbeSets(self, self.replace(split="test"), True, f"held out: the test split of {self.path}")
        return super().probe_sets(trained, images)

    def saved(self) -> bool:
        """Whether ``path`` is a folder written by ``save_to_disk`` (a Dataset or a DatasetDict)."""
        folder = Path(self.path)
        return any((folder / f).is_file() for f in ("state.json", "dataset_dict.json"))

    def check_files(self) -> None:
        if importlib.util.find_spec("datasets") is None:
            raise ConfigError('data=hf needs Hugging Face datasets, which is not installed: pip install "jepakit[hf]"')
        if not self.path:
            raise ConfigError("data.path is empty: give a save_to_disk folder, a hub id, or imagefolder")
        if self.data_dir and not Path(self.data_dir).is_dir():
            raise MissingFileError(f"data.data_dir={self.data_dir!r} is not a folder")
        if Path(self.path).is_dir() and not self.saved() and not self.data_dir:
            raise MissingFileError(
                f"data.path={self.path!r} is a folder that save_to_disk did not write (no state.json or "
                "dataset_dict.json); for a folder of images give data.path=imagefolder data.data_dir=FOLDER"
            )


@register("dataset", "hf", HFDatasetConfig)
class HFDataset(ReportingDataset):
    """A Hugging Face dataset's split: ``{"image", "captions", "index"}`` (and ``"label"``) per row.

    Example:
        >>> import tempfile
        >>> import datasets
        >>> from PIL import Image
        >>> from jepakit import create
        >>> datasets.disable_progress_bars()
        >>> folder = tempfile.mkdtemp()
        >>> rows = {"image": [Image.new("RGB", (20, 20), c) for c in ("red", "blue")], "caption": ["red", "blue"]}
        >>> columns = {"image": datasets.Image(), "caption": datasets.Value("string"), "label": datasets.Value("int64")}
        >>> datasets.Dataset.from_dict({**rows, "label": [0, 1]}, datasets.Features(columns)).save_to_disk(folder)
        >>> data = create("dataset", "hf", path=folder, label_column="label", image_size=32)  # a saved dataset, or a hub id
        >>> len(data), tuple(data[1]["image"].shape), data[1]["captions"], data[1]["label"]
        (2, (3, 32, 32), ['blue'], 1)
    """

    def __init__(self, cfg: HFDatasetConfig) -> None:
        import datasets

        super().__init__(cfg.on_error)
        cfg.check_files()
        self.config = cfg
        if cfg.saved():
            loaded = datasets.load_from_disk(cfg.path)
            if isinstance(loaded, datasets.DatasetDict):
                if cfg.split not in loaded:
                    raise unknown("split", cfg.split, loaded.keys(), "data.split")
                loaded = loaded[cfg.split]
        else:  # a hub id or a builder: the same call either way
            loaded = datasets.load_dataset(
                cfg.path,
                cfg.subset or None,
                data_dir=cfg.data_dir or None,
                revision=cfg.revision or None,
                split=cfg.split,
                cache_dir=cfg.cache_dir or None,
            )
        columns = {
            "image_column": cfg.image_column,
            "caption_column": cfg.caption_column,
            "label_column": cfg.label_column,
        }
        for knob_name, column in columns.items():
            if column and column not in loaded.column_names:
                raise unknown("column", column, loaded.column_names, f"data.{knob_name}")
        if isinstance(loaded.features[cfg.image_column], datasets.Image):  # bytes and path, decoded by us
            loaded = loaded.cast_column(cfg.image_column, datasets.Image(decode=False))
        self.rows = loaded

    def __len__(self) -> int:
        return len(self.rows)

    def captions(self, index: int) -> list[str]:
        """The captions of row ``index`` (no image is read)."""
        column = self.config.caption_column
        if not column:
            return []
        value = self.rows[index][column]
        return [value] if isinstance(value, str) else [str(c) for c in (value or [])]

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        cfg = self.config
        row = self.rows[index]
        image = row[cfg.image_column]
        where = f"{cfg.path}[{cfg.split}][{index}]"
        pixels = self._decode(lambda: _image_source(image), resolved(cfg.image_size, "data.image_size"), where)
        if pixels is None:
            return None
        sample = {"image": pixels, "captions": self.captions(index), "index": index}
        if cfg.label_column:
            sample["label"] = int(row[cfg.label_column])
        return sample


def _image_source(value: Any) -> bytes | Path:
    """What an image cell holds, for ``decode_image``: bytes, or the path of the file."""
    if isinstance(value, dict):  # an Image feature read with decode=False
        return value["bytes"] if value.get("bytes") is not None else Path(value["path"])
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return Path(value)
    if hasattr(value, "save"):  # a PIL image (a column the dataset decodes itself)
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    raise TypeError(f"an image cell of type {type(value).__name__} (expected an image, bytes or a path)")
