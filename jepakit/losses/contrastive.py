"""Image–text contrastive losses with their learnable temperature (and bias): CLIP and SigLIP.

The arithmetic and the cross-rank exchange are open_clip's ``ClipLoss`` and ``SigLipLoss``
(the well-kept implementations, also used to train the public CLIP and SigLIP
reproductions); what is ours is the parameters and their initialisation:

- ``clip`` (Radford et al., 2021): symmetric InfoNCE over the global batch; the logit
  scale 1/T is learnt as log(1/T), initialised at T = 0.07 and clipped so that it never
  exceeds 100.
- ``siglip`` (Zhai et al., 2023): a sigmoid loss on every image–text pair; logits
  t·cos + b with t = exp(t') learnt from t' = log 10 and b from -10.

Under torchrun each rank passes its own features: ``clip`` gathers the others' with their
gradients and scores its rows against the global batch (open_clip's ``local_loss`` and
``gather_with_grad``); ``siglip`` passes the text features around the ranks. Either way the
mean of the ranks' losses is the single-process loss of the global batch, and DDP's averaged
gradients are its gradients.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..config import Config, in_range, knob, positive
from ..registry import register

__all__ = ["ClipLossConfig", "ContrastiveLoss", "ContrastiveLossConfig", "SigLipLossConfig"]


@dataclass(frozen=True)
class ContrastiveLossConfig(Config):
    """Base of the image–text losses (the ``loss`` slot of a contrastive method)."""


def _world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ContrastiveLoss(nn.Module, abc.ABC):
    """``loss(image, text)`` on L2-normalised features [B, E] (this rank's rows) -> scalar."""

    def __init__(self, cfg: ContrastiveLossConfig) -> None:
        super().__init__()
        self.config = cfg

    def forward(self, image: Tensor, text: Tensor) -> Tensor:
        if image.shape != text.shape or image.ndim != 2:
            raise ValueError(f"image {tuple(image.shape)} and text {tuple(text.shape)} must both be [B, E]")
        rank, world = _world()
        if image.shape[0] * world < 2:
            raise ValueError(
                f"a contrastive loss needs at least 2 image-text pairs per global batch (got {image.shape[0] * world}): "
                "with one pair there is no negative to contrast with"
            )
        return self.compute(image, text, rank, world)

    @abc.abstractmethod
    def compute(self, image: Tensor, text: Tensor, rank: int, world: int) -> Tensor:
        """The loss of this rank's rows against the global batch."""

    @abc.abstractmethod
    def metrics(self) -> dict[str, Tensor]:
        """The learnt temperature (and bias), detached, for the log."""


@dataclass(frozen=True)
class ClipLossConfig(ContrastiveLossConfig):
    init_temperature: float = knob(0.07, "initial softmax temperature T (CLIP: 0.07)", valid=positive())
    max_logit_scale: float = knob(100.0, "largest logit scale 1/T (CLIP clips it at 100)", valid=positive())


@register("loss", "clip", ClipLossConfig)
class ClipLoss(ContrastiveLoss):
    """Symmetric InfoNCE (image->text and text->image cross-entropy, averaged) with a learnt 1/T.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> image = torch.nn.functional.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
        >>> loss = create("loss", "clip")  # image, text: [B, D] unit embeddings, pair i matching i
        >>> bool(loss(image, image) < 0.1 < 10 < loss(image, image.roll(1, 0)))  # matched pairs vs shifted ones
        True
    """

    config: ClipLossConfig

    def __init__(self, cfg: ClipLossConfig) -> None:
        super().__init__(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.init_temperature)))

    def scale(self) -> Tensor:
        """1/T, clipped at ``max_logit_scale`` (no gradient past the clip, as CLIP's clamp)."""
        return self.logit_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()

    def compute(self, image: Tensor, text: Tensor, rank: int, world: int) -> Tensor:
        from open_clip.loss import ClipLoss as OpenClipLoss

        impl = OpenClipLoss(local_loss=True, gather_with_grad=True, rank=rank, world_size=world)
        return impl(image, text, self.scale())

    def metrics(self) -> dict[str, Tensor]:
        return {"metric/temperature": 1 / self.scale().detach()}


@dataclass(frozen=True)
class SigLipLossConfig(ContrastiveLossConfig):
    init_logit_scale: float = knob(10.0, "initial logit scale t = exp(t') (SigLIP: 10)", valid=positive())
    init_bias: float = knob(-10.0, "initial logit bias b (SigLIP: -10)", valid=in_range(-100, 100))


@register("loss", "siglip", SigLipLossConfig)
class SigLipLoss(ContrastiveLoss):
    """Sigmoid loss over all image–text pairs, -1/B sum log sigmoid(z_ij (t cos_ij + b)), z = +1 on pairs.

    Example:
        >>> import torch
        >>> from jepakit import create
        >>> image = torch.nn.functional.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
        >>> loss = create("loss", "siglip")  # image, text: [B, D] unit embeddings, pair i matching i
        >>> bool(loss(image, image) < loss(image, image.roll(1, 0)))
        True
    """

    config: SigLipLossConfig

    def __init__(self, cfg: SigLipLossConfig) -> None:
        super().__init__(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(cfg.init_logit_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(cfg.init_bias)))

    def compute(self, image: Tensor, text: Tensor, rank: int, world: int) -> Tensor:
        from open_clip.loss import SigLipLoss as OpenSigLipLoss

        impl = OpenSigLipLoss(rank=rank, world_size=world, dist_impl="bidir")
        return impl(image, text, self.logit_scale.exp(), self.logit_bias)

    def metrics(self) -> dict[str, Tensor]:
        return {"metric/logit_scale": self.logit_scale.detach().exp(), "metric/logit_bias": self.logit_bias.detach()}
