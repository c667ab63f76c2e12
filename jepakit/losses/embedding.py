"""Regularisers on a batch of embeddings [B, D], against collapse (C-JEPA's VICReg terms).

They read one embedding per image (the method decides which: for ``jepa``, the context
encoder's tokens averaged over the context patches) and return named, weighted terms that the
method adds to its loss. Under torchrun the batch statistics are taken over the global batch:
the embeddings are gathered from every rank with their gradients (lightly's ``gather``), so
each rank computes the loss of the whole batch and DDP's gradient average gives the
single-process gradient.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..config import Config, at_least, knob, positive
from ..registry import register

__all__ = ["EmbeddingLoss", "EmbeddingLossConfig", "VICRegTerms", "VICRegTermsConfig"]


@dataclass(frozen=True)
class EmbeddingLossConfig(Config):
    """Config of a regulariser on per-image embeddings (the ``embedding`` family of losses)."""


class EmbeddingLoss(nn.Module, abc.ABC):
    """Named, weighted terms of a batch of embeddings [B, D] (B >= 2: they are batch statistics)."""

    @abc.abstractmethod
    def terms(self, z: Tensor) -> dict[str, Tensor]:
        """The weighted terms of the global batch ``z`` [B, D]."""

    def forward(self, z: Tensor) -> dict[str, Tensor]:
        """The weighted terms of ``z`` [B, D], this rank's share of the batch under torchrun."""
        if z.ndim != 2:
            raise ValueError(f"{type(self).__name__} takes embeddings [B, D]; got shape {tuple(z.shape)}")
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            from lightly.utils.dist import gather

            z = torch.cat(gather(z.contiguous()), 0)
        if z.shape[0] < 2:
            raise ValueError(
                f"{type(self).__name__} needs a batch of at least 2 embeddings (a variance and a covariance "
                f"are batch statistics); got {z.shape[0]}"
            )
        return self.terms(z)


@dataclass(frozen=True)
class VICRegTermsConfig(EmbeddingLossConfig):
    variance_weight: float = knob(
        1.0,
        "weight of the variance hinge, mean over dimensions of max(0, 1 - std) (VICReg's 25 against its "
        "invariance's 25: 1 against the prediction loss)",
        valid=at_least(0),
    )
    covariance_weight: float = knob(
        0.04,
        "weight of the covariance term, the squared off-diagonal covariances summed and divided by D "
        "(VICReg's 1 against 25: 0.04 against the prediction loss)",
        valid=at_least(0),
    )
    eps: float = knob(1e-4, "added to the variance under the square root (VICReg)", valid=positive())


@register("loss", "vicreg", VICRegTermsConfig)
class VICRegTerms(EmbeddingLoss):
    """VICReg's variance and covariance terms (no invariance term: the prediction loss takes its
    place), lightly's tested functions: C-JEPA's additions to I-JEPA, against collapse."""

    config: VICRegTermsConfig

    def __init__(self, cfg: VICRegTermsConfig) -> None:
        super().__init__()
        self.config = cfg

    def terms(self, z: Tensor) -> dict[str, Tensor]:
        from lightly.loss.vicreg_loss import covariance_loss, variance_loss

        z = z.float()
        cfg = self.config
        return {
            "variance": cfg.variance_weight * variance_loss(z, eps=cfg.eps),
            "covariance": cfg.covariance_weight * covariance_loss(z),
        }
