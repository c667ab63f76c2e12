"""Hugging Face ``datasets`` as training data, offline: a dataset saved to disk, a local imagefolder."""

from __future__ import annotations

import json

import pytest
import torch

from jepakit import create
from jepakit.config import UnknownChoiceError
from jepakit.train import train

from conftest import png, tiny_config

datasets = pytest.importorskip("datasets")
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 250, 0), (0, 250, 250), (250, 0, 250)] * 2


@pytest.fixture
def saved(tmp_path):
    """Twelve captioned, labelled images as a DatasetDict saved to disk; row 3 is a corrupt image."""
    images = [png(c) for c in COLOURS]
    images[3] = b"not an image"
    rows = {
        "image": [{"bytes": b, "path": None} for b in images],
        "text": [[f"colour {i}", f"picture {i}"] for i in range(len(images))],
        "label": [i % 3 for i in range(len(images))],
    }
    train_split = datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image())
    datasets.DatasetDict({"train": train_split}).save_to_disk(str(tmp_path / "saved"))
    return str(tmp_path / "saved")


def test_a_saved_dataset_reads_named_columns_and_counts_corrupt_images(saved):
    data = create("dataset", "hf", path=saved, caption_column="text", label_column="label", image_size=8)
    assert len(data) == 12
    first = data[0]
    assert first["image"].shape == (3, 8, 8) and first["captions"] == ["colour 0", "picture 0"]
    assert first["label"] == 0 and data[4]["label"] == 1
    assert torch.allclose(first["image"][0], torch.ones(8, 8)) and float(first["image"][1].max()) == 0.0
    assert data[3] is None and data.unreadable == 1
    assert data.captions(5) == ["colour 5", "picture 5"]


def test_bad_columns_and_splits_name_the_choices(saved, tmp_path):
    with pytest.raises(
        UnknownChoiceError, match=r"data.caption_column: unknown column 'caption'; valid choices: image, label, text"
    ):
        create("dataset", "hf", path=saved, image_size=8)
    with pytest.raises(UnknownChoiceError, match=r"data.split: unknown split 'test'; valid choices: train"):
        create("dataset", "hf", path=saved, split="test", caption_column="text", image_size=8)
    (tmp_path / "plain").mkdir()
    with pytest.raises(FileNotFoundError, match=r"data.path=imagefolder data.data_dir=FOLDER"):
        create("dataset", "hf", path=str(tmp_path / "plain"), image_size=8)


def test_a_local_imagefolder_with_metadata_loads_through_load_dataset(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    lines = []
    for i, colour in enumerate(COLOURS[:4]):
        (folder / f"{i}.png").write_bytes(png(colour))
        lines.append(json.dumps({"file_name": f"{i}.png", "caption": f"picture {i}"}))
    (folder / "metadata.jsonl").write_text("\n".join(lines))
    data = create(
        "dataset", "hf", path="imagefolder", data_dir=str(folder), cache_dir=str(tmp_path / "cache"), image_size=8
    )
    assert len(data) == 4
    assert sorted(data[i]["captions"][0] for i in range(4)) == [f"picture {i}" for i in range(4)]
    assert data[0]["image"].shape == (3, 8, 8)


def test_training_on_a_saved_dataset_resumes_exactly(saved, tmp_path):
    cfg = tiny_config(
        "tc-jepa",
        masker={"min_keep": 4},
        data={"type": "hf", "path": saved, "caption_column": "text"},
        train={"steps": 4, "batch_size": 4, "warmup_steps": 1},
    )
    lines: list[str] = []
    straight = train(cfg, tmp_path / "straight", progress=False, log=lines.append)
    train(cfg, tmp_path / "resumed", progress=False, until=2)
    resumed = train(cfg, tmp_path / "resumed", resume=True, progress=False)
    assert resumed["losses"] == straight["losses"][2:]
    for name, value in straight["model"].state_dict().items():
        assert torch.equal(value, resumed["model"].state_dict()[name]), name
    records = [json.loads(r) for r in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert records[-1]["unreadable_samples"] >= 1, "the corrupt row was read, skipped and counted"
