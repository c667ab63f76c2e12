"""Contrastive image–text recipes: CLIP, SigLIP and the frozen-text control, at ViT-B/16 and on a CPU.

References: Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision" (CLIP), 2021; Zhai et al., "Sigmoid Loss for Language Image Pre-Training"
(SigLIP), ICCV 2023; ``docs/methods.md``. Built from the same registered parts as the JEPA
recipes (the ``vit`` encoder, the text encoders and tokenizers), so that the quality
benchmark compares prediction with contrast on the same encoders, data and probes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..config import apply_overrides
from ..departures import Departure
from ..encoders.vit import ViTConfig
from ..experiment import Experiment
from ..losses.contrastive import ClipLossConfig, SigLipLossConfig
from ..methods.contrastive import ContrastiveConfig
from ..registry import register_recipe
from ..text.hf import MiniLMTextConfig, MiniLMTokenizerConfig
from ..text.spm_tokenizer import SentencePieceConfig
from ..text.transformer_encoder import TransformerTextConfig
from ..train.trainer import TrainConfig
from .ijepa import CPU_SIZE, CPU_TRAIN, preset_departure

__all__ = ["clip_config", "siglip_config"]

#: Where the contrastive recipes depart from the papers, and why (``describe`` prints these).
POOLING = Departure(
    "encoder",
    "CLIP pools the image tower's class token; SigLIP a MAP head",
    "the image tower average-pools its patch tokens",
    "jepakit's ViT has no class token: the probes then read the same pooled tokens as for the JEPA rows",
    kind="mechanism",
)
#: SigLIP's text tower (big_vision) reads its caption's last token through a MAP-free head; ours the mean.
TEXT_POOLING = Departure(
    "text_pool",
    "SigLIP: the text transformer's pooled output",
    "mean",
    "the mean of the real tokens, as the frozen-text control and the CPU presets pool",
    kind="mechanism",
)
EPOCHS = Departure(
    "train.epochs",
    "400M (CLIP) and up to 40B (SigLIP) pairs",
    "epochs of whatever data the run reads",
    "the recipes are given in passes over the data a run has",
    kind="mechanism",
)
DEPARTURES = (
    POOLING,
    Departure(
        "tokenizer",
        "CLIP: a 49,408-piece BPE; SigLIP: SentencePiece",
        "a SentencePiece vocabulary fitted on the training captions",
        "the recipes need no download",
        kind="mechanism",
    ),
    Departure(
        "text_encoder.pos_scale",
        "CLIP learns its positions from std 0.01",
        0.014,
        "the text tower's fixed sin-cos positions at rms 0.01: at full scale they drown the word embeddings and "
        "every pooled caption is nearly one vector (clip-cpu then stays at the chance loss)",
    ),
    EPOCHS,
)
#: The frozen-text control reads captions through TC-JEPA's pretrained MiniLM (its own tokenizer, no positions
#: of ours), so only the pooling and the length of training depart.
FROZEN_TEXT_DEPARTURES = (POOLING, EPOCHS)
#: Where the CPU presets depart further, and why.
CPU_DEPARTURES = (
    preset_departure(
        "image_size, embed_dim, encoder, text_encoder, tokenizer.max_length, train",
        "a laptop preset (ours): 64 px, ViT 192/6 with 8 px patches (the JEPA CPU presets' encoder), a 192-d "
        "joint space, captions of 16 tokens, a 4-layer "
        "256-wide text tower where it is trained here, 300 steps of 32 pairs on the scenes, one of each image's "
        "captions drawn per epoch",
    ),
)


#: The text tower's sin-cos positions at rms 0.01, as CLIP's learnt ones start (std 0.01), beside word
#: embeddings at std 0.02: at full scale they drown the words (every pooled caption nearly one vector).
POS_SCALE = 0.014


def clip_config() -> Experiment:
    """CLIP ViT-B/16: 512-d joint space, a causal text tower 12 x 512 with 8 heads over 77 tokens pooled at the
    end-of-text token, logit scale
    from 1/0.07 clipped at 100; AdamW LR 5e-4, weight decay 0.2, betas (0.9, 0.98), eps 1e-6, batch
    32,768, 2,000 warm-up steps then cosine, 32 epochs."""
    method = ContrastiveConfig(
        image_size=224,
        embed_dim=512,
        encoder=ViTConfig.preset("base", depth_rescale=False),
        tokenizer=SentencePieceConfig(vocab_size=49408, max_length=77, max_captions=1),
        text_encoder=TransformerTextConfig(embed_dim=512, depth=12, num_heads=8, pos_scale=POS_SCALE, causal=True),
        text_pool="last",
        loss=ClipLossConfig(init_temperature=0.07, max_logit_scale=100.0),
    )
    train = TrainConfig(
        steps=None,
        epochs=32,
        warmup_steps=2000,
        warmup_epochs=None,
        batch_size=32768,
        lr=5e-4,
        start_lr=0.0,
        final_lr=0.0,
        weight_decay=0.2,
        final_weight_decay=0.2,
        betas=(0.9, 0.98),
        eps=1e-6,
        precision="bf16",
    )
    return Experiment(method=method, train=train)


def siglip_config() -> Experiment:
    """SigLIP ViT-B/16: towers of equal size (text 12 x 768, 12 heads, over 64 SentencePiece tokens,
    32,000 pieces), a 768-d joint space, t' from log 10 and b from -10; AdamW LR 1e-3, weight decay
    1e-4, beta2 0.95, batch 32,768."""
    method = ContrastiveConfig(
        image_size=224,
        embed_dim=768,
        encoder=ViTConfig.preset("base", depth_rescale=False),
        tokenizer=SentencePieceConfig(vocab_size=32000, max_length=64, max_captions=1),
        text_encoder=TransformerTextConfig(embed_dim=768, depth=12, num_heads=12, pos_scale=POS_SCALE),
        text_pool="mean",
        loss=SigLipLossConfig(init_logit_scale=10.0, init_bias=-10.0),
    )
    train = apply_overrides(
        clip_config().train,
        {"lr": 1e-3, "weight_decay": 1e-4, "final_weight_decay": 1e-4, "betas": (0.9, 0.95), "eps": 1e-8},
    )
    return Experiment(method=method, train=train)


def frozen_text(cfg: Experiment) -> Experiment:
    """``cfg`` reading captions through TC-JEPA's frozen pretrained all-MiniLM-L6-v2: only the text
    projection trains on the text side (the prediction-vs-contrast control)."""
    return apply_overrides(
        cfg,
        {
            "tokenizer": MiniLMTokenizerConfig(max_length=32, max_captions=1),
            "text_encoder": MiniLMTextConfig(),
            "text_pool": "mean",  # the sentence embedding the MiniLM model was trained for
        },
    )


def cpu(cfg: Experiment) -> Experiment:
    """``cfg`` shrunk to the CPU preset: 64 px, the JEPA presets' ViT 192/6, a 4 x 256 text tower over
    16 tokens, a 192-d joint space, 300 steps of 32 pairs at the paper's LR (warm-up 30 steps)."""
    text, tokenizer = cfg.text_encoder, cfg.tokenizer  # the method's, read from the root
    fields: dict[str, object] = {
        "image_size": 64,
        "embed_dim": 192,
        "encoder": CPU_SIZE,
        "tokenizer": {
            "max_length": 16,
            **({"vocab_size": 1000} if tokenizer.name == "sentencepiece" else {}),
        },
        # the paper's learning rate and weight decay, warmed up from 0 over 30 steps
        "train": {
            **CPU_TRAIN,
            # the schedule's fields by name
            **{k: getattr(cfg.train, k) for k in ("lr", "start_lr", "weight_decay", "final_weight_decay")},
        },
    }
    if text.name == "transformer":  # bidirectional and mean-pooled: what the CPU quality rows measured
        fields["text_encoder"] = {"embed_dim": 256, "depth": 4, "num_heads": 4, "causal": False}
        fields["text_pool"] = "mean"
    return apply_overrides(cfg, fields)


def cpu_of(make: Callable[[], Experiment]) -> Experiment:
    """The CPU preset of the recipe ``make`` returns."""
    return cpu(make())


#: What the papers state (CLIP: Radford et al. 2021; SigLIP: Zhai et al. 2023; docs/methods.md).
CLIP_FACTS: dict[str, object] = {
    "embed_dim": 512,
    "text_encoder.embed_dim": 512,
    "text_encoder.depth": 12,
    "text_encoder.num_heads": 8,
    "text_encoder.causal": True,
    "text_pool": "last",
    "tokenizer.max_length": 77,
    "loss": "clip",
    "loss.init_temperature": 0.07,
    "loss.max_logit_scale": 100.0,
    "train.lr": 5e-4,
    "train.weight_decay": 0.2,
    "train.betas": (0.9, 0.98),
    "train.eps": 1e-6,
    "train.batch_size": 32768,
}
SIGLIP_FACTS: dict[str, object] = {
    "tokenizer": "sentencepiece",
    "tokenizer.max_length": 64,
    "loss": "siglip",
    "loss.init_logit_scale": 10.0,
    "loss.init_bias": -10.0,
    "train.batch_size": 32768,
}
#: clip-cpu keeps the text tower its quality rows were measured with.
CLIP_CPU_DEPARTURES = (
    Departure(
        "text_encoder.causal",
        True,
        False,
        "the CPU quality rows were measured with a bidirectional, mean-pooled text tower; the paper's causal one "
        "(clip-causal, 3 seeds: benchmarks/RESULTS.md, Quality) ties on the probes, is 0.006 below on dense and "
        "0.155 above on zero-shot count, so the preset takes it once the clip rows are re-run with it",
    ),
    Departure("text_pool", "last", "mean", "with the bidirectional tower: the mean of the real tokens"),
)
_SPECS = {
    "clip": (clip_config, "CLIP, ViT-B/16 image tower, 12 x 512 causal text tower: symmetric InfoNCE", CLIP_FACTS),
    "siglip": (siglip_config, "SigLIP, ViT-B/16 towers: pairwise sigmoid loss", SIGLIP_FACTS),
}
for _name, (_make, _help, _facts) in _SPECS.items():
    _text_pool = (TEXT_POOLING,) if _name == "siglip" else ()
    register_recipe(_name, help=_help, departures=DEPARTURES + _text_pool, facts=_facts)(_make)
    register_recipe(
        f"{_name}-cpu",
        help=f"{_name} on the embedded scenes at 64 px, ViT 192/6: minutes on a laptop CPU",
        departures=DEPARTURES + _text_pool + CPU_DEPARTURES + (CLIP_CPU_DEPARTURES if _name == "clip" else ()),
        facts=_facts,
    )(functools.partial(cpu_of, _make))


#: The control's text side is TC-JEPA's frozen pretrained one by design; the rest holds CLIP's facts.
FROZEN_TEXT_FACTS = {
    k: v for k, v in CLIP_FACTS.items() if not k.startswith(("text_encoder", "text_pool", "tokenizer"))
}


@register_recipe(
    "contrastive-frozen-text",
    help="control: CLIP's loss with TC-JEPA's frozen pretrained text encoder, only its projection trained",
    departures=FROZEN_TEXT_DEPARTURES,
    facts=FROZEN_TEXT_FACTS,
)
def contrastive_frozen_text() -> Experiment:
    return frozen_text(clip_config())


@register_recipe(
    "contrastive-frozen-text-cpu",
    help="contrastive-frozen-text on the embedded scenes at 64 px: minutes on a laptop CPU",
    departures=FROZEN_TEXT_DEPARTURES + CPU_DEPARTURES,
    facts=FROZEN_TEXT_FACTS,
)
def contrastive_frozen_text_cpu() -> Experiment:
    return cpu(frozen_text(clip_config()))
