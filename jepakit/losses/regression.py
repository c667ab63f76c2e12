"""Regression losses between predicted and target tokens, averaged over valid target patches.

Every loss optionally layer-normalises the targets over the feature dimension without
an affine transform first (I-JEPA's default). I-JEPA's code uses smooth-L1 (the paper
text says L2); TC-JEPA writes an un-squared per-patch L2 norm; V-JEPA uses L1.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Config, knob, positive
from ..registry import register

__all__ = ["ElementwiseConfig", "RegressionLoss", "RegressionLossConfig"]


@dataclass(frozen=True)
class RegressionLossConfig(Config):
    normalize_targets: bool = knob(True, "layer-norm the targets over features, no affine (I-JEPA)")


class RegressionLoss(nn.Module, abc.ABC):
    """Mean over valid target patches of a per-patch loss.

    Shapes: ``loss(pred, target, valid)``: pred and target [..., D], ``valid`` bool [...] (None: all) ->
    a scalar, the per-patch loss averaged over the valid patches only.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> loss = create("loss", "smooth-l1", normalize_targets=False)
        >>> pred, target = torch.zeros(2, 3, 4, 8), torch.ones(2, 3, 4, 8)  # [B, M, Kt, D]
        >>> float(loss(pred, target))  # smooth-L1 of an error of 1: 0.5
        0.5
        >>> valid = torch.arange(4) < 2  # the last two patches of each block are padding
        >>> float(loss(pred, target.index_fill(2, torch.tensor([2, 3]), 5.0), valid.expand(2, 3, 4)))
        0.5
    """

    def __init__(self, cfg: RegressionLossConfig) -> None:
        super().__init__()
        self.config = cfg

    @abc.abstractmethod
    def per_patch(self, pred: Tensor, target: Tensor) -> Tensor:
        """Loss of each patch [...] from pred, target [..., D]."""

    def prepare_target(self, target: Tensor) -> Tensor:
        """The target as regressed: layer-normed over features (no affine) if configured."""
        return F.layer_norm(target, target.shape[-1:]) if self.config.normalize_targets else target

    def over_features(self, loss: Tensor) -> Tensor:
        """A patch's loss from its per-feature losses [..., D]: their mean (an elementwise loss may sum them
        and scale by 1/sqrt(D), ``ElementwiseConfig.features``)."""
        if isinstance(self.config, ElementwiseConfig) and self.config.features == "sum-over-sqrt":
            return loss.sum(-1) / math.sqrt(loss.shape[-1])
        return loss.mean(-1)

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        """Scalar loss; ``valid`` (bool, shape of pred without D) excludes padded patches."""
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        loss = self.per_patch(pred, self.prepare_target(target))
        if valid is None:
            return loss.mean()
        w = valid.to(loss.dtype)
        return (loss * w).sum() / w.sum().clamp_min(1.0)


@dataclass(frozen=True)
class ElementwiseConfig(RegressionLossConfig):
    """A loss of each feature, then of the patch."""

    features: Literal["mean", "sum-over-sqrt"] = knob(
        "mean",
        "a patch's loss from its features': their mean (I-JEPA, V-JEPA), or their sum over sqrt(D) (data2vec "
        "2.0's code: sqrt(D) times the mean, so its gradient clip acts on a larger gradient)",
    )


@dataclass(frozen=True)
class SmoothL1Config(ElementwiseConfig):
    beta: float = knob(
        1.0, "where smooth-L1 turns from quadratic to linear (torch default, I-JEPA code)", valid=positive()
    )


@register("loss", "smooth-l1", SmoothL1Config)
class SmoothL1Loss(RegressionLoss):
    """Smooth-L1 per element, averaged over features (I-JEPA code).

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> pred, target = torch.zeros(1, 1, 2, 4), torch.ones(1, 1, 2, 4)  # [B, M, Kt, D]
        >>> float(create("loss", "smooth-l1", normalize_targets=False)(pred, target))  # 0.5 e^2 below beta = 1
        0.5
    """

    config: SmoothL1Config

    def per_patch(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.over_features(F.smooth_l1_loss(pred, target, reduction="none", beta=self.config.beta))


@dataclass(frozen=True)
class L1Config(ElementwiseConfig):
    pass


@register("loss", "l1", L1Config)
class L1Loss(RegressionLoss):
    """Absolute error averaged over features (V-JEPA, frozen teachers).

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> pred, target = torch.zeros(1, 1, 2, 4), torch.ones(1, 1, 2, 4)  # [B, M, Kt, D]
        >>> float(create("loss", "l1", normalize_targets=False)(pred, target))
        1.0
    """

    def per_patch(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.over_features((pred - target).abs())


@dataclass(frozen=True)
class L2Config(ElementwiseConfig):
    pass


@register("loss", "l2", L2Config)
class L2Loss(RegressionLoss):
    """Squared error averaged over features (the I-JEPA paper text).

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> loss = create("loss", "l2", normalize_targets=False)
        >>> float(loss(torch.zeros(2, 1, 3, 4), torch.full((2, 1, 3, 4), 2.0)))  # an error of 2 in every feature
        4.0
    """

    def per_patch(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.over_features((pred - target).square())


@dataclass(frozen=True)
class L2NormConfig(RegressionLossConfig):
    pass


@register("loss", "l2-norm", L2NormConfig)
class L2NormLoss(RegressionLoss):
    """Un-squared Euclidean distance per patch, ||pred - target||_2 (as TC-JEPA writes it).

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> pred, target = torch.zeros(1, 1, 2, 4), torch.ones(1, 1, 2, 4)  # [B, M, Kt, D]
        >>> float(create("loss", "l2-norm", normalize_targets=False)(pred, target))  # ||(1, 1, 1, 1)|| per patch
        2.0
    """

    def per_patch(self, pred: Tensor, target: Tensor) -> Tensor:
        return torch.linalg.vector_norm(pred - target, dim=-1)


@dataclass(frozen=True)
class CosineConfig(RegressionLossConfig):
    pass


@register("loss", "cosine", CosineConfig)
class CosineLoss(RegressionLoss):
    """1 − cosine similarity per patch (BYOL-style, scale-free).

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> pred, target = torch.tensor([[[[1.0, 0.0]]]]), torch.tensor([[[[0.0, 3.0]]]])  # orthogonal
        >>> float(create("loss", "cosine", normalize_targets=False)(pred, target))  # 1 - cos
        1.0
    """

    def per_patch(self, pred: Tensor, target: Tensor) -> Tensor:
        return 1.0 - F.cosine_similarity(pred, target, dim=-1, eps=1e-8)
