"""The I-JEPA predictor: shapes per block, block independence, padding, the conditioner hook."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jepakit import create

torch.manual_seed(0)
PRED = create("predictor", "vit-predictor", encoder_dim=24, embed_dim=16, depth=3, num_heads=2).eval()


@st.composite
def problem(draw, min_blocks: int = 1):
    gh, gw = draw(st.integers(2, 8)), draw(st.integers(2, 8))
    n = gh * gw
    b, m = draw(st.integers(1, 3)), draw(st.integers(min_blocks, 4))
    kc = draw(st.integers(1, n - 1))
    kt = draw(st.integers(1, n - kc))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    perm = torch.stack([torch.randperm(n, generator=g) for _ in range(b)])
    context = perm[:, :kc].sort(1).values
    targets = torch.stack([perm[:, kc:][:, torch.randperm(n - kc, generator=g)[:kt]] for _ in range(m)], 1)
    z = torch.randn(b, kc, 24, generator=g)
    return z, context, targets, (gh, gw)


@given(problem())
def test_output_shape_per_target_block(p):
    z, context, targets, grid = p
    with torch.no_grad():
        out = PRED(z, context, targets, grid)
    assert out.shape == (*targets.shape, 24) and torch.isfinite(out).all()


@given(p=problem(min_blocks=2), seed=st.integers(0, 2**16))
def test_each_block_is_predicted_independently(p, seed):
    """Other blocks at other positions leave block 0's prediction unchanged (its queries see the context
    and themselves only), while moving block 0 itself changes it."""
    z, context, targets, grid = p
    g = torch.Generator().manual_seed(seed)
    n = grid[0] * grid[1]
    other = targets.clone()
    other[:, 1:] = torch.randint(0, n, targets[:, 1:].shape, generator=g)  # other indices, not a reordering
    moved = targets.clone()
    moved[:, 0] = (targets[:, 0] + 1) % n
    with torch.no_grad():
        first = PRED(z, context, targets, grid)[:, 0]
        torch.testing.assert_close(first, PRED(z, context, other, grid)[:, 0], atol=1e-6, rtol=1e-5)
        assert not torch.allclose(first, PRED(z, context, moved, grid)[:, 0], atol=1e-4)


@given(p=problem(), seed=st.integers(0, 2**16))
def test_predictions_depend_on_where_the_context_is(p, seed):
    """The same context tokens at other patches give other predictions: positions are the gathered ones."""
    z, context, targets, grid = p
    n = grid[0] * grid[1]
    shifted = (context + 1 + torch.randint(0, n - 1, (1,), generator=torch.Generator().manual_seed(seed))) % n
    with torch.no_grad():
        # one context token moved one patch can change the outputs by only 1e-5: beyond rounding is enough
        moved = (PRED(z, context, targets, grid) - PRED(z, shifted, targets, grid)).abs().max()
        assert moved > 1e-6, moved


@given(p=problem(), pad=st.integers(1, 5))
def test_context_padding_is_ignored(p, pad):
    z, context, targets, grid = p
    b, kc = context.shape
    zp = torch.cat([z, torch.randn(b, pad, 24)], 1)
    cp = torch.cat([context, torch.zeros(b, pad, dtype=torch.long)], 1)
    valid = torch.arange(kc + pad) < kc
    with torch.no_grad():
        torch.testing.assert_close(
            PRED(zp, cp, targets, grid, valid.expand(b, -1)), PRED(z, context, targets, grid), atol=1e-5, rtol=1e-5
        )


@given(p=problem(), pad=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_target_padding_is_ignored(p, pad, seed):
    """Padded target slots (any index, marked invalid) change no valid prediction."""
    z, context, targets, grid = p
    b, m, kt = targets.shape
    extra = torch.randint(0, grid[0] * grid[1], (b, m, pad), generator=torch.Generator().manual_seed(seed))
    padded = torch.cat([targets, extra], -1)
    valid = (torch.arange(kt + pad) < kt).expand(b, m, -1)
    with torch.no_grad():
        out = PRED(z, context, padded, grid, targets_valid=valid)
        torch.testing.assert_close(out[..., :kt, :], PRED(z, context, targets, grid), atol=1e-5, rtol=1e-5)


@given(p=problem(), data=st.data())
def test_packed_tokens_equal_the_padded_computation(p, data):
    """Padding in context and targets: the packed blocks (the default) give the padded path's predictions
    at the valid targets (zeros at padded ones), and the same gradients."""
    z, context, targets, grid = p
    size = context.numel() + targets.numel()
    flags = st.lists(st.booleans(), min_size=size, max_size=size)
    valid = torch.tensor(data.draw(flags))
    cv, tv = valid[: context.numel()].view(context.shape), valid[context.numel() :].view(targets.shape)
    cv[:, 0] = True

    def run(pack: bool):
        PRED.zero_grad()
        PRED.pack_tokens = pack
        zi = z.clone().requires_grad_(True)
        try:
            out = PRED(zi, context, targets, grid, cv, tv) * tv[..., None]
        finally:
            PRED.pack_tokens = True
        out.sum().backward()
        return [out.detach(), zi.grad * cv[..., None]] + [q.grad.clone() for q in PRED.parameters()]

    for a, b in zip(run(True), run(False), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


class RecordingHook:
    """A user-written hook: records calls and shifts the features at layer 1."""

    def __init__(self):
        self.calls = []

    def input(self, x, sample_index):
        self.calls.append(("input", tuple(sample_index.tolist())))
        return x

    def layer(self, index, block, x, attn_bias):
        self.calls.append(("layer", index))
        x = block(x, attn_mask=attn_bias)
        return x + torch.linspace(0, 1, x.shape[-1]) if index == 1 else x  # a constant would vanish in LN


def test_hook_sees_the_input_and_every_layer_and_can_change_them():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 5, 24, generator=g)
    context = torch.arange(5).expand(2, -1)
    targets = torch.tensor([[[6, 7], [8, 9], [10, 11]]] * 2)
    hook = RecordingHook()
    with torch.no_grad():
        conditioned = PRED(z, context, targets, (4, 4), hook=hook)
        plain = PRED(z, context, targets, (4, 4))
    assert hook.calls == [("input", (0, 0, 0, 1, 1, 1)), ("layer", 0), ("layer", 1), ("layer", 2)]
    assert not torch.allclose(conditioned, plain)


def test_identity_hook_equals_no_hook():
    none = create("conditioner", "none")
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 5, 24, generator=g)
    context = torch.arange(5).expand(2, -1)
    targets = torch.tensor([[[6, 7]], [[8, 9]]])
    with torch.no_grad():
        torch.testing.assert_close(
            PRED(z, context, targets, (4, 4), hook=none.bind(None)), PRED(z, context, targets, (4, 4))
        )


def test_bad_widths_and_indices():
    z = torch.randn(1, 3, 20)
    with pytest.raises(ValueError, match=r"encoder_dim=24"):
        PRED(z, torch.arange(3)[None], torch.tensor([[[4]]]), (4, 4))
    with pytest.raises(ValueError, match=r"outside"):
        PRED(torch.randn(1, 3, 24), torch.arange(3)[None], torch.tensor([[[16]]]), (4, 4))


class WholeBlocks:
    """A hook that runs every block whole (the predictor's plain path skips the context rows of the last)."""

    def input(self, x, sample_index):
        return x

    def layer(self, index, block, x, attn_bias):
        return block(x, attn_mask=attn_bias)


@given(problem())
def test_the_last_layer_shortcut_equals_whole_blocks(p):
    z, context, targets, grid = p
    with torch.no_grad():
        torch.testing.assert_close(
            PRED(z, context, targets, grid), PRED(z, context, targets, grid, hook=WholeBlocks()), atol=1e-5, rtol=1e-5
        )
