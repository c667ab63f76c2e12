"""SentencePiece tokenizer: trained in-process on captions, or loaded from a ``.model`` file.

Reference: Kudo and Richardson, "SentencePiece", EMNLP 2018. Training uses one thread
and a fixed seed, so the same captions give the same model. The model travels as
bytes (``to_bytes`` / ``from_bytes``), so a checkpoint can carry it. The default ids
follow T5 (pad 0, eos 1, unk 2, no bos), so T5's ``spiece.model`` loads as it is.
"""

from __future__ import annotations

import abc
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..config import Config, ConfigError, MissingFileError, at_least, in_range, knob
from ..registry import register
from .batch import TokenBatch

__all__ = ["CaptionTokenizer", "SentencePieceConfig", "SentencePieceTokenizer", "pad_captions"]


@dataclass(frozen=True)
class SentencePieceConfig(Config):
    model_file: str | None = knob(None, "an existing SentencePiece .model file (e.g. T5's spiece.model); None: fit()")
    model_type: Literal["unigram", "bpe"] = knob("unigram", "training algorithm")
    vocab_size: int = knob(
        1000,
        "vocabulary size asked for; training lowers it when the corpus is small "
        "(with byte_fallback at least 300: 256 byte pieces, the special tokens, the characters)",
        valid=at_least(64),
    )
    max_length: int = knob(32, "tokens per caption S (truncated or padded)", valid=at_least(1))
    max_captions: int = knob(
        8, "captions per image N (TC-JEPA: 8); missing ones are masked, never invented", valid=at_least(1)
    )
    pad_id: int = knob(0, "id of the padding token (T5: 0)", valid=at_least(0))
    eos_id: int = knob(1, "id of end-of-sequence, appended to every caption; -1: none (T5: 1)", valid=at_least(-1))
    unk_id: int = knob(2, "id of the unknown token (T5: 2)", valid=at_least(0))
    bos_id: int = knob(-1, "id of beginning-of-sequence; -1: none (T5: none)", valid=at_least(-1))
    byte_fallback: bool = knob(True, "spell unknown characters as UTF-8 bytes instead of unk")
    num_threads: int = knob(1, "training threads (1 makes training reproducible)", valid=in_range(1, 1024))
    fit_samples: int = knob(
        2000, "captions of this many samples train a tokenizer that has no model_file", valid=at_least(1)
    )
    seed: int = knob(0, "training seed (SentencePiece takes 32 bits)", valid=in_range(0, 2**32 - 1))

    def offers(self) -> dict[str, tuple[Any, str]]:
        """The vocabulary asked for and the caption length."""
        return {"vocab_size": (self.vocab_size, "vocab_size"), "max_length": (self.max_length, "max_length")}

    def check_files(self) -> None:
        if self.model_file is not None and not os.path.isfile(self.model_file):
            raise MissingFileError(f"{self.type_id()}.model_file={self.model_file!r} does not exist")

    def validate(self) -> None:
        t = self.type_id()
        if self.byte_fallback and self.vocab_size < 300:
            raise ConfigError(
                f"{t}.vocab_size={self.vocab_size}: byte_fallback=true reserves 256 byte pieces; "
                "give at least 300 or set byte_fallback=false"
            )
        # its own special-token fields by name
        ids = {n: getattr(self, n) for n in ("pad_id", "eos_id", "unk_id", "bos_id") if getattr(self, n) >= 0}
        if len(set(ids.values())) != len(ids):
            raise ConfigError(f"{t}: special token ids must differ; got {ids}")
        if max(ids.values()) >= self.vocab_size:
            raise ConfigError(f"{t}: special token ids {ids} must lie below vocab_size={self.vocab_size}")


def pad_captions(
    encoded: Sequence[Sequence[Sequence[int]]], max_captions: int, max_length: int, pad_id: int
) -> TokenBatch:
    """Token ids of each image's captions -> a ``TokenBatch`` [B, N, S]; counts truncations."""
    b = len(encoded)
    ids = torch.full((b, max_captions, max_length), pad_id, dtype=torch.long)
    mask = torch.zeros(b, max_captions, max_length, dtype=torch.bool)
    truncated = 0
    for i, captions in enumerate(encoded):
        for j, tokens in enumerate(captions[:max_captions]):
            truncated += len(tokens) > max_length
            tokens = list(tokens)[:max_length]
            ids[i, j, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[i, j, : len(tokens)] = True
    return TokenBatch(ids, mask, truncated)


class CaptionTokenizer(abc.ABC):
    """What every tokenizer shares: captions of each image -> a padded ``TokenBatch``.

    Subclasses provide ``encode`` (texts -> token ids), ``pad_id`` and a config with
    ``max_captions`` (N) and ``max_length`` (S).
    """

    truncated: int  #: captions cut to max_length since construction
    config: Any  #: the subclass's config: ``max_captions``, ``max_length`` (and ``pad_id`` unless overridden)

    @property
    def pad_id(self) -> int:
        return self.config.pad_id

    @abc.abstractmethod
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text."""

    @property
    def ready(self) -> bool:
        """Whether it can tokenise now; a tokenizer that must be fitted first (SentencePiece) is not until then."""
        return True

    def fit(self, captions: Iterable[str]) -> CaptionTokenizer:
        """Learn the vocabulary from ``captions``; a pretrained tokenizer is used as it is."""
        return self

    def to_bytes(self) -> bytes | None:
        """The fitted model a checkpoint keeps, so a resumed run reads the same ids; None: nothing was fitted."""
        return None

    def load_bytes(self, data: bytes) -> CaptionTokenizer:
        """Use the model ``to_bytes`` gave (a resumed run's); only a fitted tokenizer has one."""
        raise ValueError(f"{type(self).__name__} is not fitted, so it has no saved model to load")

    def __call__(self, captions: Sequence[Sequence[str]]) -> TokenBatch:
        """Tokenise the captions of each image ([B][n_i] strings) into [B, N, S]."""
        if isinstance(captions, str) or any(isinstance(c, str) for c in captions):
            raise ValueError("captions must be a list (one per image) of lists of strings")
        n = self.config.max_captions
        encoded = iter(self.encode([c for caps in captions for c in caps[:n]]))
        per_image = [[next(encoded) for _ in caps[:n]] for caps in captions]
        batch = pad_captions(per_image, n, self.config.max_length, self.pad_id)
        self.truncated += batch.truncated
        return batch


@register("tokenizer", "sentencepiece", SentencePieceConfig)
class SentencePieceTokenizer(CaptionTokenizer):
    """Captions -> ``TokenBatch``; ``fit`` trains the model, ``to_bytes`` saves it.

    Example:
        >>> from jepakit import create
        >>> scenes = create("dataset", "scenes", image_size=32, size=200)
        >>> captions = [c for i in range(200) for c in scenes[i]["captions"]]
        >>> tokenizer = create("tokenizer", "sentencepiece", vocab_size=300, max_length=8, max_captions=2).fit(captions)
        >>> batch = tokenizer([scenes[0]["captions"], scenes[1]["captions"]])  # 2 images, the first 2 captions each
        >>> tuple(batch.ids.shape), batch.mask.dtype, tokenizer.vocab_size  # [B, N, S] ids; mask: real tokens
        ((2, 2, 8), torch.bool, 300)
    """

    def __init__(self, cfg: SentencePieceConfig, model_proto: bytes | None = None) -> None:
        self.config = cfg
        self._sp: Any = None
        self.truncated = 0  #: captions cut to max_length since construction
        if model_proto is not None:
            self._load(model_proto, "the given bytes")
        elif cfg.model_file is not None:
            cfg.check_files()
            with open(cfg.model_file, "rb") as f:
                self._load(f.read(), repr(cfg.model_file))

    def _load(self, proto: bytes, what: str) -> None:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor()
        try:
            sp.LoadFromSerializedProto(proto)
        except (RuntimeError, OSError) as e:
            raise ConfigError(f"{what} is not a SentencePiece model: {e}") from None
        if sp.pad_id() != self.config.pad_id:
            raise ConfigError(
                f"SentencePiece model {what} pads with id {sp.pad_id()}, but "
                f"{self.config.type_id()}.pad_id={self.config.pad_id}"
            )
        self._sp = sp

    def load_bytes(self, data: bytes) -> SentencePieceTokenizer:
        """Use the model in ``data`` (from ``to_bytes``, e.g. out of a checkpoint)."""
        self._load(data, "the given bytes")
        return self

    @property
    def ready(self) -> bool:
        return self._sp is not None

    @property
    def vocab_size(self) -> int:
        """The size of the trained or loaded vocabulary (at most the configured one)."""
        return self._processor().vocab_size()

    def fit(self, captions: Iterable[str]) -> SentencePieceTokenizer:
        """Train on ``captions`` in-process (reproducibly) and use the result."""
        import sentencepiece as spm

        cfg = self.config
        spm.set_random_generator_seed(cfg.seed)
        out = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(captions),
                model_writer=out,
                model_type=cfg.model_type,
                vocab_size=cfg.vocab_size,
                hard_vocab_limit=False,  # adapt to a small corpus
                pad_id=cfg.pad_id,
                eos_id=cfg.eos_id,
                unk_id=cfg.unk_id,
                bos_id=cfg.bos_id,
                byte_fallback=cfg.byte_fallback,
                character_coverage=1.0,
                num_threads=cfg.num_threads,
                minloglevel=2,
            )
        except RuntimeError as e:
            raise ConfigError(
                f"SentencePiece training failed with vocab_size={cfg.vocab_size}, "
                f"byte_fallback={cfg.byte_fallback}: {e}"
            ) from None
        self._load(out.getvalue(), "the trained model")
        return self

    def to_bytes(self) -> bytes:
        """The model as bytes (what a checkpoint stores)."""
        return self._processor().serialized_model_proto()

    @classmethod
    def from_bytes(cls, data: bytes, cfg: SentencePieceConfig | None = None) -> SentencePieceTokenizer:
        """A tokenizer using the model in ``data``."""
        return cls(cfg or SentencePieceConfig(), model_proto=data)

    def _processor(self):
        if self._sp is None:
            raise RuntimeError(
                "the tokenizer has no model yet: call fit(captions) or set model_file (tokenizer.model_file=PATH)"
            )
        return self._sp

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, with eos appended when configured."""
        ids = self._processor().encode(list(texts), add_eos=self.config.eos_id >= 0, add_bos=self.config.bos_id >= 0)
        return ids
