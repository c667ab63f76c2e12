"""The contract between the engine and an SSL method.

The trainer, the input pipeline, the probes and export talk to a method only through
:class:`Method` (the module) and :class:`MethodConfig` (its config); they read no other
attribute of it. A new method subclasses both, registers them under ``("method",
NAME)``, and trains, resumes, probes and exports with no library edit.

One step, as the engine runs it::

    method.prepare(data, saved)                      # once: fit a tokenizer, ...; saved: extra_state() on resume
    batch = method.make_batch(samples, draw)         # pipeline worker threads, per micro-batch
    out = method(**batch, step=step)                 # {"loss": total, part: ..., "metric/...": detached}
    out["loss"].backward(); optimiser over method.param_groups()
    logged = method.after_step(step, total_steps)    # e.g. the EMA update; returns values to log
    monitors read method.embeddings(batch)           # [N, D] pooled, for collapse monitors
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ..config import Assembly, Config, ConfigError, offered
from ..sizing import Size, size_fields, transformer_activations
from ..text.spm_tokenizer import CaptionTokenizer
from ..transforms import mix_seed

__all__ = [
    "Draw",
    "Method",
    "MethodConfig",
    "ParamGroup",
    "blocks_then_modules",
    "check_patches",
    "image_encoder_provides",
    "image_tower_size",
    "loss_names",
    "mix_seed",
    "prepare_tokenizer",
    "text_tower_fixed",
    "tokenizer_state",
    "weight_decay_groups",
]


@dataclass(frozen=True)
class Draw:
    """Where a micro-batch's randomness comes from: a pure function of the run's seed, the
    step, the micro-batch and the samples, so any worker, rank or resumed run draws the same.

    Attributes:
        seed, epoch, step, micro: the run's seed and this micro-batch's place in the run.
        indices: long [n], the data set indices of the samples given (this rank's, readable).
        rows: long [n], their positions in the global micro-batch of ``size`` samples.
        size: samples in the global micro-batch (all ranks, unreadable ones included).
    """

    seed: int
    epoch: int
    step: int
    micro: int
    indices: Tensor
    rows: Tensor
    size: int

    def sample(self, k: int, salt: int = 0) -> torch.Generator:
        """The generator of the ``k``-th sample's own draws (augmentation): (seed, epoch, index),
        and ``salt`` for a stream of its own (another kind of draw of the same sample)."""
        key = (self.seed, self.epoch, int(self.indices[k])) + ((salt,) if salt else ())
        return torch.Generator().manual_seed(mix_seed(*key))

    def batch(self, salt: int = 7) -> torch.Generator:
        """The generator of draws shared by the micro-batch (masks): (seed, step, micro, salt). Draw
        for all ``size`` samples, then keep ``rows``, so every rank's share is the same slice."""
        return torch.Generator().manual_seed(mix_seed(self.seed, self.step, self.micro, salt))

    @property
    def partial(self) -> bool:
        """Whether the samples are only part of the global micro-batch (a rank's share, skipped samples)."""
        return len(self.rows) != self.size


@dataclass(frozen=True)
class ParamGroup:
    """Parameters the optimiser treats alike; the trainer's schedules are scaled per group."""

    name: str
    params: list[nn.Parameter] = field(repr=False)
    lr_scale: float = 1.0
    weight_decay_scale: float = 1.0  #: 0 for biases and norms (I-JEPA)


@dataclass(frozen=True)
class MethodConfig(Assembly, abc.ABC):
    """Base of method configs: the method's own slots (no data, no training settings).

    ``provides`` gives what its parts follow (``"image_size"``, ``"encoder.width"``, ...);
    the experiment's data follows its ``"image_size"``.
    """

    @abc.abstractmethod
    def eval_encoder(self) -> tuple[Config, tuple[str, ...]]:
        """The config of the encoder probes and export read, and the state-dict prefixes its
        weights may lie under in a checkpoint of this method (the first one present is used)."""

    def joint_embedding(self) -> bool:
        """Whether the method embeds images and text in one space (``encode_image``, ``encode_text``):
        ``jepakit probe`` then adds retrieval and zero-shot classification."""
        return False

    def remedies(self) -> tuple[str, ...]:
        """Overrides to try when this method's features collapse or its probes end at the random-init floor,
        each as ``"key=value: why"`` (the evidence where there is some); the trainer's collapse warning and
        ``jepakit probe`` print them after the advice every method shares (``jepakit.diagnose``)."""
        return ()

    def min_batch_size(self) -> int:
        """The smallest global batch the method's loss is defined on (a contrastive loss needs a negative)."""
        return 1

    def takes_clips(self) -> bool:
        """Whether the method trains on clips ([C, T, H, W] samples of video data) rather than images."""
        return False

    def needs_captions(self) -> bool:
        """Whether the method trains on captions (the experiment then refuses data that has none)."""
        return False

    def size(self, batch: int) -> Size:
        """What building and training it holds, estimated from the config alone (``jepakit.sizing``):
        here the parameters of every slot whose config can count them, all trained; a method
        adds its frozen parts and its activations for ``batch`` samples."""
        # a method that overrides size() adds its activations; one that does not leaves them to be measured
        size = Size(activations_known=type(self).size is not MethodConfig.size)
        for f in dataclasses.fields(self):
            part = getattr(self, f.name)  # each field of the method config
            counted = part.param_count() if isinstance(part, Config) else None
            if counted is not None:
                size.params[f.name], size.fixed[f.name] = counted
                size.drivers[f.name] = size_fields(f.name, part)
        return size


class Method(nn.Module, abc.ABC):
    """Base of SSL methods: what the engine calls (see the module docstring)."""

    config: MethodConfig

    def prepare(self, data: Any, saved: Mapping[str, Any] | None = None) -> None:
        """Get ready for ``data`` before the first step (``saved``: this method's ``extra_state``
        from the checkpoint being resumed, to restore rather than recompute)."""

    def extra_state(self) -> dict[str, Any]:
        """What a checkpoint must carry besides the weights (plain values, bytes, tensors)."""
        return {}

    def batch_stats(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """Numbers about a batch worth logging beside the loss (a masked method: the context and target tokens
        per image); {} when there are none."""
        return {}

    def report(self) -> str:
        """A line for the start of a run about what the method was built from (a frozen teacher's weights);
        "" when there is nothing to say."""
        return ""

    @abc.abstractmethod
    def make_batch(self, samples: Sequence[Mapping[str, Any]], draw: Draw) -> dict[str, Any]:
        """Samples (``{"image": [C, H, W] in [0, 1], ...}``) -> the keyword arguments of ``forward``.

        Runs in the pipeline's worker threads: every random draw must come from ``draw``.
        """

    @abc.abstractmethod
    def param_groups(self) -> list[ParamGroup]:
        """The parameters the optimiser updates, in named groups (never a frozen teacher's)."""

    def after_step(self, step: int, total_steps: int) -> dict[str, float]:
        """Run after optimiser step ``step`` of ``total_steps`` (e.g. the EMA); return values to log."""
        return {}

    def shard_units(self) -> list[nn.Module]:
        """Modules FSDP2 shards, innermost first (each block, then what holds it); [] shards nothing."""
        return []

    @abc.abstractmethod
    def eval_encoder(self) -> nn.Module:
        """The encoder that probes and export read (I-JEPA: the target encoder)."""

    @abc.abstractmethod
    def embeddings(self, batch: Mapping[str, Any]) -> Tensor:
        """[N, D] embeddings of a batch from ``make_batch``, for the collapse monitors (no grad)."""

    @property
    def device(self) -> torch.device:
        """Where the method's weights live (batches are moved here in ``forward``)."""
        for t in self.buffers():
            return t.device
        for t in self.parameters():
            return t.device
        return torch.device("cpu")


@runtime_checkable
class Captioned(Protocol):
    """A data set with captions (``data=scenes``, ``captions``, ...): a tokenizer is fitted on them."""

    def captions(self, index: int) -> list[str]: ...

    def __len__(self) -> int: ...


def prepare_tokenizer(
    tokenizer: CaptionTokenizer | None, config: Any, data: Any, saved: Mapping[str, Any] | None
) -> None:
    """Fit a ``tokenizer`` that has no model (SentencePiece) on the captions of ``data``'s first
    ``config.fit_samples`` samples, or restore the one a resumed checkpoint ``saved``; a
    pretrained tokenizer (or none) needs nothing."""
    if tokenizer is None or tokenizer.ready:
        return
    if saved and saved.get("tokenizer") is not None:
        tokenizer.load_bytes(saved["tokenizer"])
        return
    if not isinstance(data, Captioned):
        raise ConfigError(
            f"tokenizer {config.name!r} must be fitted on captions, and the data set {type(data).__name__} has none"
        )
    count = min(config.fit_samples, len(data))
    tokenizer.fit(c for i in range(count) for c in data.captions(i))


def tokenizer_state(tokenizer: CaptionTokenizer | None) -> dict[str, Any]:
    """What a checkpoint keeps of a fitted tokenizer (its model bytes), so a resumed run reads the same ids."""
    fitted = tokenizer.to_bytes() if tokenizer is not None else None
    return {"tokenizer": fitted} if fitted is not None else {}


def weight_decay_groups(modules: Iterable[nn.Module]) -> list[ParamGroup]:
    """The trainable parameters of ``modules`` in two groups: matrices decay; biases and 1-D
    parameters (norms, gains, temperatures) do not (I-JEPA, CLIP)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for module in modules:
        for name, p in module.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [ParamGroup("decay", decay), ParamGroup("no_decay", no_decay, weight_decay_scale=0.0)]


def blocks_then_modules(modules: Iterable[nn.Module | None]) -> list[nn.Module]:
    """FSDP2 shard units: each module's transformer ``blocks``, then the module; absent and
    parameter-free modules are skipped."""
    units: list[nn.Module] = []
    for module in modules:
        if module is None or not any(True for _ in module.parameters()):
            continue
        # a transformer stack goes by timm's name ``blocks`` (encoders, predictors, text towers); other modules
        # (heads, MLP projectors) have none and are one unit whole
        units += [*getattr(module, "blocks", []), module]
    return units


def image_encoder_provides(image_size: int, encoder: Config) -> dict[str, tuple[Any, str]]:
    """What a method of one image encoder gives its parts to follow: the image size, the patch size and
    width the encoder offers, each with the field it comes from (``MethodConfig.provides``)."""
    return {
        "image_size": (image_size, "image_size"),
        "patch_size": offered(encoder, "encoder", "patch_size"),
        "encoder.width": offered(encoder, "encoder", "width"),
    }


def tokenizer_provides(tokenizer: Config | None) -> dict[str, tuple[Any, str]]:
    """What a method's tokenizer gives its parts to follow (its vocabulary and caption length; None with
    no tokenizer, or one that does not say them)."""
    return {
        f"tokenizer.{name}": offered(tokenizer, "tokenizer", name, required=False)
        for name in ("vocab_size", "max_length")
    }


def check_patches(image_size: int, patch_size: int) -> None:
    """Raise ``ConfigError`` unless ``image_size`` is a whole number of ``patch_size`` patches, naming the
    nearest image sizes that are and the patch sizes that divide this one (the two ways out)."""
    if image_size % patch_size:
        below, above = image_size - image_size % patch_size, image_size - image_size % patch_size + patch_size
        sizes = " or ".join(str(s) for s in (below, above) if s > 0)
        patches = ", ".join(str(p) for p in range(2, image_size // 2 + 1) if image_size % p == 0 and p <= 32)
        raise ConfigError(
            f"image_size={image_size} is not divisible by encoder.patch_size={patch_size}: set image_size={sizes} "
            f"(the data is resized to it)" + (f", or encoder.patch_size to one of {patches}" if patches else "")
        )


def loss_names(family: type[Config]) -> list[str]:
    """The registered losses whose config is a ``family`` (regression, contrastive): a slot's valid choices."""
    from ..registry import config_class, list_components

    return [n for n in list_components("loss")["loss"] if issubclass(config_class("loss", n), family)]


def image_tower_size(size: Size, batch: int, image_size: int, encoder: Any, frames: int = 1) -> int:
    """Add to ``size`` the activations a step keeps of ``batch`` images (clips of ``frames``) of ``image_size``
    px and of the ViT ``encoder`` on all their patches (tubelets); returns the tokens per image (clip)."""
    tokens = (image_size // encoder.patch_size) ** 2 * (frames // encoder.tubelet if frames > 1 else 1)
    size.activations["images"] = 3.0 * batch * encoder.in_chans * image_size**2 * frames
    size.activations["encoder"] = transformer_activations(
        batch, tokens, encoder.embed_dim, encoder.depth, encoder.mlp_ratio, encoder.num_heads
    )
    size.drivers["images"] = [f"image_size={image_size}"]
    size.drivers["encoder"] = size.drivers["encoder"] + [f"image_size={image_size}"]
    return tokens


def text_tower_fixed(size: Size, text_encoder: Config | None) -> None:
    """Count a frozen text encoder's parameters as fixed (held, never trained); a trainable one stays."""
    if text_encoder is not None and not offered(text_encoder, "text_encoder", "trainable")[0]:
        size.fixed["text_encoder"] = size.fixed.get("text_encoder", 0.0) + size.params.pop("text_encoder", 0.0)
