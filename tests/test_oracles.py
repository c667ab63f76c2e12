"""jepakit's I-JEPA against an independent implementation: lightly's I-JEPA modules over timm.

With the same weights (the context encoder, a target encoder that differs from it, the
predictor) and the same masks, jepakit's loss and every gradient equal those of lightly's
assembly in float64. This is the test that catches a wrong source of targets, wrong
positions for context or target tokens, or target blocks that see each other.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jepakit import get_config

from peers import lightly_ijepa, lightly_ijepa_loss


def jepakit_model(seed: int, image: int, patch: int):
    torch.manual_seed(seed)
    cfg = get_config(
        "ijepa",
        image_size=image,
        encoder={"embed_dim": 32, "depth": 2, "num_heads": 2, "patch_size": patch},
        predictor={"embed_dim": 16, "depth": 2, "num_heads": 2},
        masker={"context": "random-truncate", "min_keep": 4},
    )
    model = cfg.build().double()
    with torch.no_grad():  # a teacher that differs from the student, as after any EMA step
        for p in model.target_encoder.parameters():
            p.add_(0.05 * torch.randn(p.shape, dtype=p.dtype))
    return model


def lightly_loss(encoder, target, predictor, images, masks):
    return lightly_ijepa_loss(encoder, target, predictor, images, masks.context, masks.targets)


@settings(max_examples=6)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 4), size=st.sampled_from([(32, 4), (48, 8), (64, 8)]))
def test_ijepa_loss_and_gradients_equal_lightlys_assembly(seed, batch, size):
    image, patch = size
    model = jepakit_model(seed, image, patch)
    encoder, target, predictor = lightly_ijepa(model, image)
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, image, image, generator=g, dtype=torch.float64)
    masks = model.masker(batch, g)
    assert masks.context_valid is None and masks.targets.shape[1] == 4
    ours = model(images, masks)["loss"]
    theirs = lightly_loss(encoder, target, predictor, images, masks)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    ours.backward()
    theirs.backward()
    pairs = [
        (model.predictor.predictor_embed.weight, predictor.predictor_embed.weight),
        (model.predictor.mask_token, predictor.decoder.mask_token),
        (model.predictor.blocks[0].attn.qkv.weight, predictor.decoder.blocks[0].attn.qkv.weight),
        (model.predictor.predictor_proj.bias, predictor.predictor_proj.bias),
    ]
    vit = dict(encoder.vit.named_parameters())
    pairs += [(p, vit[k]) for k, p in model.encoder.named_parameters() if k != "patch_embed.proj.weight"]
    for a, b in pairs:
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)


def test_the_twin_is_sensitive_to_what_it_checks():
    """Guard the oracle: a teacher equal to the student, or lightly's default final norm, changes its loss."""
    model = jepakit_model(0, 32, 4)
    encoder, target, predictor = lightly_ijepa(model, 32)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    masks = model.masker(2, g)
    right = lightly_loss(encoder, target, predictor, images, masks)
    assert float((right - lightly_loss(encoder, encoder, predictor, images, masks)).abs().detach()) > 1e-6
    with torch.no_grad():
        assert not torch.allclose(model.encoder(images), model.target_encoder(images))


@pytest.mark.parametrize("fc_norm", [None, False])
def test_lightlys_encoder_needs_fc_norm_off_to_have_the_final_norm(fc_norm):
    """timm's avg-pool ViT moves the final norm after pooling unless fc_norm=False; lightly's encode()
    reads the tokens before it, so an assembly without fc_norm=False lacks I-JEPA's final norm."""
    import timm
    from lightly.models.modules.masked_vision_transformer_timm import MaskedVisionTransformerTIMM

    model = jepakit_model(0, 32, 4)
    name, kwargs = model.encoder.config.timm_args()
    wrapped = MaskedVisionTransformerTIMM(
        vit=timm.create_model(name, pretrained=False, **{**kwargs, "fc_norm": fc_norm})
    )
    wrapped = wrapped.double()
    wrapped.vit.load_state_dict(model.encoder.timm_state_dict(), strict=False)  # no fc_norm weights to load
    images = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    same = torch.allclose(wrapped.encode(images), model.encoder(images))
    assert same is (fc_norm is False)
