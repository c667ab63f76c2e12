"""Weights in: official I-JEPA / V-JEPA checkpoints read, and any weights a new run starts from.

The official code (``facebookresearch/ijepa``, ``facebookresearch/jepa``) saves a dict holding
``encoder``, ``predictor`` and ``target_encoder`` state dicts (keys prefixed ``module.`` by DDP),
beside the optimiser's state. Its encoder's names are timm's, as jepakit's are; its predictor
calls its blocks ``predictor_blocks`` and stores its fixed sin-cos positions
(``predictor_pos_embed``) and V-JEPA's per-generator mask tokens (``mask_tokens.0``, ...):
:func:`official_state` maps them. :func:`init_weights` loads a run's, an export's or an official
checkpoint's weights into a new method (``train.init_from``); ``jepakit.official`` turns an official
checkpoint into a run folder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .checkpoint import BadCheckpointError, load_checkpoint
from .config import ConfigError
from .encoders.vit import renormalised
from .layers.rope import rotary

__all__ = ["TIMM", "init_weights", "misfits", "official_state", "read_official", "source_state", "timm_encoder_state"]

PARTS = ("encoder", "predictor", "target_encoder")


def read_official(path: str | Path) -> dict[str, dict[str, Tensor]]:
    """The three state dicts of an official checkpoint, DDP's ``module.`` and V-JEPA 2's ``backbone.`` (its
    multi-clip-length wrappers) prefixes removed."""
    state = load_checkpoint(path)
    missing = [p for p in PARTS if not isinstance(state.get(p), Mapping)]
    if missing:
        raise BadCheckpointError(
            f"{str(path)!r} is not an official I-JEPA/V-JEPA checkpoint: it has no {', '.join(missing)} "
            f"(it holds {', '.join(sorted(map(str, state))[:8])})"
        )
    return {p: {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state[p].items()} for p in PARTS}


def official_state(weights: Mapping[str, Mapping[str, Tensor]], method: Any) -> dict[str, Tensor]:
    """The method's state dict from the official parts: the encoders as they are, the predictor's names
    mapped, its fixed positions checked against the method's own (they are not weights). A model with
    rotary positions reads no position table: one the file holds anyway is left out (V-JEPA 2's own loader
    skips it too)."""
    dropped = ("pos_embed",) if rotary(method.encoder.config.positions) else ()
    state = {f"encoder.{k}": v for k, v in weights["encoder"].items() if k not in dropped}
    state |= {f"target_encoder.{k}": v for k, v in weights["target_encoder"].items() if k not in dropped}
    pred = dict(weights["predictor"])
    positions = pred.pop("predictor_pos_embed", None)
    if rotary(method.predictor.config.positions):
        positions = None
    tokens = sorted((k for k in pred if k.startswith("mask_tokens.")), key=lambda k: int(k.split(".")[1]))
    if tokens:  # V-JEPA: one [1, 1, D] token per mask generator -> jepakit's [generators, 1, D]
        pred["mask_token"] = torch.cat([pred.pop(k) for k in tokens])
    for key, value in pred.items():
        state["predictor." + key.replace("predictor_blocks.", "blocks.", 1)] = value
    if positions is not None:
        ours = method.predictor.pos_embed_for(_grid(method.config), torch.device("cpu"))
        if ours.shape != positions.shape or not torch.allclose(ours, positions.float(), atol=1e-4):
            raise BadCheckpointError(
                f"the checkpoint's predictor positions {tuple(positions.shape)} are not jepakit's sin-cos positions "
                f"{tuple(ours.shape)} for this grid: the predictor would place its tokens elsewhere"
            )
    return state


def _grid(cfg: Any) -> tuple[int, ...]:
    """The patch grid of a JEPA method config: (H, W), or (T, H, W) of tubelets for clips."""
    side = cfg.image_size // cfg.encoder.patch_size
    return (cfg.num_frames // cfg.tubelet_size, side, side) if cfg.num_frames else (side, side)


#: ``train.init_from=timm:NAME``: a timm model's pretrained weights, fetched by timm (its hub cache).
TIMM = "timm:"


def source_state(method: Any, source: str | Path) -> tuple[dict[str, Tensor], str]:
    """(weights named as ``method``'s state dict, a line saying what they are) of ``source``: a run folder or
    training checkpoint (its model), a jepakit export or a timm model (``timm:NAME``; its encoder, under each
    prefix the method evaluates an encoder from), or an official checkpoint (mapped as :func:`official_state`
    maps it)."""
    from .checkpoint import is_export, load_encoder, training_checkpoint, upgrade_checkpoint
    from .hub import local_path

    if str(source).startswith(TIMM):
        return evaluated(method, *timm_encoder_state(str(source)[len(TIMM) :])), f"the timm model {source!r}"
    path = local_path(source)
    if is_export(path):  # its patch embedding folds the normalisation in: unfold it into the method's
        exported = load_encoder(path)
        return evaluated(method, exported.state_dict(), (exported.pixel_mean, exported.pixel_std)), (
            f"the export {str(path)!r}"
        )
    run = training_checkpoint(path)
    if run is not None:
        state = upgrade_checkpoint(load_checkpoint(run))
        return dict(state["model"]), f"the checkpoint {str(run)!r} (step {int(state['step'])})"
    return official_state(read_official(path), method), f"the official checkpoint {str(path)!r}"


def evaluated(method: Any, encoder: dict[str, Tensor], stats: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    """An encoder's weights (made for images normalised by ``stats``, (mean, std) [1, C, 1, 1]) under each
    prefix ``method`` evaluates an encoder from, its patch embedding re-expressed for the method's own
    normalisation."""
    ours = method.eval_encoder()
    state = renormalised(encoder, stats, (ours.pixel_mean, ours.pixel_std))
    keys = method.state_dict().keys()
    prefixes = [p for p in method.config.eval_encoder()[1] if any(k.startswith(p + ".") for k in keys)]
    return {f"{p}.{k}": v for p in prefixes for k, v in state.items()}


def timm_encoder_state(name: str) -> tuple[dict[str, Tensor], tuple[Tensor, Tensor]]:
    """A timm ViT's pretrained weights (timm's own loader: its hub cache, or a download) as a jepakit
    encoder's, and the normalisation it was trained with: the patch embedding, the blocks and the final
    norm. Its class and register tokens and learned positions are left out (jepakit's encoder has none and
    fixed sin-cos positions), so its blocks start from what they learnt and relearn where to look."""
    import timm

    try:
        model: Any = timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as e:  # an unknown name, no weights for it, or none in the cache offline
        raise ConfigError(f"train.init_from=timm:{name}: timm cannot give its pretrained weights ({e})") from None
    dropped = ("cls_token", "reg_token", "pos_embed", "fc_norm.", "head.")
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(dropped)}
    cfg = model.pretrained_cfg
    return state, (torch.tensor(cfg["mean"]).view(1, -1, 1, 1), torch.tensor(cfg["std"]).view(1, -1, 1, 1))


def misfits(
    ours: Mapping[str, Tensor], state: Mapping[str, Tensor]
) -> tuple[list[str], list[str], list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """What keeps ``state`` from loading into a module whose state dict is ``ours``: the keys only ``ours``
    has, the keys only ``state`` has (both sorted), and (key, its shape in ``state``, in ``ours``) of those
    whose shapes differ, in the module's order."""
    missing, unexpected = sorted(set(ours) - set(state)), sorted(set(state) - set(ours))
    misshapen = [
        (k, tuple(state[k].shape), tuple(v.shape)) for k, v in ours.items() if k in state and state[k].shape != v.shape
    ]
    return missing, unexpected, misshapen


def init_weights(method: Any, source: str | Path, prefixes: Sequence[str] = ()) -> str:
    """Load ``source``'s weights into ``method`` (``prefixes``: only those under them); a weight the method
    lacks, or of another shape, fails naming it; the method's weights the source lacks stay as initialised.
    Returns a line for the run's log."""
    state, what = source_state(method, source)
    if prefixes:
        state = {k: v for k, v in state.items() if any(k.startswith(p + ".") for p in prefixes)}
        if not state:
            raise ConfigError(f"train.init_prefixes={list(prefixes)}: {what} has no weights under them")
    ours = method.state_dict()
    _, unexpected, wrong = misfits(ours, state)
    if unexpected or wrong:
        misshapen = [f"{k} {theirs} (here {own})" for k, theirs, own in wrong]
        named = (["the method has no " + ", ".join(unexpected[:5])] if unexpected else []) + (
            ["shapes differ: " + ", ".join(misshapen[:5])] if misshapen else []
        )
        raise ConfigError(
            f"train.init_from: {what} does not fit this method; {'; '.join(named)} (train.init_prefixes filters)"
        )
    method.load_state_dict(state, strict=False)
    kept = len(set(ours) - set(state))
    return f"initialised {len(state)} of the method's {len(ours)} weights from {what}" + (
        f"; {kept} stay as initialised" if kept else ""
    )
