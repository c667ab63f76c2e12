"""Probes on frozen features: how much of a label a representation makes easy to read.

- ``linear_probe``: a linear classifier on standardised pooled features, the logistic
  loss minimised over the whole training split by L-BFGS for each L2 strength of a
  grid (warm-started from the one before), the strength chosen on a validation split,
  accuracy reported on test. Convex, so the solve reaches the optimum an SGD run
  approaches, in a fraction of its time, and it needs no learning rate or seed.
- ``knn_probe``: cosine k-nearest neighbours (k = 20) with votes weighted by
  exp(similarity / 0.07) (Wu et al. 2018; DINO's protocol). No training.
- ``attentive_probe``: V-JEPA's attentive classifier: one learnable query
  cross-attends to all patch tokens (one block: attention + MLP, pre-norm), then a
  linear head; AdamW over mini-batches, learning rate and weight decay chosen on val.
- ``dense_probe``: a linear classifier on each frozen patch token (the analogue of the
  papers' linear segmentation on ADE20k/VOC), fitted to each patch's class fractions
  by L-BFGS as the linear probe is, evaluated at pixel resolution (logits upsampled
  bilinearly) as mean IoU.

Inputs of the linear and dense probes are standardised with the training split's
per-feature mean and std, so one learning-rate grid fits every encoder.
Multi-label tasks (several shapes per image) use one sigmoid per class; their accuracy
is the mean per-label accuracy, and ``exact_match`` the fraction of images whose whole
set is right.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..config import ConfigError

__all__ = [
    "AttentiveHead",
    "attentive_probe",
    "dense_probe",
    "knn_probe",
    "linear_probe",
    "mean_iou",
    "patch_class_fractions",
]

Split = tuple[Tensor, Tensor]


# ----------------------------------------------------------------------------- metrics


def _accuracy(logits: Tensor, y: Tensor, multilabel: bool) -> float:
    """Top-1 accuracy; for multi-label, the mean over labels of the per-label accuracy."""
    if multilabel:
        return float(((logits > 0).float() == y).float().mean())
    return float((logits.argmax(1) == y).float().mean())


def _exact_match(logits: Tensor, y: Tensor) -> float:
    """Multi-label: the fraction of rows whose whole label set is right."""
    return float(((logits > 0).float() == y).all(dim=1).float().mean())


def _num_classes(y: Tensor, multilabel: bool, *others: Tensor) -> int:
    if multilabel:
        return y.shape[1]
    return int(max(int(t.max()) for t in (y, *others))) + 1


def mean_iou(pred: Tensor, target: Tensor, num_classes: int) -> tuple[float, list[float]]:
    """Mean over classes of TP / (TP + FP + FN), counted over all pixels; classes absent from
    both prediction and target are left out (their IoU is reported as NaN)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    idx = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    conf = torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes).double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, math.nan))
    present = union > 0
    return float(iou[present].mean()) if present.any() else math.nan, iou.tolist()


# ----------------------------------------------------------------------------- training a small head


def _fit(
    head: nn.Module,
    inputs: Tensor,
    loss_of: Callable[[Tensor, Tensor], Tensor],
    target: Tensor,
    *,
    lr: float,
    weight_decay: float,
    epochs: int,
    batch_size: int,
    seed: int,
) -> nn.Module:
    """AdamW with a cosine schedule over ``epochs`` of shuffled mini-batches."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    n = inputs.shape[0]
    steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    head.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch_size):
            b = order[start : start + batch_size]
            loss = loss_of(head(inputs[b].float()), target[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return head.eval()


@torch.no_grad()
def _apply(head: nn.Module, inputs: Tensor, batch_size: int = 512) -> Tensor:
    return torch.cat([head(inputs[i : i + batch_size].float()) for i in range(0, inputs.shape[0], batch_size)])


def _sweep(
    make_head: Callable[[], nn.Module],
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    loss_of: Callable[[Tensor, Tensor], Tensor],
    score: Callable[[Tensor, Tensor], float],
    lrs: Sequence[float],
    weight_decays: Sequence[float],
    epochs: int,
    batch_size: int,
    seed: int,
) -> dict[str, Any]:
    """Fit one head per (lr, weight decay), keep the best on ``val``; its outputs on ``test``."""
    best: dict[str, Any] | None = None
    for lr, wd in itertools.product(lrs, weight_decays):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head = _fit(
                make_head(),
                train[0],
                loss_of,
                train[1],
                lr=lr,
                weight_decay=wd,
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
            )
        val_score = score(_apply(head, val[0]), val[1])
        if best is None or val_score > best["val"]:
            best = {"val": val_score, "lr": lr, "weight_decay": wd, "head": head}
    assert best is not None
    return {
        "val": best["val"],
        "lr": best["lr"],
        "weight_decay": best["weight_decay"],
        "test_out": _apply(best["head"], test[0]),
    }


def _lbfgs(
    head: nn.Linear, x: Tensor, y: Tensor, loss_of: Callable[[Tensor, Tensor], Tensor], l2: float, max_iter: int
) -> None:
    """Minimise ``loss_of(head(x), y) + l2 / 2 * |W|^2`` in place: full-batch L-BFGS, strong Wolfe."""
    opt = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def objective() -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss = loss_of(head(x), y) + 0.5 * l2 * head.weight.square().sum()
        loss.backward()
        return loss

    opt.step(objective)


def _l2_sweep(
    make_head: Callable[[], nn.Linear],
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    loss_of: Callable[[Tensor, Tensor], Tensor],
    score: Callable[[Tensor, Tensor], float],
    l2s: Sequence[float],
    max_iter: int,
) -> dict[str, Any]:
    """Minimise ``loss_of(head(x), y) + l2 / 2 * |W|^2`` over the whole training split for each
    ``l2`` (strongest first, each solve warm-started from the last: a regularisation path), by
    L-BFGS with a strong-Wolfe line search; keep the best on ``val``; its outputs on ``test``.
    The head starts at zero, so the result depends on no seed."""
    head = make_head()
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    x = train[0].float()
    best: dict[str, Any] | None = None
    for l2 in sorted(l2s, reverse=True):
        _lbfgs(head, x, train[1], loss_of, l2, max_iter)
        val_score = score(_apply(head, val[0]), val[1])
        if best is None or val_score > best["val"]:
            best = {"val": val_score, "l2": l2, "state": {k: v.clone() for k, v in head.state_dict().items()}}
    assert best is not None
    head.load_state_dict(best["state"])
    return {"val": best["val"], "l2": best["l2"], "test_out": _apply(head, test[0])}


def _check_splits(name: str, *splits: Split) -> None:
    for x, y in splits:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{name}: {x.shape[0]} feature rows but {y.shape[0]} labels")
        if x.shape[0] == 0:
            raise ValueError(f"{name}: an empty split")


def _standardise(train: Split, val: Split, test: Split) -> tuple[Split, Split, Split]:
    """Features [..., D] minus the training split's per-feature mean, over its std (1 for a single row)."""
    flat = train[0].reshape(-1, train[0].shape[-1]).float()
    spread = flat.std(0) if len(flat) > 1 else torch.ones_like(flat[0])
    mean, std = flat.mean(0), spread.clamp_min(1e-6)

    def scaled(split: Split) -> Split:
        return (split[0].float() - mean) / std, split[1]

    return scaled(train), scaled(val), scaled(test)


def _unseen_classes(name: str, train_y: Tensor, *others: Tensor) -> None:
    """A class in val/test that train never shows cannot be learnt: say which."""
    seen = set(train_y.unique().tolist())
    for y in others:
        extra = sorted(set(y.unique().tolist()) - seen)
        if extra:
            raise ConfigError(
                f"{name}: classes {extra} occur in val/test but never in train (train has {sorted(seen)}): give the "
                "classifiers more images (--train) or the probes more labelled data"
            )


# ----------------------------------------------------------------------------- the probes


def _classifier_probe(
    name: str,
    make_head: Callable[[int, int], nn.Module],
    train: Split,
    val: Split,
    test: Split,
    multilabel: bool,
    fit: Callable[..., dict[str, Any]],
    standardise: bool = False,
    **sweep: Any,
) -> dict[str, Any]:
    """Check the splits, ``fit`` (``_sweep`` or ``_l2_sweep``) heads ``make_head(width, classes)``,
    report test accuracy and the hyper-parameters chosen."""
    _check_splits(name, train, val, test)
    if standardise:
        train, val, test = _standardise(train, val, test)
    if not multilabel:
        _unseen_classes(name, train[1], val[1], test[1])
    classes = _num_classes(train[1], multilabel, val[1], test[1])
    loss_of = F.binary_cross_entropy_with_logits if multilabel else F.cross_entropy
    out = fit(
        lambda: make_head(train[0].shape[-1], classes),
        train,
        val,
        test,
        loss_of,
        lambda logits, y: _accuracy(logits, y, multilabel),
        **sweep,
    )
    chosen = {k: v for k, v in out.items() if k not in ("val", "test_out")}
    result = {"accuracy": _accuracy(out["test_out"], test[1], multilabel), "val_accuracy": out["val"], **chosen}
    if multilabel:
        result["exact_match"] = _exact_match(out["test_out"], test[1])
    return result


def linear_probe(
    train: Split,
    val: Split,
    test: Split,
    *,
    multilabel: bool = False,
    l2s: Sequence[float] = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 1e-5),
    max_iter: int = 100,
) -> dict[str, Any]:
    """Test accuracy of a linear classifier on features [N, D]; the L2 strength (``l2``) is
    chosen on ``val``. Each strength is solved by at most ``max_iter`` L-BFGS iterations."""
    return _classifier_probe(
        "linear probe", nn.Linear, train, val, test, multilabel, _l2_sweep, standardise=True, l2s=l2s, max_iter=max_iter
    )


@torch.no_grad()
def knn_probe(
    train: Split,
    test: Split,
    *,
    k: int = 20,
    temperature: float = 0.07,
    multilabel: bool = False,
    batch_size: int = 1024,
) -> dict[str, Any]:
    """Test accuracy of weighted cosine k-NN: each of the ``k`` nearest training rows votes for
    its label with weight exp(cos / temperature)."""
    _check_splits("kNN probe", train, test)
    if not 1 <= k <= train[0].shape[0]:
        raise ValueError(f"kNN probe: k={k} must lie in [1, {train[0].shape[0]} training rows]")
    bank = F.normalize(train[0].float(), dim=1)
    y = train[1]
    votes_of = y.float() if multilabel else F.one_hot(y, _num_classes(y, False, test[1])).float()
    outs = []
    for start in range(0, test[0].shape[0], batch_size):
        q = F.normalize(test[0][start : start + batch_size].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        w = (sim / temperature).exp()
        outs.append(torch.einsum("qk,qkc->qc", w, votes_of[idx]) / w.sum(1, keepdim=True))
    scores = torch.cat(outs)
    if multilabel:
        return {
            "accuracy": _accuracy(scores - 0.5, test[1], True),
            "exact_match": _exact_match(scores - 0.5, test[1]),
            "k": k,
        }
    return {"accuracy": _accuracy(scores, test[1], False), "k": k}


class AttentiveHead(nn.Module):
    """One learnable query cross-attends to the tokens (pre-norm attention + MLP, residual on the
    query), then a linear classifier: V-JEPA's attentive probe with one block. Invariant to the
    order of the tokens.

    The attention is ``nn.MultiheadAttention``'s (its parameters and initialisation), computed
    in another order: with one query, head h's score of token x is q_h . (W_k,h x + b_k,h),
    which is x . (W_k,h^T q_h) plus a constant the softmax drops, and its output is W_v,h
    applied to the attention-weighted mean of the tokens, plus b_v,h. So the keys and values
    of the T tokens are never formed: O(T D H) per image instead of O(T D^2), the same values.
    """

    def __init__(self, dim: int, num_classes: int, num_heads: int = 4, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attentive probe: width {dim} is not divisible by num_heads={num_heads}")
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.head = nn.Linear(dim, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens [B, T, D] -> logits [B, classes]."""
        kv = self.norm_kv(tokens)
        heads, dim = self.attn.num_heads, tokens.shape[-1]
        w_q, w_k, w_v = self.attn.in_proj_weight.chunk(3)
        b_q, _, b_v = self.attn.in_proj_bias.chunk(3)
        q = rearrange(F.linear(self.query[0, 0], w_q, b_q), "(h c) -> h c", h=heads)
        keys = torch.einsum("hc,hcd->hd", q, rearrange(w_k, "(h c) d -> h c d", h=heads)) / math.sqrt(dim // heads)
        weights = torch.einsum("btd,hd->bht", kv, keys).softmax(-1)
        pooled = torch.einsum("bht,btd->bhd", weights, kv)  # each head's weighted mean of the tokens
        values = torch.einsum("bhd,hcd->bhc", pooled, rearrange(w_v, "(h c) d -> h c d", h=heads))
        x = self.query[:, 0] + self.attn.out_proj(rearrange(values + b_v.view(heads, -1), "b h c -> b (h c)"))
        x = x + self.mlp(self.norm_mlp(x))
        return self.head(x)


def attentive_probe(
    train: Split,
    val: Split,
    test: Split,
    *,
    multilabel: bool = False,
    num_heads: int = 4,
    lrs: Sequence[float] = (3e-3, 1e-2),
    weight_decays: Sequence[float] = (1e-2,),
    epochs: int = 20,
    batch_size: int = 128,
    seed: int = 0,
) -> dict[str, Any]:
    """Test accuracy of an attentive classifier on patch tokens [N, T, D]."""
    return _classifier_probe(
        "attentive probe",
        lambda d, c: AttentiveHead(d, c, num_heads),
        train,
        val,
        test,
        multilabel,
        _sweep,
        lrs=lrs,
        weight_decays=weight_decays,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
    )


def patch_class_fractions(segmentation: Tensor, grid: tuple[int, int], num_classes: int) -> Tensor:
    """[N, H, W] pixel classes -> [N, h*w, classes]: the share of each class in each patch."""
    _, height, width = segmentation.shape
    h, w = grid
    if height % h or width % w:
        raise ValueError(f"segmentation {height}x{width} does not divide into the {h}x{w} patch grid")
    onehot = F.one_hot(segmentation.long(), num_classes).permute(0, 3, 1, 2).float()
    return F.adaptive_avg_pool2d(onehot, grid).flatten(2).transpose(1, 2)


def _pixel_logits(patch_logits: Tensor, grid: tuple[int, ...], size: tuple[int, ...]) -> Tensor:
    n, _, c = patch_logits.shape
    maps = patch_logits.transpose(1, 2).reshape(n, c, *grid)
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def dense_probe(
    train: Split,
    val: Split,
    test: Split,
    *,
    grid: tuple[int, int],
    num_classes: int,
    l2s: Sequence[float] = (1e-2, 1e-3, 1e-4, 1e-5),
    max_iter: int = 100,
) -> dict[str, Any]:
    """Mean IoU at pixel resolution of a linear classifier on each patch token, the L2
    strength chosen on ``val`` by mIoU.

    Splits are (patch tokens [N, h*w, D], pixel segmentation [N, H, W]). Returns ``miou``,
    per-class ``iou`` and ``prediction`` (test pixel classes, uint8 [N, H, W]).
    """
    _check_splits("dense probe", train, val, test)
    tokens = train[0].shape[1]
    if tokens != grid[0] * grid[1]:
        raise ValueError(f"dense probe: {tokens} tokens per image do not form the {grid[0]}x{grid[1]} grid")
    size = tuple(train[1].shape[-2:])
    fractions = patch_class_fractions(train[1], grid, num_classes)
    train, val, test = _standardise(train, val, test)

    def loss_of(logits: Tensor, frac: Tensor) -> Tensor:  # soft cross-entropy on class shares
        return -(frac * logits.log_softmax(-1)).sum(-1).mean()

    def pixels(out: Tensor) -> Tensor:
        return torch.cat([_pixel_logits(out[i : i + 256], grid, size).argmax(1) for i in range(0, out.shape[0], 256)])

    def score(out: Tensor, seg: Tensor) -> float:
        return mean_iou(pixels(out), seg, num_classes)[0]

    out = _l2_sweep(
        lambda: nn.Linear(train[0].shape[-1], num_classes),
        (train[0], fractions),
        val,
        test,
        loss_of,
        score,
        l2s,
        max_iter,
    )
    prediction = pixels(out["test_out"])
    miou, iou = mean_iou(prediction, test[1], num_classes)
    return {
        "miou": miou,
        "iou": iou,
        "val_miou": out["val"],
        "l2": out["l2"],
        "prediction": prediction.to(torch.uint8),
    }
