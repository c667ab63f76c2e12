"""TC-JEPA recipes: I-JEPA whose predictor reads the images' captions, and the paper's ablations.

Reference: Huang et al., "TC-JEPA", ICML 2026, and REFERENCE.md. Encoders, masking
and EMA are I-JEPA's; ``sparse-xattn`` on every predictor layer, N = 8 captions
max-pooled, lambda = 0.1, beta = 0.5. The paper's text encoder is a frozen pretrained
T5 (``text_encoder=hf``); the offline default here is a small trainable transformer,
with a SentencePiece tokenizer trained on the captions (``model.tokenizer.fit``).
"""

from __future__ import annotations

import dataclasses

from ..conditioners.holistic import AdaLNConfig, FeatureConfig
from ..conditioners.xattn import GlobalXAttnConfig, SparseXAttnConfig
from ..config import Config
from ..models.jepa import JEPAConfig
from ..registry import register_recipe
from ..text.spm_tokenizer import SentencePieceConfig
from ..text.transformer_encoder import TransformerTextConfig
from .ijepa import ijepa_config

__all__ = ["tcjepa_config"]


def tcjepa_config(size: str = "base", conditioner: Config | None = None, **conditioner_fields: object) -> JEPAConfig:
    """TC-JEPA for a ViT ``size``: I-JEPA plus tokenizer, text encoder and a conditioner."""
    base = ijepa_config(size)
    tokenizer = SentencePieceConfig(vocab_size=1000, max_length=32, max_captions=8)
    text = TransformerTextConfig(vocab_size=tokenizer.vocab_size, max_length=tokenizer.max_length)
    cond = conditioner if conditioner is not None else SparseXAttnConfig()
    shared = dict(dim=base.predictor.embed_dim, text_dim=text.embed_dim)
    if hasattr(cond, "depth"):
        shared["depth"] = base.predictor.depth
    cond = cond.replace(**shared, **conditioner_fields)
    return dataclasses.replace(base, conditioner=cond, tokenizer=tokenizer, text_encoder=text)


@register_recipe("tc-jepa", help="TC-JEPA, ViT-B/16: sparse-xattn on every predictor layer, N=8, lambda=0.1, beta=0.5")
def tc_jepa() -> JEPAConfig:
    return tcjepa_config("base")


@register_recipe("tc-jepa-tiny", help="TC-JEPA with ViT-Ti/16 (predictor 6 x 192): CPU runs and benchmarks")
def tc_jepa_tiny() -> JEPAConfig:
    return tcjepa_config("tiny")


@register_recipe("tc-jepa-small", help="TC-JEPA with ViT-S/16")
def tc_jepa_small() -> JEPAConfig:
    return tcjepa_config("small")


@register_recipe("tc-jepa-large", help="TC-JEPA with ViT-L/16 (predictor 12 x 384)")
def tc_jepa_large() -> JEPAConfig:
    return tcjepa_config("large")


@register_recipe("tc-jepa-huge", help="TC-JEPA with ViT-H/14 (predictor 12 x 384)")
def tc_jepa_huge() -> JEPAConfig:
    return tcjepa_config("huge")


# ------------------------------------------------------------ the paper's ablations (ViT-B/16)


@register_recipe("tc-jepa-global-xattn", help="ablation: holistic cross-attention to each caption's mean t̄")
def tc_jepa_global_xattn() -> JEPAConfig:
    return tcjepa_config("base", GlobalXAttnConfig())


@register_recipe("tc-jepa-adaln", help="ablation: holistic AdaLN, t̄ scales and shifts every predictor LayerNorm")
def tc_jepa_adaln() -> JEPAConfig:
    return tcjepa_config("base", AdaLNConfig())


@register_recipe("tc-jepa-feature", help="ablation: holistic input-level conditioning z + MLP(LN([z, t̄]))")
def tc_jepa_feature() -> JEPAConfig:
    return tcjepa_config("base", FeatureConfig())


@register_recipe("tc-jepa-no-reg", help="ablation: sparse-xattn without regularisers (lambda = beta = 0)")
def tc_jepa_no_reg() -> JEPAConfig:
    return tcjepa_config("base", sparse_weight=0.0, consistency_weight=0.0)


@register_recipe("tc-jepa-sparse-only", help="ablation: L_sparse only (beta = 0)")
def tc_jepa_sparse_only() -> JEPAConfig:
    return tcjepa_config("base", consistency_weight=0.0)


@register_recipe("tc-jepa-single-layer", help="ablation: condition only the last predictor layer")
def tc_jepa_single_layer() -> JEPAConfig:
    return tcjepa_config("base", layers=(-1,))


@register_recipe("tc-jepa-mean-pool", help="ablation: mean-pool the N captions instead of max")
def tc_jepa_mean_pool() -> JEPAConfig:
    return tcjepa_config("base", pooling="mean")


@register_recipe("tc-jepa-attn-pool", help="ablation: attention-pool the N captions instead of max")
def tc_jepa_attn_pool() -> JEPAConfig:
    return tcjepa_config("base", pooling="attention")


@register_recipe("tc-jepa-cpu", help="TC-JEPA on the embedded scenes at 64 px, ViT 192/6: minutes on a laptop CPU")
def tc_jepa_cpu() -> JEPAConfig:
    from ..config import apply_overrides
    from .ijepa import cpu_config

    cfg = cpu_config(tcjepa_config("tiny"))
    return apply_overrides(
        cfg,
        {
            "conditioner": {"dim": 192, "depth": 3, "text_dim": 96},
            "text_encoder": {"embed_dim": 96, "depth": 2, "num_heads": 2, "max_length": 16},
            "tokenizer": {"vocab_size": 500, "max_length": 16},
        },
    )
