"""TC-JEPA recipes: I-JEPA whose predictor reads the images' captions, and the paper's ablations.

Reference: Huang et al., "TC-JEPA", ICML 2026, and ``docs/methods.md``. Encoders, masking
and EMA are I-JEPA's; ``sparse-xattn`` on every predictor layer, N = 8 captions
max-pooled, lambda = 0.1, beta = 0.5. The paper's text encoder is a frozen pretrained
T5 (``text_encoder=hf``); the offline default here is a small trainable transformer,
with a SentencePiece tokenizer trained on the captions (``model.tokenizer.fit``).
"""

from __future__ import annotations

from ..conditioners.holistic import AdaLNConfig, FeatureConfig
from ..conditioners.xattn import GlobalXAttnConfig, SparseXAttnConfig
from ..config import Config, apply_overrides
from ..experiment import Experiment
from ..registry import register_recipe
from ..text.spm_tokenizer import SentencePieceConfig
from ..text.transformer_encoder import TransformerTextConfig
from .ijepa import cpu_config, ijepa_config

__all__ = ["tcjepa_config"]


def tcjepa_config(size: str = "base", conditioner: Config | None = None, **conditioner_fields: object) -> Experiment:
    """TC-JEPA for a ViT ``size``: I-JEPA plus tokenizer, text encoder and a conditioner."""
    cond = (conditioner if conditioner is not None else SparseXAttnConfig()).replace(**conditioner_fields)
    return apply_overrides(
        ijepa_config(size),
        {
            "conditioner": cond,
            "caption_choice": "sample",
            "tokenizer": SentencePieceConfig(vocab_size=1000, max_length=32, max_captions=8),
            "text_encoder": TransformerTextConfig(),
        },
    )


@register_recipe("tc-jepa", help="TC-JEPA, ViT-B/16: sparse-xattn on every predictor layer, N=8, lambda=0.1, beta=0.5")
def tc_jepa() -> Experiment:
    return tcjepa_config("base")


@register_recipe("tc-jepa-tiny", help="TC-JEPA with ViT-Ti/16 (predictor 6 x 192): CPU runs and benchmarks")
def tc_jepa_tiny() -> Experiment:
    return tcjepa_config("tiny")


@register_recipe("tc-jepa-small", help="TC-JEPA with ViT-S/16")
def tc_jepa_small() -> Experiment:
    return tcjepa_config("small")


@register_recipe("tc-jepa-large", help="TC-JEPA with ViT-L/16 (predictor 12 x 384)")
def tc_jepa_large() -> Experiment:
    return tcjepa_config("large")


@register_recipe("tc-jepa-huge", help="TC-JEPA with ViT-H/14 (predictor 12 x 384)")
def tc_jepa_huge() -> Experiment:
    return tcjepa_config("huge")


# ------------------------------------------------------------ the paper's ablations (ViT-B/16)


@register_recipe("tc-jepa-global-xattn", help="ablation: holistic cross-attention to each caption's mean t̄")
def tc_jepa_global_xattn() -> Experiment:
    return tcjepa_config("base", GlobalXAttnConfig())


@register_recipe("tc-jepa-adaln", help="ablation: holistic AdaLN, t̄ scales and shifts every predictor LayerNorm")
def tc_jepa_adaln() -> Experiment:
    return tcjepa_config("base", AdaLNConfig(final_norm=True))


@register_recipe("tc-jepa-feature", help="ablation: holistic input-level conditioning z + MLP(LN([z, t̄]))")
def tc_jepa_feature() -> Experiment:
    return tcjepa_config("base", FeatureConfig())


@register_recipe("tc-jepa-no-reg", help="ablation: sparse-xattn without regularisers (lambda = beta = 0)")
def tc_jepa_no_reg() -> Experiment:
    return tcjepa_config("base", sparse_weight=0.0, consistency_weight=0.0)


@register_recipe("tc-jepa-sparse-only", help="ablation: L_sparse only (beta = 0)")
def tc_jepa_sparse_only() -> Experiment:
    return tcjepa_config("base", consistency_weight=0.0)


@register_recipe("tc-jepa-single-layer", help="ablation: condition only the last predictor layer")
def tc_jepa_single_layer() -> Experiment:
    return tcjepa_config("base", layers=(-1,))


@register_recipe("tc-jepa-mean-pool", help="ablation: mean-pool the N captions instead of max")
def tc_jepa_mean_pool() -> Experiment:
    return tcjepa_config("base", pooling="mean")


@register_recipe("tc-jepa-attn-pool", help="ablation: attention-pool the N captions instead of max")
def tc_jepa_attn_pool() -> Experiment:
    return tcjepa_config("base", pooling="attention")


@register_recipe("tc-jepa-cpu", help="TC-JEPA on the embedded scenes at 64 px, ViT 192/6: minutes on a laptop CPU")
def tc_jepa_cpu() -> Experiment:
    return apply_overrides(
        cpu_config(tcjepa_config("tiny")),
        {
            "text_encoder": {"embed_dim": 96, "depth": 2, "num_heads": 2},
            "tokenizer": {"vocab_size": 500, "max_length": 16},
        },
    )
