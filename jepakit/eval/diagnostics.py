"""Diagnostics of a trained JEPA beyond its probes: does the predictor use the text?

``text_use(model, data)`` compares the prediction loss with each image's (or clip's) own captions
against the same batch with the captions of another image (same images, same masks). A
predictor that ignores the text shows no gap. (``jepakit.runs.load_method`` rebuilds a
trained method, tokenizer included, from a checkpoint.)
"""

from __future__ import annotations

from typing import Any

import torch

from ..methods.jepa import JEPA
from ..transforms import mix_seed
from .features import sample_input

__all__ = ["text_use"]


@torch.no_grad()
def text_use(model: JEPA, data: Any, *, batches: int = 8, batch_size: int = 32, seed: int = 0) -> dict[str, float]:
    """Mean prediction loss with true captions and with captions rolled by one image, their
    relative gap, and the fraction of positive entries of O (for sparse conditioners)."""
    if not isinstance(model, JEPA):
        raise TypeError(f"text_use compares a JEPA's prediction losses; got {type(model).__name__}")
    if not model.conditioner.uses_text:
        raise ValueError(f"the conditioner {model.config.conditioner.name!r} reads no text: nothing to compare")
    need = batches * batch_size
    if need > len(data):
        raise ValueError(f"text_use needs {need} samples (batches x batch_size); the data has {len(data)}")
    model.eval()
    true_loss = rolled_loss = positive = 0.0
    for b in range(batches):
        samples = [data[b * batch_size + i] for i in range(batch_size)]
        images = torch.stack([sample_input(s) for s in samples])  # images, or clips for a video method
        captions = [s["captions"] for s in samples]
        masks = model.masker(batch_size, torch.Generator().manual_seed(mix_seed(seed, b)))
        out = model(images, masks, captions)
        true_loss += float(out["predict"])
        positive += float(out.get("metric/o_positive", float("nan")))
        rolled_loss += float(model(images, masks, captions[1:] + captions[:1])["predict"])
    return {
        "true": true_loss / batches,
        "shuffled": rolled_loss / batches,
        "gap": rolled_loss / true_loss - 1,
        "o_positive": positive / batches,
    }
