"""Evaluation: collapse monitors (probes follow)."""

from .monitors import effective_rank, embedding_std

__all__ = ["effective_rank", "embedding_std"]
