"""RobustSeg (Chen et al., MICCAI 2019): feature disentanglement and gated fusion for missing modalities.

- Content encoders E^c_i (one per modality, 1 input channel): a 3D U-Net encoder of residual blocks (conv ->
  InstanceNorm -> LeakyReLU), 16 channels doubling per stage in the paper preset; one residual block per stage.
- Appearance encoders E^a_i: 5 convs (no normalisation: InstanceNorm would erase exactly the intensity statistics
  an appearance code must keep), global average pooling, a linear layer -> (mu, log var) of an 8-dim Gaussian code;
  KL to N(0, I).
- Gated fusion at every encoder scale: concat codes -> conv to M=4 maps -> sigmoid -> one gate per modality; gates
  of absent or dropped modalities are forced to 0; gated codes are concatenated -> 1x1 conv + LeakyReLU -> a fused
  code with the channels of one code. The fused codes are the skips of the segmentation decoder.
- Latent modality dropout (training only): each present content code is dropped with p=0.5, at least one kept.
- Reconstruction decoders D_i(z, a_i) -> x_hat_i from the fused bottleneck code z and the appearance code a_i
  (tiled and concatenated at every decoder level), L1 against the input — only for truly present modalities, also
  when their content code was dropped (pseudo-cycle consistency).
- Loss: L_seg (soft Dice + class-weighted BCE, weights from the batch) + 0.1 L_rec + 0.1 L_KL.

Absent modalities are never encoded (their rows are skipped), so a missing channel cannot reach any output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import batch_class_weights, bce_loss, soft_dice_loss
from .blocks import (
    NEG_SLOPE,
    ConvNormAct,
    SegHead,
    UNetDecoder,
    conv_nd,
    conv_transpose_nd,
    init_weights,
    instance_norm_nd,
    present_rows,
    run_present,
    scatter_rows,
    take_rows,
)
from .registry import FusionModel, register

N_MOD = 4
N_REGIONS = 3
PAPER = (
    "C. Chen, Q. Dou, Y. Jin, H. Chen, J. Qin, P.-A. Heng. Robust Multimodal Brain Tumor Segmentation via Feature "
    "Disentanglement and Gated Fusion. MICCAI 2019"
)


@dataclass
class RobustSegConfig:
    """``base_features`` doubles over ``n_levels`` content-encoder stages; the appearance encoder's 5 convs use
    ``appearance_features * (1, 2, 4, 4, 4)`` channels."""

    base_features: int = 16
    n_levels: int = 4
    appearance_features: int = 16
    appearance_dim: int = 8
    latent_dropout: float = 0.5
    rec_weight: float = 0.1
    kl_weight: float = 0.1
    spatial_dims: int = 3


class ResidualStage(nn.Module):
    """Stage entry conv (strided to go down) + one residual block (conv-IN-LReLU-conv-IN, add, LReLU)."""

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int, stride: int) -> None:
        super().__init__()
        self.entry = ConvNormAct(in_channels, out_channels, spatial_dims, 3, stride=stride)
        self.body = nn.Sequential(
            ConvNormAct(out_channels, out_channels, spatial_dims),
            conv_nd(spatial_dims)(out_channels, out_channels, 3, padding=1),
            instance_norm_nd(spatial_dims)(out_channels, affine=True),
        )
        self.act = nn.LeakyReLU(NEG_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.entry(x)
        return self.act(x + self.body(x))


class ContentEncoder(nn.Module):
    def __init__(self, features: list[int], spatial_dims: int) -> None:
        super().__init__()
        chans = [1, *features]
        self.stages = nn.ModuleList(
            ResidualStage(chans[i], chans[i + 1], spatial_dims, 1 if i == 0 else 2) for i in range(len(features))
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class AppearanceEncoder(nn.Module):
    """5 convs (LeakyReLU, no norm) -> global average pooling -> linear -> (mu, logvar)."""

    def __init__(self, features: int, code_dim: int, spatial_dims: int) -> None:
        super().__init__()
        chans = [1] + [features * k for k in (1, 2, 4, 4, 4)]
        strides = (2, 2, 2, 2, 2)  # all strided: the code is global, full-resolution convs would only cost time
        conv = conv_nd(spatial_dims)
        layers: list[nn.Module] = []
        for i, s in enumerate(strides):
            layers += [conv(chans[i], chans[i + 1], 3, stride=s, padding=1), nn.LeakyReLU(NEG_SLOPE, inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(chans[-1], 2 * code_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns [N, 2 * code_dim] = concat(mu, logvar) (one tensor so it can be scattered like the others)."""
        h = self.convs(x).flatten(2).mean(-1)
        return self.fc(h)


class ReconDecoder(nn.Module):
    """D_i(z, a_i): up from the fused bottleneck, the tiled appearance code concatenated at every level; no norm
    (InstanceNorm would subtract the spatially constant contribution of the tiled code)."""

    def __init__(self, features: list[int], code_dim: int, spatial_dims: int) -> None:
        super().__init__()
        conv, convT = conv_nd(spatial_dims), conv_transpose_nd(spatial_dims)
        act = nn.LeakyReLU(NEG_SLOPE, inplace=True)
        n = len(features)
        self.inp = nn.Sequential(conv(features[-1] + code_dim, features[-1], 3, padding=1), act)
        self.ups = nn.ModuleList(convT(features[i + 1], features[i], 2, stride=2) for i in range(n - 1))
        self.convs = nn.ModuleList(
            nn.Sequential(conv(features[i] + code_dim, features[i], 3, padding=1), nn.LeakyReLU(NEG_SLOPE, inplace=True))
            for i in range(n - 1)
        )
        self.out = conv(features[0], 1, 1)

    @staticmethod
    def _tile(code: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return code.view(*code.shape, *([1] * (ref.ndim - 2))).expand(-1, -1, *ref.shape[2:])

    def forward(self, z: torch.Tensor, code: torch.Tensor, out_size: tuple[int, ...]) -> torch.Tensor:
        h = self.inp(torch.cat([z, self._tile(code, z)], 1))
        for i in range(len(self.ups) - 1, -1, -1):
            h = self.ups[i](h)
            h = self.convs[i](torch.cat([h, self._tile(code, h)], 1))
        if tuple(h.shape[2:]) != tuple(out_size):  # odd input sizes: back to the exact grid
            h = F.interpolate(h, size=out_size, mode="trilinear" if h.ndim == 5 else "bilinear", align_corners=False)
        return self.out(h)


class GatedFusion(nn.Module):
    """Concat codes -> conv -> M sigmoid gates (0 for excluded modalities) -> re-weight -> concat -> 1x1 conv + LReLU."""

    def __init__(self, channels: int, spatial_dims: int, n_mod: int = N_MOD) -> None:
        super().__init__()
        conv = conv_nd(spatial_dims)
        self.gate = conv(n_mod * channels, n_mod, 3, padding=1)
        self.fuse = nn.Sequential(conv(n_mod * channels, channels, 1), nn.LeakyReLU(NEG_SLOPE, inplace=True))

    def forward(self, codes: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``codes`` [B, M, C, *S], ``keep`` [B, M] bool -> fused [B, C, *S], gates [B, M, *S]."""
        k = keep.to(codes.dtype).view(*keep.shape, *([1] * (codes.ndim - 2)))
        codes = codes * k  # dropped codes become exactly 0 before the gate conv sees them
        gates = torch.sigmoid(self.gate(codes.flatten(1, 2))) * k.squeeze(2)
        fused = self.fuse((codes * gates.unsqueeze(2)).flatten(1, 2))
        return fused, gates


def latent_dropout(present: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Drop each present modality with probability ``p``; a row left empty keeps one random present modality."""
    if p <= 0:
        return present.clone()
    rand = torch.rand(present.shape, device=present.device, generator=generator)
    keep = present & (rand >= p)
    empty = ~keep.any(1)
    if bool(empty.any()):
        # among the present modalities of an emptied row, keep the one with the largest random score
        score = torch.rand(present.shape, device=present.device, generator=generator).masked_fill(~present, -1.0)
        rescue = F.one_hot(score.argmax(1), present.shape[1]).bool()
        keep = torch.where(empty.unsqueeze(1), rescue, keep)
    return keep


class RobustSeg(FusionModel):
    def __init__(self, config: RobustSegConfig) -> None:
        super().__init__(config)
        sd = config.spatial_dims
        self.features = [config.base_features * 2**i for i in range(config.n_levels)]
        self.content = nn.ModuleList(ContentEncoder(self.features, sd) for _ in range(N_MOD))
        self.appearance = nn.ModuleList(AppearanceEncoder(config.appearance_features, config.appearance_dim, sd) for _ in range(N_MOD))
        self.fusion = nn.ModuleList(GatedFusion(c, sd) for c in self.features)
        self.decoder = UNetDecoder(self.features, sd)
        self.head = SegHead(self.features[0], N_REGIONS, sd)
        self.recon = nn.ModuleList(ReconDecoder(self.features, config.appearance_dim, sd) for _ in range(N_MOD))
        #: compute the appearance/reconstruction branch outside training too (tests, inspection)
        self.aux_in_eval = False
        init_weights(self)

    def encode(self, x: torch.Tensor, present: torch.Tensor) -> list[torch.Tensor]:
        """Content codes per level, stacked [B, 4, C_l, *S_l]; absent modalities exactly 0 and never computed."""
        per_mod = [run_present(self.content[m], x[:, m : m + 1], present[:, m]) for m in range(N_MOD)]
        ref = next(c for c in per_mod if c is not None)
        return [torch.stack([c[i] if c is not None else torch.zeros_like(ref[i]) for c in per_mod], 1) for i in range(len(ref))]

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        present = self.check_inputs(x, present)
        codes = self.encode(x, present)
        keep = latent_dropout(present, self.config.latent_dropout) if self.training else present
        fused, gates = zip(*(f(c, keep) for f, c in zip(self.fusion, codes)))
        logits = self.head(self.decoder(list(fused))[0])
        out: dict[str, torch.Tensor] = {
            "logits": logits,
            "modality_features": codes[-1],  # bottleneck content codes: the latent MedMAP aligns
            "gate_maps": gates[0],  # full-resolution gates [B, 4, *S]
            "kept": keep,
        }
        if self.training or self.aux_in_eval:
            out.update(self._appearance_and_recon(x, present, fused[-1]))
        return out

    def _appearance_and_recon(self, x: torch.Tensor, present: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        d = self.config.appearance_dim
        stats, recon = [], []
        size = tuple(x.shape[2:])
        for m in range(N_MOD):
            xm, pm = x[:, m : m + 1], present[:, m]
            st = run_present(self.appearance[m], xm, pm)
            st = st if st is not None else x.new_zeros(x.shape[0], 2 * d)
            mu, logvar = st[:, :d], st[:, d:]
            code = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            rec = None
            if bool(pm.any()):
                rows = present_rows(pm)
                rec = scatter_rows(self.recon[m](take_rows(z, rows), take_rows(code, rows), size), rows, x.shape[0])
            stats.append(st)
            recon.append(rec if rec is not None else x.new_zeros(x.shape[0], 1, *size))
        st = torch.stack(stats, 1)
        return {
            "app_mu": st[..., :d],
            "app_logvar": st[..., d:],
            "recon": torch.cat(recon, 1),
            "recon_target": torch.where(present.view(*present.shape, *([1] * (x.ndim - 2))), x, torch.zeros_like(x)),
        }

    def loss(self, outputs: dict[str, torch.Tensor], target: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        logits = outputs["logits"]
        seg = soft_dice_loss(logits, target) + bce_loss(logits, target, batch_class_weights(target))
        terms = {"seg": seg}
        total = seg
        if "recon" in outputs:
            p = present.to(device=logits.device, dtype=torch.float32)
            n = p.sum().clamp_min(1.0)
            err = (outputs["recon"].float() - outputs["recon_target"].float()).abs().flatten(2).mean(-1)  # [B, 4]
            terms["rec"] = (err * p).sum() / n
            mu, logvar = outputs["app_mu"].float(), outputs["app_logvar"].float()
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)  # [B, 4]
            terms["kl"] = (kl * p).sum() / n
            total = total + cfg.rec_weight * terms["rec"] + cfg.kl_weight * terms["kl"]
        terms["total"] = total
        return terms


@register(
    "robustseg",
    RobustSegConfig,
    "RobustSeg: disentangled content/appearance codes, gated fusion at every scale, latent modality dropout",
    paper=PAPER,
    presets={
        "tiny": {"base_features": 8, "n_levels": 3, "appearance_features": 4},
        "paper": {"base_features": 16, "n_levels": 4, "appearance_features": 16},
    },
)
def build_robustseg(config: RobustSegConfig) -> RobustSeg:
    return RobustSeg(config)
