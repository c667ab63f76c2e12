"""Frozen pretrained text encoders and their tokenizers from a local Hugging Face directory.

TC-JEPA uses a frozen pretrained T5 encoder; any encoder whose output has
``last_hidden_state`` works (T5 encoders are loaded without their decoder). Nothing is
downloaded: the directory must hold the model (``local_files_only``). Needs the
optional extra ``pip install "jepakit[hf]"`` (transformers). T5's own ``spiece.model``
also loads into the ``sentencepiece`` tokenizer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..config import Config, MissingFileError, at_least, knob
from ..registry import register
from .spm_tokenizer import CaptionTokenizer
from .transformer_encoder import TextEncoder

__all__ = ["HFTextConfig", "HFTextEncoder", "HFTokenizer", "HFTokenizerConfig", "import_transformers"]


def import_transformers() -> Any:
    """The ``transformers`` module, or an error that names the extra to install."""
    try:
        import transformers
    except ImportError:
        raise ImportError('the "hf" text encoder and tokenizer need transformers: pip install "jepakit[hf]"') from None
    return transformers


def _check_dir(where: str, path: str, needs: str) -> None:
    """Raise naming ``where.path`` unless it is a directory holding the file ``needs``."""
    if not path:
        raise MissingFileError(f"{where}.path is empty: give a local Hugging Face model directory")
    if not os.path.isdir(path):
        raise MissingFileError(f"{where}.path={path!r} is not a directory")
    if not os.path.isfile(os.path.join(path, needs)):
        raise MissingFileError(f"{where}.path={path!r} holds no {needs}: not a Hugging Face model directory")


def _read_config(path: str) -> dict[str, Any]:
    """The directory's config.json, or {} when it cannot be read."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class HFTextConfig(Config):
    path: str = knob("", "local Hugging Face model directory (e.g. a T5 encoder); nothing is downloaded")
    memo: int = knob(
        4096, "remember this many distinct captions' embeddings (0: off); repeats are read, not run", valid=at_least(0)
    )

    def check_files(self) -> None:
        _check_dir(self.type_id(), self.path, "config.json")

    @property
    def embed_dim(self) -> int | None:
        """Width of the word embeddings, read from the directory's config.json (None if unreadable)."""
        cfg = _read_config(self.path)
        return cfg.get("d_model") or cfg.get("hidden_size")


@register("text_encoder", "hf", HFTextConfig)
class HFTextEncoder(TextEncoder):
    """A frozen pretrained encoder: [B, N, S] ids -> its last hidden states [B, N, S, d_t]."""

    trainable = False

    def __init__(self, cfg: HFTextConfig) -> None:
        super().__init__()
        transformers = import_transformers()
        self.config = cfg
        auto = transformers.AutoConfig.from_pretrained(cfg.path, local_files_only=True)
        encoder_only = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}
        if auto.model_type in encoder_only:  # T5 without its decoder
            model = getattr(transformers, encoder_only[auto.model_type]).from_pretrained(
                cfg.path, local_files_only=True
            )
        else:
            model = transformers.AutoModel.from_pretrained(cfg.path, local_files_only=True)
            if getattr(auto, "is_encoder_decoder", False):
                model = model.get_encoder()
        self.model = model
        self.width = int(getattr(auto, "d_model", None) or auto.hidden_size)
        self.vocab_size = int(auto.vocab_size)
        self.freeze(cfg.memo)

    def check_ids(self, ids: Tensor) -> None:
        if ids.numel() and int(ids.max()) >= self.vocab_size:
            raise ValueError(f"token id {int(ids.max())} is outside the model's vocabulary of {self.vocab_size}")

    def encode_rows(self, ids: Tensor, keys: Tensor) -> Tensor:
        return self.model(input_ids=ids, attention_mask=keys.long()).last_hidden_state.float()


@dataclass(frozen=True)
class HFTokenizerConfig(Config):
    path: str = knob("", "local Hugging Face directory with the encoder's own tokenizer")
    max_length: int = knob(32, "tokens per caption S (truncated or padded)", valid=at_least(1))
    max_captions: int = knob(8, "captions per image N; missing ones are masked, never invented", valid=at_least(1))

    def check_files(self) -> None:
        _check_dir(self.type_id(), self.path, "tokenizer_config.json")

    @property
    def vocab_size(self) -> int | None:
        """The vocabulary of the model next to the tokenizer (None if unreadable)."""
        return _read_config(self.path).get("vocab_size")


@register("tokenizer", "hf", HFTokenizerConfig)
class HFTokenizer(CaptionTokenizer):
    """A pretrained encoder's own tokenizer (e.g. WordPiece for BERT-style encoders)."""

    def __init__(self, cfg: HFTokenizerConfig) -> None:
        transformers = import_transformers()
        self.config = cfg
        self._tok = transformers.AutoTokenizer.from_pretrained(cfg.path, local_files_only=True)
        self.truncated = 0

    def fit(self, captions: Sequence[str]) -> HFTokenizer:
        """Nothing to train: a pretrained tokenizer is used as it is."""
        return self

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self._tok(list(texts), add_special_tokens=True)["input_ids"]

    @property
    def pad_id(self) -> int:
        return self._tok.pad_token_id or 0
