"""Export a trained target encoder for use outside jepakit, and load it back.

``export_timm(checkpoint, out)`` writes ``model.safetensors`` (the target encoder, which
the papers evaluate, in timm's key names, its pixel normalisation folded into the patch
embedding so that timm's model takes the same [0, 1] images) and ``config.json`` (the timm architecture
with its arguments, and the jepakit encoder config). ``timm.create_model(name,
pretrained=False, checkpoint_path=out/"model.safetensors", **kwargs)`` loads it with
strict keys; ``load_encoder(out)`` gives the jepakit encoder for feature extraction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .config import from_dict, to_dict

__all__ = ["export_timm", "load_encoder"]


def export_timm(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the checkpoint's target encoder as safetensors + config JSON into ``out``; return the folder."""
    from safetensors.torch import save_file

    from .eval.evaluate import checkpoint_encoder
    from .train.checkpoint import atomic_path, load_checkpoint

    state = load_checkpoint(checkpoint)
    encoder, cfg, which = checkpoint_encoder(state, str(checkpoint))
    # timm takes [0, 1] images without normalising: fold ours into the patch embedding
    weights = {k: v.contiguous() for k, v in encoder.timm_state_dict().items()}
    plain = cfg.encoder.replace(pixel_mean=(0.0,) * cfg.encoder.in_chans, pixel_std=(1.0,) * cfg.encoder.in_chans)
    name, kwargs = cfg.encoder.timm_args()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(weights, str(tmp))
    meta = {
        "timm_model": name,
        "timm_kwargs": kwargs,
        "encoder": to_dict(plain),
        "source": {"checkpoint": str(checkpoint), "step": int(state["step"]), "weights": which},
    }
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    return out


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """The encoder exported to ``path`` (a folder from ``export_timm``), in eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    meta_file = path / "config.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{str(path)!r} holds no config.json from jepakit export")
    meta = json.loads(meta_file.read_text())
    encoder = from_dict(meta["encoder"]).build()
    encoder.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
    return encoder.to(device).eval()
