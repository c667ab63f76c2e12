"""What only a joint image–text embedding can do: retrieval and zero-shot classification.

``retrieval`` ranks every held-out caption for each image (image -> text) and every image
for each caption (text -> image) by cosine similarity. Captions are a set per image (as
COCO's five); identical strings cannot be told apart by any model, so a retrieved caption
is a hit when its text is one of the image's captions, and a retrieved image is a hit when
the query caption is one of its captions.

``zero_shot`` classifies the scenes' labels from caption templates written in the scenes'
own caption style, with no training: object count from "there are three objects", and the
shapes present by prompt ensembling over colours ("a red circle", "a blue circle", ...)
as CLIP ensembles its templates, scored by the mean per-shape ROC AUC (a multi-label task
has no single argmax).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from rich.table import Table
from torch import Tensor

__all__ = ["embed", "image_text", "image_text_table", "recall_at", "retrieval", "roc_auc", "zero_shot"]


def recall_at(scores: Tensor, hits: Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """scores, hits [Q, N] (float, bool): the share of queries with a hit among their top k, per k."""
    order = scores.argsort(dim=1, descending=True)
    ranked = hits.gather(1, order)
    return {f"R@{k}": float(ranked[:, :k].any(1).float().mean()) for k in ks}


def roc_auc(scores: Tensor, positive: Tensor) -> float:
    """Area under the ROC curve of ``scores`` [N] for the bool labels ``positive`` [N] (ties count half):
    the probability that a random positive scores above a random negative."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        raise ValueError(f"ROC AUC needs positives and negatives; got {len(pos)} and {len(neg)}")
    above = (pos[:, None] > neg[None, :]).float() + 0.5 * (pos[:, None] == neg[None, :]).float()
    return float(above.mean())


@torch.no_grad()
def embed(encode: Callable[[Any], Tensor], items: Sequence[Any] | Tensor, batch_size: int = 128) -> Tensor:
    """``encode`` (a method's ``encode_image`` or ``encode_text``) over ``items`` in batches -> float [N, E] on the CPU."""
    return torch.cat([encode(items[i : i + batch_size]).float().cpu() for i in range(0, len(items), batch_size)])


def retrieval(method: Any, image: Tensor, captions: Sequence[Sequence[str]], batch_size: int = 128) -> dict[str, Any]:
    """Image <-> text recall@1/@5 of ``method`` (its ``encode_text``) for images embedded as ``image``
    [N, E] (``embed(method.encode_image, images)``) with their ``captions`` (a list per image; empty
    captions are left out)."""
    texts = sorted({c for caps in captions for c in caps if c.strip()})
    if not texts:
        raise ValueError("retrieval needs captions; these images have none")
    index = {t: j for j, t in enumerate(texts)}
    truth = torch.zeros(len(image), len(texts), dtype=torch.bool)
    for i, caps in enumerate(captions):
        truth[i, [index[c] for c in caps if c.strip()]] = True
    similarity = image @ embed(method.encode_text, texts, batch_size).T
    return {
        "image_to_text": recall_at(similarity, truth),
        "text_to_image": recall_at(similarity.T, truth.T),
        "images": len(image),
        "distinct_captions": len(texts),
    }


#: The scenes' caption style for a count (as ``_captions`` writes it), 1..4 objects.
COUNT_TEMPLATES = {
    1: "there is one object",
    2: "there are two objects",
    3: "there are three objects",
    4: "there are four objects",
}


def zero_shot(method: Any, image: Tensor, labels: Sequence[dict[str, Any]], batch_size: int = 128) -> dict[str, float]:
    """Zero-shot count accuracy and mean per-shape ROC AUC on the scenes for images embedded as ``image``
    [N, E] (``labels``: their dicts)."""
    from ..data.scenes import COLOURS, SHAPES

    counts = sorted(COUNT_TEMPLATES)
    prompts = F.normalize(embed(method.encode_text, [COUNT_TEMPLATES[c] for c in counts], batch_size), dim=-1)
    guess = torch.tensor(counts)[(image @ prompts.T).argmax(1)]
    truth = torch.tensor([lab["count"] for lab in labels])
    out = {"count": float((guess == truth).float().mean())}
    aucs = []
    for shape in SHAPES:
        prompt = F.normalize(embed(method.encode_text, [f"a {c} {shape}" for c in COLOURS], batch_size).mean(0), dim=-1)
        present = torch.tensor([shape in lab["shapes"] for lab in labels])
        aucs.append(roc_auc(image @ prompt, present))
    out["shapes_auc"] = sum(aucs) / len(aucs)
    return out


def image_text(method: Any, data: Any, indices: Sequence[int], batch_size: int = 128) -> dict[str, Any]:
    """Retrieval on ``data[i]`` for ``i`` in ``indices`` (held-out samples), and zero-shot count and
    shapes when the samples carry the scenes' labels."""
    samples = [data[int(i)] for i in indices]
    samples = [s for s in samples if s is not None]
    image = embed(method.encode_image, torch.stack([s["image"] for s in samples]), batch_size)  # once, for both
    out: dict[str, Any] = {
        "retrieval": retrieval(method, image, [list(s.get("captions", [])) for s in samples], batch_size)
    }
    labels = [s.get("labels") for s in samples]
    if all(isinstance(lab, dict) and {"count", "shapes"} <= set(lab) for lab in labels):
        out["zero_shot"] = zero_shot(method, image, labels, batch_size)
    return out


def image_text_table(results: dict[str, Any]) -> Table:
    """``image_text``'s numbers as a table (what ``jepakit probe`` prints for a contrastive run)."""
    r = results["retrieval"]
    table = Table(title=f"image-text ({r['images']} test images, {r['distinct_captions']} distinct captions)")
    for column in ("task", "score"):
        table.add_column(column, justify="right" if column == "score" else "left")
    for direction in ("image_to_text", "text_to_image"):
        for k, v in r[direction].items():
            table.add_row(f"{direction.replace('_', ' ')} {k}", f"{v:.4f}")
    for task, v in results.get("zero_shot", {}).items():
        table.add_row(f"zero-shot {task.replace('_', ' ')}", f"{v:.4f}")
    return table
