"""The embedded moving scenes (issue 20's default video data): a pure function of (seed, index), objects that
stay whole while they move and turn, and labels that only motion gives."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit import ConfigError
from jepakit.data.moving import DIRECTIONS, SPEEDS, MovingScenes


def centroid(mask: torch.Tensor) -> torch.Tensor:
    """(x, y) of a bool [H, W] mask's pixels, in pixels."""
    ys, xs = mask.nonzero(as_tuple=True)
    return torch.stack([xs.float().mean(), ys.float().mean()])


@settings(max_examples=25, deadline=None)
@given(index=st.integers(0, 10_000), frames=st.integers(2, 9), seed=st.integers(0, 3))
def test_a_single_object_moves_its_labelled_direction_and_speed_and_stays_whole(index, frames, seed):
    clips = MovingScenes(image_size=48, num_frames=frames, min_objects=1, max_objects=1, seed=seed, noise=0.0)
    clip = clips[index]
    assert clip["video"].shape == (3, frames, 48, 48) and clip["segmentation"].shape == (frames, 48, 48)
    assert clip["video"].min() >= 0 and clip["video"].max() <= 1
    seg = clip["segmentation"] > 0
    moved = centroid(seg[-1]) - centroid(seg[0])
    ux, uy = DIRECTIONS[clip["labels"]["direction"]]
    want = torch.tensor([ux, uy], dtype=torch.float32) * SPEEDS[clip["labels"]["speed"]] * 48
    # a turning shape's pixel centroid circles its centre (a triangle's by up to a quarter of its size)
    slack = 1.5 if clip["labels"]["shapes"] == ["circle"] else 1.5 + 0.25 * 0.2 * 48
    assert torch.allclose(moved, want, atol=slack), (moved, want)
    areas = seg.flatten(1).sum(1).float()
    assert float(areas.min()) > 0.85 * float(areas.max()), "the object stays inside every frame"


def test_clips_are_pure_functions_of_seed_and_index_and_captions_say_the_motion():
    a, b = MovingScenes(image_size=32, num_frames=4), MovingScenes(image_size=32, num_frames=4)
    assert torch.equal(a[7]["video"], b[7]["video"]) and a[7]["captions"] == b[7]["captions"]
    assert not torch.equal(a[7]["video"], a[8]["video"])
    assert not torch.equal(a[7]["video"], MovingScenes(image_size=32, num_frames=4, seed=1)[7]["video"])
    for i in range(20):
        clip = a[i]
        assert f"moves {clip['labels']['direction']}" in " ".join(clip["captions"]) or clip["labels"]["count"] > 1
        assert any(f"moves {d}" in clip["captions"][0] for d in DIRECTIONS)
        assert clip["labels"]["count"] == len(torch.unique(clip["segmentation"][0])) - 1 or clip["labels"]["count"] > 1


def test_no_single_frame_tells_the_direction():
    """Mirror a clip's frames in time: every frame is one of the original's, and the direction flips."""
    clips = MovingScenes(image_size=32, num_frames=6, min_objects=1, max_objects=1, noise=0.0)
    clip = clips[3]
    backwards = clip["segmentation"].flip(0) > 0
    moved = centroid(backwards[-1]) - centroid(backwards[0])
    ux, uy = DIRECTIONS[clip["labels"]["direction"]]
    assert float(moved @ torch.tensor([ux, uy], dtype=torch.float32)) < 0, "the same frames, the other direction"


def test_turning_shapes_turn_and_circles_do_not():
    clips = MovingScenes(image_size=64, num_frames=5, min_objects=1, max_objects=1, noise=0.0)
    seen = {"circle": False, "turning": False}
    for i in range(40):
        clip = clips[i]
        seg = clip["segmentation"] > 0
        first, last = seg[0], seg[-1]
        shift = (centroid(last) - centroid(first)).round().long().tolist()
        back = torch.roll(last, shifts=(-shift[1], -shift[0]), dims=(0, 1))
        overlap = float((back & first).sum() / first.sum())
        if clip["labels"]["shapes"] == ["circle"]:
            assert overlap > 0.9
            seen["circle"] = True
        elif "turning" in " ".join(clip["captions"]):
            assert overlap < 0.95, "an eighth of a turn changes the outline"
            seen["turning"] = True
    assert all(seen.values())


def test_bad_config_names_the_fields():
    with pytest.raises(ConfigError, match=r"min_objects=3 exceeds max_objects=2"):
        MovingScenes(image_size=32, min_objects=3, max_objects=2)
    with pytest.raises(ConfigError, match=r"max_radius"):
        MovingScenes(image_size=32, max_radius=0.3)
