"""A2FSeg (Wang & Hong, MICCAI 2023): average and adaptive fusion of modality-specific U-Net features.

- MSFE: one nnU-Net-style U-Net per modality (1 input channel) -> F_m [B, C, *S] at full resolution, each with its
  own segmentation head plus deep-supervision heads on lower decoder levels.
- Average fusion: F_bar = mean of F_m over the present modalities, own head.
- Adaptive fusion (Eq. 1-3): W_m = sigmoid(Conv_m([F_bar; F_m])), W_hat = softmax over present modalities only,
  F_hat = sum_m W_hat_m * F_m, final head.
- Loss (Eq. 5): sum_m L_m + L_avg + L_adp, each Dice + BCE on the three regions; L_m only on samples where m is
  present (with nnU-Net deep supervision).

Absent branches are never run: each modality's U-Net only sees the rows (samples) where it is present, so a missing
channel's content cannot reach any output, and a batch where e.g. T1 is missing everywhere costs 3 U-Nets, not 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError
from ..losses import deep_supervision_loss, dice_bce
from ..modalities import MODALITIES
from .blocks import DeepSupervisionHeads, SegHead, UNet, conv_nd, init_weights, present_rows, scatter_rows, take_rows
from .registry import FusionModel, register

N_MOD = 4
N_REGIONS = 3
LEAK_SCALE = 10.0  # attention_leak "learned": the leak is LEAK_SCALE * attention_leak_param
PAPER = "Z. Wang, Y. Hong. A2FSeg: Adaptive Multi-Modal Fusion Network for Medical Image Segmentation. MICCAI 2023"


@dataclass
class A2FSegConfig:
    """Sizes of the modality-specific U-Nets and the fusion options.

    ``attention_maps``: "single" (default) = one weight map per modality, shared by all C channels (a voxel-wise
    modality weighting, the reading of the paper's Fig. 1); "channel" = C maps, one per feature channel (Eq. 1 with
    a C-channel conv output).

    ``attention_leak``: "none" (default, Eq. 2 as written) = softmax over the sigmoid maps sigma(z_m), so one
    modality weighs at most e times another (with all four present, each weight lies in about [0.11, 0.48]), and
    where every z_m is far below 0 the sigmoids saturate, the weights are uniform and no gradient reaches z;
    "learned" = softmax over sigma(z_m) + a * z_m with a learned leak a that starts at 0 (the paper's function), so
    the maps keep a gradient where the sigmoid is flat and one modality can dominate (T1c in enhancing tumour).
    """

    base_features: int = 32
    n_levels: int = 6
    max_features: int = 320
    deep_supervision: int = 3
    attention_maps: str = "single"
    attention_kernel: int = 3
    attention_leak: str = "none"
    spatial_dims: int = 3


@dataclass
class A2FSegAvgConfig:
    """``a2fseg-avg``: the same MSFE U-Nets, average fusion only (paper Table 2 ablation)."""

    base_features: int = 32
    n_levels: int = 6
    max_features: int = 320
    deep_supervision: int = 3
    spatial_dims: int = 3


class ModalityBranches(nn.Module):
    """The four modality-specific U-Nets with their heads; runs each only on the rows where it is present."""

    def __init__(self, base_features: int, n_levels: int, max_features: int, deep_supervision: int, spatial_dims: int) -> None:
        super().__init__()
        self.unets = nn.ModuleList(UNet(1, base_features, n_levels, max_features, spatial_dims) for _ in range(N_MOD))
        chans = self.unets[0].decoder_features
        self.heads = nn.ModuleList(DeepSupervisionHeads(chans, deep_supervision, N_REGIONS, spatial_dims) for _ in range(N_MOD))

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Returns F [B, 4, C, *S] (absent = 0) and per-level logits [B, 4, 3, *s] (level 0 = full res)."""
        batch = x.shape[0]
        feats: list[torch.Tensor | None] = [None] * N_MOD
        logits: list[list[torch.Tensor] | None] = [None] * N_MOD
        for m in range(N_MOD):
            if not bool(present[:, m].any()):
                continue
            rows = present_rows(present[:, m])
            dec = self.unets[m](take_rows(x[:, m : m + 1], rows))
            feats[m] = scatter_rows(dec[0], rows, batch)
            logits[m] = [scatter_rows(lg, rows, batch) for lg in self.heads[m](dec)]
        ref_f = next(f for f in feats if f is not None)
        ref_l = next(lg for lg in logits if lg is not None)
        F = torch.stack([f if f is not None else torch.zeros_like(ref_f) for f in feats], dim=1)
        levels = [
            torch.stack([lg[i] if lg is not None else torch.zeros_like(ref_l[i]) for lg in logits], dim=1) for i in range(len(ref_l))
        ]
        return F, levels


def average_fusion(F: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """F_bar = mean of F_m over present modalities (absent F_m are already 0)."""
    p = present.to(F.dtype).view(*present.shape, *([1] * (F.ndim - 2)))
    return (F * p).sum(1) / p.sum(1)


class A2FSeg(FusionModel):
    """A2FSeg; with ``adaptive=False`` the average-fusion-only ablation (``a2fseg-avg``)."""

    def __init__(self, config: A2FSegConfig | A2FSegAvgConfig, adaptive: bool = True) -> None:
        super().__init__(config)
        sd = config.spatial_dims
        self.adaptive = adaptive
        self.branches = ModalityBranches(config.base_features, config.n_levels, config.max_features, config.deep_supervision, sd)
        C = config.base_features
        self.avg_head = SegHead(C, N_REGIONS, sd)
        if adaptive:
            if config.attention_maps not in ("single", "channel"):
                raise InputError(f"attention_maps must be 'single' or 'channel', got {config.attention_maps!r}")
            if config.attention_kernel < 1 or config.attention_kernel % 2 == 0:
                raise InputError(f"attention_kernel must be a positive odd number, got {config.attention_kernel}")
            k = 1 if config.attention_maps == "single" else C
            conv = conv_nd(sd)
            pad = config.attention_kernel // 2
            self.attention = nn.ModuleList(conv(2 * C, k, config.attention_kernel, padding=pad) for _ in range(N_MOD))
            self.adaptive_head = SegHead(C, N_REGIONS, sd)
            if config.attention_leak not in ("none", "learned"):
                raise InputError(f"attention_leak must be 'none' or 'learned', got {config.attention_leak!r}")
            if config.attention_leak == "learned":
                # the leak is LEAK_SCALE * this: Adam moves a parameter by about lr per step, and the scale lets a
                # few hundred steps reach leaks of order 1 instead of 0.1
                self.attention_leak_param = nn.Parameter(torch.zeros(()))
        init_weights(self)

    def fusion_weights(self, F: torch.Tensor, F_bar: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Eq. 1-2: W_m = sigmoid(Conv_m([F_bar; F_m])), softmax over present modalities (absent get exactly 0);
        with ``attention_leak`` "learned" the softmax reads sigmoid(z) + a * z instead of sigmoid(z)."""
        batch = F.shape[0]
        W = []
        for m in range(N_MOD):
            if not bool(present[:, m].any()):
                W.append(None)
                continue
            rows = present_rows(present[:, m])
            inp = torch.cat([take_rows(F_bar, rows), take_rows(F[:, m], rows)], dim=1)
            z = self.attention[m](inp)
            u = torch.sigmoid(z)
            if hasattr(self, "attention_leak_param"):
                u = u + LEAK_SCALE * self.attention_leak_param.to(z.dtype) * z
            W.append(scatter_rows(u, rows, batch))
        ref = next(w for w in W if w is not None)
        Ws = torch.stack([w if w is not None else torch.zeros_like(ref) for w in W], dim=1).float()
        mask = present.view(batch, N_MOD, *([1] * (Ws.ndim - 2)))
        Ws = Ws.masked_fill(~mask, float("-inf"))
        return torch.softmax(Ws, dim=1)

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        present = self.check_inputs(x, present)
        F, mod_levels = self.branches(x, present)
        F_bar = average_fusion(F, present)
        out: dict[str, torch.Tensor] = {
            "logits_avg": self.avg_head(F_bar),
            "logits_modality": mod_levels[0],
            "logits_modality_ds": mod_levels[1:],  # list, full res excluded, coarser further down
            "modality_features": F,
        }
        if self.adaptive:
            W_hat = self.fusion_weights(F, F_bar, present)
            F_hat = (W_hat.to(F.dtype) * F).sum(1)
            out["weights"] = W_hat
            out["fused_features"] = F_hat
            out["logits"] = self.adaptive_head(F_hat)
        else:
            out["logits"] = out["logits_avg"]
        return out

    def loss(self, outputs: dict[str, torch.Tensor], target: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        present = present.to(device=target.device, dtype=torch.bool)
        terms: dict[str, torch.Tensor] = {}
        levels = [outputs["logits_modality"], *outputs["logits_modality_ds"]]
        total = target.new_zeros((), dtype=torch.float32)
        for m, mod in enumerate(MODALITIES):
            rows = present[:, m]
            if not bool(rows.any()):
                continue
            idx = rows.nonzero(as_tuple=True)[0]
            lm = deep_supervision_loss([lv[idx, m] for lv in levels], target[idx])
            terms[f"modality_{mod.value}"] = lm
            total = total + lm
        terms["avg"] = dice_bce(outputs["logits_avg"], target)
        total = total + terms["avg"]
        if self.adaptive:
            terms["adaptive"] = dice_bce(outputs["logits"], target)
            total = total + terms["adaptive"]
        terms["total"] = total
        return terms


_TINY = {"base_features": 8, "n_levels": 3, "max_features": 32, "deep_supervision": 1}
_PAPER = {"base_features": 32, "n_levels": 6, "max_features": 320, "deep_supervision": 3}


@register(
    "a2fseg",
    A2FSegConfig,
    "A2FSeg: per-modality nnU-Nets, average + adaptive (attention-weighted) fusion",
    paper=PAPER,
    presets={"tiny": _TINY, "paper": _PAPER},
)
def build_a2fseg(config: A2FSegConfig) -> A2FSeg:
    return A2FSeg(config, adaptive=True)


@register(
    "a2fseg-avg",
    A2FSegAvgConfig,
    "A2FSeg ablation: per-modality nnU-Nets, average fusion only (paper Table 2)",
    paper=PAPER,
    presets={"tiny": _TINY, "paper": _PAPER},
)
def build_a2fseg_avg(config: A2FSegAvgConfig) -> A2FSeg:
    return A2FSeg(config, adaptive=False)
