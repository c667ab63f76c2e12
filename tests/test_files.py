"""Data on disk: captioned folders (JSONL/CSV), tar shards, ImageFolder; problems counted and reported."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import torch
from PIL import Image

from jepakit import create
from jepakit.train import train

from conftest import tiny_config


def png(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "img").mkdir()
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        (tmp_path / "img" / f"{i}.png").write_bytes(png(colour))
    (tmp_path / "img" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    lines = [
        json.dumps({"image": "img/0.png", "caption": "a red picture"}),
        json.dumps({"image": "img/1.png", "captions": ["green", "all green"]}),
        "{this is not json",
        json.dumps({"image": "img/missing.png", "caption": "gone"}),
        json.dumps({"image": "img/2.png", "caption": "blue"}),
        json.dumps({"image": "img/broken.jpg", "caption": "broken"}),
        json.dumps({"image": "img/0.png", "caption": "red again"}),
    ]
    (tmp_path / "captions.jsonl").write_text("\n".join(lines))
    return tmp_path


def test_jsonl_folder_reads_groups_and_reports(folder):
    data = create("dataset", "captions", captions=str(folder / "captions.jsonl"), image_size=16)
    assert len(data) == 4
    assert "captions.jsonl:3: malformed line" in data.report
    assert "1 of 5 images are missing (first: img/missing.png)" in data.report
    first = data[0]
    assert first["image"].shape == (3, 16, 16) and first["captions"] == ["a red picture", "red again"]
    assert torch.allclose(first["image"][0], torch.ones(16, 16)) and float(first["image"][1].max()) == 0.0
    assert data[3] is None and data.unreadable == 1, "a corrupt image is skipped and counted"


def test_fail_policy_names_the_problem(folder):
    path = str(folder / "captions.jsonl")
    with pytest.raises(ValueError, match=r"captions.jsonl:3"):
        create("dataset", "captions", captions=path, on_error="fail", image_size=16)
    good = folder / "good.jsonl"
    good.write_text(json.dumps({"image": "img/broken.jpg", "caption": "x"}))
    data = create("dataset", "captions", captions=str(good), on_error="fail", image_size=16)
    with pytest.raises(ValueError, match=r"broken.jpg"):
        data[0]
    missing = folder / "missing.jsonl"
    missing.write_text(json.dumps({"image": "img/nope.png", "caption": "x"}))
    with pytest.raises(FileNotFoundError, match=r"1 of 1 images are missing"):
        create("dataset", "captions", captions=str(missing), on_error="fail", image_size=16)


def test_csv_rows_group_by_image(folder):
    (folder / "captions.csv").write_text(
        "image,caption\nimg/0.png,a red one\nimg/0.png,bright red\nimg/1.png,green\nimg/2.png\n"
    )
    data = create("dataset", "captions", captions=str(folder / "captions.csv"), image_size=8)
    assert len(data) == 2 and data[0]["captions"] == ["a red one", "bright red"]
    assert "captions.csv:5: malformed line" in data.report


def test_tar_shards_stream_without_unpacking(tmp_path):
    for shard in range(2):
        with tarfile.open(tmp_path / f"shard-{shard}.tar", "w") as tar:
            members = {
                f"{shard}0.jpg": png((200, 10, 10), fmt="JPEG"),
                f"{shard}0.txt": b"a red square\nred",
                f"{shard}1.png": png((10, 200, 10)),
                f"{shard}1.json": json.dumps({"caption": "green"}).encode(),
                f"{shard}2.jpg": png((0, 0, 0), fmt="JPEG"),  # no caption
                f"{shard}3.jpg": b"corrupt",
                f"{shard}3.txt": b"broken",
            }
            for name, payload in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    before = sorted(p.name for p in tmp_path.iterdir())
    data = create("dataset", "tar", shards=str(tmp_path / "shard-*.tar"), image_size=12)
    assert len(data) == 6 and "2 samples have an image but no caption" in data.report
    samples = [data[i] for i in range(len(data))]
    assert samples[0]["captions"] == ["a red square", "red"] and samples[0]["image"].shape == (3, 12, 12)
    assert samples[1]["captions"] == ["green"]
    assert samples[2] is None and data.unreadable == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing was unpacked"


def test_imagefolder_labels(tmp_path):
    for cls, colour in (("cat", (1, 2, 3)), ("ant", (4, 5, 6))):
        (tmp_path / cls).mkdir()
        for i in range(2):
            (tmp_path / cls / f"{i}.png").write_bytes(png(colour))
    data = create("dataset", "imagefolder", root=str(tmp_path), image_size=8)
    assert data.classes == ["ant", "cat"] and len(data) == 4
    assert [data[i]["label"] for i in range(4)] == [0, 0, 1, 1]


def test_training_on_a_captioned_folder_skips_and_counts(folder):
    cfg = tiny_config(
        "tc-jepa",
        masker={"min_keep": 4},
        data={"type": "captions", "captions": str(folder / "captions.jsonl")},
        train={"steps": 2, "batch_size": 4, "warmup_steps": 1},
    )
    assert cfg.data.image_size == 32, "the data follow the model's image size"
    lines = []
    result = train(cfg, folder / "run", progress=False, log=lines.append)
    assert len(result["losses"]) == 2
    assert any("missing" in line for line in lines)
    records = [json.loads(r) for r in (folder / "run" / "log.jsonl").read_text().splitlines()]
    assert records[-1]["unreadable_samples"] >= 1
