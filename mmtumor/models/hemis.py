"""HeMIS baseline (Havaei et al., MICCAI 2016), in its U-Net form (U-HeMIS, as compared in Dorent et al. 2019).

Per-modality encoders (1 input channel each); at every encoder scale the features of the present modalities are
fused into their mean and (population) variance across modalities — variance 0 when only one is present — and the
concatenation [mean; var] is the skip for one shared decoder. Moments are permutation-invariant and defined for any
number of inputs, which is why HeMIS handles any modality subset without retraining.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..losses import deep_supervision_loss
from .blocks import (
    DeepSupervisionHeads,
    UNetDecoder,
    UNetEncoder,
    init_weights,
    level_features,
    present_rows,
    scatter_rows,
    take_rows,
)
from .registry import FusionModel, register

N_MOD = 4
N_REGIONS = 3


@dataclass
class HeMISConfig:
    base_features: int = 32
    n_levels: int = 6
    max_features: int = 320
    deep_supervision: int = 0
    spatial_dims: int = 3


def mean_var_fusion(feats: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population variance over present modalities of ``feats`` [B, 4, C, *S] (absent rows ignored)."""
    p = present.to(feats.dtype).view(*present.shape, *([1] * (feats.ndim - 2)))
    k = p.sum(1)
    mean = (feats * p).sum(1) / k
    var = (((feats - mean.unsqueeze(1)) ** 2) * p).sum(1) / k
    return mean, var


class HeMIS(FusionModel):
    def __init__(self, config: HeMISConfig) -> None:
        super().__init__(config)
        sd = config.spatial_dims
        self.features = level_features(config.base_features, config.n_levels, config.max_features)
        self.encoders = nn.ModuleList(UNetEncoder(1, self.features, sd) for _ in range(N_MOD))
        self.decoder = UNetDecoder(self.features, sd, skip_features=[2 * c for c in self.features])
        self.heads = DeepSupervisionHeads(self.features[:-1], config.deep_supervision, N_REGIONS, sd)
        init_weights(self)

    def encode(self, x: torch.Tensor, present: torch.Tensor) -> list[torch.Tensor]:
        """Per-level stacked modality features [B, 4, C_l, *S_l]; absent modalities are exactly 0 and never computed."""
        batch = x.shape[0]
        per_mod: list[list[torch.Tensor] | None] = [None] * N_MOD
        for m in range(N_MOD):
            if not bool(present[:, m].any()):
                continue
            rows = present_rows(present[:, m])
            per_mod[m] = [scatter_rows(s, rows, batch) for s in self.encoders[m](take_rows(x[:, m : m + 1], rows))]
        ref = next(s for s in per_mod if s is not None)
        return [torch.stack([s[i] if s is not None else torch.zeros_like(ref[i]) for s in per_mod], dim=1) for i in range(len(ref))]

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        present = self.check_inputs(x, present)
        levels = self.encode(x, present)
        skips = [torch.cat(mean_var_fusion(f, present), dim=1) for f in levels]
        logits = self.heads(self.decoder(skips))
        # the bottleneck (coarsest) modality features are the latent MedMAP aligns
        return {"logits": logits[0], "logits_ds": logits[1:], "modality_features": levels[-1]}

    def loss(self, outputs: dict[str, torch.Tensor], target: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        seg = deep_supervision_loss([outputs["logits"], *outputs["logits_ds"]], target)
        return {"seg": seg, "total": seg}


@register(
    "hemis",
    HeMISConfig,
    "HeMIS (U-Net form): per-modality encoders, mean+variance fusion at every scale, shared decoder (baseline)",
    paper="M. Havaei, N. Guizard, N. Chapados, Y. Bengio. HeMIS: Hetero-Modal Image Segmentation. MICCAI 2016",
    presets={
        "tiny": {"base_features": 8, "n_levels": 3, "max_features": 32, "deep_supervision": 1},
        "paper": {"base_features": 32, "n_levels": 6, "max_features": 320, "deep_supervision": 0},
    },
)
def build_hemis(config: HeMISConfig) -> HeMIS:
    return HeMIS(config)
