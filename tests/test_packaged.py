"""The real image sets that install with a package: fixed, stratified, disjoint splits, the images the
packages hold, and probes that test on the held-out split."""

from __future__ import annotations

import pytest
import torch

from jepakit import create
from jepakit.data import packaged

SETS = {"digits": (1797, 10), "faces": (200, 2), "textures": (1500, 3)}


@pytest.mark.parametrize("name", sorted(SETS))
def test_the_splits_are_fixed_disjoint_stratified_and_the_test_split_is_held_out(name):
    total, classes = SETS[name]
    train, test = (create("dataset", name, image_size=16, split=split) for split in ("train", "test"))
    assert len(train) + len(test) == total
    assert len(test) == pytest.approx(total * packaged.TEST_SHARE, abs=1)
    for data in (train, test):
        counts = torch.bincount(data.labels, minlength=classes).float()
        share = counts / counts.sum()
        assert torch.allclose(share, torch.full((classes,), 1 / classes), atol=0.05), "every class in each split"
    again = create("dataset", name, image_size=16, split="test")
    assert torch.equal(again.images, test.images), "the same test split for every run"
    if name != "textures":  # the crops are cut from regions apart: tested below
        seen = {bytes(x.numpy()) for x in train.images}
        assert not any(bytes(x.numpy()) in seen for x in test.images), "no test image is a training image"
    sample = train[3]
    assert sample["image"].shape == (3, 16, 16) and 0 <= sample["image"].min() <= sample["image"].max() <= 1
    assert torch.equal(sample["image"][0], sample["image"][2]), "grey, as three equal channels"
    sets = train.config.probe_sets(train.config, 6500)
    assert sets.held_out and sets.test == train.config.replace(split="test")


def test_digits_are_scikit_learns_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    data = create("dataset", "digits", image_size=8, split="test")
    for i in (0, 17, len(data) - 1):
        sample = data[i]
        row = next(
            j
            for j in range(len(digits.images))
            if (digits.images[j] * 255 / 16).round().tolist() == data.images[i].tolist()
        )
        assert sample["label"] == digits.target[row]
        torch.testing.assert_close(
            sample["image"][0], torch.tensor(digits.images[row] / 16, dtype=torch.float32), atol=0.501 / 255, rtol=0
        )


def test_texture_crops_come_from_their_splits_region(monkeypatch):
    """With a photograph whose pixels give their row, every train crop lies in the top three quarters and
    every test crop in the bottom quarter."""
    rows = torch.arange(512).div(2, rounding_mode="floor").to(torch.uint8)[:, None].expand(512, 512).contiguous()
    monkeypatch.setattr(packaged, "_texture", lambda name: rows)
    for split, low, high in (("train", 0, 384), ("test", 384, 512)):
        images, labels = packaged.TexturesConfig(split=split, image_size=16, crop=32).load()
        first = images[:, 0, 0].long() * 2  # the top row of each crop (two rows per grey level)
        assert first.min() >= low and (first + 32).max() <= high + 1
        assert labels.tolist() == [i % 3 for i in range(len(labels))]


def test_a_run_on_a_packaged_set_is_probed_on_its_test_split():
    from jepakit.eval import evaluate, probe_data

    from conftest import tiny_config

    cfg = tiny_config("ijepa", image_size=16, data={"type": "faces"})
    encoder = cfg.method.eval_encoder()[0].build().eval()
    sets = probe_data(cfg, encoder)
    assert sets.held_out and sets.fit.split == "train" and sets.test.split == "test"
    out = evaluate(encoder, sets.fit.build(), test_data=sets.test.build(), probes=("knn",), lidar_views=None)
    assert out["n"] == {"train": 138, "val": 22, "test": 40} and 0 <= out["knn"]["label"] <= 1
