"""A jepakit I-JEPA model as a peer library's modules holding its weights, for cross-checks.

``lightly_ijepa(model, image)`` gives lightly's ``MaskedVisionTransformerTIMM`` (context and
target encoders over timm ViTs) and ``IJEPAPredictorTIMM`` with the model's weights;
``lightly_ijepa_loss`` is the I-JEPA step as lightly's example assembles it. The tests use
them as an independent implementation of the loss (equal to jepakit's, with every gradient);
``benchmarks/bench_train.py`` uses them to time both libraries on the same weights and masks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["lightly_ijepa", "lightly_ijepa_loss"]


def lightly_ijepa(model: Any, image: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    """lightly's (context encoder, target encoder, predictor) holding ``model``'s weights, in its dtype.

    ``model`` is a ``jepa`` method with a ViT encoder and the plain ViT predictor. The encoders
    are timm ViTs with ``fc_norm=False`` (else timm moves the final norm after pooling and
    lightly's ``encode`` would read tokens without it); jepakit's pixel normalisation is folded
    into their patch embedding.
    """
    import timm
    from lightly.models.modules.ijepa_timm import IJEPAPredictorTIMM
    from lightly.models.modules.masked_vision_transformer_timm import MaskedVisionTransformerTIMM

    dtype = next(model.parameters()).dtype
    name, kwargs = model.encoder.config.timm_args()

    def encoder(ours: Any) -> nn.Module:
        wrapped = MaskedVisionTransformerTIMM(vit=timm.create_model(name, pretrained=False, **kwargs)).to(dtype)
        wrapped.vit.load_state_dict(ours.timm_state_dict(), strict=True)  # after the wrapper's own init
        return wrapped

    pred = model.predictor
    grid = image // model.encoder.config.patch_size
    twin = IJEPAPredictorTIMM(
        num_patches=grid**2,
        depth=pred.config.depth,
        mlp_dim=pred.config.encoder_dim,
        predictor_embed_dim=pred.config.embed_dim,
        num_heads=pred.config.num_heads,
    ).to(dtype)
    state = {"predictor_embed." + k: v for k, v in pred.predictor_embed.state_dict().items()}
    state |= {"predictor_proj." + k: v for k, v in pred.predictor_proj.state_dict().items()}
    state |= {"decoder.blocks." + k: v for k, v in pred.blocks.state_dict().items()}
    state |= {"decoder.norm." + k: v for k, v in pred.predictor_norm.state_dict().items()}
    state["decoder.mask_token"] = pred.mask_token.detach()
    state["decoder.pos_embed"] = pred.pos_embed_for((grid, grid), torch.device("cpu")).to(dtype)
    twin.load_state_dict(state, strict=True)
    return encoder(model.encoder), encoder(model.target_encoder), twin


def lightly_ijepa_loss(
    encoder: Any, target: Any, predictor: Any, images: Tensor, context: Tensor, targets: Tensor
) -> Tensor:
    """The I-JEPA loss as lightly's example computes it: images [B, 3, H, W], one context mask
    [B, Kc] and target blocks [B, M, Kt] of patch indices (no padding)."""
    from lightly.models import utils

    enc = [context]
    pred = list(targets.unbind(1))
    with torch.no_grad():
        h = target.encode(images)
        h = F.layer_norm(h, (h.size(-1),))
        h = utils.apply_masks(h, pred)
        h = utils.repeat_interleave_batch(h, len(images), repeat=len(enc))
    z = encoder.encode(images, idx_keep=enc[0])
    return F.smooth_l1_loss(predictor(z, enc, pred), h)
