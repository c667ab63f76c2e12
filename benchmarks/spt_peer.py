"""stable-pretraining's I-JEPA or LeJEPA on a packaged set, run in stable-pretraining's own environment.

Called by ``small_data_peers.py`` (never imports jepakit): ``python spt_peer.py SPEC.json`` where the spec
names the method, the timm ViT (name and keyword arguments: the CPU recipes' encoder), the seed, the steps,
the batch, the steps to snapshot at, a tuned ``lr`` and I-JEPA ``ema`` start (null: the defaults), the
images file ([N, 3, S, S] in [0, 1], weights-only) and the output folder. The method is
stable-pretraining's module (``stable_pretraining.methods.IJEPA`` / ``LeJEPA``) with its defaults, given
the recipes' ViT; the optimiser is the one its docstring trains it with (AdamW at
1.5e-4 for I-JEPA, 1e-3 for LeJEPA); I-JEPA's teacher follows ``TeacherStudentWrapper``'s cosine EMA
(0.996 -> 1), updated every step as its ``TeacherStudentCallback`` does. Writes ``step-N.pt`` (the
evaluated ViT's weights: I-JEPA's teacher, as I-JEPA evaluates; LeJEPA's backbone) and ``report.json``
(CPU minutes of training at each snapshot).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import timm
import torch
from torchvision import transforms as T

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def views(spec: dict[str, Any]) -> tuple[list[T.Compose], list[T.Compose]]:
    """(global, local) view transforms of [0, 1] image tensors: RandomResizedCrop, flip, ImageNet
    normalisation. I-JEPA: one global view (area 0.3-1); LeJEPA: the recipes' 2 global and 6 local."""
    side = spec["side"]

    def crop(size: int, scale: tuple[float, float]) -> T.Compose:
        flip = T.RandomHorizontalFlip()
        return T.Compose([T.RandomResizedCrop(size, scale=scale, antialias=True), flip, T.Normalize(MEAN, STD)])

    if spec["method"] == "ijepa":
        return [crop(side, (0.3, 1.0))], []
    return [crop(side, (0.3, 1.0))] * 2, [crop(side // 2, (0.05, 0.3))] * 6


def build(spec: dict[str, Any]) -> tuple[Any, torch.nn.Module, torch.optim.Optimizer]:
    """(stable-pretraining's method, the ViT whose weights are evaluated, the optimiser)."""
    from stable_pretraining.methods import IJEPA, LeJEPA

    name, kwargs = spec["timm"]
    torch.manual_seed(spec["seed"])
    if spec["method"] == "ijepa":
        ema = {"ema_decay_start": spec["ema"]} if spec.get("ema") else {}
        model = IJEPA(timm.create_model(name, **kwargs), predictor_embed_dim=192, predictor_depth=3, **ema)
        return model, model.encoder.teacher.vit, torch.optim.AdamW(model.parameters(), lr=spec.get("lr") or 1.5e-4)
    model = LeJEPA(name)  # its projector and SIGReg, on the recipes' ViT (its default drop path, 0.1)
    model.backbone = timm.create_model(name, **kwargs, dynamic_img_size=True, drop_path_rate=0.1)
    model.projector[0] = torch.nn.Linear(model.backbone.embed_dim, 512)  # its projector reads the ViT's width
    return model, model.backbone, torch.optim.AdamW(model.parameters(), lr=spec.get("lr") or 1e-3)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = Path(spec["out"])
    images = torch.load(spec["images"], weights_only=True)["images"]
    model, evaluated, optimizer = build(spec)
    model.train()
    wide, small = views(spec)
    order = torch.Generator().manual_seed(spec["seed"])
    steps, batch, spent, report = spec["steps"], spec["batch"], 0.0, []
    perm, at = torch.randperm(len(images), generator=order), 0
    since = time.process_time()
    for i in range(1, steps + 1):
        if at + batch > len(images):  # a new epoch (drop_last)
            perm, at = torch.randperm(len(images), generator=order), 0
        rows = perm[at : at + batch]
        at += batch
        # per-image views: torchvision's v1 transforms draw one crop per call, so each image is its own call
        chunk = images[rows]
        if spec["method"] == "ijepa":
            loss = model(torch.stack([wide[0](x) for x in chunk])).loss
        else:
            glob = [torch.stack([v(x) for x in chunk]) for v in wide]
            loc = [torch.stack([v(x) for x in chunk]) for v in small]
            loss = model(global_views=glob, local_views=loc).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if spec["method"] == "ijepa":
            model.encoder.update_teacher()
            model.encoder.update_ema_coefficient(i, steps)
        if i in spec["snapshots"]:
            spent += time.process_time() - since
            torch.save(evaluated.state_dict(), out / f"step-{i}.pt")
            report.append([i, round(spent / 60, 3)])
            since = time.process_time()
    (out / "report.json").write_text(json.dumps({"snapshots": report}))


if __name__ == "__main__":
    main()
