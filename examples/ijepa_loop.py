"""I-JEPA in a plain PyTorch loop: jepakit's parts, no trainer, no config tree.

The step reads like the paper (Assran et al., CVPR 2023): the target encoder sees the whole image and
the targets are its layer-normed tokens at the target blocks; the context encoder sees the context
patches only; the predictor reads the context and one mask token per target patch; smooth-L1; AdamW;
the target encoder follows the online one by an EMA whose momentum rises to 1.

    python examples/ijepa_loop.py            # 200 steps of 32 on the embedded scenes, a few minutes on a CPU
    python examples/ijepa_loop.py --steps 20

Each part is a registered component built by ``create(kind, name, **fields)``; swap any of them for your
own. ``jepakit train ijepa-cpu`` runs the same method through the engine (resume, logging, probes).
"""

from __future__ import annotations

import argparse
import copy
import math
from typing import Any

import torch

from jepakit import create
from jepakit.layers.transformer import gather_tokens
from jepakit.transforms import random_resized_crop


def build_parts(image_size: int = 64, patch: int = 8, width: int = 192, depth: int = 6, seed: int = 0) -> dict:
    """The encoder, its EMA copy (the target encoder), the predictor, the masker and the loss."""
    torch.manual_seed(seed)
    heads = max(1, width // 64)
    encoder = create(
        "encoder",
        "vit",
        img_size=image_size,
        patch_size=patch,
        embed_dim=width,
        depth=depth,
        num_heads=heads,
        depth_rescale=False,
    )
    predictor = create(
        "predictor",
        "vit-predictor",
        embed_dim=width,
        depth=max(1, depth // 2),
        num_heads=heads,
        encoder_dim=width,
        depth_rescale=False,
    )
    target_encoder = copy.deepcopy(encoder).requires_grad_(False).eval()
    masker = create("masker", "multiblock", input_size=image_size, patch_size=patch, min_keep=4)
    loss_fn = create("loss", "smooth-l1", normalize_targets=True)  # targets layer-normed over features
    return {
        "encoder": encoder,
        "target_encoder": target_encoder,
        "predictor": predictor,
        "masker": masker,
        "loss": loss_fn,
    }


def ijepa_loss(parts: dict, images: torch.Tensor, masks) -> torch.Tensor:
    """The I-JEPA loss of a batch: images [B, 3, H, W] in [0, 1] and the masker's ``Masks``."""
    with torch.no_grad():  # targets: the whole image through the target encoder, read at the target blocks
        targets = gather_tokens(parts["target_encoder"](images), masks.targets)  # [B, M, Kt, D]
    z = parts["encoder"](images, masks.context, masks.context_valid)  # the context patches only: [B, Kc, D]
    pred = parts["predictor"](z, masks.context, masks.targets, masks.grid, masks.context_valid, masks.targets_valid)
    return parts["loss"](pred, targets, masks.targets_valid)


def optimizer(parts: dict, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over encoder and predictor; no weight decay on biases and other 1-D parameters (I-JEPA)."""
    params = [p for name in ("encoder", "predictor") for p in parts[name].parameters()]
    decay = [p for p in params if p.ndim > 1]
    rest = [p for p in params if p.ndim <= 1]
    groups: list[dict] = [{"params": decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


@torch.no_grad()
def ema(parts: dict, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online."""
    for t, o in zip(parts["target_encoder"].parameters(), parts["encoder"].parameters(), strict=True):
        t.lerp_(o, 1 - momentum)


def set_lr(opt: torch.optim.Optimizer, lr: float, step: int, steps: int) -> None:
    """A linear warm-up over the first tenth of the run, then a cosine decay to 0."""
    warm = min(1.0, (step + 1) / max(1, steps // 10))
    for group in opt.param_groups:
        group["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * step / steps))


def crops(data: Any, step: int, batch: int, g: torch.Generator) -> torch.Tensor:
    """Step ``step``'s images of ``data`` (each read once, in order), each a random crop of 30-100% of it."""
    return torch.stack([random_resized_crop(data[step * batch + i]["image"], (0.3, 1.0), g) for i in range(batch)])


def train(
    steps: int = 200, batch: int = 32, lr: float = 1e-3, seed: int = 0, log_every: int = 20, **sizes: int
) -> tuple[list[float], dict]:
    """Train on the embedded scenes; return the loss of every step and the parts (``sizes``: build_parts')."""
    parts = build_parts(seed=seed, **sizes)
    side = parts["encoder"].config.img_size
    data = create("dataset", "scenes", image_size=side, size=steps * batch)
    opt = optimizer(parts, lr, weight_decay=0.04)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for step in range(steps):
        set_lr(opt, lr, step, steps)
        images = crops(data, step, batch, g)
        loss = ijepa_loss(parts, images, parts["masker"](batch, g))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema(parts, momentum=0.99 + 0.01 * step / steps)  # rises linearly to 1
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1}: loss {loss.item():.4f}", flush=True)
    return losses, parts


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    losses, _ = train(args.steps, args.batch)
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
