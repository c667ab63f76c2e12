"""The text side of TC-JEPA: tokenizers, text encoders, and the batches they pass on."""

from . import hf, spm_tokenizer, transformer_encoder  # noqa: F401  (registers)
from .batch import TextFeatures, TokenBatch
from .cache import TextCache
from .transformer_encoder import TextEncoder

__all__ = ["TextCache", "TextEncoder", "TextFeatures", "TokenBatch"]
