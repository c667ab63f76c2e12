"""The joint-embedding predictive architecture (I-JEPA, TC-JEPA and their ablations) as a method.

Reads like the paper: encode the target (whole image, no gradient), encode the context
(only the context patches), predict the target patches from the context, add the
losses. Which masker, encoder, predictor, conditioner, target updater, loss and text
side are used is the config's business; the method knows only their contracts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..augment import Transform, TransformConfig, augmented_view, check_transforms
from ..conditioners.none import NoConditionerConfig
from ..conditioners.text import TextConditionerConfig
from ..config import Config, ConfigError, at_least, in_range, knob, offered, ordered_pair, slot
from ..encoders.vit import ViTConfig, check_index
from ..layers.rope import rotary
from ..layers.transformer import TransformerConfig, gather_tokens, masked_mean
from ..losses.embedding import EmbeddingLossConfig
from ..losses.regression import RegressionLossConfig, SmoothL1Config
from ..masks.base import MaskerConfig, Masks, VideoMaskerConfig
from ..masks.multiblock import MultiBlockConfig
from ..predictors.vit_predictor import ViTPredictorConfig
from ..registry import register
from ..sizing import Size, transformer_activations
from ..targets.base import TargetUpdater, TargetUpdaterConfig
from ..targets.ema import EMAConfig
from ..text.batch import TextFeatures, TokenBatch
from .base import (
    Draw,
    Method,
    MethodConfig,
    ParamGroup,
    blocks_then_modules,
    check_patches,
    image_encoder_provides,
    image_tower_size,
    loss_names,
    prepare_tokenizer,
    text_tower_fixed,
    tokenizer_provides,
    tokenizer_state,
    weight_decay_groups,
)

__all__ = ["JEPA", "JEPAConfig"]


#: How each averaged teacher block output is normalised (``target_block_norm``).
TargetBlockNorm = Literal["final", "instance", "layer"]


@dataclass(frozen=True)
class JEPAConfig(MethodConfig):
    image_size: int = knob(
        224, "image side in pixels; the masker grid, the encoder and the data follow it", valid=at_least(1)
    )
    crop_scale: tuple[float, float] = knob(
        (0.3, 1.0), "RandomResizedCrop area range, the only augmentation (I-JEPA)", valid=ordered_pair(0, 1)
    )
    caption_choice: Literal["first", "sample"] = knob(
        "sample",
        "which N captions an image with more than N is conditioned on: a sample seeded by (seed, epoch, index), "
        "or the first N (the paper does not say; configs saved before schema 3 read 'first', what they ran)",
    )
    caption_dropout: float = knob(
        0.0,
        "chance that an image is shown no caption in a step, so its targets are predicted as I-JEPA's are "
        "(ours; 0: the paper, every image conditioned), drawn per (seed, epoch, index)",
        valid=in_range(0, 1, high_open=True),
    )
    target_blocks: int = knob(
        1,
        "targets average the teacher's last K block outputs (data2vec 2.0: 10 of ViT-B's 12); 1: its output",
        valid=at_least(1),
    )
    target_block_norm: TargetBlockNorm = knob(
        "final",
        "each of those block outputs through the teacher's final norm (I-JEPA), an instance norm over the "
        "tokens (data2vec 2.0) or a parameter-free layer norm, before the average",
    )
    num_frames: int | None = knob(
        None,
        "frames per clip: the method trains on clips [C, T, H, W] of video data (V-JEPA: 16); the encoder, the "
        "masker and the data follow it; None: images",
        valid=at_least(1),
    )
    tubelet_size: int = knob(2, "frames per token of a clip (V-JEPA: 2)", valid=at_least(1))
    masker: MaskerConfig = slot(MultiBlockConfig(), "masker", "which patches are context and which are targets")
    encoder: Config = slot(ViTConfig(), "encoder", "context encoder; the target encoder has the same architecture")
    predictor: Config = slot(ViTPredictorConfig(), "predictor", "predicts target tokens from context tokens")
    conditioner: Config = slot(NoConditionerConfig(), "conditioner", "acts on every predictor layer (none: I-JEPA)")
    target_updater: TargetUpdaterConfig = slot(
        EMAConfig(), "target_updater", "where targets come from: ema | frozen | copy"
    )
    loss: Config = slot(SmoothL1Config(), "loss", "regression loss on the predicted target tokens")
    embedding_loss: Config | None = slot(
        None,
        "loss",
        "regulariser of the context encoder's tokens averaged over each image's context patches (C-JEPA: "
        "vicreg; none: I-JEPA)",
    )
    views: int = knob(
        1,
        "augmented crops of each image per step, each masked and predicted as I-JEPA's; the embedding loss's "
        "terms are averaged over them and its invariance term (vicreg) makes their pooled context features "
        "agree (C-JEPA: 2; I-JEPA: 1)",
        valid=at_least(1),
    )
    augment: tuple[TransformConfig, ...] = knob(
        (),
        "photometric transforms after each view's crop (jepakit.augment), each with its probability per view; "
        "() for crops only (I-JEPA's pipeline)",
    )
    tokenizer: Config | None = slot(None, "tokenizer", "captions -> token ids (text-conditioned recipes)")
    text_encoder: Config | None = slot(None, "text_encoder", "token ids -> word embeddings (text-conditioned recipes)")

    def provides(self) -> dict[str, tuple[Any, str]]:
        """What the parts follow, each asked of the part that offers it (``Config.offers``)."""
        no_text = "text_encoder.embed_dim (there is no text_encoder: a text conditioner needs one, e.g. text_encoder=transformer)"
        clips = {}
        if self.num_frames is not None:  # only a video method provides them: image parts never follow them
            clips = {
                "num_frames": (self.num_frames, "num_frames"),
                "tubelet_size": (self.tubelet_size, "tubelet_size"),
                "encoder.video_positions": offered(self.encoder, "encoder", "video_positions"),
            }
        return (
            clips
            | image_encoder_provides(self.image_size, self.encoder)
            | tokenizer_provides(self.tokenizer)
            | {
                "encoder.positions": offered(self.encoder, "encoder", "positions", required=False),
                "predictor.width": offered(self.predictor, "predictor", "width"),
                "target.width": self.target_width(),
                "predictor.depth": offered(self.predictor, "predictor", "depth"),
                "text.width": offered(self.text_encoder, "text_encoder", "width")
                if self.text_encoder
                else (None, no_text),
            }
        )

    def check_sources(self) -> None:
        check_patches(self.image_size, self.provides()["patch_size"][0])

    def check(self) -> None:
        check_transforms(self.augment, "augment")
        if not isinstance(self.loss, RegressionLossConfig):
            raise ConfigError(
                f"loss {self.loss.name!r} is not a regression loss; jepa regresses target tokens with "
                f"{loss_names(RegressionLossConfig)}"
            )
        if self.embedding_loss is not None and not isinstance(self.embedding_loss, EmbeddingLossConfig):
            raise ConfigError(
                f"embedding_loss {self.embedding_loss.name!r} is not a regulariser of embeddings; choose from "
                f"{loss_names(EmbeddingLossConfig)}"
            )
        teacher = self.target_updater.teacher_shape()
        if teacher is not None and teacher[1] != self.provides()["patch_size"][0]:
            raise ConfigError(
                f"the teacher (target_updater.checkpoint, target_updater.timm) cuts {teacher[1]} px patches and "
                f"encoder.patch_size={self.provides()['patch_size'][0]}: its tokens would not be the student's patches"
            )
        if self.target_blocks > 1 or self.target_block_norm != "final":
            updater = self.target_updater
            if not updater.blocks_readable():
                raise ConfigError(
                    f"target_blocks={self.target_blocks}, target_block_norm={self.target_block_norm!r} read the "
                    f"teacher's blocks, and target_updater {updater.name!r} has none jepakit can read"
                )
            depth = offered(self.encoder, "encoder", "depth")[0]
            if self.target_blocks > depth:
                raise ConfigError(f"target_blocks={self.target_blocks} exceeds encoder.depth={depth}")
        self._check_mask_tokens()
        self._check_views()
        mask = self.masker
        clips = isinstance(mask, VideoMaskerConfig)
        if self.num_frames is None and offered(self.encoder, "encoder", "video", required=False)[0]:
            raise ConfigError(
                f"encoder.num_frames={offered(self.encoder, 'encoder', 'num_frames')[0]} makes a video encoder on an image "
                "method: set num_frames (the method's; the encoder, masker and data follow it) instead"
            )
        if self.num_frames is None and clips:
            raise ConfigError(
                f"masker {mask.name!r} draws 3-D masks for clips, and this method trains on images (2-D): set "
                "num_frames to train on clips, or choose a 2-D masker (multiblock, random, block, inverse-block)"
            )
        if self.num_frames is not None and not clips:
            raise ConfigError(
                f"num_frames={self.num_frames}: the method trains on clips, and masker {mask.name!r} draws 2-D masks; "
                "choose a 3-D masker (multiblock3d, tube)"
            )

    def _check_views(self) -> None:
        """Several views are crops of images, taken whole by an unconditioned predictor (C-JEPA)."""
        if self.views == 1:
            return
        repeats = self.masker.repeats if isinstance(self.masker, MaskerConfig) else 1
        clash = [
            f"num_frames={self.num_frames} (clips)" if self.num_frames is not None else "",
            f"conditioner {self.conditioner.name!r} (captions)" if self.conditioner.name != "none" else "",
            f"masker.repeats={repeats}" if repeats > 1 else "",
        ]
        if any(clash):
            raise ConfigError(
                f"views={self.views} takes several crops of each image, and this method has "
                f"{', '.join(c for c in clash if c)}: set views=1"
            )

    def _check_mask_tokens(self) -> None:
        """Several mask tokens are one per mask set of an image (V-JEPA: per mask generator; V-JEPA 2 keeps 10,
        of which its generators read the first ones); rotary positions are the predictor's blocks' own."""
        pred = self.predictor if isinstance(self.predictor, ViTPredictorConfig) else None
        tokens = pred.mask_tokens if pred is not None else 1
        repeats = self.masker.repeats if isinstance(self.masker, MaskerConfig) else 1
        if tokens != 1 and tokens < repeats:
            raise ConfigError(
                f"predictor.mask_tokens={tokens}: one token, or one per mask set of an image, and masker "
                f"{self.masker.name!r} draws {repeats}; set predictor.mask_tokens=1 or {repeats}"
            )
        if pred is not None and rotary(pred.positions) and self.conditioner.name != "none":
            raise ConfigError(
                f"predictor.positions={pred.positions} with conditioner {self.conditioner.name!r}: the conditioners "
                "run the predictor's blocks themselves and place no rotary positions; use predictor.positions=sincos"
            )

    def eval_encoder(self) -> tuple[Config, tuple[str, ...]]:
        return self.encoder, ("target_encoder", "encoder") if self.teacher_evaluated() else ("encoder",)

    def takes_clips(self) -> bool:
        return self.num_frames is not None

    def remedies(self) -> tuple[str, ...]:
        """An EMA teacher's pace, C-JEPA's regulariser, MAE's init: what moved I-JEPA off its collapse or off
        the floor on small data (benchmarks/RESULTS.md, the small-data screens)."""
        found = []
        if isinstance(self.target_updater, EMAConfig) and self.target_updater.momentum_start < 0.999:
            found.append(
                "target_updater.momentum_start=0.999: a slower teacher (ijepa-cpu on digits: kNN 0.66 against 0.38)"
            )
        if self.embedding_loss is None and self.teacher_is_encoder():
            found.append(
                "embedding_loss=vicreg: C-JEPA's variance-covariance term keeps the features spread "
                "(c-jepa-cpu with momentum_start=0.996 beats the kNN floor on digits, faces and textures)"
            )
        if isinstance(self.encoder, TransformerConfig) and self.encoder.init == "trunc-normal":
            found.append(
                "encoder.init=xavier predictor.init=xavier: MAE's init gives small images richer features from the "
                "start (ijepa-cpu on textures: kNN 0.904 against 0.826 for that init untrained; its floor moves too)"
            )
        return tuple(found)

    def teacher_is_encoder(self) -> bool:
        """Whether the targets come from a second copy of the encoder (EMA, frozen), held beside it,
        rather than from the online encoder (copy) or the pixels (pixels)."""
        return self.target_updater.holds_encoder

    def teacher_evaluated(self) -> bool:
        """Whether probes and export read the teacher (I-JEPA's EMA target encoder) rather than the online
        encoder (copy, pixels, and a frozen teacher, whose student is what the method trains)."""
        return self.teacher_is_encoder() and self.target_updater.teacher_evaluated

    def target_width(self) -> tuple[int, str]:
        """The width of a target patch and where it comes from: the encoder's tokens, or with pixel
        targets a patch's pixel values (patch_size**2 x channels)."""
        if self.target_updater.pixel_targets:
            patch, chans = (offered(self.encoder, "encoder", k)[0] for k in ("patch_size", "in_chans"))
            if self.num_frames is not None:  # a clip's target is a tubelet's values
                width = self.tubelet_size * patch**2 * chans
                return width, "tubelet_size x encoder.patch_size**2 x encoder.in_chans (pixel targets of clips)"
            return patch**2 * chans, "encoder.patch_size**2 x encoder.in_chans (pixel targets)"
        teacher = self.target_updater.teacher_shape()
        if teacher is not None:
            return teacher[0], "the teacher's width (target_updater.checkpoint, target_updater.timm)"
        return offered(self.encoder, "encoder", "width")

    def size(self, batch: int) -> Size:
        """The parts, the target encoder (a frozen copy unless ``copy``), a frozen text encoder, and what
        a step keeps: the images, the context encoder's and the predictor's activations (every target
        block is a sequence of at most all patches)."""
        size = super().size(batch)
        pred: Any = self.predictor
        tok: Any = self.tokenizer
        if self.teacher_is_encoder():
            size.fixed["target_encoder"] = size.params["encoder"]
            size.drivers["target_encoder"] = size.drivers["encoder"]
        text_tower_fixed(size, self.text_encoder)
        crops = batch * self.views
        tokens = image_tower_size(size, crops, self.image_size, self.encoder, self.num_frames or 1)
        blocks = self.masker.target_blocks if isinstance(self.masker, MaskerConfig) else 1
        size.activations["predictor"] = transformer_activations(
            crops * blocks, tokens, pred.embed_dim, pred.depth, pred.mlp_ratio, pred.num_heads
        )
        if tok is not None and self.conditioner.name != "none":
            words = batch * tok.max_captions * tok.max_length
            width = offered(self.text_encoder, "text_encoder", "width", required=False)[0] or 1024  # unread: T5's
            size.activations["text"] = words * (2 + width)
            size.drivers["text"] = [
                f"tokenizer.max_captions={tok.max_captions}",
                f"tokenizer.max_length={tok.max_length}",
            ]
        return size


def normalise_block(tokens: Tensor, how: TargetBlockNorm, eps: float = 1e-6) -> Tensor:
    """A block output [B, N, D] for averaging into targets: as given (``final``: already through the
    encoder's final norm), each channel normalised over the tokens (``instance``), or each token over its
    channels without affine parameters (``layer``)."""
    if how == "instance":
        return torch.nn.functional.instance_norm(tokens.transpose(1, 2), eps=eps).transpose(1, 2)
    if how == "layer":
        return torch.nn.functional.layer_norm(tokens, tokens.shape[-1:], eps=eps)
    return tokens


def pooled_context(tokens: Tensor, valid: Tensor | None) -> Tensor:
    """Context tokens [R, K, D] averaged over the real ones (``valid`` bool [R, K]; None: all) -> [R, D]."""
    return tokens.mean(1) if valid is None else masked_mean(tokens, valid[..., None], 1)


def pick_captions(captions: list[str], n: int, generator: torch.Generator) -> list[str]:
    """``n`` of an image's captions drawn without replacement (in their order), or all when it has
    no more than ``n``: each epoch conditions on another seeded subset, not always the first ``n``."""
    if len(captions) <= n:
        return captions
    chosen = torch.randperm(len(captions), generator=generator)[:n].sort().values
    return [captions[i] for i in chosen.tolist()]


@register("method", "jepa", JEPAConfig)
class JEPA(Method):
    """I-JEPA assembled from components; ``forward(images, masks, text)`` gives the losses.

    Example:
        >>> import torch
        >>> from jepakit import get_config
        >>> small = dict(image_size=32, encoder={"embed_dim": 48, "depth": 2, "num_heads": 3}, masker={"min_keep": 4})
        >>> model = get_config("ijepa-cpu", predictor={"embed_dim": 32, "depth": 1, "num_heads": 2}, **small).build()
        >>> g = torch.Generator().manual_seed(0)
        >>> out = model(torch.rand(2, 3, 32, 32, generator=g), model.masker(2, g))  # images in [0, 1], masks
        >>> sorted(out), out["loss"].requires_grad  # the loss to minimise and its parts, detached
        (['loss', 'predict'], True)
    """

    config: JEPAConfig

    def __init__(self, cfg: JEPAConfig) -> None:
        super().__init__()
        self.config = cfg
        self.masker = cfg.masker.build()
        self.encoder = cfg.encoder.build()
        self.predictor = cfg.predictor.build()
        self.conditioner = cfg.conditioner.build()
        self.target_updater: TargetUpdater = cfg.target_updater.build()
        self.target_encoder = self.target_updater.make_target(self.encoder)
        self.loss_fn = cfg.loss.build()
        self.augment: list[Transform] = [t.build() for t in cfg.augment]
        # text last, so the image side initialises exactly as I-JEPA's for the same seed
        self.embedding_loss = cfg.embedding_loss.build() if cfg.embedding_loss is not None else None
        self.tokenizer = cfg.tokenizer.build() if cfg.tokenizer is not None else None
        self.text_encoder = cfg.text_encoder.build() if cfg.text_encoder is not None else None
        text_dim = cfg.conditioner.text_dim if isinstance(cfg.conditioner, TextConditionerConfig) else None
        if self.text_encoder is not None and text_dim is not None and self.text_encoder.width != text_dim:
            raise ConfigError(
                f"conditioner.text_dim={text_dim} does not match the text encoder's width {self.text_encoder.width}"
            )

    # ------------------------------------------------------------------ the step

    def forward(
        self, images: Tensor, masks: Masks, text: Any | None = None, step: int | None = None
    ) -> dict[str, Tensor]:
        """Losses for a batch: ``{"loss": total, "predict": ..., <conditioner terms>, "metric/...": ...}``.

        ``loss`` is the sum of the named parts; keys starting with ``metric/`` are
        detached diagnostics.

        Args:
            images: float [B, C, H, W] in [0, 1], or clips [B, C, T, H, W] when ``num_frames`` is set (any
                device; moved to the method's); with ``views`` V, [V * B, ...]: every image's views, view-major.
            masks: the masker's output for this batch (any device; moved likewise).
            text: for a text conditioner: captions (a list of lists of strings), a
                ``TokenBatch`` or precomputed ``TextFeatures``; ignored by ``none``.
            step: the optimiser step, for schedules inside the loss (regulariser warm-up).
        """
        grid = self.encoder.grid_of(images)
        if images.shape[0] % self.config.views:
            raise ValueError(
                f"views={self.config.views}: images hold every view of each image, view-major (make_batch's "
                f"layout); got {images.shape[0]} images"
            )
        self._check_masks(masks, images.shape[0], grid)
        device = self.device
        images = images.to(device, non_blocking=True)
        masks = masks.to(device, non_blocking=True)
        features = self.encode_text(text, images.shape[0], device) if self.conditioner.uses_text else None
        targets = self.forward_target(images, masks)
        z = self.forward_context(images, masks)
        hook = self.conditioner.bind(features, step)
        pred = self.predictor(
            z, masks.context, masks.targets, grid, masks.context_valid, masks.targets_valid, masks.repeats, hook
        )
        parts = {"predict": self.loss_fn(pred, targets, masks.targets_valid)}
        parts.update(self.conditioner.losses(hook))
        if self.embedding_loss is not None:
            pooled = pooled_context(z, masks.context_valid)  # [V * B, D], view-major
            views = self.config.views
            parts.update(self.embedding_loss.of_views(pooled.view(views, -1, pooled.shape[-1]), step))
        return {"loss": torch.stack(list(parts.values())).sum(), **parts, **self.conditioner.metrics(hook)}

    def encode_text(self, text: Any, batch: int, device: torch.device) -> TextFeatures | None:
        """Word embeddings of ``text`` (captions, ``TokenBatch`` or ``TextFeatures``), checked."""
        if text is None:
            return None
        if not isinstance(text, (TokenBatch, TextFeatures)):
            if self.tokenizer is None:
                raise ValueError("raw captions need a tokenizer (set tokenizer=sentencepiece)")
            text = self.tokenizer(text)
        if isinstance(text, TokenBatch):
            if self.text_encoder is None:
                raise ValueError("token ids need a text encoder (set text_encoder=transformer)")
            if text.ids.shape[0] != batch:
                raise ValueError(f"text has {text.ids.shape[0]} images for a batch of {batch}")
            text = self.text_encoder(text.to(device))
        text = text.to(device)
        text.validate(batch, self.conditioner.config.text_dim)
        return text

    @torch.no_grad()
    def forward_target(self, images: Tensor, masks: Masks) -> Tensor:
        """Target tokens [R, M, Kt, D]: the target encoder (or the patches' pixels) on whole images, or
        the average of its last ``target_blocks`` block outputs, each normalised (data2vec 2.0),
        gathered at the targets."""
        teacher = self.target_encoder if self.target_encoder is not None else self.encoder
        cfg = self.config
        if cfg.target_blocks == 1 and cfg.target_block_norm == "final":
            h = teacher(images)
        else:
            blocks = teacher.layer_outputs(images, last=cfg.target_blocks, norm=cfg.target_block_norm == "final")
            h = torch.stack([normalise_block(x, cfg.target_block_norm) for x in blocks]).mean(0)
        if masks.repeats > 1:
            h = h.repeat(masks.repeats, 1, 1)
        return gather_tokens(h, masks.targets)

    def forward_context(self, images: Tensor, masks: Masks) -> Tensor:
        """Context tokens [R, Kc, D]: the online encoder on the context patches only."""
        if masks.repeats > 1:
            images = images.repeat(masks.repeats, *([1] * (images.ndim - 1)))
        return self.encoder(images, masks.context, masks.context_valid)

    @torch.compiler.disable  # eager under torch.compile: the range checks read values
    def _check_masks(self, masks: Masks, batch: int, grid: tuple[int, ...]) -> None:
        if not isinstance(masks, Masks):
            raise TypeError(f"masks must be a jepakit Masks (from model.masker); got {type(masks).__name__}")
        if tuple(masks.grid) != tuple(grid):
            raise ValueError(f"masks are drawn on a {masks.grid} patch grid but the images give {grid}")
        rows = masks.context.shape[0]
        if rows != batch * masks.repeats:
            raise ValueError(f"masks have {rows} rows for {batch} images with repeats={masks.repeats}")
        n = math.prod(grid)
        check_index("masks.context", masks.context, masks.context_valid, rows, n)
        check_index("masks.targets", masks.targets.reshape(rows, -1), None, rows, n)

    def train(self, mode: bool = True) -> JEPA:
        super().train(mode)
        if self.target_encoder is not None:
            self.target_encoder.eval()  # targets never see dropout or drop-path
        return self

    def set_target_encoder(self, module: nn.Module) -> None:
        """Install a ready teacher (frozen, eval mode) as the target encoder."""
        module.requires_grad_(False)
        self.target_encoder = module.eval()

    # ------------------------------------------------------------ the contract

    def prepare(self, data: Any, saved: Mapping[str, Any] | None = None) -> None:
        """Fit a tokenizer that has no model on the captions of the first samples (or restore
        the one a resumed checkpoint saved)."""
        prepare_tokenizer(self.tokenizer, self.config.tokenizer, data, saved)

    def report(self) -> str:
        return self.target_updater.source

    def batch_stats(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """Context and target tokens per mask row (the official I-JEPA logs both), padding not counted."""
        masks: Masks = batch["masks"]
        context = masks.context_valid.sum(1) if masks.context_valid is not None else masks.context.shape[1]
        targets = masks.targets_valid.flatten(1).sum(1) if masks.targets_valid is not None else masks.targets[0].numel()
        return {
            "context_tokens": float(torch.as_tensor(context, dtype=torch.float32).mean()),
            "target_tokens": float(torch.as_tensor(targets, dtype=torch.float32).mean()),
        }

    def extra_state(self) -> dict[str, Any]:
        return tokenizer_state(self.tokenizer)

    def make_batch(self, samples: Sequence[Mapping[str, Any]], draw: Draw) -> dict[str, Any]:
        """Cropped images [V * B, C, H, W] (``views`` crops of each, view-major), masks drawn for the global
        micro-batch (this share's rows), and the tokenised captions when the conditioner reads text."""
        scale, views = self.config.crop_scale, self.config.views
        key = "image" if self.config.num_frames is None else "video"  # clips: one crop for all their frames
        # view-major: every sample's first crop (I-JEPA's draw), then every sample's second, ...
        crops = [augmented_view(s[key], scale, draw.sample(k, salt=20 + v if v else 0), v, self.augment)
                 for v in range(views) for k, s in enumerate(samples)]  # fmt: skip
        images = torch.stack(crops)
        masks = self.masker(draw.size * views, draw.batch())
        if draw.partial:
            masks = masks.take(torch.cat([draw.rows + v * draw.size for v in range(views)]))
        batch: dict[str, Any] = {"images": images, "masks": masks}
        if self.conditioner.uses_text:
            captions = [list(s.get("captions", [])) for s in samples]
            if self.tokenizer is not None and self.config.caption_choice == "sample":
                n = self.tokenizer.config.max_captions
                captions = [pick_captions(c, n, draw.sample(k, salt=1)) for k, c in enumerate(captions)]
            if self.config.caption_dropout > 0:
                p = self.config.caption_dropout
                captions = [
                    [] if float(torch.rand((), generator=draw.sample(k, salt=2))) < p else c
                    for k, c in enumerate(captions)
                ]
            batch["text"] = self.tokenizer(captions) if self.tokenizer is not None else captions
        return batch

    def trainable_modules(self) -> dict[str, nn.Module]:
        """The modules the optimiser updates (never the target encoder, nor a frozen text encoder)."""
        modules = {"encoder": self.encoder, "predictor": self.predictor, "conditioner": self.conditioner}
        if self.text_encoder is not None and self.text_encoder.trainable:
            modules["text_encoder"] = self.text_encoder
        return modules

    def param_groups(self) -> list[ParamGroup]:
        """Weight decay on matrices, none on biases and 1-D parameters (I-JEPA)."""
        return weight_decay_groups(self.trainable_modules().values())

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> dict[str, float]:
        """Move the target encoder (EMA; nothing for frozen or copy); log the momentum used."""
        return self.target_updater.after_step(self.encoder, self.target_encoder, step, total_steps)

    def shard_units(self) -> list[nn.Module]:
        """Each transformer block, then the module holding it: the encoders, the predictor, the
        conditioner and a trainable text encoder (a frozen one stays whole on every rank)."""
        text = self.trainable_modules().get("text_encoder")
        return blocks_then_modules([self.encoder, self.target_encoder, self.predictor, self.conditioner, text])

    def eval_encoder(self) -> nn.Module:
        """The encoder probed and exported: the teacher when it is I-JEPA's target encoder, else the online
        encoder (copy, pixel targets, the student of a frozen teacher)."""
        if self.target_encoder is not None and self.config.teacher_evaluated():
            return self.target_encoder
        return self.encoder

    def embeddings(self, batch: Mapping[str, Any]) -> Tensor:
        """The evaluated encoder's average-pooled tokens of the batch's images [B, D]."""
        return self.eval_encoder()(batch["images"].to(self.device)).mean(1)
