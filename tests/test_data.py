"""The embedded captioned scenes: deterministic, labelled consistently, captions that are true."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jepakit import ConfigError, create
from jepakit.data import COLOURS, RELATIONS, SHAPES, SyntheticScenes
from jepakit.data.scenes import _by_size, _relation

SCENES = SyntheticScenes(image_size=48, size=10**9)


@given(index=st.integers(0, 10**9 - 1))
def test_a_sample_is_a_pure_function_of_seed_and_index(index):
    a, b = SCENES[index], SyntheticScenes(image_size=48, size=10**9)[index]
    assert torch.equal(a["image"], b["image"]) and a["captions"] == b["captions"] and a["labels"] == b["labels"]
    other = SyntheticScenes(image_size=48, size=10**9, seed=1)[index]
    assert not torch.equal(a["image"], other["image"])


@given(index=st.integers(0, 10**6))
def test_shapes_ranges_and_labels_agree(index):
    s = SCENES[index]
    image, seg, labels = s["image"], s["segmentation"], s["labels"]
    assert image.shape == (3, 48, 48) and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert seg.shape == (48, 48) and seg.dtype == torch.long
    assert 1 <= labels["count"] <= 4
    drawn = {SHAPES[int(c) - 1] for c in seg.unique() if c > 0}
    assert drawn <= set(labels["shapes"]), "the segmentation shows only labelled shapes"
    assert labels["relation"] in RELATIONS and (labels["relation"] == "alone") == (labels["count"] == 1)


@given(index=st.integers(0, 10**6))
def test_every_caption_is_true_of_its_image(index):
    s = SCENES[index]
    labels, captions = s["labels"], s["captions"]
    assert 2 <= len(captions) <= 8
    words = set(re.findall(r"[a-z]+", " ".join(captions)))
    assert words & set(COLOURS) <= set(labels["colours"])
    assert words & set(SHAPES) <= set(labels["shapes"])
    n = labels["count"]
    assert captions[1] == ("there is one object" if n == 1 else f"there are {['two', 'three', 'four'][n - 2]} objects")
    stated = [r for c in captions for r in RELATIONS[1:] if f" {r} " in c]
    assert len(stated) == (labels["relation"] != "alone"), "two or more objects: one relation is stated"


@given(
    objects=st.lists(
        st.fixed_dictionaries(
            {"x": st.floats(0, 1), "y": st.floats(0, 1), "area": st.integers(1, 4096)},
        ),
        min_size=2,
        max_size=4,
        unique_by=lambda o: o["area"],
    ),
    order=st.randoms(use_true_random=False),
)
def test_the_relation_names_the_two_largest_objects_whatever_the_drawing_order(objects, order):
    """The drawing order is not visible in the image, so the label must not depend on it: it is the
    largest object's place relative to the second largest, along the larger offset."""
    shuffled = objects[:]
    order.shuffle(shuffled)
    a, b = sorted(objects, key=lambda o: -o["area"])[:2]
    dx, dy = a["x"] - b["x"], a["y"] - b["y"]
    expected = ("left of" if dx < 0 else "right of") if abs(dx) >= abs(dy) else ("above" if dy < 0 else "below")
    assert _relation(_by_size(shuffled)) == expected


def test_segmentation_usually_shows_every_labelled_shape():
    agree = sum(
        {SHAPES[int(c) - 1] for c in SCENES[i]["segmentation"].unique() if c > 0} == set(SCENES[i]["labels"]["shapes"])
        for i in range(200)
    )
    assert agree >= 180, "occlusion hides a whole object only rarely"


def test_images_differ_and_objects_are_visible():
    first = [SCENES[i] for i in range(50)]
    assert len({tuple(s["image"].flatten()[:10].tolist()) for s in first}) == 50
    covered = torch.stack([(s["segmentation"] > 0).float().mean() for s in first]).mean()
    assert 0.1 < float(covered) < 0.6


def test_objects_keep_apart_and_background_stays_under_70_percent_of_patches():
    """The quality benchmark needs target blocks that hit objects, and counts that stay visible."""
    scenes = [SCENES[i] for i in range(200)]
    patches = [(s["segmentation"] > 0).float().unfold(0, 8, 8).unfold(1, 8, 8).mean((-1, -2)) for s in scenes]
    background = torch.stack([(p <= 0.5).float().mean() for p in patches]).mean()
    assert float(background) <= 0.72
    with pytest.raises(ConfigError, match=r"separation=1.5"):
        create("dataset", "scenes", separation=1.5)


def test_dataset_is_registered_and_validates():
    scenes = create("dataset", "scenes", image_size=32, size=5)
    assert len(scenes) == 5 and scenes[4]["image"].shape == (3, 32, 32)
    with pytest.raises(IndexError, match=r"outside"):
        scenes[5]
    with pytest.raises(ConfigError, match=r"max_objects"):
        create("dataset", "scenes", min_objects=3, max_objects=2)
    with pytest.raises(ConfigError, match=r"image_size"):
        create("dataset", "scenes", image_size=4)
