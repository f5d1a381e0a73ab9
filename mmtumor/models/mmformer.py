"""mmFormer (Zhang et al., MICCAI 2022): multimodal medical transformer for incomplete multimodal segmentation.

- Hybrid modality-specific encoders: per modality a conv encoder (nnU-Net ConvStages, ``base * 2**l`` channels over
  5 levels in the paper preset) and an intra-modal transformer on the bottleneck tokens (1x1x1 conv to the token
  dimension, learned positional embedding, pre-norm transformer layers).
- Inter-modal transformer: the tokens of all modalities in one sequence (plus a learned modality embedding);
  missing modalities' tokens are zeroed AND excluded as attention keys (key padding mask), so neither their content
  nor their positional/modality embeddings reach a present token. The output tokens are re-zeroed for absent
  modalities, concatenated along channels and projected back to the bottleneck width.
- Fusion decoder: skips = concatenation of the masked per-modality encoder features at each level, reduced by a
  1x1 ConvNormAct; a U-Net decoder with deep-supervision heads on its lower levels.
- Shared auxiliary decoder (training only): one decoder, shared by all modalities, decodes each present modality's
  own features (its skips + its intra-modal bottleneck) -> per-modality predictions.
- Loss: weighted BCE (per-batch region weights) + soft Dice on the fused output, on every present modality's
  auxiliary output and on every deep-supervision output, summed with weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import batch_class_weights, bce_loss, downsample_target, soft_dice_loss
from ..modalities import MODALITIES
from .blocks import (
    ConvNormAct,
    DeepSupervisionHeads,
    SegHead,
    UNetDecoder,
    UNetEncoder,
    conv_nd,
    init_weights,
    level_features,
    present_rows,
    run_present,
    scatter_rows,
    take_rows,
)
from .registry import FusionModel, register

N_MOD = 4
N_REGIONS = 3
PAPER = (
    "Y. Zhang, N. He, J. Yang, Y. Li, D. Wei, Y. Huang, Y. Zhang, Z. He, Y. Zheng. mmFormer: Multimodal Medical "
    "Transformer for Incomplete Multimodal Learning of Brain Tumor Segmentation. MICCAI 2022"
)


@dataclass
class MMFormerConfig:
    """``patch_size``: the training patch edge; it fixes the learned positional-embedding grid
    (``patch_size / 2**(n_levels-1)`` per axis), which is interpolated for other input sizes."""

    base_features: int = 8
    n_levels: int = 5
    max_features: int = 320
    embed_dim: int = 512
    num_heads: int = 8
    mlp_dim: int = 4096
    intra_depth: int = 1
    inter_depth: int = 1
    deep_supervision: int = 3
    patch_size: int = 128
    spatial_dims: int = 3


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, key_padding_mask=key_padding_mask, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class PositionalEmbedding(nn.Module):
    """Learned embedding on a fixed token grid, resampled (trilinear/bilinear) when the grid differs."""

    def __init__(self, dim: int, grid: int, spatial_dims: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, dim, *([grid] * spatial_dims)))
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, size: tuple[int, ...]) -> torch.Tensor:
        pos = self.pos
        if tuple(pos.shape[2:]) != tuple(size):
            pos = F.interpolate(pos, size=size, mode="trilinear" if pos.ndim == 5 else "bilinear", align_corners=False)
        return pos.flatten(2).transpose(1, 2)  # [1, N, dim]


class IntraModal(nn.Module):
    """One modality's bottleneck -> tokens -> transformer; returns tokens [N, T, E] (E = embed_dim)."""

    def __init__(self, channels: int, cfg: MMFormerConfig, grid: int) -> None:
        super().__init__()
        self.proj = conv_nd(cfg.spatial_dims)(channels, cfg.embed_dim, 1)
        self.pos = PositionalEmbedding(cfg.embed_dim, grid, cfg.spatial_dims)
        self.layers = nn.ModuleList(TransformerLayer(cfg.embed_dim, cfg.num_heads, cfg.mlp_dim) for _ in range(cfg.intra_depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.proj(x).flatten(2).transpose(1, 2) + self.pos(tuple(x.shape[2:]))
        for layer in self.layers:
            t = layer(t)
        return t


class ModalityEncoder(nn.Module):
    """Conv encoder + intra-modal transformer; returns conv skips (last replaced by the transformer output) and tokens."""

    def __init__(self, features: list[int], cfg: MMFormerConfig, grid: int) -> None:
        super().__init__()
        self.conv = UNetEncoder(1, features, cfg.spatial_dims)
        self.intra = IntraModal(features[-1], cfg, grid)
        self.back = conv_nd(cfg.spatial_dims)(cfg.embed_dim, features[-1], 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = self.conv(x)
        tokens = self.intra(skips[-1])
        bottleneck = self.back(tokens.transpose(1, 2).reshape(skips[-1].shape[0], -1, *skips[-1].shape[2:]))
        return [*skips[:-1], bottleneck, tokens]


class MMFormer(FusionModel):
    def __init__(self, config: MMFormerConfig) -> None:
        super().__init__(config)
        cfg, sd = config, config.spatial_dims
        self.features = level_features(cfg.base_features, cfg.n_levels, cfg.max_features)
        grid = max(1, cfg.patch_size // 2 ** (cfg.n_levels - 1))
        self.encoders = nn.ModuleList(ModalityEncoder(self.features, cfg, grid) for _ in range(N_MOD))
        self.modality_embed = nn.Parameter(torch.zeros(1, N_MOD, 1, cfg.embed_dim))
        nn.init.trunc_normal_(self.modality_embed, std=0.02)
        self.inter = nn.ModuleList(TransformerLayer(cfg.embed_dim, cfg.num_heads, cfg.mlp_dim) for _ in range(cfg.inter_depth))
        self.inter_out = conv_nd(sd)(N_MOD * cfg.embed_dim, self.features[-1], 1)
        self.skip_fuse = nn.ModuleList(ConvNormAct(N_MOD * c, c, sd, kernel_size=1) for c in self.features[:-1])
        self.decoder = UNetDecoder(self.features, sd)
        self.heads = DeepSupervisionHeads(self.features[:-1], cfg.deep_supervision, N_REGIONS, sd)
        self.aux_decoder = UNetDecoder(self.features, sd)
        self.aux_head = SegHead(self.features[0], N_REGIONS, sd)
        #: run the auxiliary per-modality decoder outside training too (tests, inspection)
        self.aux_in_eval = False
        init_weights(self)

    def encode(self, x: torch.Tensor, present: torch.Tensor) -> list[torch.Tensor]:
        """Per level [B, 4, C_l, *S_l] (last entry: tokens [B, 4, T, E]); absent modalities exactly 0, never computed."""
        per_mod = [run_present(self.encoders[m], x[:, m : m + 1], present[:, m]) for m in range(N_MOD)]
        ref = next(c for c in per_mod if c is not None)
        return [torch.stack([c[i] if c is not None else torch.zeros_like(ref[i]) for c in per_mod], 1) for i in range(len(ref))]

    def inter_modal(self, tokens: torch.Tensor, present: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """Tokens [B, 4, T, E] of all modalities in one sequence; absent ones masked as keys and re-zeroed."""
        B, M, T, E = tokens.shape
        p = present.to(tokens.dtype).view(B, M, 1, 1)
        seq = ((tokens + self.modality_embed) * p).reshape(B, M * T, E)
        pad = (~present).repeat_interleave(T, dim=1)  # True = ignore as key
        for layer in self.inter:
            seq = layer(seq, key_padding_mask=pad)
        out = seq.view(B, M, T, E) * p
        vol = out.permute(0, 1, 3, 2).reshape(B, M * E, *grid)
        return self.inter_out(vol)

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        present = self.check_inputs(x, present)
        levels = self.encode(x, present)
        tokens, feats = levels[-1], levels[:-1]  # feats[-1]: intra-modal bottlenecks [B, 4, C, *g]
        grid = tuple(feats[-1].shape[3:])
        skips = [fuse(f.flatten(1, 2)) for fuse, f in zip(self.skip_fuse, feats[:-1])]
        skips.append(self.inter_modal(tokens, present, grid))
        logits = self.heads(self.decoder(skips))
        out: dict[str, torch.Tensor] = {
            "logits": logits[0],
            "logits_ds": logits[1:],
            "modality_features": feats[-1],  # intra-modal bottleneck features: the latent MedMAP aligns
        }
        if self.training or self.aux_in_eval:
            out["logits_modality"] = self._aux(feats, present)
        return out

    def _aux(self, feats: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """Shared decoder on each present modality's own features -> [B, 4, 3, *S] (absent rows exactly 0)."""
        res = []
        for m in range(N_MOD):
            pm = present[:, m]
            own = [f[:, m] for f in feats]
            if not bool(pm.any()):
                res.append(None)
                continue
            rows = present_rows(pm)
            lg = self.aux_head(self.aux_decoder([take_rows(f, rows) for f in own])[0])
            res.append(scatter_rows(lg, rows, present.shape[0]))
        ref = next(r for r in res if r is not None)
        return torch.stack([r if r is not None else torch.zeros_like(ref) for r in res], 1)

    @staticmethod
    def _seg(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t = downsample_target(target, logits.shape[2:])
        return soft_dice_loss(logits, t) + bce_loss(logits, t, batch_class_weights(t))

    def loss(self, outputs: dict[str, torch.Tensor], target: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        present = present.to(device=target.device, dtype=torch.bool)
        terms: dict[str, torch.Tensor] = {"fuse": self._seg(outputs["logits"], target)}
        total = terms["fuse"]
        if outputs.get("logits_ds"):
            terms["deep_supervision"] = sum(self._seg(lg, target) for lg in outputs["logits_ds"])
            total = total + terms["deep_supervision"]
        if "logits_modality" in outputs:
            for m, mod in enumerate(MODALITIES):
                if not bool(present[:, m].any()):
                    continue
                idx = present[:, m].nonzero(as_tuple=True)[0]
                terms[f"aux_{mod.value}"] = self._seg(outputs["logits_modality"][idx, m], target[idx])
                total = total + terms[f"aux_{mod.value}"]
        terms["total"] = total
        return terms


@register(
    "mmformer",
    MMFormerConfig,
    "mmFormer: per-modality conv encoders + intra-/inter-modal transformers, masked fusion, deep supervision",
    paper=PAPER,
    presets={
        "tiny": {"base_features": 4, "n_levels": 4, "embed_dim": 32, "num_heads": 2, "mlp_dim": 64,
                 "deep_supervision": 1, "patch_size": 32},
        "paper": {"base_features": 8, "n_levels": 5, "embed_dim": 512, "num_heads": 8, "mlp_dim": 4096,
                  "deep_supervision": 3, "patch_size": 128},
    },
)
def build_mmformer(config: MMFormerConfig) -> MMFormer:
    return MMFormer(config)
