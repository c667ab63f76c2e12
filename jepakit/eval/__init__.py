"""Evaluation: frozen-feature probes (linear, kNN, attentive, dense) and collapse monitors."""

from .diagnostics import load_model, text_use
from .evaluate import PROBES, evaluate, load_target_encoder, summary
from .features import Features, extract
from .monitors import effective_rank, embedding_std
from .probes import attentive_probe, dense_probe, knn_probe, linear_probe, mean_iou

__all__ = [
    "PROBES", "evaluate", "load_model", "text_use", "load_target_encoder", "summary", "Features", "extract", "effective_rank",
    "embedding_std", "attentive_probe", "dense_probe", "knn_probe", "linear_probe", "mean_iou",
]
