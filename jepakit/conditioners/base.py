"""The conditioner contract: how text (or anything else) acts on the predictor.

The predictor knows nothing of conditioners. It accepts an optional
:class:`PredictorHook`, which it calls once on its input sequence and once per layer
(the hook runs the layer, so it may act before, inside or after it). A conditioner
turns a batch of text into such a hook with :meth:`Conditioner.bind`, and reports the
loss terms it added (regularisers) with :meth:`Conditioner.losses` and detached
diagnostics with :meth:`Conditioner.metrics`.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor, nn

__all__ = ["Conditioner", "PredictorHook"]


class PredictorHook(Protocol):
    """Called by the predictor: ``input`` once, then ``layer`` for every block, then (when the hook
    has it) ``output`` for the final norm of the mask tokens' rows.

    x stays padded ([R, L, D]) at every call. A hook with a ``packing`` attribute is given
    the predictor's ``Packing`` of the padded sequence there (None when nothing is padded)
    before ``input``; ``block(x, attn_mask=attn_bias, packing=packing)`` then runs the
    block's token-wise layers on the valid tokens only (zeros come back at the padding).
    """

    def input(self, x: Tensor, sample_index: Tensor) -> Tensor:
        """Condition the input sequence x [R, L, D]; row r belongs to image ``sample_index[r]``."""
        ...

    def layer(self, index: int, block: nn.Module, x: Tensor, attn_bias: Tensor | None) -> Tensor:
        """Run block ``index`` on x (conditioned as the conditioner sees fit)."""
        ...

    # Optional: ``output(norm, x)`` applies the predictor's final LayerNorm ``norm`` to the mask
    # tokens' rows x [R, M*Kt, D]; a hook without it gets ``norm(x)``.


class Conditioner(nn.Module):
    """Base of conditioners. Binding nothing leaves the predictor unconditioned."""

    #: Whether the conditioner reads text (the model then needs a text encoder).
    uses_text: bool = False

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.config = cfg

    def bind(self, text: Any | None, step: int | None = None) -> PredictorHook | None:
        """The hook for one forward pass on ``text`` at training ``step`` (None: the plain predictor)."""
        return None

    def losses(self, hook: PredictorHook | None) -> dict[str, Tensor]:
        """Named loss terms the hook accumulated during the pass (already weighted)."""
        return {}

    def metrics(self, hook: PredictorHook | None) -> dict[str, Tensor]:
        """Named diagnostics of the pass (detached; not part of the loss)."""
        return {}
