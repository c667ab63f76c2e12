"""Official I-JEPA, V-JEPA and V-JEPA 2 training checkpoints as jepakit runs (``jepakit import-weights``).

:func:`import_weights` reads such a file (``jepakit.weights.read_official``), infers the
architecture from the shapes (the heads, which no shape shows, from the official model sizes),
builds the matching recipe's method, loads the weights strictly (a missing, unexpected or misshapen
key fails naming it) and writes a run folder at step 0 that ``jepakit probe``,
``target_updater=frozen`` and ``train.init_from`` read like any run. ``--resume`` refuses it: it has
no optimiser state.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from .checkpoint import CHECKPOINT_VERSION, BadCheckpointError, claim_run_folder, save_checkpoint
from .config import ConfigError, to_dict, unknown
from .weights import misfits, official_state, read_official

__all__ = ["FORMATS", "OFFICIAL_HEADS", "Format", "import_weights", "official_experiment"]

#: Heads of the official ViT sizes by width (tiny, small, base, large, huge, giant): no weight's shape says it.
OFFICIAL_HEADS: dict[int, int] = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16}


@dataclass(frozen=True)
class Format:
    """An official checkpoint layout: the recipe its method becomes, what no shape says (the heads), and the
    fields its architecture fixes."""

    recipe: str
    heads: Mapping[int, int] = field(default_factory=lambda: OFFICIAL_HEADS)
    #: the predictor's heads (None: the encoder's, as I-JEPA and V-JEPA have them)
    predictor_heads: int | None = None
    #: the image size when the encoder stores no position table to read it from
    image_size: int | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


#: Formats jepakit reads. V-JEPA 2 (``facebookresearch/vjepa2``): V-JEPA's method with rotary positions in the
#: encoder and predictor (``rope-vjepa2``), a 12-head predictor, ViT-g with 22 heads, 256 px (``vitg-384``:
#: ``image_size=384`` after the command).
FORMATS: dict[str, Format] = {
    "ijepa": Format("ijepa"),
    "vjepa": Format("vjepa"),
    "vjepa2": Format(
        "vjepa",
        heads={1024: 16, 1280: 16, 1408: 22},
        predictor_heads=12,
        image_size=256,
        fields={"encoder": {"positions": "rope-vjepa2"}, "predictor": {"positions": "rope-vjepa2"}},
    ),
}


def _count(state: Mapping[str, Tensor], prefix: str) -> int:
    return len({k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)})


def _shape(state: Mapping[str, Tensor], key: str, where: str) -> tuple[int, ...]:
    if key not in state:
        raise BadCheckpointError(f"the official {where} has no {key!r}: not the layout this format reads")
    return tuple(state[key].shape)


def _load_strictly(method: Any, state: Mapping[str, Tensor], path: str | Path) -> None:
    """``method.load_state_dict(state)``, its complaints (missing, unexpected, misshapen keys) as one line."""
    missing, unexpected, wrong = misfits(method.state_dict(), state)
    misshapen = [f"{k} {theirs} (jepakit: {own})" for k, theirs, own in wrong]
    problems = [
        f"{what}: {', '.join(keys[:5])}{f' and {len(keys) - 5} more' if len(keys) > 5 else ''}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("misshapen", misshapen))
        if keys
    ]
    if problems:
        raise BadCheckpointError(f"{str(path)!r} does not fit the inferred model; " + "; ".join(problems))
    method.load_state_dict(dict(state), strict=True)


def official_experiment(weights: Mapping[str, Mapping[str, Tensor]], fmt: str, overrides: Sequence[str] = ()) -> Any:
    """The recipe of ``fmt`` sized as ``weights`` are: widths, depths, patch, MLP ratio and image size from
    their shapes, heads from the format; ``overrides`` (``key=value``) after, e.g. for heads."""
    from .api import get_config

    spec = FORMATS[fmt]
    enc, pred = weights["encoder"], weights["predictor"]
    width, _, *kernel = _shape(enc, "patch_embed.proj.weight", "encoder")
    hidden = _shape(enc, "blocks.0.mlp.fc1.weight", "encoder")[0]
    if width not in spec.heads and not any(o.startswith("encoder.num_heads=") for o in overrides):
        raise ConfigError(
            f"encoder width {width} is none of the official sizes {sorted(spec.heads)}: give its heads, "
            "e.g. encoder.num_heads=8 predictor.num_heads=8"
        )
    heads = spec.heads.get(width, 1)
    encoder = {"embed_dim": width, "depth": _count(enc, "blocks."), "num_heads": heads, "patch_size": kernel[-1]}
    predictor = {
        "embed_dim": _shape(pred, "predictor_embed.weight", "predictor")[0],
        "depth": _count(pred, "predictor_blocks."),
        "num_heads": spec.predictor_heads or heads,
    }
    fields: dict[str, Any] = {
        "encoder": {**encoder, "mlp_ratio": hidden / width, **spec.fields.get("encoder", {})},
        "predictor": {**predictor, **spec.fields.get("predictor", {})},
    }
    frames = 1
    if len(kernel) == 3:  # a tubelet: [D, C, t, p, p]
        frames = get_config(spec.recipe).method.provides()["num_frames"][0] // kernel[0]
        fields["tubelet_size"] = kernel[0]
        fields["predictor"]["mask_tokens"] = max(1, _count(pred, "mask_tokens."))
    fields["image_size"] = spec.image_size or _image_size(enc, frames, kernel[-1])
    for key in (o.partition("=")[0] for o in overrides):  # what the overrides set is theirs, not inferred
        *path, last = key.split(".")
        inferred = fields
        for part in path:
            inferred = inferred.get(part, {}) if isinstance(inferred.get(part), dict) else {}
        inferred.pop(last, None)
    return get_config(spec.recipe, *overrides, **fields)


def _image_size(enc: Mapping[str, Tensor], frames: int, patch: int) -> int:
    """The image size of an encoder's position table [1, frames * side * side, D]."""
    patches = _shape(enc, "pos_embed", "encoder")[1] // frames
    side = math.isqrt(patches)
    if side * side != patches:
        raise BadCheckpointError(f"the encoder's {patches} positions per frame are not a square grid")
    return side * patch


def import_weights(
    path: str | Path, fmt: str, out: str | Path, overrides: Sequence[str] = (), overwrite: bool = False
) -> Path:
    """Read the official checkpoint ``path`` of format ``fmt`` into a jepakit run folder ``out`` (its
    config.json and ``checkpoints/step-00000000.pt``); returns the checkpoint's path."""
    if fmt not in FORMATS:
        raise unknown("weights format", fmt, FORMATS)
    weights = read_official(path)
    experiment = official_experiment(weights, fmt, overrides)
    method = experiment.build()
    _load_strictly(method, official_state(weights, method), path)
    folder = Path(out)
    claim_run_folder(folder, resume=False, overwrite=overwrite)
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    origin = {"path": str(Path(path).resolve()), "format": fmt}
    state = {
        "version": CHECKPOINT_VERSION,
        "model": method.state_dict(),
        "config": to_dict(experiment),
        "step": 0,
        "method_state": {},
        "imported": origin,
    }
    written = save_checkpoint(state, folder / "checkpoints" / "step-00000000.pt")
    made = {"imports": [], "recipe": FORMATS[fmt].recipe, "imported": origin}
    (folder / "config.json").write_text(json.dumps({**to_dict(experiment), **made}, indent=2))
    return written
