"""Collapse monitors for training and checkpoints.

- ``embedding_std``: the mean over dimensions of the per-dimension std of L2-normalised
  embeddings (SimSiam); 0 when every embedding is the same vector, about 1/sqrt(D)
  when they spread over the sphere.
- ``effective_rank``: RankMe (Garrido et al., ICML 2023), exp of the entropy of the
  normalised singular values; 1 for embeddings on one line, D at most.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["effective_rank", "embedding_std"]


def _flat(z: Tensor) -> Tensor:
    if z.ndim < 2:
        raise ValueError(f"embeddings must be [N, D] (or [..., D]); got shape {tuple(z.shape)}")
    return z.detach().reshape(-1, z.shape[-1]).float()


def embedding_std(z: Tensor) -> float:
    """Mean per-dimension std of the L2-normalised rows of ``z`` [N, D]."""
    return float(F.normalize(_flat(z), dim=-1).std(dim=0, unbiased=False).mean())


def effective_rank(z: Tensor, eps: float = 1e-7) -> float:
    """RankMe: exp(-sum p log p), p the singular values of ``z`` [N, D] over their sum."""
    s = torch.linalg.svdvals(_flat(z).double())
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))
