"""A method of your own from jepakit's parts, in a plain loop: I-JEPA without its teacher, held up by SIGReg.

I-JEPA needs its EMA teacher: predicting a target that the same encoder computes, with the gradient
stopped, collapses (every image maps to one point and the loss goes to zero). LeJEPA (Balestriero and
LeCun, 2025) argues that no teacher is needed when the embeddings are pushed towards an isotropic
Gaussian. This script mixes the two: I-JEPA's multi-block masks, context encoder and predictor, with
targets from the *online* encoder under ``torch.no_grad`` (no second copy of the weights), plus LeJEPA's
SIGReg on the pooled context embeddings, weighted as LeJEPA weighs it:

    loss = (1 - lambda) * smooth_l1(prediction, stop_grad(encoder(image))[targets]) + lambda * SIGReg

    python examples/mixed_loop.py                # 200 steps of 32 on the embedded scenes
    python examples/mixed_loop.py --sigreg 0     # the same without SIGReg: watch the spread fall

Every part is a registered component (``create``); the shared pieces (the parts, the optimiser, the
data) come from ``ijepa_loop.py`` beside it. To train it with the engine instead (resume, logging,
probes), write it as a registered method: docs/tutorial.md.
"""

from __future__ import annotations

import argparse

import torch
from ijepa_loop import build_parts, crops, optimizer, set_lr

from jepakit import create
from jepakit.layers.transformer import gather_tokens
from jepakit.methods.jepa import pooled_context


def mixed_loss(parts: dict, images: torch.Tensor, masks, step: int, weight: float) -> dict[str, torch.Tensor]:
    """The prediction loss against the online encoder's own tokens, SIGReg on the pooled context, and their
    weighted sum ``loss``: images [B, 3, H, W] in [0, 1] and the masker's ``Masks``."""
    encoder = parts["encoder"]
    with torch.no_grad():  # the targets: the online encoder itself, whole image, no gradient (no teacher)
        targets = gather_tokens(encoder(images), masks.targets)  # [B, M, Kt, D]
    z = encoder(images, masks.context, masks.context_valid)  # [B, Kc, D]
    pred = parts["predictor"](z, masks.context, masks.targets, masks.grid, masks.context_valid, masks.targets_valid)
    predict = parts["loss"](pred, targets, masks.targets_valid)
    sigreg = parts["sigreg"](pooled_context(z, masks.context_valid), step)["sigreg"]  # pooled context: [B, D]
    return {"loss": (1 - weight) * predict + sigreg, "predict": predict.detach(), "sigreg": sigreg.detach()}


def spread(parts: dict, images: torch.Tensor) -> float:
    """The pooled embeddings' mean per-dimension standard deviation over a batch (0: collapsed)."""
    with torch.no_grad():
        return parts["encoder"](images).mean(1).std(0).mean().item()


def train(
    steps: int = 200, batch: int = 32, lr: float = 1e-3, weight: float = 0.05, seed: int = 0, **sizes: int
) -> tuple[list[dict[str, float]], dict]:
    """Train on the embedded scenes; return each step's loss parts (and the pooled spread) and the parts."""
    parts = build_parts(seed=seed, **sizes)
    del parts["target_encoder"]  # no teacher: the online encoder gives the targets
    parts["sigreg"] = create("loss", "sigreg", weight=weight, num_slices=256, seed=seed)
    side = parts["encoder"].config.img_size
    data = create("dataset", "scenes", image_size=side, size=steps * batch)
    opt = optimizer(parts, lr, weight_decay=0.04)
    g = torch.Generator().manual_seed(seed)
    history = []
    for step in range(steps):
        set_lr(opt, lr, step, steps)
        images = crops(data, step, batch, g)
        out = mixed_loss(parts, images, parts["masker"](batch, g), step, weight)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        history.append({k: v.item() for k, v in out.items()} | {"spread": spread(parts, images)})
    return history, parts


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sigreg", type=float, default=0.05, help="SIGReg's weight lambda (0: none)")
    args = parser.parse_args()
    history, _ = train(args.steps, args.batch, weight=args.sigreg)
    for step in range(0, len(history), max(1, len(history) // 10)):
        print(f"step {step + 1}: " + " ".join(f"{k} {v:.4f}" for k, v in history[step].items()))
    print("last: " + " ".join(f"{k} {v:.4f}" for k, v in history[-1].items()))
