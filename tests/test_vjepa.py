"""V-JEPA from the JEPA parts (issue 20): the jepa method on clips, with the encoder, the 3-D masker and the
moving scenes following the method's num_frames; one crop for every frame; exact resume; config errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jepakit import ConfigError, get_config
from jepakit.eval import text_use
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


def test_salt_and_text_conditioning_on_clips_are_vjepa_cpu_with_one_part_changed():
    plain, salt, text = (get_config(r) for r in ("vjepa-cpu", "salt-video-cpu", "tc-vjepa-cpu"))
    first = salt.teacher_run
    assert (first.method.target_updater.name, first.method.loss.name, first.method.masker) == (
        "pixels",
        "l2",
        plain.method.masker,
    )
    assert (salt.method.target_updater.name, salt.method.loss.name) == ("frozen", "l1")
    assert first.train.steps + salt.train.steps == plain.train.steps, "equal total steps"
    assert (text.method.conditioner.name, text.method.caption_choice) == ("sparse-xattn", "sample")
    assert (
        text.method.replace(conditioner=plain.method.conditioner, tokenizer=None, text_encoder=None).replace(
            caption_choice=plain.method.caption_choice
        )
        == plain.method
    ), "the text side is the only difference"


def test_salt_and_text_conditioning_train_on_clips(tmp_path):
    clips = {"num_frames": 4, "masker": {"min_keep": 2}, "data": {"size": 16}}
    salt = tiny_config("salt-video-cpu", patch=4, grid=4, **clips, train={**TRAIN, "steps": 2})
    salt = salt.replace(
        teacher_run=tiny_config(salt.teacher_run, patch=4, grid=4, **clips, train={**TRAIN, "steps": 2})
    )
    result = train(salt, tmp_path / "salt", progress=False)
    student = result["model"]
    teacher = torch.load(tmp_path / "salt" / "teacher" / "checkpoints" / "step-00000002.pt", weights_only=True)
    for k, v in student.target_encoder.state_dict().items():
        assert torch.equal(v, teacher["model"][f"encoder.{k}"]), f"the frozen teacher is stage 1's encoder ({k})"
    text = tiny_config("tc-vjepa-cpu", patch=4, grid=4, **clips, train={**TRAIN, "steps": 2})
    trained = train(text, tmp_path / "text", progress=False)
    assert all(torch.isfinite(torch.tensor(trained["losses"])))
    gap = text_use(trained["model"], text.data.build(), batches=2, batch_size=4)  # the clips' own captions vs another's
    assert gap["true"] > 0 and gap["shuffled"] > 0 and 0 <= gap["o_positive"] <= 1


def _vjepa_positions(embed_dim: int, grid_size: int, grid_depth: int) -> np.ndarray:
    """V-JEPA's ``get_3d_sincos_pos_embed(..., uniform_power=True)``, written out with numpy as the oracle."""

    def one(dim: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid_h, grid_t, grid_w = np.meshgrid(np.arange(grid_size), np.arange(grid_depth), np.arange(grid_size))
    third = int(np.ceil(embed_dim / 6) * 2)
    emb = np.concatenate([one(third, grid_t), one(third, grid_h), one(third, grid_w)], axis=1)
    return emb[:, :embed_dim]


@pytest.mark.parametrize("dim, size, depth", [(1024, 14, 8), (384, 4, 4), (192, 3, 2)])
def test_video_positions_in_thirds_are_vjepas_released_layout(dim, size, depth):
    from jepakit.layers.pos_embed import sincos_3d

    got = sincos_3d(dim, (depth, size, size), "thirds")
    torch.testing.assert_close(got, torch.from_numpy(_vjepa_positions(dim, size, depth)).float())
    quarters = sincos_3d(dim, (depth, size, size), "quarters")
    assert quarters.shape == got.shape and not torch.allclose(quarters, got), "the presets' layout is another"


def test_the_schedules_are_laid_over_the_scaled_run_and_stop_at_its_end(tmp_path):
    """ipe_scale 1.25: 8 steps of schedules laid over 10; the last step's LR, weight decay and EMA momentum
    are those of step 8 of 10, short of their final values."""
    from jepakit.targets.ema import ema_momentum
    from jepakit.train.schedules import lr_at, weight_decay_at

    steps = {**TRAIN, "steps": 8, "log_every": 1, "schedule_scale": 1.25, "clip_grad": 10.0}
    cfg = tiny(train=steps)
    train(cfg, tmp_path, progress=False)
    last = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()][-1]
    t = cfg.train
    assert last["lr"] == pytest.approx(
        lr_at(7, peak=t.lr, total_steps=10, warmup_steps=1, start=t.start_lr, final=t.final_lr)
    )
    assert last["lr"] > t.final_lr * 10
    assert last["weight_decay"] == pytest.approx(weight_decay_at(7, total_steps=10, start=0.04, end=0.4))
    assert last["ema_momentum"] == pytest.approx(ema_momentum(cfg.target_updater, 7, 10))
    assert last["weight_decay"] < 0.39 and last["ema_momentum"] < 1.0, "the final values are never reached"


def test_each_mask_generator_has_its_own_zero_initialised_mask_token():
    from jepakit import create

    torch.manual_seed(0)
    pred = create(
        "predictor",
        "vit-predictor",
        embed_dim=16,
        depth=1,
        num_heads=2,
        encoder_dim=8,
        mask_tokens=2,
        mask_token_init="zeros",
        video_positions="thirds",
    )
    assert pred.mask_token.shape == (2, 1, 16) and not pred.mask_token.any()
    b, grid = 3, (2, 2, 2)
    z = torch.randn(2 * b, 3, 8)
    context = torch.tensor([[0, 1, 2]]).expand(2 * b, -1)
    targets = torch.tensor([[[5, 6]]]).expand(2 * b, 1, 2)
    before = pred(z, context, targets, grid, repeats=2)
    with torch.no_grad():
        pred.mask_token[1] += 1.0  # the second generator's token
    after = pred(z, context, targets, grid, repeats=2)
    assert torch.equal(after[:b], before[:b]) and not torch.allclose(after[b:], before[b:]), "rows are generator-major"
    one_set = pred(z, context, targets, grid, repeats=1)  # a single mask generator reads token 0
    assert torch.equal(one_set[:b], after[:b]) and torch.equal(one_set[b:], before[b:])
    with pytest.raises(ValueError, match=r"mask_tokens=2: one token per mask generator, and the masks come in 3"):
        pred(
            z.repeat(3, 1, 1)[: 3 * b], context[:1].expand(3 * b, -1), targets[:1].expand(3 * b, 1, 2), grid, repeats=3
        )
    big = get_config("vjepa")
    assert (big.predictor.num_heads, big.predictor.mask_tokens, big.train.clip_grad) == (16, 2, 10.0)
