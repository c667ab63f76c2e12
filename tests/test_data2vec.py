"""data2vec 2.0 from the JEPA parts: inverse block masks (exact counts, several per image, no edge bias)
and targets that average the teacher's last K block outputs, each normalised, against their formula."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit import ConfigError, create, get_config

from conftest import batch, tiny_config


@settings(max_examples=30, deadline=None)
@given(
    side=st.integers(3, 9),
    keep=st.floats(0.1, 0.8),
    block=st.integers(1, 4),
    per_image=st.integers(1, 3),
    b=st.integers(1, 3),
    seed=st.integers(0, 10**6),
)
def test_inverse_block_masks_keep_an_exact_count_and_cover_the_grid(side, keep, block, per_image, b, seed):
    n = side * side
    k = round(keep * n)
    if not 0 < k < n:
        with pytest.raises(ConfigError, match="keep"):
            create("masker", "inverse-block", input_size=side, patch_size=1, keep=keep)
        return
    masker = create(
        "masker", "inverse-block", input_size=side, patch_size=1, keep=keep, block=block, masks_per_image=per_image
    )
    masks = masker(b, torch.Generator().manual_seed(seed))
    assert masks.repeats == per_image and masks.context.shape == (per_image * b, k)
    assert masks.targets.shape == (per_image * b, 1, n - k)
    every = torch.cat([masks.context, masks.targets[:, 0]], 1).sort(1).values
    assert torch.equal(every, torch.arange(n).expand_as(every)), "context and targets split the grid"
    again = masker(b, torch.Generator().manual_seed(seed))
    assert torch.equal(again.context, masks.context)


def test_inverse_blocks_are_blocks_and_every_cell_is_as_likely_to_be_seen():
    masker = create("masker", "inverse-block", input_size=8, patch_size=1, keep=0.25, block=3, masks_per_image=1)
    masks = masker(3000, torch.Generator().manual_seed(0))
    seen, _ = masks.dense()
    freq = seen.float().mean(0).view(8, 8)
    assert float((freq - 0.25).abs().max()) < 0.05, f"corners, edges and centre alike: {freq}"
    # blocks, not scattered cells: a visible cell has a visible neighbour far more often than by chance
    grid = seen.view(-1, 8, 8)
    right = (grid[:, :, :-1] & grid[:, :, 1:]).sum() / grid[:, :, :-1].sum()
    assert float(right) > 0.5


def test_targets_average_the_last_blocks_each_instance_normalised():
    torch.manual_seed(0)
    cfg = tiny_config("ijepa", masker={"min_keep": 4}, target_blocks=2, target_block_norm="instance")
    model = cfg.build()
    x, m = batch(model)
    outs: list[torch.Tensor] = []
    hooks = [blk.register_forward_hook(lambda _m, _i, o: outs.append(o)) for blk in model.target_encoder.blocks]
    model.target_encoder(x)
    for h in hooks:
        h.remove()
    last = outs[-2:]  # the raw block outputs (before the final norm)
    normed = [(t - t.mean(1, keepdim=True)) / torch.sqrt(t.var(1, unbiased=False, keepdim=True) + 1e-6) for t in last]
    want = torch.stack(normed).mean(0)
    got = model.forward_target(x, m)
    index = m.targets  # [B, M, K]
    for row in range(index.shape[0]):
        for j in range(index.shape[1]):
            torch.testing.assert_close(got[row, j], want[row, index[row, j]], rtol=1e-5, atol=1e-5)


def test_layer_norm_per_block_and_the_default_is_the_output():
    torch.manual_seed(0)
    model = tiny_config("ijepa", masker={"min_keep": 4}, target_blocks=2, target_block_norm="layer").build()
    x, m = batch(model)
    blocks = model.target_encoder.layer_outputs(x, last=2, norm=False)
    want = torch.stack([torch.nn.functional.layer_norm(t, t.shape[-1:], eps=1e-6) for t in blocks]).mean(0)
    got = model.forward_target(x, m)
    torch.testing.assert_close(got[0, 0], want[0, m.targets[0, 0]])
    plain = tiny_config("ijepa", masker={"min_keep": 4}).build()
    assert torch.equal(plain.target_encoder.layer_outputs(x)[0], plain.target_encoder(x))


def test_every_masked_version_reads_the_same_teacher_pass():
    torch.manual_seed(0)
    model = tiny_config("data2vec-cpu", masker={"masks_per_image": 3}, target_blocks=2).build()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    m = model.masker(2, torch.Generator().manual_seed(0))
    targets = model.forward_target(x, m)  # [6, 1, K, D], row r is image r % 2
    full = torch.zeros(6, 64, targets.shape[-1])
    full.scatter_(1, m.targets[:, 0, :, None].expand(-1, -1, targets.shape[-1]), targets[:, 0])
    _, masked = m.dense()
    both = masked[0] & masked[2]
    torch.testing.assert_close(full[0, both], full[2, both], rtol=0, atol=0)
    out = model(x, m)
    out["loss"].backward()


def test_the_recipe_and_its_config_errors():
    cfg = get_config("data2vec")
    m = cfg.method
    assert (m.target_blocks, m.target_block_norm, m.masker.keep, m.masker.block, m.masker.masks_per_image) == (
        10,
        "instance",
        0.2,
        3,
        16,
    )
    assert (m.target_updater.momentum_start, m.target_updater.momentum_end, m.target_updater.total_steps) == (
        0.9998,
        0.99999,
        100_000,
    )
    assert m.loss.name == "l2" and m.loss.normalize_targets and cfg.train.clip_grad == 4.0
    assert get_config("data2vec-cpu").method.target_blocks == 5
    with pytest.raises(ConfigError, match=r"target_blocks=7 exceeds encoder.depth=6"):
        get_config("data2vec-cpu", target_blocks=7)
    with pytest.raises(ConfigError, match=r"target_updater 'pixels' has none"):
        get_config("mae-cpu", target_blocks=2)
