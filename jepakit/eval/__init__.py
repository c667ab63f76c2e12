"""Evaluation: frozen-feature probes (linear, kNN, attentive, dense) and collapse monitors."""

from .diagnostics import text_use
from .evaluate import PROBES, evaluate, online_probe, probe_data, results_table, summary
from .features import Features, extract, view_embeddings
from .floor import random_encoder, random_floor
from .monitors import centred_rank, effective_rank, embedding_std, lidar
from .probes import attentive_probe, dense_probe, knn_probe, linear_probe, mean_iou

__all__ = [
    "PROBES",
    "Features",
    "attentive_probe",
    "centred_rank",
    "dense_probe",
    "effective_rank",
    "embedding_std",
    "evaluate",
    "extract",
    "knn_probe",
    "lidar",
    "linear_probe",
    "mean_iou",
    "online_probe",
    "probe_data",
    "random_encoder",
    "random_floor",
    "results_table",
    "summary",
    "text_use",
    "view_embeddings",
]
