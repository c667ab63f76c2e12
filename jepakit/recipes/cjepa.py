"""C-JEPA recipes: I-JEPA on two augmented views of each image plus VICReg's variance, covariance and
invariance terms.

Reference: Mo & Tong, "Connecting Joint-Embedding Predictive Architecture with Contrastive
Self-supervised Learning", NeurIPS 2024, and ``docs/methods.md``. Everything else is the I-JEPA
recipe of the same size; the terms read the context encoder's tokens averaged over each view's
context patches (``embedding_loss=vicreg``): variance and covariance within a view, invariance
between the two views of an image (``views=2``).
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
        "VICReg's variance, covariance and invariance terms on the mean patch representations of two augmented "
        "views of each image",
        "the three terms (weights 1, 0.04 and 1: VICReg's 25 / 1 / 25 against the prediction loss) on the context "
        "encoder's tokens averaged over each view's context patches",
        "where the terms attach and their weights are our reading of the paper",
        kind="mechanism",
    ),
)
#: The CPU preset's one view.
ONE_VIEW = Departure(
    "views",
    2,
    1,
    "one crop per image: a second view doubles the step's cost on a laptop CPU, and its invariance term is not "
    "measured at this size yet (the small-data rows run one view)",
)
FACTS = {**IJEPA_FACTS, "embedding_loss": "vicreg", "views": 2}


def cjepa_config(cfg: Experiment, views: int = 2) -> Experiment:
    """The I-JEPA experiment ``cfg`` on ``views`` crops of each image with VICReg's terms added."""
    return apply_overrides(cfg, {"embedding_loss": "vicreg", "views": views})


@register_recipe(
    "c-jepa",
    help="C-JEPA, ViT-B/16 at 224 px: I-JEPA on two views plus VICReg's variance, covariance and invariance",
    departures=CONTEXT_DEPARTURES + VICREG_DEPARTURES,
    facts={**ijepa_facts("base"), **FACTS},
)
def c_jepa() -> Experiment:
    return cjepa_config(ijepa_config("base"))


@register_recipe(
    "c-jepa-cpu",
    help="C-JEPA on the embedded scenes at 64 px, ViT 192/6: minutes on a laptop CPU",
    departures=CONTEXT_DEPARTURES + CPU_DEPARTURES + VICREG_DEPARTURES + (ONE_VIEW,),
    facts=FACTS,
)
def c_jepa_cpu() -> Experiment:
    return cjepa_config(cpu_config(ijepa_config("tiny")), views=1)
