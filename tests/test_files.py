"""Data on disk: captioned folders (JSONL/CSV), WebDataset shards, ImageFolder; problems counted and reported."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import torch

from jepakit import ConfigError, create
from jepakit.data.base import StreamingData
from jepakit.eval import evaluate
from jepakit.train import train

from conftest import png, tiny_config


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


def write_shard(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def stream(data, seed: int = 0) -> list:
    return [data.decode(raw, i) for i, raw in enumerate(data.epoch(seed))]


def test_webdataset_shards_by_brace_pattern_count_their_problems(tmp_path):
    for shard in range(2):
        write_shard(
            tmp_path / f"shard-{shard}.tar",
            {
                f"{shard}0.jpg": png((200, 10, 10), fmt="JPEG"),
                f"{shard}0.txt": b"a red square\nred",
                f"{shard}1.png": png((10, 200, 10)),
                f"{shard}1.json": json.dumps({"caption": "green"}).encode(),
                f"{shard}2.jpg": png((0, 0, 0), fmt="JPEG"),  # no caption
                f"{shard}3.jpg": b"corrupt",
                f"{shard}3.txt": b"broken",
                f"{shard}4.png": png((10, 10, 200)),
                f"{shard}4.json": b'{"caption": "blue',  # malformed JSON
                f"{shard}5.png": png((10, 10, 200)),
                f"{shard}5.json": b'["not", "an", "object"]',
            },
        )
    before = sorted(p.name for p in tmp_path.iterdir())
    data = create(
        "dataset",
        "webdataset",
        shards=(str(tmp_path / "shard-{0..1}.tar"),),
        image_size=12,
        shuffle_shards=False,
        shuffle_buffer=0,
    )
    assert len(data) == 12 and isinstance(data, StreamingData)
    samples = stream(data)
    assert samples[0]["captions"] == ["a red square", "red"] and samples[0]["image"].shape == (3, 12, 12)
    assert samples[1]["captions"] == ["green"] and samples[7]["captions"] == ["green"]
    assert [s is None for s in samples] == [False, False, True, True, True, True] * 2
    assert data.unreadable == 8, "no caption, a corrupt image, malformed and non-object JSON: counted, per shard"
    assert data.captions(6) == ["a red square", "red"] and data.captions(4) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing was unpacked"
    strict = create(
        "dataset",
        "webdataset",
        shards=(str(tmp_path / "shard-0.tar"),),
        shuffle_buffer=0,
        on_error="fail",
        image_size=8,
    )
    with pytest.raises(ValueError, match=r"shard-0.tar:02 has no caption"):
        stream(strict)
    with pytest.raises(ValueError, match=r"shard-0.tar:04 has an unreadable caption file"):
        [strict.decode(raw, i) for i, raw in enumerate(strict.epoch(0)) if raw["__key__"] not in ("02", "03")]


@pytest.fixture
def shards(tmp_path):
    """Three shards of five captioned images each: ``shard-{000..002}.tar``."""
    for s in range(3):
        members = {}
        for i in range(5):
            members[f"s{s}_{i}.png"] = png((80 * s, 50 * i, 120))
            members[f"s{s}_{i}.txt"] = f"shard {s} picture {i}".encode()
        write_shard(tmp_path / f"shard-{s:03d}.tar", members)
    return str(tmp_path / "shard-{000..002}.tar")


def keys(data, seed: int) -> list[str]:
    return [raw["__key__"] for raw in data.epoch(seed)]


def test_webdataset_order_is_a_pure_function_of_the_seed(shards):
    data = create("dataset", "webdataset", shards=(shards,), shuffle_buffer=4, image_size=8)
    assert len(data) == 15
    first = keys(data, 0)
    assert sorted(first) == sorted(f"s{s}_{i}" for s in range(3) for i in range(5)), "each sample once an epoch"
    assert keys(data, 0) == first, "the same seed, the same stream"
    assert keys(data, 1) != first
    plain = create("dataset", "webdataset", shards=(shards,), shuffle_shards=False, shuffle_buffer=0, image_size=8)
    assert keys(plain, 0) == keys(plain, 5) == [f"s{s}_{i}" for s in range(3) for i in range(5)]


def test_webdataset_a_truncated_shard_is_counted_and_the_epoch_keeps_its_length(shards, tmp_path):
    path = tmp_path / "shard-001.tar"
    with tarfile.open(path) as tar:
        cut = tar.getmember("s1_2.png").offset_data + 10  # inside the third image
    path.write_bytes(path.read_bytes()[:cut])
    data = create("dataset", "webdataset", shards=(shards,), shuffle_buffer=0, shuffle_shards=False, image_size=8)
    assert "shard-001.tar: unreadable after" in data.report
    samples = stream(data)
    assert len(samples) == len(data) == 12, "the shard's two whole samples are counted"
    assert all(s is not None for s in samples) and data.unreadable == 0
    promised = create("dataset", "webdataset", shards=(shards,), samples=15, shuffle_buffer=4, image_size=8)
    samples = stream(promised)  # a stream that ends early (a remote shard cut in transit) is padded
    assert len(samples) == 15 and sum(s is None for s in samples) == promised.unreadable == 3


def test_webdataset_missing_shards_and_remote_without_a_count_are_config_errors(tmp_path, shards):
    with pytest.raises(FileNotFoundError, match=r"2 of 2 shards do not exist"):
        create("dataset", "webdataset", shards=(str(tmp_path / "none-{0..1}.tar"),), image_size=8)
    with pytest.raises(ConfigError, match=r"data.samples=N"):
        create("dataset", "webdataset", shards=("https://example.org/train-{000..009}.tar",), image_size=8)
    with pytest.warns(DeprecationWarning, match="renamed 'webdataset'"):
        legacy = create("dataset", "tar", shards=str(tmp_path / "shard-*.tar"), image_size=8)
    assert len(legacy) == 15, "the old name and a single glob still read"
    with pytest.raises(ConfigError, match=r"probe data: WebDataset streams its samples.*data=imagefolder"):
        evaluate(None, legacy)


@pytest.mark.parametrize("accum", [1, 2])
def test_training_on_webdataset_resumes_exactly(shards, tmp_path, accum):
    cfg = tiny_config(
        "tc-jepa",
        masker={"min_keep": 4},
        data={"type": "webdataset", "shards": (shards,), "shuffle_buffer": 6},
        train={"steps": 5, "batch_size": 4, "warmup_steps": 1, "accum_steps": accum},
    )
    straight = train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "resumed", progress=False, until=2)  # mid-epoch: 3 steps an epoch
    resumed = train(cfg, tmp_path / "resumed", resume=True, progress=False)
    assert resumed["losses"] == straight["losses"][2:]
    for name, value in straight["model"].state_dict().items():
        assert torch.equal(value, resumed["model"].state_dict()[name]), name


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
