"""BYOL: an online network predicts a slow-moving target network's projection of another view.

Reference: Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020, and ``docs/methods.md``. Each
image is seen through two augmented views (a RandomResizedCrop, a flip and the photometric
``augment`` list, whose probabilities differ per view). The online network (encoder, projector,
predictor) maps view 1 to p1; the target network, an exponential moving average of the online
encoder *and* projector (one target updater over both modules), maps view 2 to z2 under
stop-gradient. The loss is 2 - 2 cos(p1, z2), symmetrised over the two views and summed
(the paper's L + L~). Probes and export read the online encoder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..augment import BYOL_AUGMENT, Transform, TransformConfig, augmented_view, check_transforms
from ..config import Config, ConfigError, at_least, each, knob, ordered_pair, slot
from ..encoders.vit import ViTConfig
from ..registry import register
from ..sizing import Size
from ..targets.base import TargetUpdater, TargetUpdaterConfig
from ..targets.ema import EMAConfig
from .base import (
    Draw,
    Method,
    MethodConfig,
    ParamGroup,
    blocks_then_modules,
    check_patches,
    image_encoder_provides,
    image_tower_size,
    weight_decay_groups,
)
from .lejepa import projector, projector_params

__all__ = ["BYOL", "BYOLConfig", "byol_loss"]


def byol_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """2 - 2 cos(p, z) averaged over the batch: [B, K] predictions and targets -> a scalar in [0, 4]."""
    return (2 - 2 * F.cosine_similarity(prediction, target, dim=-1)).mean()


@dataclass(frozen=True)
class BYOLConfig(MethodConfig):
    image_size: int = knob(224, "the views' side in pixels; the encoder and the data follow it", valid=at_least(1))
    crop_scale: tuple[float, float] = knob(
        (0.08, 1.0), "RandomResizedCrop area range of each view (BYOL: 0.08-1)", valid=ordered_pair(0, 1)
    )
    flip: bool = knob(True, "mirror each view left-right with probability 1/2 (BYOL)")
    augment: tuple[TransformConfig, ...] = knob(
        BYOL_AUGMENT,
        "photometric transforms after the crop, in order, each with its probability per view (BYOL: colour "
        "jitter, grayscale, blur 1.0/0.1, solarise 0/0.2); () for crops only",
    )
    projector: tuple[int, ...] = knob(
        (4096, 256), "widths of the projector MLP (BYOL: 4096 hidden, 256 out)", valid=each(at_least(1))
    )
    predictor: tuple[int, ...] = knob(
        (4096, 256), "widths of the predictor MLP on the projection (BYOL: 4096, 256)", valid=each(at_least(1))
    )
    encoder: Config = slot(ViTConfig(), "encoder", "the online encoder, average-pooled (BYOL: ResNet-50)")
    target_updater: TargetUpdaterConfig = slot(
        EMAConfig(momentum_start=0.996, schedule="cosine"),
        "target_updater",
        "moves the target encoder and projector (BYOL: EMA, 0.996 to 1 on a cosine)",
    )

    def provides(self) -> dict[str, tuple[Any, str]]:
        return image_encoder_provides(self.image_size, self.encoder)

    def check_sources(self) -> None:
        check_patches(self.image_size, self.provides()["patch_size"][0])

    def check(self) -> None:
        check_transforms(self.augment, "augment")
        if self.predictor[-1] != self.projector[-1]:
            raise ConfigError(
                f"predictor={self.predictor} ends at {self.predictor[-1]} and projector={self.projector} at "
                f"{self.projector[-1]}: the prediction regresses the target's projection, so they must end alike"
            )
        if not self.target_updater.any_module or not self.target_updater.holds_encoder:
            raise ConfigError(
                f"target_updater={self.target_updater.name!r} cannot follow the online encoder and projector: "
                "BYOL's target is a moving copy of both (target_updater=ema)"
            )

    def min_batch_size(self) -> int:
        return 2  # BatchNorm in the projector and predictor

    def eval_encoder(self) -> tuple[Config, tuple[str, ...]]:
        return self.encoder, ("online.encoder",)

    def size(self, batch: int) -> Size:
        """The encoder and both MLPs; a target copy of the encoder and projector; two views' activations."""
        size = super().size(batch)
        enc: Any = self.encoder
        for name, in_dim, widths in (
            ("projector", enc.embed_dim, self.projector),
            ("predictor", self.projector[-1], self.predictor),
        ):
            size.params[name] = projector_params(in_dim, widths)
            size.drivers[name] = [f"{name}={widths}"]
        size.fixed["target"] = size.params["encoder"] + size.params["projector"]
        size.drivers["target"] = ["a moving copy of the encoder and projector"]
        image_tower_size(size, 2 * batch, self.image_size, enc)
        return size


@register("method", "byol", BYOLConfig)
class BYOL(Method):
    """Online encoder, projector and predictor; a target copy of the first two. ``forward(views)``.

    Example:
        >>> import torch
        >>> from jepakit import get_config
        >>> small = dict(image_size=32, encoder={"embed_dim": 48, "depth": 2, "num_heads": 3})
        >>> model = get_config("byol-cpu", projector=(64, 16), predictor=(64, 16), **small).build()
        >>> views = torch.rand(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # [2 views, B, C, H, W]
        >>> loss = model(views)["loss"]
        >>> bool(0 <= loss <= 8), loss.requires_grad  # 2 - 2 cos per direction, summed over both
        (True, True)
    """

    config: BYOLConfig

    def __init__(self, cfg: BYOLConfig) -> None:
        super().__init__()
        self.config = cfg
        encoder = cfg.encoder.build()
        self.online = nn.ModuleDict({"encoder": encoder, "projector": projector(encoder.embed_dim, cfg.projector)})
        self.predictor = projector(cfg.projector[-1], cfg.predictor)
        self.target_updater: TargetUpdater = cfg.target_updater.build()
        target = self.target_updater.make_target(self.online)
        assert isinstance(target, nn.ModuleDict), "BYOLConfig.check admits only updaters that copy the online network"
        self.target = target.train()  # its BatchNorm normalises by the batch, as the online network's does (BYOL)
        self.augment: list[Transform] = [t.build() for t in cfg.augment]

    def project(self, network: nn.ModuleDict, images: Tensor) -> Tensor:
        """float [N, C, H, W] in [0, 1] -> ``network``'s projection of the pooled tokens [N, K]."""
        return network["projector"](network["encoder"](images).mean(1))

    def forward(self, views: Tensor, step: int | None = None) -> dict[str, Tensor]:
        """``{"loss"}`` for ``views`` float [2, B, C, H, W] in [0, 1]: each view's prediction regresses the
        target's projection of the other view, 2 - 2 cos, summed over the two directions."""
        if views.shape[0] != 2:
            raise ValueError(f"views has {views.shape[0]} views of each image; BYOL takes 2")
        b = views.shape[1]
        images = views.to(self.device, non_blocking=True).flatten(0, 1)
        prediction = self.predictor(self.project(self.online, images)).view(2, b, -1)
        with torch.no_grad():
            target = self.project(self.target, images).view(2, b, -1)
        loss = byol_loss(prediction[0], target[1]) + byol_loss(prediction[1], target[0])
        return {"loss": loss}

    def make_batch(self, samples: Sequence[Mapping[str, Any]], draw: Draw) -> dict[str, Any]:
        """Two views of every sample, each drawn per (seed, epoch, index, view): ``views`` [2, B, C, H, W]."""
        cfg = self.config
        views: list[list[Tensor]] = [[], []]
        for k, s in enumerate(samples):
            for v in range(2):
                g = draw.sample(k, salt=20 + v)
                views[v].append(
                    augmented_view(s["image"], cfg.crop_scale, g, v, self.augment, cfg.image_size, cfg.flip)
                )
        return {"views": torch.stack([torch.stack(v) for v in views])}

    def param_groups(self) -> list[ParamGroup]:
        """Weight decay on matrices; none on biases and norms. The target is no parameter of the optimiser."""
        return weight_decay_groups([self.online, self.predictor])

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> dict[str, float]:
        """Move the target encoder and projector together; log the momentum used."""
        return self.target_updater.after_step(self.online, self.target, step, total_steps)

    def shard_units(self) -> list[nn.Module]:
        return blocks_then_modules([self.online["encoder"], self.online, self.predictor])

    def eval_encoder(self) -> nn.Module:
        return self.online["encoder"]

    def embeddings(self, batch: Mapping[str, Any]) -> Tensor:
        """The online encoder's pooled tokens of each image's first view [B, D]."""
        return self.online["encoder"](batch["views"][0].to(self.device)).mean(1)
