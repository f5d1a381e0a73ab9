"""MedMAP alignment (Liu et al., 2024): align every modality's latent features to an anchor distribution P_mix.

A training add-on for any backbone whose ``forward`` returns ``"modality_features"`` [B, 4, C, *S] (absent
modalities exactly 0). ``MedMAP(backbone, ...)`` keeps the backbone's forward/loss interface and adds the term
``"align"`` to the loss: ``total = backbone total + weight * align``.

Formulation (the paper leaves the estimator open; this is ours, see docs/methods-part2.md):

- Each present modality m of sample b is summarised by a diagonal Gaussian over its feature vectors:
  ``q_bm = N(mu_bm, diag(var_bm))`` with per-channel mean and (population) variance over the voxels
  (``stats="channel"``, the distribution-level default), or, with ``stats="voxel"``, one Gaussian per voxel
  ``N(f_bm(v), s^2 I)`` (``s^2 = voxel_var``), which pairs modalities location by location.
- Anchors:
  ``normal``   P_N = N(0, I) (the baseline);
  ``fixed``    P^k_mix = sum_k w_k q_bk with fixed weights (default uniform) renormalised over the present k;
  ``adaptive`` P*_mix: the same mixture with learned weights w = softmax(theta) over the present modalities only
               (theta: 4 learned logits; absent modalities get weight exactly 0, in training and at inference).
  The mixture is replaced by the Gaussian with its first two moments (moment matching):
  ``mu_a = sum_k w_k mu_k``, ``var_a = sum_k w_k (var_k + mu_k^2) - mu_a^2``, so the KL has a closed form.
- ``align = mean over present (b, m) of mean over channels (and voxels) of KL(q_bm || anchor_b)`` with
  ``KL = 0.5 * (log(var_a / var) + (var + (mu - mu_a)^2) / var_a - 1)``. The anchor is not detached (unless
  ``detach_anchor``): modalities move towards each other and theta learns which mixture is easiest to share.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError
from .registry import FusionModel

ANCHORS = ("adaptive", "fixed", "normal")
N_MOD = 4


@dataclass
class MedMAPConfig:
    anchor: str = "adaptive"
    weight: float = 0.1
    fixed_weights: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)
    stats: str = "channel"
    voxel_var: float = 1.0
    eps: float = 1e-5
    detach_anchor: bool = False


def gaussian_kl(mu: torch.Tensor, var: torch.Tensor, mu_a: torch.Tensor, var_a: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mu, var) || N(mu_a, var_a)) for diagonal Gaussians."""
    return 0.5 * (torch.log(var_a / var) + (var + (mu - mu_a) ** 2) / var_a - 1.0)


def mixture_moments(mu: torch.Tensor, var: torch.Tensor, w: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of sum_k w_k N(mu_k, var_k); ``mu``/``var`` [B, 4, ...], ``w`` [B, 4] (sums to 1)."""
    w = w.view(*w.shape, *([1] * (mu.ndim - 2))).to(mu.dtype)
    mu_a = (w * mu).sum(1)
    var_a = (w * (var + mu**2)).sum(1) - mu_a**2
    return mu_a, var_a.clamp_min(eps)


class MedMAP(FusionModel):
    """Wraps a backbone; same ``forward``/``loss`` interface, plus the alignment term and learned anchor weights."""

    def __init__(self, backbone: FusionModel, anchor: str = "adaptive", weight: float = 0.1,
                 fixed_weights: tuple[float, ...] | None = None, stats: str = "channel", voxel_var: float = 1.0,
                 eps: float = 1e-5, detach_anchor: bool = False) -> None:
        super().__init__(backbone.config)
        if anchor not in ANCHORS:
            raise InputError(f"unknown MedMAP anchor '{anchor}' (expected one of {', '.join(ANCHORS)})")
        if stats not in ("channel", "voxel"):
            raise InputError(f"unknown MedMAP stats '{stats}' (expected channel or voxel)")
        fw = tuple(float(v) for v in (fixed_weights or (0.25,) * N_MOD))
        if len(fw) != N_MOD or min(fw) <= 0:
            raise InputError("MedMAP fixed_weights needs 4 positive numbers (T1, T1c, T2, FLAIR)")
        self.backbone = backbone
        self.method = getattr(backbone, "method", "")
        self.alignment = "medmap"
        self.align_config = MedMAPConfig(anchor, float(weight), fw, stats, float(voxel_var), float(eps), bool(detach_anchor))
        self.register_buffer("fixed_weights", torch.tensor(fw), persistent=False)
        #: theta of P*_mix; zeros = uniform start (only learned with anchor="adaptive")
        self.anchor_logits = nn.Parameter(torch.zeros(N_MOD), requires_grad=anchor == "adaptive")

    def anchor_weights(self, present: torch.Tensor) -> torch.Tensor:
        """Mixture weights [B, 4] over the present modalities (absent exactly 0, rows sum to 1)."""
        present = present.to(device=self.anchor_logits.device, dtype=torch.bool)
        if self.align_config.anchor == "adaptive":
            logits = self.anchor_logits.unsqueeze(0).expand(present.shape[0], -1)
            return torch.softmax(logits.masked_fill(~present, float("-inf")), dim=1)
        w = self.fixed_weights.unsqueeze(0) * present.float()
        return w / w.sum(1, keepdim=True)

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.backbone(x, present)
        if "modality_features" not in out:
            raise InputError(f"method '{self.method}' exposes no modality_features; MedMAP cannot align it")
        if self.align_config.anchor != "normal":
            out["anchor_weights"] = self.anchor_weights(self.check_inputs(x, present))
        return out

    def _stats(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per (b, m): mean/var [B, 4, C] over voxels, or per-voxel means [B, 4, C, N] with fixed variance."""
        f = feats.float().flatten(3)
        if self.align_config.stats == "channel":
            return f.mean(-1), f.var(-1, unbiased=False) + self.align_config.eps
        return f, torch.full_like(f, self.align_config.voxel_var)

    def alignment_loss(self, feats: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Mean KL of the present modalities' feature distributions to the anchor (see module docstring)."""
        cfg = self.align_config
        present = present.to(device=feats.device, dtype=torch.bool)
        mu, var = self._stats(feats)
        if cfg.anchor == "normal":
            mu_a, var_a = torch.zeros_like(mu[:, 0]), torch.ones_like(var[:, 0])
        else:
            mu_a, var_a = mixture_moments(mu, var, self.anchor_weights(present), cfg.eps)
            if cfg.detach_anchor:
                mu_a, var_a = mu_a.detach(), var_a.detach()
        kl = gaussian_kl(mu, var, mu_a.unsqueeze(1), var_a.unsqueeze(1)).flatten(2).mean(-1)  # [B, 4]
        kl = kl.masked_fill(~present, 0.0)  # absent modalities count for nothing (not even as NaN)
        return kl.sum() / present.sum().clamp_min(1)

    def loss(self, outputs: dict[str, torch.Tensor], target: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = dict(self.backbone.loss(outputs, target, present))
        terms["align"] = self.alignment_loss(outputs["modality_features"], present)
        terms["total"] = terms["total"] + self.align_config.weight * terms["align"]
        return terms


ALIGNMENTS = {"medmap": MedMAP}


def with_alignment(model: FusionModel, name: str | None, **kwargs) -> FusionModel:
    """``model`` wrapped by the named alignment add-on (``None``/"none" returns it unchanged)."""
    if name in (None, "", "none"):
        return model
    if name not in ALIGNMENTS:
        raise InputError(f"unknown alignment '{name}' (available: none, {', '.join(ALIGNMENTS)})")
    return ALIGNMENTS[name](model, **kwargs)
