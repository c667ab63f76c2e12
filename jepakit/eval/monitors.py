"""Collapse monitors for training and checkpoints.

- ``embedding_std``: the mean over dimensions of the per-dimension std of L2-normalised
  embeddings (SimSiam); 0 when every embedding is the same vector, about 1/sqrt(D)
  when they spread over the sphere.
- ``effective_rank``: RankMe (Garrido et al., ICML 2023), exp of the entropy of the
  normalised singular values; 1 for embeddings on one line, D at most.
- ``centred_rank``: the same of the embeddings less their mean: how many directions the images
  spread over. A random-init ViT's pooled tokens share one large mean (RankMe about 1.8 on
  digits, which a collapse barely moves); centred they read about 7, and about 4 once a run's
  probes have collapsed (docs/methods.md), so the trainer's collapse warning reads this one.
- ``lidar``: LiDAR (Thilak et al., ICLR 2024), the same entropy rank of the linear
  discriminant matrix Sigma_w^-1/2 Sigma_b Sigma_w^-1/2 of surrogate classes (the views of one
  image form a class): how many directions separate images beyond how much their own views
  vary. Between 1 and min(D, images - 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["centred_rank", "collapse_monitors", "effective_rank", "embedding_std", "lidar"]


def _flat(z: Tensor) -> Tensor:
    if z.ndim < 2:
        raise ValueError(f"embeddings must be [N, D] (or [..., D]); got shape {tuple(z.shape)}")
    return z.detach().reshape(-1, z.shape[-1]).float()


def embedding_std(z: Tensor) -> float:
    """Mean per-dimension std of the L2-normalised rows of ``z`` [N, D]."""
    return float(F.normalize(_flat(z), dim=-1).std(dim=0, unbiased=False).mean())


def effective_rank(z: Tensor, eps: float = 1e-7) -> float:
    """RankMe: exp(-sum p log p), p the singular values of ``z`` [N, D] over their sum."""
    return _entropy_rank(torch.linalg.svdvals(_flat(z).double()), eps)


def centred_rank(z: Tensor, eps: float = 1e-7) -> float:
    """RankMe of ``z`` [N, D] less its mean over the rows; 0 when every row is the same."""
    flat = _flat(z).double()
    values = torch.linalg.svdvals(flat - flat.mean(0))
    return 0.0 if float(values.sum()) <= eps * float(flat.abs().sum()) else _entropy_rank(values, eps)


def collapse_monitors(z: Tensor) -> dict[str, float]:
    """The readings of embeddings [N, D] that the trainer logs on its monitor steps and the probes report on the
    test features: embedding std, effective rank and centred rank."""
    return {"embedding_std": embedding_std(z), "effective_rank": effective_rank(z), "centred_rank": centred_rank(z)}


def _entropy_rank(values: Tensor, eps: float) -> float:
    """exp(-sum p log p) of p = values / their sum + eps (RankMe's and LiDAR's smoothing)."""
    p = values / values.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


def lidar(z: Tensor, delta: float = 1e-4, eps: float = 1e-7) -> float:
    """LiDAR of ``z`` [n, q, D]: ``q`` views of each of ``n`` images (n >= 2, q >= 2).

    Sigma_b is the (unbiased) covariance of the n image means, Sigma_w the pooled (unbiased)
    covariance of the views around their image's mean plus ``delta`` I; the result is the entropy rank of the
    eigenvalues of Sigma_w^-1/2 Sigma_b Sigma_w^-1/2 (1 when the image means do not differ)."""
    if z.ndim != 3 or z.shape[0] < 2 or z.shape[1] < 2:
        raise ValueError(f"LiDAR needs embeddings [images >= 2, views >= 2, D]; got shape {tuple(z.shape)}")
    z = z.detach().double()
    n, q, d = z.shape
    means = z.mean(1)  # [n, D]
    centred = means - means.mean(0)
    between = centred.T @ centred / (n - 1)
    views = (z - means[:, None]).reshape(-1, d)
    within = views.T @ views / (n * (q - 1)) + delta * torch.eye(d, dtype=z.dtype)
    w_vals, w_vecs = torch.linalg.eigh(within)
    inv_sqrt = w_vecs @ torch.diag(w_vals.rsqrt()) @ w_vecs.T
    values = torch.linalg.eigvalsh(inv_sqrt @ between @ inv_sqrt).clamp_min(0)
    if float(values.sum()) <= 0:
        return 1.0
    return _entropy_rank(values, eps)
