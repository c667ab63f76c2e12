"""V-JEPA from the JEPA parts (issue 20): the jepa method on clips, with the encoder, the 3-D masker and the
moving scenes following the method's num_frames; one crop for every frame; exact resume; config errors."""

from __future__ import annotations

import pytest
import torch

from jepakit import ConfigError, get_config
from jepakit.methods.base import Draw
from jepakit.train import train

from conftest import tiny_config

TRAIN = {"steps": 4, "batch_size": 4, "warmup_steps": 1, "log_every": 2, "monitor_every": 2, "checkpoint_every": 2}


def tiny(**overrides):
    """vjepa-cpu on clips of 4 frames of 16 px: a 2 x 4 x 4 tubelet grid, tiny widths."""
    fields = {"num_frames": 4, "masker": {"min_keep": 2}, "data": {"size": 16}, "train": TRAIN, **overrides}
    return tiny_config("vjepa-cpu", patch=4, grid=4, **fields)


def test_the_parts_follow_the_methods_clips():
    cfg = get_config("vjepa-cpu")
    m = cfg.method
    assert (m.num_frames, m.tubelet_size, m.encoder.num_frames, m.encoder.tubelet_size) == (8, 2, 8, 2)
    assert m.masker.grid == m.encoder.grid == (4, 4, 4) and cfg.data.num_frames == 8
    assert (m.masker.num_blocks, m.masker.spatial_scale, m.loss.name, m.target_updater.momentum_end) == (
        (8, 2),
        ((0.15, 0.15), (0.7, 0.7)),
        "l1",
        1.0,
    )
    big = get_config("vjepa")
    assert big.encoder.grid == (8, 14, 14) and big.predictor.depth == 12 and big.train.steps == 90_000


def test_one_crop_for_every_frame_of_a_clip():
    model = tiny().build()
    frame = torch.rand(3, 16, 16)
    clip = frame[:, None].repeat(1, 4, 1, 1)
    draw = Draw(seed=0, epoch=0, step=0, micro=0, indices=torch.tensor([5]), rows=torch.tensor([0]), size=1)
    batch = model.make_batch([{"video": clip}], draw)
    frames = batch["images"][0]  # [3, 4, 16, 16]
    assert frames.shape == (3, 4, 16, 16)
    assert all(torch.equal(frames[:, t], frames[:, 0]) for t in range(4)), "the same crop in every frame"
    assert batch["masks"].grid == (2, 4, 4) and batch["masks"].repeats == 2


def test_a_tiny_vjepa_trains_and_resumes_bitwise(tmp_path):
    cfg = tiny()
    straight = train(cfg, tmp_path / "straight", progress=False)
    assert all(torch.isfinite(torch.tensor(straight["losses"])))
    train(cfg, tmp_path / "resumed", progress=False, until=2)
    resumed = train(cfg, tmp_path / "resumed", resume=True, progress=False)
    a, b = straight["model"].state_dict(), resumed["model"].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_clips_and_images_do_not_mix():
    with pytest.raises(ConfigError, match=r"trains on clips \(num_frames is set\), and data 'scenes' gives images"):
        get_config("vjepa-cpu", data="scenes")
    with pytest.raises(ConfigError, match=r"masker 'tube' draws 3-D masks for clips, and this method trains on images"):
        get_config("ijepa-cpu", masker="tube")
    with pytest.raises(ConfigError, match=r"num_frames=8: the method trains on clips, and masker 'multiblock'"):
        get_config("vjepa-cpu", masker="multiblock")
    with pytest.raises(ConfigError, match=r"data.num_frames follows num_frames, which experiment does not provide"):
        get_config("ijepa-cpu", data="moving-scenes")
    with pytest.raises(ConfigError, match=r"num_frames=7 is not divisible by .*tubelet_size=2"):
        get_config("vjepa-cpu", num_frames=7)
