"""C-JEPA recipes: I-JEPA plus VICReg's variance and covariance terms against collapse.

Reference: Mo & Tong, "Connecting Joint-Embedding Predictive Architecture with Contrastive
Self-supervised Learning", NeurIPS 2024, and ``docs/methods.md``. Everything else is the I-JEPA
recipe of the same size; the terms read the context encoder's tokens averaged over each image's
context patches (``embedding_loss=vicreg``).
"""

from __future__ import annotations

from ..config import apply_overrides
from ..departures import Departure
from ..experiment import Experiment
from ..registry import register_recipe
from .ijepa import CONTEXT_DEPARTURES, CPU_DEPARTURES, IJEPA_FACTS, cpu_config, ijepa_config, ijepa_facts

__all__ = ["VICREG_DEPARTURES", "cjepa_config"]

#: Where the C-JEPA recipes' regulariser is ours rather than the paper's.
VICREG_DEPARTURES = (
    Departure(
        "embedding_loss",
        "VICReg's variance and covariance terms, and the invariance of the mean patch representation across two "
        "augmented views of each image",
        "the variance and covariance terms (weights 1 and 0.04) on the context encoder's tokens averaged over the "
        "context patches of one view",
        "one view per image so far: the second view and its invariance term are not built yet (issue 34); where "
        "the terms attach and their weights are our reading",
        kind="mechanism",
    ),
)
FACTS = {**IJEPA_FACTS, "embedding_loss": "vicreg"}


def cjepa_config(cfg: Experiment) -> Experiment:
    """The I-JEPA experiment ``cfg`` with VICReg's variance and covariance terms added."""
    return apply_overrides(cfg, {"embedding_loss": "vicreg"})


@register_recipe(
    "c-jepa",
    help="C-JEPA, ViT-B/16 at 224 px: I-JEPA plus VICReg's variance and covariance terms",
    departures=CONTEXT_DEPARTURES + VICREG_DEPARTURES,
    facts={**ijepa_facts("base"), **FACTS},
)
def c_jepa() -> Experiment:
    return cjepa_config(ijepa_config("base"))


@register_recipe(
    "c-jepa-cpu",
    help="C-JEPA on the embedded scenes at 64 px, ViT 192/6: minutes on a laptop CPU",
    departures=CONTEXT_DEPARTURES + CPU_DEPARTURES + VICREG_DEPARTURES,
    facts=FACTS,
)
def c_jepa_cpu() -> Experiment:
    return cjepa_config(cpu_config(ijepa_config("tiny")))
