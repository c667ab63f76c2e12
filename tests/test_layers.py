"""Transformer pieces against timm: the last-layer shortcut and the recomputing MLP."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from jepakit.layers.transformer import GeluMlp, make_blocks, padding_bias


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
    for r, w in zip(rows, whole):
        torch.testing.assert_close(r, w, atol=1e-5, rtol=1e-5)


@given(rows=st.integers(1, 40), dim=st.integers(1, 12), hidden=st.integers(1, 24), out=st.integers(1, 12),
       seed=st.integers(0, 2**16))
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

    for a, b in zip(run(ours), run(ref)):
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

    for a, b in zip(run(ours), run(ref)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
