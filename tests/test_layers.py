"""Transformer pieces against timm and the plain path: the last-layer shortcut, packed tokens, the recomputing MLP."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jepakit.layers.transformer import GeluMlp, Packing, make_blocks, padding_bias


@given(b=st.integers(1, 3), n=st.integers(2, 12), heads=st.sampled_from([1, 2, 4]), data=st.data())
def test_rows_from_equals_the_whole_block_forward_and_backward(b, n, heads, data):
    """The last-layer shortcut (queries, read-out and MLP on the kept rows only) against the whole block."""
    start = data.draw(st.integers(0, n - 1))
    torch.manual_seed(data.draw(st.integers(0, 2**16)))
    blk = make_blocks(8 * heads, 1, heads, 2.0, True, 0.0)[0]
    x = torch.randn(b, n, 8 * heads)
    valid = torch.rand(b, n) < 0.7
    valid[:, 0] = True
    bias = padding_bias(valid, x.dtype) if data.draw(st.booleans()) else None

    def run(fn):
        blk.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = fn(xi)
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        return [out.detach(), xi.grad] + [p.grad.clone() for p in blk.parameters()]

    whole = run(lambda xi: blk(xi, attn_mask=bias)[:, start:])
    rows = run(lambda xi: blk(xi, attn_mask=bias, rows_from=start))
    for r, w in zip(rows, whole, strict=True):
        torch.testing.assert_close(r, w, atol=1e-5, rtol=1e-5)


def _valid(data, b: int, n: int, split: int) -> torch.Tensor:
    """A padding mask with at least one valid key per row (and one valid row after ``split``)."""
    valid = torch.tensor(data.draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=b, max_size=b)))
    valid[:, 0] = True
    valid[:, split] = True
    return valid


@given(b=st.integers(1, 4), n=st.integers(1, 10), d=st.integers(1, 3), data=st.data())
def test_packing_round_trip_order_and_tail(b, n, d, data):
    """pack keeps exactly the valid tokens, those before ``split`` first; unpack puts them back, zeros elsewhere."""
    split = data.draw(st.integers(0, n - 1))
    valid = _valid(data, b, n, split)
    x = torch.randn(b, n, d)
    p = Packing(valid, split)
    packed = p.pack(x)
    expected = torch.cat([x[:, :split][valid[:, :split]], x[:, split:][valid[:, split:]]])
    assert torch.equal(packed, expected)
    assert p.split == int(valid[:, :split].sum())
    sample = torch.arange(b)[:, None].expand(b, n)
    assert torch.equal(p.sample, torch.cat([sample[:, :split][valid[:, :split]], sample[:, split:][valid[:, split:]]]))
    assert torch.equal(p.unpack(packed), x * valid[..., None])
    assert torch.equal(p.pack(x[:, split:], rows_from=split), packed[p.split :])
    assert torch.equal(p.unpack(packed[p.split :], rows_from=split), (x * valid[..., None])[:, split:])


def test_packing_is_none_without_padding_and_checks_rows_from():
    assert Packing.of(None) is None
    assert Packing.of(torch.ones(2, 3, dtype=torch.bool)) is None
    p = Packing.of(torch.tensor([[True, True, False]]), split=1)
    with pytest.raises(ValueError, match=r"rows_from=2 must be 0 or this packing's split=1"):
        p.pack(torch.zeros(1, 1, 4), rows_from=2)


def test_pack_and_unpack_keep_only_the_index_for_backward():
    """Neither direction keeps its input alive for the backward (torch's index_copy would keep a whole q, k, v)."""
    p = Packing(torch.tensor([[True, False, True], [True, True, False]]))
    saved = []
    x = torch.randn(2, 3, 4, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = p.unpack(p.pack(x) * 2)
    assert all(t.dtype == torch.long for t in saved)
    out.backward(torch.ones_like(out))
    assert torch.equal(x.grad, 2.0 * p.valid[..., None].float().expand(-1, -1, 4))


@given(b=st.integers(1, 3), n=st.integers(2, 12), heads=st.sampled_from([1, 2]), data=st.data())
def test_packed_block_equals_the_padded_block(b, n, heads, data):
    """A block over packed tokens (padding only around the attention) gives the padded block's outputs and
    gradients at the valid tokens, whole or from ``split`` on, with drop-path drawn per sample as timm's."""
    split = data.draw(st.integers(0, n - 1))
    rows_from = data.draw(st.sampled_from([0, split]))
    drop = data.draw(st.sampled_from([0.0, 0.5]))
    seed = data.draw(st.integers(0, 2**16))
    torch.manual_seed(seed)
    blk = make_blocks(8 * heads, 1, heads, 2.0, True, drop)[0].train()
    valid = _valid(data, b, n, split)
    packing = Packing(valid, split)
    x = torch.randn(b, n, 8 * heads)
    g = torch.randn(b, n - rows_from, 8 * heads) * valid[:, rows_from:, None]

    def run(packed: bool):
        blk.zero_grad()
        torch.manual_seed(seed)
        xi = x.clone().requires_grad_(True)
        if packed:
            out = packing.unpack(blk(packing.pack(xi), rows_from=rows_from, packing=packing), rows_from)
        else:
            out = blk(xi, attn_mask=padding_bias(valid, x.dtype), rows_from=rows_from) * valid[:, rows_from:, None]
        out.backward(g)
        return [out.detach(), xi.grad * valid[..., None]] + [p.grad.clone() for p in blk.parameters()]

    for a, c in zip(run(True), run(False), strict=True):
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)


@given(
    rows=st.integers(1, 40),
    dim=st.integers(1, 12),
    hidden=st.integers(1, 24),
    out=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_gelu_mlp_equals_timms_mlp_forward_and_backward(rows, dim, hidden, out, seed):
    """Same outputs and gradients as timm's Mlp with the same weights, though the GELU output is not kept."""
    from timm.layers import Mlp

    torch.manual_seed(seed)
    ref = Mlp(dim, hidden, out)
    ours = GeluMlp(dim, hidden, out)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(rows, 1, dim)
    g = torch.randn(rows, 1, out)

    def run(mlp):
        xi = x.clone().requires_grad_(True)
        out = mlp(xi)
        out.backward(g)
        return [out.detach(), xi.grad] + [p.grad for p in mlp.parameters()]

    for a, b in zip(run(ours), run(ref), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@given(rows=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_gelu_mlp_equals_timms_mlp_under_bf16_autocast(rows, seed):
    """Mixed precision (the GPU recipe): the same bf16 forward and the same gradients as timm's Mlp under autocast."""
    from timm.layers import Mlp

    torch.manual_seed(seed)
    ref = Mlp(16, 48)
    ours = GeluMlp(16, 48)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(rows, 2, 16)
    g = torch.randn(rows, 2, 16, dtype=torch.bfloat16)

    def run(mlp):
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = mlp(xi)
        out.backward(g)
        return [out.detach(), xi.grad] + [p.grad for p in mlp.parameters()]

    for a, b in zip(run(ours), run(ref), strict=True):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, atol=2e-2, rtol=2e-2)


def test_gelu_mlp_keeps_the_pre_activation_not_the_gelu_output():
    """What the backward holds: the input and fc1's output, not gelu(fc1(x)) (timm's Mlp holds both)."""
    from timm.layers import Mlp

    def saved_bytes(mlp):
        """Bytes of the distinct non-parameter storages the autograd graph keeps."""
        weights = {p.untyped_storage().data_ptr() for p in mlp.parameters()}
        kept = {}

        def pack(t):
            storage = t.untyped_storage()
            if storage.data_ptr() not in weights:
                kept[storage.data_ptr()] = storage.nbytes()
            return t

        x = torch.randn(4, 10, 8, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            mlp(x)
        return sum(kept.values())

    torch.manual_seed(0)
    assert saved_bytes(GeluMlp(8, 32)) == 4 * 10 * (8 + 32) * 4
    assert saved_bytes(Mlp(8, 32)) == 4 * 10 * (8 + 32 + 32) * 4


@given(rows=st.integers(1, 20), seed=st.integers(0, 2**16), masked=st.booleans())
def test_block_equals_timms_block_with_the_same_weights(rows, seed, masked):
    """The block is timm's: same parameter names (strict load) and the same outputs and gradients."""
    from timm.models.vision_transformer import Block

    torch.manual_seed(seed)
    ours = make_blocks(16, 1, 2, 4.0, True, 0.0)[0]
    ref = Block(16, 2, qkv_bias=True, norm_layer=torch.nn.LayerNorm)
    for m in ref.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.eps = 1e-6
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, rows, 16)
    bias = padding_bias(torch.rand(2, rows) < 0.8, x.dtype) if masked else None
    if bias is not None:
        bias[..., 0] = 0.0  # at least one key

    def run(blk):
        blk.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = blk(xi, attn_mask=bias)
        out.sum().backward()
        return [out.detach(), xi.grad] + [p.grad.clone() for p in blk.parameters()]

    for a, b in zip(run(ours), run(ref), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
