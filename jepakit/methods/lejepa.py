"""LeJEPA: multi-view prediction in a projected space, kept from collapse by SIGReg alone.

Reference: Balestriero & LeCun, "LeJEPA: Provable and Scalable Self-Supervised Learning
Without the Heuristics", 2025 (arXiv 2511.08544), and ``docs/methods.md``. One encoder,
no teacher, no EMA, no stop-gradient, no predictor. Each image is seen through
``global_views`` large crops and ``local_views`` small ones; every view is encoded,
average-pooled and projected (an MLP with BatchNorm), and every view's projection
regresses the mean of the global views' projections (MSE). The regulariser (``sigreg``:
the Epps-Pulley statistic of random 1-D projections against N(0, 1)) acts on each view's
projections over the global batch, and the loss is (1 - λ)·prediction + λ·regulariser.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..augment import Transform, TransformConfig, augmented_view, check_transforms
from ..config import Config, ConfigError, at_least, each, in_range, knob, ordered_pair, slot
from ..encoders.vit import ViTConfig
from ..losses.embedding import EmbeddingLoss, EmbeddingLossConfig, SIGRegConfig
from ..registry import register
from ..sizing import Size, transformer_activations
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
    weight_decay_groups,
)

__all__ = ["LeJEPA", "LeJEPAConfig", "projector", "projector_params"]


def projector(in_dim: int, widths: Sequence[int]) -> nn.Sequential:
    """An MLP ``in_dim -> widths[0] -> ... -> widths[-1]``, BatchNorm and ReLU after every layer but
    the last (the SSL projectors of SimCLR, VICReg and LeJEPA): [N, in_dim] -> [N, widths[-1]]."""
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        layers.append(nn.Linear(in_dim if i == 0 else widths[i - 1], width))
        if i < len(widths) - 1:
            layers += [nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def projector_params(in_dim: int, widths: Sequence[int]) -> float:
    """The parameters of ``projector(in_dim, widths)``: each layer's weights and biases, and the gain and
    bias of every BatchNorm."""
    dims = (in_dim, *widths)
    return float(sum(a * b + b for a, b in itertools.pairwise(dims)) + 2 * sum(widths[:-1]))


@dataclass(frozen=True)
class LeJEPAConfig(MethodConfig):
    image_size: int = knob(224, "global views' side in pixels; the encoder and the data follow it", valid=at_least(1))
    local_size: int = knob(96, "local views' side in pixels (LeJEPA: 96 beside 224)", valid=at_least(1))
    global_views: int = knob(
        2, "large crops per image; their projections' mean is every view's target (LeJEPA: 2)", valid=at_least(1)
    )
    local_views: int = knob(6, "small crops per image (LeJEPA: 6; 0: global views only)", valid=at_least(0))
    global_scale: tuple[float, float] = knob(
        (0.3, 1.0), "RandomResizedCrop area range of a global view (LeJEPA: 0.3-1)", valid=ordered_pair(0, 1)
    )
    local_scale: tuple[float, float] = knob(
        (0.05, 0.3), "RandomResizedCrop area range of a local view (LeJEPA: 0.05-0.3)", valid=ordered_pair(0, 1)
    )
    flip: bool = knob(True, "mirror each view left-right with probability 1/2 (LeJEPA's pipeline)")
    augment: tuple[TransformConfig, ...] = knob(
        (),
        "photometric transforms after each view's crop and flip (jepakit.augment), each with its probability "
        "per view, global views first; () for crops and flips only",
    )
    projector: tuple[int, ...] = knob(
        (2048, 2048, 128),
        "widths of the projector MLP on the pooled encoder output, BatchNorm and ReLU between layers",
        valid=each(at_least(1)),
    )
    lam: float = knob(
        0.05, "lambda: the loss is (1 - lambda) prediction + lambda regulariser (LeJEPA: 0.05)", valid=in_range(0, 1)
    )
    encoder: Config = slot(ViTConfig(), "encoder", "the one encoder: every view's tokens, average-pooled")
    regulariser: Config = slot(
        SIGRegConfig(weight=1.0),
        "loss",
        "regulariser of each view's projections over the global batch (LeJEPA: sigreg, weighted by lam)",
    )

    def provides(self) -> dict[str, tuple[Any, str]]:
        return image_encoder_provides(self.image_size, self.encoder)

    def check_sources(self) -> None:
        check_patches(self.image_size, self.provides()["patch_size"][0])
        patch = self.provides()["patch_size"][0]
        if self.local_views and self.local_size % patch:
            raise ConfigError(f"local_size={self.local_size} is not divisible by encoder.patch_size={patch}")

    def check(self) -> None:
        check_transforms(self.augment, "augment")
        if self.global_views < 2:
            raise ConfigError(
                f"global_views={self.global_views}: LeJEPA needs at least 2, since each view regresses the mean "
                "of the global views' projections, and with one global view that target is the view itself"
            )
        if not isinstance(self.regulariser, EmbeddingLossConfig):
            raise ConfigError(
                f"regulariser {self.regulariser.name!r} is not a regulariser of embeddings; choose from "
                f"{loss_names(EmbeddingLossConfig)}"
            )

    def min_batch_size(self) -> int:
        return 2  # BatchNorm and the regulariser take batch statistics

    def eval_encoder(self) -> tuple[Config, tuple[str, ...]]:
        return self.encoder, ("encoder",)

    def size(self, batch: int) -> Size:
        """The encoder, the projector, and the activations of every view for ``batch`` images."""
        size = super().size(batch)
        enc: Any = self.encoder
        size.params["projector"] = projector_params(enc.embed_dim, self.projector)
        size.drivers["projector"] = [f"projector={self.projector}"]
        image_tower_size(size, batch * self.global_views, self.image_size, enc)
        local_tokens = (self.local_size // enc.patch_size) ** 2
        size.activations["local_views"] = transformer_activations(
            batch * self.local_views, local_tokens, enc.embed_dim, enc.depth, enc.mlp_ratio, enc.num_heads
        )
        size.drivers["encoder"] = size.drivers["encoder"] + [f"global_views={self.global_views}"]
        size.drivers["local_views"] = [f"local_views={self.local_views}", f"local_size={self.local_size}"]
        return size


@register("method", "lejepa", LeJEPAConfig)
class LeJEPA(Method):
    """One encoder and a projector; ``forward(global_views, local_views)`` gives ``{"loss", "prediction", ...}``.

    Example:
        >>> import torch
        >>> from jepakit import get_config
        >>> small = dict(image_size=32, encoder={"embed_dim": 48, "depth": 2, "num_heads": 3})
        >>> model = get_config("lejepa-cpu", local_size=16, **small).build()
        >>> g = torch.Generator().manual_seed(0)
        >>> out = model(torch.rand(2, 4, 3, 32, 32, generator=g), torch.rand(6, 4, 3, 16, 16, generator=g))  # 2 + 6 views
        >>> sorted(out)
        ['loss', 'prediction', 'sigreg']
    """

    config: LeJEPAConfig

    def __init__(self, cfg: LeJEPAConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = cfg.encoder.build()
        self.projector = projector(self.encoder.embed_dim, cfg.projector)
        self.regulariser: EmbeddingLoss = cfg.regulariser.build()
        self.augment: list[Transform] = [t.build() for t in cfg.augment]

    def pooled(self, images: Tensor) -> Tensor:
        """float [N, C, H, W] in [0, 1] -> the encoder's tokens averaged over patches [N, D]."""
        return self.encoder(images.to(self.device, non_blocking=True)).mean(1)

    def forward(
        self, global_views: Tensor, local_views: Tensor | None = None, step: int | None = None
    ) -> dict[str, Tensor]:
        """``{"loss", "prediction", <regulariser terms>}`` for views of B images: ``global_views`` float
        [Vg, B, C, H, W] and ``local_views`` [Vl, B, C, h, w] (None or Vl = 0: none), in [0, 1].

        Each view's projections z_v [B, K] regress the mean of the global views' (no stop-gradient);
        the regulariser's terms are averaged over the views."""
        vg, b = global_views.shape[:2]
        if vg < 2:
            raise ValueError(f"global_views has {vg} views of each image; LeJEPA needs at least 2")
        pooled = [self.pooled(global_views.flatten(0, 1))]
        if local_views is not None and local_views.shape[0]:
            if local_views.shape[1] != b:
                raise ValueError(f"local_views has {local_views.shape[1]} images for {b} global ones")
            pooled.append(self.pooled(local_views.flatten(0, 1)))
        z = self.projector(torch.cat(pooled)).view(-1, b, self.config.projector[-1])  # [V, B, K]
        prediction = (z - z[:vg].mean(0)).square().mean()
        terms = self.regulariser.of_views(z, step)
        lam = self.config.lam
        parts = {"prediction": (1 - lam) * prediction, **{name: lam * t for name, t in terms.items()}}
        return {"loss": torch.stack(list(parts.values())).sum(), **parts}

    # ------------------------------------------------------------ the contract

    def make_batch(self, samples: Sequence[Mapping[str, Any]], draw: Draw) -> dict[str, Any]:
        """Every sample's global then local views, drawn per (seed, epoch, index): ``global_views``
        [Vg, B, C, H, W] and ``local_views`` [Vl, B, C, h, w] (None without local views)."""
        cfg = self.config
        views: list[list[Tensor]] = [[] for _ in range(cfg.global_views + cfg.local_views)]
        for k, s in enumerate(samples):
            g = draw.sample(k)
            for v in range(len(views)):
                glob = v < cfg.global_views
                scale, size = (cfg.global_scale, cfg.image_size) if glob else (cfg.local_scale, cfg.local_size)
                views[v].append(augmented_view(s["image"], scale, g, v, self.augment, size, cfg.flip))
        stacked = [torch.stack(v) for v in views]
        local = torch.stack(stacked[cfg.global_views :]) if cfg.local_views else None
        return {"global_views": torch.stack(stacked[: cfg.global_views]), "local_views": local}

    def param_groups(self) -> list[ParamGroup]:
        """Weight decay on matrices; none on biases and norms (BatchNorm's too)."""
        return weight_decay_groups([self.encoder, self.projector, self.regulariser])

    def shard_units(self) -> list[nn.Module]:
        """Each encoder block, then the encoder, then the projector."""
        return blocks_then_modules([self.encoder, self.projector])

    def eval_encoder(self) -> nn.Module:
        return self.encoder

    def embeddings(self, batch: Mapping[str, Any]) -> Tensor:
        """The encoder's pooled tokens of each image's first global view [B, D] (what the probes read)."""
        return self.pooled(batch["global_views"][0])
