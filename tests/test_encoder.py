"""The ViT encoder: shapes for any grid and mask, padding, positions, timm as the oracle."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jepakit import create, get_config
from jepakit.encoders.vit import VIT_PRESETS, ViTConfig, ViTEncoder
from jepakit.layers.pos_embed import sincos_2d

torch.manual_seed(0)
ENC = create("encoder", "vit", embed_dim=32, depth=2, num_heads=2, img_size=32, patch_size=4)
ENC.eval()


def images(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


@st.composite
def masked_batch(draw):
    gh, gw = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    b = draw(st.integers(1, 3))
    k = draw(st.integers(1, gh * gw))
    seed = draw(st.integers(0, 2**31))
    g = torch.Generator().manual_seed(seed)
    index = torch.stack([torch.randperm(gh * gw, generator=g)[:k].sort().values for _ in range(b)])
    return images(b, 4 * gh, 4 * gw, seed), index


@given(masked_batch())
def test_output_shape_for_any_grid_and_mask(batch):
    x, index = batch
    with torch.no_grad():
        out = ENC(x, index)
    assert out.shape == (*index.shape, 32) and torch.isfinite(out).all()


@given(masked_batch())
def test_full_index_equals_no_index(batch):
    x, _ = batch
    n = (x.shape[-2] // 4) * (x.shape[-1] // 4)
    with torch.no_grad():
        torch.testing.assert_close(ENC(x, torch.arange(n).expand(x.shape[0], -1)), ENC(x))


@given(masked_batch(), st.randoms(use_true_random=False))
def test_kept_patch_embedding_equals_the_convolution_gathered(batch, rnd):
    """The context path projects only the kept patches; it must equal the full conv embedding gathered."""
    from jepakit.layers.transformer import gather_tokens

    x, index = batch
    index = index[:, torch.tensor(rnd.sample(range(index.shape[1]), index.shape[1]))]  # any order
    grid = (x.shape[-2] // 4, x.shape[-1] // 4)
    with torch.no_grad():
        full = ENC.embed(x, grid, None)
        assert full.is_contiguous()
        torch.testing.assert_close(ENC.embed(x, grid, index), gather_tokens(full, index), atol=1e-5, rtol=1e-5)


@given(k=st.integers(1, 16), pad=st.integers(1, 20), seed=st.integers(0, 2**31))
def test_padding_never_changes_valid_tokens(k, pad, seed):
    g = torch.Generator().manual_seed(seed)
    x = images(2, 32, 32, seed)
    index = torch.randperm(64, generator=g)[:k].sort().values.expand(2, -1)
    junk = torch.randint(0, 64, (2, pad), generator=g)
    padded = torch.cat([index, junk], 1)
    valid = torch.cat([torch.ones(2, k, dtype=torch.bool), torch.zeros(2, pad, dtype=torch.bool)], 1)
    with torch.no_grad():
        torch.testing.assert_close(ENC(x, padded, valid)[:, :k], ENC(x, index), atol=1e-5, rtol=1e-5)


@given(masked_batch(), st.data())
def test_packed_tokens_equal_the_padded_computation(batch, data):
    """Padding anywhere: the packed blocks (the default) give the padded path's tokens where valid, zeros elsewhere."""
    x, index = batch
    valid = torch.tensor(data.draw(st.lists(st.booleans(), min_size=index.numel(), max_size=index.numel())))
    valid = valid.view(index.shape)
    valid[:, 0] = True
    with torch.no_grad():
        packed = ENC(x, index, valid)
        ENC.pack_tokens = False
        try:
            padded = ENC(x, index, valid)
        finally:
            ENC.pack_tokens = True
    torch.testing.assert_close(packed, padded * valid[..., None], atol=1e-5, rtol=1e-5)


def test_positions_match_the_mae_formula_in_lightly():
    from lightly.models.utils import get_2d_sincos_pos_embed

    for dim, grid in [(32, 4), (192, 14), (768, 14)]:
        expected = torch.from_numpy(get_2d_sincos_pos_embed(dim, grid, cls_token=False)).float()
        torch.testing.assert_close(sincos_2d(dim, (grid, grid)), expected)


def test_weights_load_strictly_into_timm_and_give_the_same_features():
    import timm

    cfg = ViTConfig.preset("tiny", img_size=64, depth=2)
    torch.manual_seed(0)
    enc = ViTEncoder(cfg).eval()
    name, kwargs = cfg.timm_args()
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    model.load_state_dict(enc.timm_state_dict(), strict=True)  # pixel normalisation folded in
    x = images(2, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), enc(x).mean(1))


@pytest.mark.parametrize("size", list(VIT_PRESETS))
def test_presets_have_the_timm_architecture(size):
    import timm

    cfg = ViTConfig.preset(size, img_size=224)
    name, kwargs = cfg.timm_args()
    with torch.device("meta"):
        ours = ViTEncoder(cfg).state_dict()
        theirs = timm.create_model(name, pretrained=False, **kwargs).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_new_resolution_works_and_reuses_the_table_at_default():
    out = ENC(images(1, 48, 20))
    assert out.shape == (1, 12 * 5, 32)
    assert ENC.pos_embed_for((8, 8)) is ENC.pos_embed


@pytest.mark.parametrize(
    "x, index, words",
    [
        (torch.randn(1, 1, 32, 32), None, ["[B, 3, H, W]", "(1, 1, 32, 32)"]),
        (torch.randn(3, 32, 32), None, ["[B, 3, H, W]"]),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), None, ["floating-point", "uint8"]),
        (torch.randn(1, 3, 30, 32), None, ["30x32", "patch_size=4"]),
        (torch.randn(1, 3, 32, 32), torch.tensor([[0, 64]]), ["[0, 64]", "[0, 63]"]),
        (torch.randn(1, 3, 32, 32), torch.tensor([[-1, 3]]), ["[-1, 3]"]),
        (torch.randn(1, 3, 32, 32), torch.tensor([[0.0, 3.0]]), ["long"]),
        (torch.randn(2, 3, 32, 32), torch.tensor([[0, 3]]), ["B=2"]),
    ],
)
def test_bad_input_raises_before_the_forward(x, index, words):
    with pytest.raises(ValueError) as e:
        ENC(x, index)
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize("rescale", [True, False])
def test_depth_rescale_divides_each_blocks_output_projections_by_sqrt_2i(rescale):
    """I-JEPA's model code rescales block i's output projections by 1/sqrt(2 i); its training re-initialised
    every Linear afterwards, so the recipes (as the released models) have none."""
    torch.manual_seed(0)
    enc = create("encoder", "vit", img_size=32, patch_size=4, embed_dim=64, depth=4, num_heads=2, depth_rescale=rescale)
    for i, blk in enumerate(enc.blocks, start=1):
        expected = 0.02 / math.sqrt(2 * i) if rescale else 0.02
        for w in (blk.attn.proj.weight, blk.mlp.fc2.weight):
            assert float(w.detach().std()) == pytest.approx(expected, rel=0.1)
    assert (
        not get_config("ijepa").method.encoder.depth_rescale
        and not get_config("tc-jepa").method.predictor.depth_rescale
    )


def test_xavier_init_is_maes_and_lightlys_masked_vit_init():
    """``init="xavier"``: every Linear and the patch embedding (as a [out, in * k * k] matrix) drawn
    xavier-uniform, biases zero; parameter for parameter the spread of lightly's masked ViT (timm names)."""
    import timm
    from lightly.models.modules.masked_vision_transformer_timm import MaskedVisionTransformerTIMM

    shape = dict(img_size=32, patch_size=4, embed_dim=64, depth=2, num_heads=2)
    torch.manual_seed(0)
    ours = create("encoder", "vit", init="xavier", depth_rescale=False, **shape).state_dict()
    timm_args = dict(pretrained=False, class_token=False, global_pool="avg", num_classes=0)
    vit = timm.create_model("vit_tiny_patch16_224", **timm_args, **shape)
    theirs = MaskedVisionTransformerTIMM(vit=vit).vit.state_dict()
    weights = [k for k, w in ours.items() if k.endswith("weight") and w.dim() > 1]
    assert len(weights) == 1 + 4 * 2  # the patch embedding and, per block, qkv, proj, fc1, fc2
    for key in weights:
        w = ours[key].flatten(1)
        xavier = math.sqrt(2.0 / sum(w.shape))
        assert float(w.abs().max()) <= math.sqrt(3) * xavier and float(w.std()) == pytest.approx(xavier, rel=0.1)
        assert float(w.std()) == pytest.approx(float(theirs[key].std()), rel=0.1), key
        assert not ours[key.replace("weight", "bias")].any()
    trunc = create("encoder", "vit", **shape).state_dict()["blocks.0.mlp.fc1.weight"]
    assert float(trunc.std()) == pytest.approx(0.02, rel=0.1)


def test_the_encoder_warns_once_when_its_input_looks_like_0_to_255_pixels():
    import warnings

    encoder = create("encoder", "vit", img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder(torch.rand(2, 3, 16, 16))  # [0, 1]: no warning
    fresh = create("encoder", "vit", img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2)
    with pytest.warns(UserWarning, match=r"input reaches 2\d\d.*images in \[0, 1\].*divide 0-255 pixels by 255"):
        fresh(torch.rand(2, 3, 16, 16) * 255)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh(torch.rand(2, 3, 16, 16) * 255)  # once per encoder
