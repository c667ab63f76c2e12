"""Export a trained target encoder for use outside jepakit, and load it back.

``export_timm(checkpoint, out)`` writes ``model.safetensors`` (the target encoder, which
the papers evaluate, in timm's key names, its pixel normalisation folded into the patch
embedding so that timm's model takes the same [0, 1] images) and ``config.json`` (the timm architecture
with its arguments, and the jepakit encoder config). ``timm.create_model(name,
pretrained=False, checkpoint_path=out/"model.safetensors", **kwargs)`` loads it with
strict keys; ``jepakit.load_encoder(out)`` gives the jepakit encoder for feature extraction.
The encoder is the one the method evaluates (``MethodConfig.eval_encoder``).
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import to_dict

__all__ = ["export_timm"]


def export_timm(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the checkpoint's evaluated encoder as safetensors + config JSON into ``out``; return the folder.
    A folder that holds the export of another checkpoint (or a file at ``out``) is refused, never replaced."""
    from safetensors.torch import save_file

    from .checkpoint import RunFolderError, atomic_path
    from .runs import checkpoint_encoder, load_run, resolve_checkpoint

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"export --out {out} is a file, not a folder; name a new folder")
    experiment, state = load_run(checkpoint)
    source = {"checkpoint": str(resolve_checkpoint(checkpoint)), "step": int(state["step"])}
    held = out / "config.json"
    if held.is_file():
        before = json.loads(held.read_text()).get("source", {})
        if {k: before.get(k) for k in source} != source:
            raise RunFolderError(
                f"{out} holds the export of {before.get('checkpoint')} (step {before.get('step')}); name another "
                "--out, or move that folder away first (an export is never replaced by another)"
            )
    encoder, which = checkpoint_encoder(experiment, state)
    cfg = encoder.config
    # timm takes [0, 1] images without normalising: fold ours into the patch embedding
    weights = {k: v.contiguous() for k, v in encoder.timm_state_dict().items()}
    plain = cfg.replace(pixel_mean=(0.0,) * cfg.in_chans, pixel_std=(1.0,) * cfg.in_chans)
    name, kwargs = cfg.timm_args()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(weights, str(tmp))
    meta = {
        "timm_model": name,
        "timm_kwargs": kwargs,
        "encoder": to_dict(plain),
        "source": {**source, "weights": which},
    }
    with atomic_path(held) as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    return out
