"""What went wrong in a run that collapsed or ends at the random-init floor, and what to try.

A collapse is read from the pooled embeddings' *centred* effective rank (``eval.monitors.centred_rank``):
how many directions the images spread over. RankMe of the raw embeddings does not show it on small
data: a random-init ViT's pooled tokens share one large mean, so RankMe starts near 2 and barely
moves while the probes fall (I-JEPA on digits: kNN 0.65 -> 0.38, RankMe 1.8 -> 1.5), whereas the
centred rank falls to about half of the run's first reading (7.4 -> 4.0 on the test images).
``CollapseWatch`` compares each of the trainer's readings with the run's first one;
``probe_diagnosis`` reads a probe against its floor. Both end with the same remedies: those every
method shares, then the method's own (``MethodConfig.remedies``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from .eval import monitors

__all__ = ["CollapseWatch", "probe_diagnosis", "remedies"]


def remedies(method: Any, train: Any) -> list[str]:
    """The overrides to try, as ``key=value: why``: a shorter schedule and a lower learning rate (any method),
    then ``method``'s own (its config's ``remedies()``); ``train``: the run's ``TrainConfig``."""
    shorter = max(1, (train.steps or 0) // 3)
    found = [
        f"train.steps={shorter}: on small data the features can peak early and fall after (ijepa-cpu on digits: "
        "kNN 0.70 at 100 steps against 0.38 at 300); probe the run's earlier checkpoints to see where they peaked"
        if train.steps
        else "a shorter run: probe the run's earlier checkpoints to see where the features peaked",
        f"train.lr={train.lr / 4:g}: a lower learning rate",
    ]
    return found + list(method.remedies())


class CollapseWatch:
    """The trainer's collapse monitors: each reading's embedding std, effective rank (RankMe) and centred rank,
    and a warning when the centred rank falls below ``drop`` times the run's first reading (once per fall).

    ``start``: the first reading of a run being resumed (from its checkpoint); None: ``begin`` takes it.
    """

    #: fewest embeddings a reading is trusted on (a batch of n has centred rank at most n - 1)
    MIN_BATCH = 8

    def __init__(self, drop: float, advice: Sequence[str], start: float | None = None) -> None:
        self.drop, self.advice, self.start = drop, list(advice), start
        self.begun = start is not None
        self.collapsed = False

    def begin(self, pooled: Tensor) -> None:
        """The run's first reading, before any update, on the pooled embeddings [N, D] of its first batch
        (too small a batch to trust leaves the watch without a reference: it never warns)."""
        self.begun = True
        self.start = monitors.centred_rank(pooled) if len(pooled) >= self.MIN_BATCH else None

    def read(self, pooled: Tensor) -> dict[str, float]:
        """The monitors of one batch's pooled embeddings [N, D]."""
        return monitors.collapse_monitors(pooled)

    def warning(self, step: int, record: Mapping[str, float], batch: int) -> str | None:
        """The warning for a reading that starts a fall below ``drop`` x start, else None."""
        if self.start is None or batch < self.MIN_BATCH or not self.drop:
            return None
        collapsing = record["centred_rank"] < self.drop * self.start
        fell, self.collapsed = collapsing and not self.collapsed, collapsing
        if not fell:
            return None
        return (
            f"warning: collapse at step {step}: the pooled embeddings' centred rank is {record['centred_rank']:.2f}, "
            f"below {self.drop:g} x its first reading {self.start:.2f} (train.collapse_drop): the features are "
            "losing directions. Try " + "; ".join(self.advice)
        )


def probe_diagnosis(
    results: Mapping[str, Any],
    floor: Mapping[str, Any] | None,
    advice: Sequence[str],
    warned: Sequence[int] = (),
    drop: float = 0.75,
) -> list[str]:
    """Lines for ``jepakit probe`` when the features have collapsed (centred rank below ``drop`` (the run's
    ``train.collapse_drop``) x the random-init floor's) or no linear or kNN score beats the ``floor`` (``random_floor``): how the scores stand, the likely
    cause, the collapse warnings of the run's log (``warned``: their steps) and the ``advice``. [] otherwise,
    and without a floor."""
    from .eval.floor import beats

    if floor is None:
        return []
    mean, std = floor["mean"], floor["std"]
    scores = {f"{p}/{t}": s for p in ("linear", "knn") for t, s in results.get(p, {}).items()}
    judged = [k for k in scores if k in mean and k in std]
    beaten = [k for k in judged if beats(scores[k], mean[k], std[k])]
    now, then = results["monitors"]["centred_rank"], mean.get("monitors/centred_rank")
    collapsed = then is not None and now < drop * then
    if not collapsed and (beaten or not judged):
        return []
    lines = [f"diagnosis: {len(beaten)} of {len(judged)} linear and kNN scores beat the random-init floor."]
    if collapsed:
        lines.append(
            f"cause: a collapse; the test features' centred rank is {now:.2f} against {then:.2f} at random init "
            "(they spread over fewer directions than an untrained encoder's)."
        )
    elif then is not None:
        lines.append(
            f"cause: not a collapse (centred rank {now:.2f}, random init {then:.2f}): the features kept their "
            "spread but pretraining taught nothing more the probes read."
        )
    if warned:
        lines.append(f"the training log warned of a collapse at step {', '.join(map(str, warned))}.")
    lines.append("try: " + "; ".join(advice))
    return lines
