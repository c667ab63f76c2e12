"""The probes' splits: seeded, class-stratified, sized from what the data has, and held out where the
data has a held-out part (a folder's test/ split, new draws of generated data, --test-data)."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit import ConfigError
from jepakit.cli import main
from jepakit.data.files import ImageFolder, ImageFolderConfig
from jepakit.eval import evaluate, probe_data
from jepakit.eval.splits import DEFAULT_SPLITS, chosen_rows, split_sizes, stratified_split

from conftest import tiny_config


@settings(max_examples=60, deadline=None)
@given(
    classes=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    shares=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)),
    seed=st.integers(0, 2**16),
)
def test_a_stratified_split_partitions_the_rows_and_spreads_every_class_in_proportion(classes, shares, seed):
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(classes)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]
    n = len(labels)
    a = max(0, n * shares[0] // sum(shares))
    b = max(0, n * shares[1] // sum(shares))
    sizes = (a, b, n - a - b)
    parts = stratified_split(labels, sizes, seed)
    assert [len(p) for p in parts] == list(sizes), "each part exactly its size"
    assert sorted(torch.cat(parts).tolist()) == list(range(n)), "every row once"
    for c, count in enumerate(classes):
        for part, size in zip(parts, sizes, strict=True):
            assert abs(int((labels[part] == c).sum()) - count * size / n) < 2, "each class in proportion"
    again = stratified_split(labels, sizes, seed)
    assert all(torch.equal(p, q) for p, q in zip(parts, again, strict=True)), "seeded"


def test_a_class_sorted_folder_gets_every_class_in_every_split():
    """The issue's case: 200 images sorted by class; index order put class 9 in val/test only."""
    labels = torch.arange(10).repeat_interleave(20)
    parts = stratified_split(labels, (120, 20, 60), 0)
    assert [torch.bincount(labels[p], minlength=10).tolist() for p in parts] == [[12] * 10, [2] * 10, [6] * 10]


def test_split_sizes_follow_what_the_data_has_and_refuse_what_it_does_not():
    assert split_sizes(10_000, None, None, None, None) == DEFAULT_SPLITS
    assert split_sizes(1300, None, None, None, None) == (600, 100, 600), "the defaults' shares of smaller data"
    assert split_sizes(200, None, 120, None, None) == (120, 11, 69), "the unset sizes share what is left"
    assert split_sizes(1000, 360, None, None, None) == (858, 142, 360), "a separate test set is read whole"
    with pytest.raises(ConfigError, match=r"train=300 val=20 test=60 need more .* \(200 images\)"):
        split_sizes(200, None, 300, 20, 60)
    with pytest.raises(ConfigError, match=r"test=500 .*1000 images to fit on and 360 to test on"):
        split_sizes(1000, 360, None, None, 500)
    with pytest.raises(ConfigError, match=r"--val=0 must be at least 1"):
        split_sizes(1000, None, None, 0, None)
    assert chosen_rows(10, 10, 3).tolist() == list(range(10))
    rows = chosen_rows(100, 10, 3)
    assert len(set(rows.tolist())) == 10 and rows.tolist() == sorted(rows.tolist()) and rows.max() > 10


def write_folder(root, classes: int, per_class: int, seed: int = 0) -> None:
    """Class folders of small PNGs, each class its own colour."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = torch.rand(16, 16, 3, generator=g) * 0.3
            pixels[..., c % 3] += 0.1 + 0.6 * c / classes
            Image.fromarray((pixels * 255).byte().numpy()).save(root / f"class{c}" / f"{i}.png")


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return tiny_config("ijepa", image_size=16, encoder={"depth": 1}).encoder.build().eval()


def test_a_class_sorted_image_folder_probes_with_small_splits(encoder, tmp_path):
    write_folder(tmp_path, classes=4, per_class=12)
    data = ImageFolder(ImageFolderConfig(root=str(tmp_path), image_size=16))
    out = evaluate(encoder, data, train=24, val=8, test=16, probes=("linear", "knn"), lidar_views=None)
    assert out["n"] == {"train": 24, "val": 8, "test": 16}
    labels = torch.tensor([label for _, label in data.items])
    rows = out["details"]["test_rows"]
    assert torch.bincount(labels[rows], minlength=4).tolist() == [4, 4, 4, 4], "the test split stratified"
    assert set(out["linear"]) == {"label"}


def test_a_folder_with_train_and_test_splits_is_probed_on_its_held_out_test(encoder, tmp_path):
    write_folder(tmp_path / "train", classes=3, per_class=8)
    write_folder(tmp_path / "test", classes=3, per_class=4, seed=1)
    trained = ImageFolderConfig(root=str(tmp_path), image_size=16)
    assert len(trained.build()) == 24, "training reads train/"
    sets = trained.probe_sets(trained, 100)
    assert sets.held_out and sets.test == trained.replace(split="test") and "test" in sets.why
    test = sets.test.build()
    out = evaluate(encoder, trained.build(), test_data=test, probes=("knn",), lidar_views=None)
    assert out["n"] == {"train": 21, "val": 3, "test": 12}, "every image read: the test split the whole test/"
    assert out["details"]["test_data"] is test and sorted(out["details"]["test_rows"].tolist()) == list(range(12))
    flat = ImageFolderConfig(root=str(tmp_path / "train"), image_size=16)
    sets = flat.probe_sets(flat.replace(image_size=32), 100)
    assert sets.held_out is False and sets.test is None and "among those pretraining read" in sets.why
    assert flat.probe_sets(None, 100).held_out is None, "not known when the training data is not"
    with pytest.raises(Exception, match=r"data.split='val'.*the split folders \['train', 'test'\]"):
        trained.replace(split="val").build()


def test_probe_data_says_where_the_test_images_come_from(encoder, tmp_path):
    cfg = tiny_config("ijepa", image_size=16, data={"size": 8, "seed": 3})
    sets = probe_data(cfg, encoder, images=120)
    assert sets.fit == cfg.data.replace(seed=4, size=120) and sets.held_out, "new draws, as many as the splits need"
    assert probe_data(cfg, encoder, ["data.size=50"], images=120).fit.size == 50, "an edit wins"
    write_folder(tmp_path / "other", classes=2, per_class=4)
    swapped = probe_data(cfg, encoder, ["data=imagefolder", f"data.root={tmp_path / 'other'}", "data.image_size=16"])
    assert swapped.held_out is None and "unknown" in swapped.why
    given_test = probe_data(cfg, encoder, test_data=[str(tmp_path / "other")])
    assert given_test.held_out and given_test.test == ImageFolderConfig(root=str(tmp_path / "other"), image_size=16)
    assert probe_data(None, encoder).held_out is None, "an export does not say what it trained on"


def test_the_probe_command_tests_on_the_held_out_split_and_says_so(tmp_path, capsys):
    """A run trained on a folder with train/ and test/ is probed on test/; a run trained on a plain folder
    is probed on its own images, and its table says NOT held out."""
    from jepakit.train import train

    write_folder(tmp_path / "data" / "train", classes=2, per_class=8)
    write_folder(tmp_path / "data" / "test", classes=2, per_class=4, seed=1)
    steps = {"steps": 1, "batch_size": 4, "warmup_steps": 0, "loggers": ["jsonl"], "num_workers": 0}
    for name, root in (("split", tmp_path / "data"), ("plain", tmp_path / "data" / "train")):
        data = {"type": "imagefolder", "root": str(root)}
        cfg = tiny_config("ijepa", image_size=16, masker={"min_keep": 2}, data=data, train=steps)
        train(cfg, tmp_path / name, progress=False)
        assert main(["probe", str(tmp_path / name), "--probes", "knn", "--floor-seeds", "0", "--quiet"]) == 0
    split = json.loads((tmp_path / "split" / "probe.json").read_text())
    plain = json.loads((tmp_path / "plain" / "probe.json").read_text())
    assert split["held_out"] is True and split["n"]["test"] == 8, "the whole test/ folder"
    assert plain["held_out"] is False and "NOT held out" in plain["held_out_why"]
    out = " ".join(capsys.readouterr().out.split())  # the table's title wraps at the table's width
    assert "(8 test images, held out)" in out and "test images, NOT held out)" in out
