"""Regularisers on a batch of embeddings [B, D], against collapse: C-JEPA's VICReg terms, LeJEPA's SIGReg.

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
from ..transforms import mix_seed

__all__ = [
    "EmbeddingLoss",
    "EmbeddingLossConfig",
    "SIGReg",
    "SIGRegConfig",
    "VICRegTerms",
    "VICRegTermsConfig",
    "epps_pulley",
]


@dataclass(frozen=True)
class EmbeddingLossConfig(Config):
    """Config of a regulariser on per-image embeddings (the ``embedding`` family of losses)."""


class EmbeddingLoss(nn.Module, abc.ABC):
    """Named, weighted terms of a batch of embeddings [B, D] (B >= 2: they are batch statistics)."""

    @abc.abstractmethod
    def terms(self, z: Tensor, step: int) -> dict[str, Tensor]:
        """The weighted terms of the global batch ``z`` [B, D] at optimiser step ``step``."""

    def forward(self, z: Tensor, step: int | None = None) -> dict[str, Tensor]:
        """The weighted terms of ``z`` [B, D], this rank's share of the batch under torchrun; ``step``
        seeds what a term draws afresh each step (the same on every rank)."""
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
        return self.terms(z, step or 0)

    def across_views(self, z: Tensor) -> dict[str, Tensor]:
        """Weighted terms that tie each image's views together, from this rank's ``z`` [V, B, D] (V >= 2); none
        unless the regulariser has some (VICReg's invariance)."""
        return {}

    def of_views(self, z: Tensor, step: int | None = None) -> dict[str, Tensor]:
        """The terms of views ``z`` [V, B, D] of B images: each view's terms averaged over the views, then the
        terms across them (one view: its terms as they are)."""
        if z.ndim != 3:
            raise ValueError(f"{type(self).__name__}.of_views takes views [V, B, D]; got shape {tuple(z.shape)}")
        if len(z) == 1:
            return self(z[0], step)
        per_view = [self(view, step) for view in z]
        terms = {name: torch.stack([t[name] for t in per_view]).mean() for name in per_view[0]}
        return terms | self.across_views(z)


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
    invariance_weight: float = knob(
        1.0,
        "weight of the invariance term, the mean squared difference between two views' embeddings of an image, "
        "averaged over pairs of views, when a method gives several (VICReg's 25 against its variance's 25: 1)",
        valid=at_least(0),
    )


@register("loss", "vicreg", VICRegTermsConfig)
class VICRegTerms(EmbeddingLoss):
    """VICReg's variance and covariance terms of each view, and with several views the invariance between
    them (lightly's tested functions): C-JEPA's additions to I-JEPA, against collapse and for the mean patch
    representation to agree across views.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> terms = create("loss", "vicreg")
        >>> collapsed = terms(torch.zeros(256, 8))  # every dimension's std 0: the hinge at its most
        >>> round(float(collapsed["variance"]), 4), float(collapsed["covariance"])
        (0.99, 0.0)
        >>> bool(terms(torch.randn(256, 8, generator=torch.Generator().manual_seed(0)))["variance"] < 0.05)
        True
    """

    config: VICRegTermsConfig

    def __init__(self, cfg: VICRegTermsConfig) -> None:
        super().__init__()
        self.config = cfg

    def terms(self, z: Tensor, step: int) -> dict[str, Tensor]:
        from lightly.loss.vicreg_loss import covariance_loss, variance_loss

        z = z.float()
        cfg = self.config
        return {
            "variance": cfg.variance_weight * variance_loss(z, eps=cfg.eps),
            "covariance": cfg.covariance_weight * covariance_loss(z),
        }

    def of_views(self, z: Tensor, step: int | None = None) -> dict[str, Tensor]:
        """VICReg's two-branch sum: the variance averaged over the views, the covariance summed over them (as
        VICReg's and lightly's losses), the invariance across them."""
        terms = super().of_views(z, step)
        if len(z) > 1:
            terms["covariance"] = terms["covariance"] * len(z)
        return terms

    def across_views(self, z: Tensor) -> dict[str, Tensor]:
        from lightly.loss.vicreg_loss import invariance_loss

        z = z.float()
        pairs = [invariance_loss(z[i], z[j]) for i in range(len(z)) for j in range(i + 1, len(z))]
        return {"invariance": self.config.invariance_weight * torch.stack(pairs).mean()}


def epps_pulley(x: Tensor, t_max: float = 3.0, points: int = 17) -> Tensor:
    """Epps-Pulley statistic of each column of ``x`` [N, M] against the standard normal:
    N * integral over [-t_max, t_max] of |ecf(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt, where ecf is the
    empirical characteristic function; the integrand is even, so the trapezoid rule runs on
    ``points`` nodes of [0, t_max] with doubled weights. Returns [M]."""
    t = torch.linspace(0.0, t_max, points, device=x.device, dtype=x.dtype)
    phi = torch.exp(-0.5 * t.square())
    dt = t_max / (points - 1)
    weights = torch.full_like(t, 2 * dt)
    weights[[0, -1]] = dt
    xt = x[..., None] * t  # [N, M, T]
    err = (xt.cos().mean(0) - phi).square() + xt.sin().mean(0).square()  # [M, T]: |ecf - phi|^2
    return x.shape[0] * (err @ (weights * phi))


@dataclass(frozen=True)
class SIGRegConfig(EmbeddingLossConfig):
    weight: float = knob(
        0.05,
        "weight of the statistic (LeJEPA: lambda = 0.05, its prediction loss weighted 1 - lambda)",
        valid=at_least(0),
    )
    num_slices: int = knob(
        1024, "random unit directions the embeddings are projected on, redrawn each step", valid=at_least(1)
    )
    t_max: float = knob(3.0, "the quadrature's range [0, t_max] (the integrand is even)", valid=positive())
    points: int = knob(17, "trapezoid nodes on [0, t_max]", valid=at_least(2))
    seed: int = knob(0, "seed of the directions, with the step: the same directions on every rank", valid=at_least(0))


@register("loss", "sigreg", SIGRegConfig)
class SIGReg(EmbeddingLoss):
    """LeJEPA's sketched isotropic Gaussian regulariser: the mean over ``num_slices`` random unit
    directions of the Epps-Pulley statistic of the embeddings' projections against N(0, 1).

    Shapes: embeddings [B, D] -> {"sigreg": a weighted scalar}.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> sigreg = create("loss", "sigreg", num_slices=64)
        >>> g = torch.Generator().manual_seed(0)
        >>> gaussian = sigreg(torch.randn(512, 16, generator=g), step=0)["sigreg"]
        >>> collapsed = sigreg(torch.ones(512, 16) + 1e-3 * torch.randn(512, 16, generator=g), step=0)["sigreg"]
        >>> bool(gaussian < 0.1 < collapsed)
        True
    """

    config: SIGRegConfig

    def __init__(self, cfg: SIGRegConfig) -> None:
        super().__init__()
        self.config = cfg

    def directions(self, dim: int, step: int) -> Tensor:
        """[dim, num_slices] unit columns, a function of (seed, step) alone."""
        g = torch.Generator().manual_seed(mix_seed(self.config.seed, step))
        a = torch.randn(dim, self.config.num_slices, generator=g, dtype=torch.float64)
        return a / a.norm(dim=0)

    def terms(self, z: Tensor, step: int) -> dict[str, Tensor]:
        cfg = self.config
        x = z.float() @ self.directions(z.shape[1], step).to(device=z.device, dtype=torch.float32)
        return {"sigreg": cfg.weight * epps_pulley(x, cfg.t_max, cfg.points).mean()}
