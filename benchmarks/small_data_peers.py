"""The peers' own training code on the small real sets, probed exactly as jepakit's runs are.

Each peer trains the ViT of the CPU recipes (192 wide, 6 blocks, 3 heads, 8 px patches at 64 px: a timm
``VisionTransformer`` built from ``ijepa-cpu``'s encoder) for the recipes' budget (300 steps of 32 images)
on a packaged set's train split, with its own modules, transforms, masks, optimiser and schedules:

- ``lightly-ijepa``: lightly's I-JEPA example (``examples/pytorch/ijepa.py``) on lightly's timm modules
  (``MaskedVisionTransformerTIMM``, ``IJEPAPredictorTIMM``, a 3-block predictor as the recipe's):
  ``IJEPATransform``, ``IJEPAMaskCollator`` with its defaults, AdamW at 1.5e-4, EMA 0.996 -> 1, smooth L1;
- ``lightly-random``: that ViT as lightly's masked ViT initialises it (xavier-uniform Linear layers and
  patch embedding, fixed sin-cos positions), untrained: the floor of ``lightly-ijepa``'s rows, which start
  from it (timm's and jepakit's truncated-normal init give poorer random features);
- ``lightly-simclr``: lightly's SimCLR example (``examples/pytorch/simclr.py``) on the same ViT (average
  pooled): ``SimCLRTransform`` (no blur, as the example), ``SimCLRProjectionHead``, ``NTXentLoss``, SGD 0.06;
- ``spt-ijepa``, ``spt-lejepa``: stable-pretraining's methods, trained in a separate virtual environment
  (``benchmarks/spt_peer.py``; set ``SPT_PYTHON`` to its interpreter).

The trained encoder's weights (the EMA target for I-JEPA, as I-JEPA evaluates; the backbone otherwise)
load strictly into jepakit's ``ViTEncoder`` with the same pixel normalisation, so the probes read the very
function the peer trained. Rows go to ``small_data_results.jsonl`` beside jepakit's (``small_data.py table``
shows them), each with its kNN curve against CPU minutes of training (process time, the probes excluded).

    python benchmarks/small_data_peers.py run SET PEER [SEED ...] [--lr LR] [--ema EMA] [--steps N] [--screen]

``--lr``, ``--ema`` (the I-JEPA peers' EMA start) and ``--steps`` are the tuning budget the peers get, the
levers jepakit's screens turned (``small_data.py screen``); a tuned run records them as its ``overrides``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from small_data import PEERS, RESULTS, SCREENS, SETS, config, probe_run
from torch import Tensor, nn

HERE = Path(__file__).resolve().parent
CURVE = 4  # snapshots along a run, as jepakit's runs


@dataclass(frozen=True)
class Knobs:
    """A peer's tuned settings; None keeps its published default."""

    lr: float | None = None
    ema: float | None = None  # the I-JEPA peers' EMA start (the end stays 1)

    def overrides(self) -> list[str]:
        """The settings as a screen row records them, e.g. ``["lr=0.0003"]``."""
        return [f"{k}={v}" for k, v in (("lr", self.lr), ("ema", self.ema)) if v is not None]


class Clock:
    """Process CPU minutes of training, stopped while a snapshot is taken."""

    def __init__(self) -> None:
        self.spent, self.since = 0.0, time.process_time()

    def stop(self) -> float:
        """The minutes so far; the clock stands until ``start``."""
        self.spent += time.process_time() - self.since
        return self.spent / 60

    def start(self) -> None:
        self.since = time.process_time()


class PilImages(torch.utils.data.Dataset):
    """A packaged set's train images as PIL images through a peer's transform: (transformed, label)."""

    def __init__(self, data: Any, transform: Callable[[Any], Any]) -> None:
        from torchvision.transforms.functional import to_pil_image

        self.images = [to_pil_image(data[i]["image"]) for i in range(len(data))]
        self.labels = [data[i]["label"] for i in range(len(data))]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.transform(self.images[i]), self.labels[i]


def endless(loader: torch.utils.data.DataLoader) -> Iterator[Any]:
    while True:
        yield from loader


def recipe_encoder() -> Any:
    """The CPU recipes' encoder config (``ijepa-cpu``'s: ViT 192/6, 8 px patches at 64 px)."""
    return config("digits", "random", 0).method.eval_encoder()[0]


def timm_vit(seed: int) -> nn.Module:
    """The CPU recipes' encoder as timm builds it (average pooled, no class token), seeded."""
    import timm

    name, kwargs = recipe_encoder().timm_args()
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, **kwargs)


def as_jepakit(state: dict[str, Tensor]) -> Any:
    """A timm ViT's weights (fed ImageNet-normalised images) in jepakit's encoder (which normalises [0, 1]
    images itself with the same statistics): the same function, probed as jepakit's runs."""
    encoder = recipe_encoder().build()
    encoder.load_state_dict(state, strict=True)
    return encoder


def loader(data: Any, transform: Callable[[Any], Any], batch: int, seed: int, **kw: Any) -> Iterator[Any]:
    images = PilImages(data, transform)
    order = torch.Generator().manual_seed(seed)
    return endless(
        torch.utils.data.DataLoader(images, batch_size=batch, shuffle=True, drop_last=True, generator=order, **kw)
    )


def lightly_ijepa(
    data: Any, seed: int, steps: int, batch: int, snap: Callable[[int, nn.Module], None], knobs: Knobs
) -> None:
    """lightly's I-JEPA example's loop, on lightly's timm modules."""
    from lightly.data import IJEPAMaskCollator
    from lightly.models.modules.ijepa_timm import IJEPAPredictorTIMM
    from lightly.models.modules.masked_vision_transformer_timm import MaskedVisionTransformerTIMM
    from lightly.transforms.ijepa_transform import IJEPATransform

    from peers import lightly_ijepa_loss

    side, patch = data.side, 8
    encoder = MaskedVisionTransformerTIMM(vit=timm_vit(seed))
    target = copy.deepcopy(encoder)
    predictor = IJEPAPredictorTIMM(
        num_patches=(side // patch) ** 2, depth=3, mlp_dim=192, predictor_embed_dim=192, num_heads=3
    )
    collate = IJEPAMaskCollator(input_size=(side, side), patch_size=patch)
    batches = loader(data, IJEPATransform(input_size=side), batch, seed, collate_fn=collate)
    optimizer = torch.optim.AdamW([*encoder.parameters(), *predictor.parameters()], lr=knobs.lr or 1.5e-4)
    ema = (knobs.ema or 0.996, 1.0)
    for step in range(1, steps + 1):
        (images, _), masks_enc, masks_pred = next(batches)
        loss = lightly_ijepa_loss(encoder, target, predictor, images, masks_enc[0], torch.stack(masks_pred, 1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        m = ema[0] + step * (ema[1] - ema[0]) / steps
        with torch.no_grad():
            for q, k in zip(encoder.parameters(), target.parameters(), strict=True):
                k.mul_(m).add_((1.0 - m) * q.detach())
        snap(step, target.vit)


def lightly_random(
    data: Any, seed: int, steps: int, batch: int, snap: Callable[[int, nn.Module], None], knobs: Knobs
) -> None:
    """lightly's I-JEPA encoder at its initialisation (no step): lightly-ijepa's own floor."""
    from lightly.models.modules.masked_vision_transformer_timm import MaskedVisionTransformerTIMM

    snap(steps, MaskedVisionTransformerTIMM(vit=timm_vit(seed)).vit)


def lightly_simclr(
    data: Any, seed: int, steps: int, batch: int, snap: Callable[[int, nn.Module], None], knobs: Knobs
) -> None:
    """lightly's SimCLR example's loop, on the recipes' ViT."""
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms.simclr_transform import SimCLRTransform

    backbone = timm_vit(seed)
    head = SimCLRProjectionHead(backbone.embed_dim, backbone.embed_dim, 128)
    batches = loader(data, SimCLRTransform(input_size=data.side, gaussian_blur=0.0), batch, seed)
    criterion = NTXentLoss()
    optimizer = torch.optim.SGD([*backbone.parameters(), *head.parameters()], lr=knobs.lr or 0.06)
    for step in range(1, steps + 1):
        (x0, x1), _ = next(batches)
        loss = criterion(head(backbone(x0)), head(backbone(x1)))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        snap(step, backbone)


def spt(method: str) -> Callable[..., None]:
    """A stable-pretraining method, trained by ``spt_peer.py`` in its own environment (``SPT_PYTHON``);
    its snapshots come back as weights-only files, with the CPU minutes the child measured."""

    def train(data: Any, seed: int, steps: int, batch: int, snap: Callable[..., None], knobs: Knobs) -> None:
        python = os.environ.get("SPT_PYTHON")
        if not python:
            sys.exit("set SPT_PYTHON to the python of a virtual environment with stable-pretraining installed")
        with tempfile.TemporaryDirectory() as tmp:
            images = Path(tmp) / "images.pt"
            torch.save({"images": torch.stack([data[i]["image"] for i in range(len(data))])}, images)
            every = steps // CURVE
            spec = {"method": method, "timm": recipe_encoder().timm_args()}
            spec |= {"seed": seed, "steps": steps, "batch": batch, "side": data.side, "images": str(images)}
            spec |= {"lr": knobs.lr, "ema": knobs.ema}
            spec |= {"snapshots": [s for s in range(1, steps + 1) if s % every == 0 or s == steps], "out": tmp}
            (Path(tmp) / "spec.json").write_text(json.dumps(spec))
            subprocess.run([python, str(HERE / "spt_peer.py"), str(Path(tmp) / "spec.json")], check=True)
            for step, minutes in json.loads((Path(tmp) / "report.json").read_text())["snapshots"]:
                vit = timm_vit(seed)
                vit.load_state_dict(torch.load(Path(tmp) / f"step-{step}.pt", weights_only=True))
                snap(step, vit, minutes=minutes)

    return train


TRAINERS: dict[str, Callable[..., None]] = {
    "lightly-ijepa": lightly_ijepa,
    "lightly-random": lightly_random,
    "lightly-simclr": lightly_simclr,
    "spt-ijepa": spt("ijepa"),
    "spt-lejepa": spt("lejepa"),
}


def measure(
    dataset: str, peer: str, seed: int, results: Path = RESULTS, steps: int | None = None, knobs: Knobs = Knobs()
) -> dict[str, Any]:
    """Train ``peer`` on ``dataset``'s train split for the recipes' budget (or ``steps``; ``knobs``: tuned
    settings) and probe it as jepakit's runs."""
    cfg = config(dataset, "random", seed)
    steps, batch = steps or cfg.train.steps, cfg.train.batch_size
    data = cfg.data.build()
    torch.manual_seed(seed)
    clock = Clock()
    snapshots: list[tuple[int, float, Any]] = []
    every = steps // CURVE

    def snap(step: int, vit: nn.Module, minutes: float | None = None) -> None:
        if step % every and step != steps:
            return
        spent = clock.stop()
        snapshots.append((step, round(spent if minutes is None else minutes, 3), as_jepakit(vit.state_dict())))
        clock.start()

    wall = time.perf_counter()
    TRAINERS[peer](data, seed, steps, batch, snap, knobs)
    row: dict[str, Any] = {"set": dataset, "method": peer, "seed": seed, "recipe": "peer", "steps": steps}
    edits = knobs.overrides() + ([f"steps={steps}"] if steps != cfg.train.steps else [])
    if edits:
        row["overrides"] = edits
    row |= {"cpu_minutes": snapshots[-1][1], "wall_minutes": round((time.perf_counter() - wall) / 60, 3)}
    row["collapse_warning"] = None  # the peers' loops have no collapse monitor
    return probe_run(row, cfg.data, snapshots[-1][2], snapshots, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("set", choices=SETS)
    p_run.add_argument("peer", choices=PEERS)
    p_run.add_argument("seeds", nargs="*", type=int, default=[0, 1, 2])
    p_run.add_argument("--screen", action="store_true", help="record in the screens file (a tuning step)")
    p_run.add_argument("--steps", type=int, help="another number of steps than the recipes' (a tuning step)")
    p_run.add_argument("--lr", type=float, help="the peer's learning rate instead of its published one")
    p_run.add_argument("--ema", type=float, help="the I-JEPA peers' EMA start instead of 0.996")
    args = parser.parse_args()
    if args.ema is not None and args.peer not in ("lightly-ijepa", "spt-ijepa"):
        parser.error(f"--ema: {args.peer} has no EMA teacher; only lightly-ijepa and spt-ijepa take it")
    if not args.screen and (args.steps or args.lr or args.ema):
        parser.error("--steps, --lr and --ema tune a peer: record the run with --screen")
    for seed in args.seeds:
        measure(args.set, args.peer, seed, SCREENS if args.screen else RESULTS, args.steps, Knobs(args.lr, args.ema))


if __name__ == "__main__":
    main()
