"""Early-fusion baseline: one nnU-Net-style U-Net on the 4 stacked channels, missing channels filled with zeros.

What most users would try first. Missing-modality handling is only the zero fill: the network sees "0" where a
modality is absent (training with modality dropout teaches it what that means). Because the absent channel is
replaced, not masked after the fact, its original content cannot change the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..losses import deep_supervision_loss
from .blocks import DeepSupervisionHeads, UNet, init_weights
from .registry import FusionModel, register

N_REGIONS = 3


@dataclass
class UNetConfig:
    base_features: int = 32
    n_levels: int = 6
    max_features: int = 320
    deep_supervision: int = 3
    spatial_dims: int = 3


class EarlyFusionUNet(FusionModel):
    def __init__(self, config: UNetConfig) -> None:
        super().__init__(config)
        sd = config.spatial_dims
        self.unet = UNet(4, config.base_features, config.n_levels, config.max_features, sd)
        self.heads = DeepSupervisionHeads(self.unet.decoder_features, config.deep_supervision, N_REGIONS, sd)
        init_weights(self)

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        present = self.check_inputs(x, present)
        mask = present.view(*present.shape, *([1] * (x.ndim - 2)))
        # where() rather than multiplying by the mask: NaN/inf in an absent channel must not leak either
        logits = self.heads(self.unet(torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))))
        return {"logits": logits[0], "logits_ds": logits[1:]}

    def loss(self, outputs: dict[str, torch.Tensor], target: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        seg = deep_supervision_loss([outputs["logits"], *outputs["logits_ds"]], target)
        return {"seg": seg, "total": seg}


@register(
    "unet",
    UNetConfig,
    "Early-fusion nnU-Net-style U-Net on 4 channels, missing channels zero-filled (baseline)",
    paper="F. Isensee et al. nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation. Nat Methods 2021",
    presets={
        "tiny": {"base_features": 8, "n_levels": 3, "max_features": 32, "deep_supervision": 1},
        "paper": {"base_features": 32, "n_levels": 6, "max_features": 320, "deep_supervision": 3},
    },
)
def build_unet(config: UNetConfig) -> EarlyFusionUNet:
    return EarlyFusionUNet(config)
