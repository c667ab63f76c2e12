"""Probes on video (issue 20): clips go whole through a video encoder, frame by frame through an image
encoder (the frame-only baseline, blind to the frames' order), the dense probe reads every frame, and
``jepakit probe`` / ``jepakit viz masks`` take a video run with no extra flags."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from jepakit import Masks, get_config
from jepakit.cli import main
from jepakit.data.moving import DIRECTIONS, SPEEDS, MovingFrames, MovingScenes
from jepakit.eval import evaluate
from jepakit.eval.features import Features, encode, extract, first_frames
from jepakit.train import train
from jepakit.viz import TARGET_COLOURS, mask_overlay

from conftest import tiny_config

TRAIN = {"steps": 2, "batch_size": 4, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 2}


def tiny_video(**overrides):
    """vjepa-cpu on clips of 4 frames of 16 px: a 2 x 4 x 4 tubelet grid, tiny widths."""
    fields = {"num_frames": 4, "masker": {"min_keep": 2}, "data": {"size": 48}, "train": TRAIN, **overrides}
    return tiny_config("vjepa-cpu", patch=4, grid=4, **fields)


def tiny_image_encoder():
    torch.manual_seed(0)
    return tiny_config("ijepa-cpu", patch=4, grid=4).method.eval_encoder()[0].build().eval()


def test_moving_frames_are_the_clips_frames_with_the_labels_a_frame_gives():
    clips, frames = MovingScenes(image_size=16, num_frames=4), MovingFrames(image_size=16, num_frames=4)
    for i in range(6):
        clip, frame = clips[i], frames[i]
        assert torch.equal(frame["image"], clip["video"][:, i % 4])
        assert torch.equal(frame["segmentation"], clip["segmentation"][i % 4])
        assert frame["labels"] == {k: v for k, v in clip["labels"].items() if k not in ("direction", "speed")}
    cfg = get_config("ijepa-cpu", "data=moving-frames", image_size=32)  # an image method reads them
    assert cfg.data.image_size == 32 and cfg.data.num_frames == 8


def test_a_video_encoder_reads_clips_whole_with_their_motion_labels():
    cfg = tiny_video()
    encoder = cfg.method.eval_encoder()[0].build().eval()
    data = cfg.data.build()
    feats = extract(encoder, data, range(6))
    assert feats.grid == (2, 4, 4) and not feats.per_frame
    assert feats.pooled.shape == (6, 32) and feats.patches is not None and feats.patches.shape == (6, 32, 32)
    assert feats.segmentation is not None and feats.segmentation.shape == (6, 4, 16, 16)
    assert set(feats.labels) == {"count", "shapes", "direction", "speed"}
    for i in range(6):
        lab = data[i]["labels"]
        assert int(feats.labels["direction"][i]) == list(DIRECTIONS).index(lab["direction"])
        assert int(feats.labels["speed"][i]) == list(SPEEDS).index(lab["speed"])
    clip = data[0]["video"][None]
    assert not torch.allclose(encoder(clip), encoder(clip.flip(2))), "a video encoder sees the frames' order"


@settings(max_examples=10, deadline=None)
@given(frames=st.sampled_from([1, 2, 3, 5]), seed=st.integers(0, 1000))
def test_the_frame_only_baseline_is_each_frame_alone_and_blind_to_their_order(frames, seed):
    encoder = tiny_image_encoder()
    clips = torch.rand(2, 3, frames, 16, 16, generator=torch.Generator().manual_seed(seed))
    (tokens,), grid, per_frame = encode(encoder, clips)
    assert per_frame and grid == (frames, 4, 4) and tokens.shape == (2, frames * 16, 32)
    for t in range(frames):  # the oracle: the image encoder on that frame alone
        torch.testing.assert_close(tokens[:, t * 16 : (t + 1) * 16], encoder(clips[:, :, t]), rtol=1e-5, atol=1e-5)
    feats = Features(pooled=tokens.mean(1), patches=tokens, grid=grid, per_frame=True)
    (backwards,), _, _ = encode(encoder, clips.flip(2))
    reversed_feats = Features(pooled=backwards.mean(1), patches=backwards, grid=grid, per_frame=True)
    averaged = feats.clip_tokens()
    assert averaged is not None and averaged.shape == (2, 16, 32)
    torch.testing.assert_close(averaged, tokens.view(2, frames, 16, 32).mean(1))
    torch.testing.assert_close(reversed_feats.clip_tokens(), averaged, rtol=1e-5, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(slots=st.integers(1, 4), tubelet=st.integers(1, 3), n=st.integers(1, 3))
def test_the_dense_probe_reads_each_frame_from_the_tokens_of_its_time_slot(slots, tubelet, n):
    frames, cells = slots * tubelet, 4
    tokens = torch.arange(n * slots * cells, dtype=torch.float32).view(n, slots * cells, 1)
    seg = torch.arange(n * frames, dtype=torch.uint8).view(n, frames, 1, 1).expand(n, frames, 8, 8)
    feats = Features(pooled=torch.zeros(n, 1), patches=tokens, grid=(slots, 2, 2))
    x, y, grid = feats.frame_tokens(tokens, seg)
    assert grid == (2, 2) and x.shape == (n * frames, cells, 1) and y.shape == (n * frames, 8, 8)
    for clip in range(n):
        for t in range(frames):
            row = clip * frames + t
            slot = t // tubelet
            assert torch.equal(x[row], tokens[clip, slot * cells : (slot + 1) * cells])
            assert torch.equal(y[row], seg[clip, t])


def test_evaluate_probes_the_motion_labels_and_every_frame():
    cfg = tiny_video()
    data = cfg.data.build()
    video, frame_only = cfg.method.eval_encoder()[0].build().eval(), tiny_image_encoder()
    for encoder, probes in ((video, ("linear", "knn", "attentive", "dense")), (frame_only, ("attentive", "dense"))):
        results = evaluate(encoder, data, train=24, val=8, test=16, probes=probes, lidar_views=(8, 4))
        for probe in probes[:-1]:
            assert set(results[probe]) == {"count", "shapes", "direction", "speed"}
        assert results["details"]["dense"]["prediction"].shape == (16 * 4, 16, 16), "each test frame segmented"
        assert 0 <= results["dense"]["miou"] <= 1 and results["monitors"]["lidar"] > 0
    images, truth = first_frames(data, [32, 33, 34], 6)
    assert torch.equal(images[5], data[33]["video"][:, 1]) and torch.equal(truth[5], data[33]["segmentation"][1])


def test_a_clip_the_tubelet_does_not_divide_is_refused_naming_both():
    cfg = tiny_video()
    odd = MovingScenes(image_size=16, num_frames=3, size=40)
    with pytest.raises(ValueError, match=r"clips of 3 frames are not divisible by the encoder's tubelet_size=2"):
        evaluate(cfg.method.eval_encoder()[0].build(), odd, train=8, val=4, test=8)


def test_probe_and_viz_take_a_video_run_with_no_extra_flags(tmp_path, capsys):
    cfg = tiny_video()
    train(cfg, tmp_path / "run", progress=False)
    sizes = ["--train", "24", "--val", "8", "--test", "16", "--floor-seeds", "1", "--probes", "knn,dense"]
    assert main(["probe", str(tmp_path / "run"), "data.size=48", *sizes, "--quiet"]) == 0
    result = json.loads((tmp_path / "run" / "probe.json").read_text())
    assert set(result["knn"]) == {"count", "shapes", "direction", "speed"} and "miou" in result["dense"]
    assert "knn/direction" in result["random_floor"]["mean"]
    out = capsys.readouterr().out
    assert "direction" in out and "speed" in out
    # the overlay shows 8 test frames (image, truth, prediction each): two clips of 4 frames
    assert Image.open(tmp_path / "run" / "segmentation.png").size == (6 * 18 + 2, 4 * 18 + 2)
    png = tmp_path / "masks.png"
    assert main(["viz", "masks", "vjepa-cpu", "data.size=3", "--images", "3", "--out", str(png)]) == 0
    assert Image.open(png).size == (8 * 34 + 2, 3 * 34 + 2), "a row per clip, a column per frame"
    assert "a row per clip" in capsys.readouterr().out


def test_clip_masks_are_drawn_frame_by_frame():
    clips = torch.full((1, 3, 4, 8, 8), 0.5)
    target = torch.tensor([[[4]]])  # slot 1 (frames 2, 3), top-left 4 x 4 cell of a 2 x 2 grid
    masks = Masks(torch.tensor([[0, 1, 2, 3]]), target, (2, 2, 2))  # the first tubelet is the context
    out = mask_overlay(clips, masks, patch=4)
    assert out.shape == (4, 3, 8, 8)
    assert torch.allclose(out[0], clips[0, :, 0]) and torch.allclose(out[1], clips[0, :, 1]), "context kept"
    for frame in (2, 3):
        assert torch.allclose(out[frame, :, 0, 0], TARGET_COLOURS[0]), "the target tubelet outlined on both its frames"
        assert torch.allclose(out[frame, :, 6, 6], torch.full((3,), 0.5 * 0.35)), "outside the context dimmed"
    with pytest.raises(ValueError, match=r"masks are on a \(2, 2, 2\) grid, which 3 frames of 8x8"):
        mask_overlay(clips[:, :, :3], masks, patch=4)
