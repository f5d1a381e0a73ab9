"""Master-assistant cross-modal attention U-Net (Li et al., cross-modal deep representations; FuseUNet encoder).

- Multi-stream encoder: one stream per modality (1 input channel), each with half the channels of the single-stream
  U-Net at that level (FuseUNet's halved kernels); the streams are fused by channel-wise concatenation at every
  level, and the concatenation is the decoder's skip. The decoder has the single-stream U-Net's widths.
- Spatial attention from the *master* stream before every pooling: 1x1 conv reducing C -> C/r (r = 16), two 3x3
  convs dilated by d = 4, a 1x1 conv to one map, sigmoid -> heatmap H in (0, 1); every stream's features (master
  and assistants) are multiplied by H, then max-pooled into the next level.
- Generalisation to missing modalities: any number of assistant streams (absent ones are skipped and contribute
  zeros to the concatenation); the master of each sample is the first *present* modality in ``master_priority``
  (default T1c, FLAIR, T2, T1: contrast-enhanced first, then the sequences that show the most tumour extent).
  One attention block per level is shared by all streams and reads the features of each sample's master stream
  (with the default T1c master and all modalities present this is exactly the paper's single attention path).
- ``modalities`` restricts the streams (the paper's 2D two-modality setting: ``("T1c", "FLAIR")``,
  ``spatial_dims=2``); channels of modalities without a stream are ignored.
- Loss: soft Dice + BCE on the three regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError
from ..losses import dice_bce
from ..modalities import MODALITIES, parse_modality
from .blocks import ConvNormAct, ConvStage, SegHead, UNetDecoder, conv_nd, init_weights, level_features, run_present
from .registry import FusionModel, register

N_MOD = 4
N_REGIONS = 3
PAPER = (
    "C. Li, H. Sun, Z. Liu, M. Wang, H. Zheng, S. Wang. Learning Cross-Modal Deep Representations for Multi-Modal "
    "MR Image Segmentation. MICCAI 2019 (master/assistant attention; FuseUNet multi-stream encoder)"
)
DEFAULT_PRIORITY = ("T1c", "FLAIR", "T2", "T1")


@dataclass
class MasterAssistantConfig:
    """``base_features``/``max_features`` describe the single-stream U-Net; each stream has ``stream_fraction``
    of its channels per level (0.5 = FuseUNet)."""

    base_features: int = 32
    n_levels: int = 5
    max_features: int = 320
    stream_fraction: float = 0.5
    reduction: int = 16
    dilation: int = 4
    master: str = "T1c"
    master_priority: tuple[str, ...] = DEFAULT_PRIORITY
    modalities: tuple[str, ...] = ("T1", "T1c", "T2", "FLAIR")
    spatial_dims: int = 3


def _pool(spatial_dims: int) -> nn.Module:
    return nn.MaxPool3d(2) if spatial_dims == 3 else nn.MaxPool2d(2)


class SpatialAttention(nn.Module):
    """Heatmap from one stream's features: 1x1 reduce (C/r) -> 2 dilated 3x3 -> 1x1 to one map -> sigmoid."""

    def __init__(self, channels: int, reduction: int, dilation: int, spatial_dims: int) -> None:
        super().__init__()
        mid = max(1, channels // reduction)
        self.net = nn.Sequential(
            ConvNormAct(channels, mid, spatial_dims, kernel_size=1),
            ConvNormAct(mid, mid, spatial_dims, kernel_size=3, dilation=dilation),
            ConvNormAct(mid, mid, spatial_dims, kernel_size=3, dilation=dilation),
            conv_nd(spatial_dims)(mid, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


def resolve_masters(present: torch.Tensor, priority: list[int]) -> torch.Tensor:
    """Per sample, the index (canonical order) of the first present modality in ``priority``; -1 if none."""
    master = torch.full((present.shape[0],), -1, dtype=torch.long, device=present.device)
    for m in reversed(priority):
        master = torch.where(present[:, m], torch.full_like(master, m), master)
    return master


class MasterAssistantUNet(FusionModel):
    def __init__(self, config: MasterAssistantConfig) -> None:
        super().__init__(config)
        cfg, sd = config, config.spatial_dims
        self.streams_idx = [parse_modality(m).index for m in cfg.modalities]
        if len(set(self.streams_idx)) != len(self.streams_idx) or not self.streams_idx:
            raise InputError(f"modalities must be distinct and non-empty, got {cfg.modalities}")
        master = parse_modality(cfg.master).index
        rest = [parse_modality(m).index for m in cfg.master_priority]
        order = [master] + [m for m in rest if m != master] + [m for m in range(N_MOD) if m not in rest and m != master]
        self.priority = [m for m in order if m in self.streams_idx]
        self.unet_features = level_features(cfg.base_features, cfg.n_levels, cfg.max_features)
        self.stream_features = [max(1, round(c * cfg.stream_fraction)) for c in self.unet_features]
        S = len(self.streams_idx)
        chans = [1, *self.stream_features]
        self.stages = nn.ModuleList(
            nn.ModuleList(ConvStage(chans[i], chans[i + 1], sd) for i in range(cfg.n_levels)) for _ in range(S)
        )
        # one attention block per level, fed by whichever stream is the sample's master (all streams have equal widths)
        self.attention = nn.ModuleList(SpatialAttention(c, cfg.reduction, cfg.dilation, sd) for c in self.stream_features[:-1])
        self.pool = _pool(sd)
        self.decoder = UNetDecoder(self.unet_features, sd, skip_features=[S * c for c in self.stream_features])
        self.head = SegHead(self.unet_features[0], N_REGIONS, sd)
        init_weights(self)

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        present = self.check_inputs(x, present)
        masters = resolve_masters(present, self.priority)
        if bool((masters < 0).any()):
            names = ", ".join(MODALITIES[m].value for m in self.streams_idx)
            raise InputError(f"this model needs at least one of {names} in every sample")
        skips, heatmaps = [], []
        feats: list[torch.Tensor | None] = [x[:, m : m + 1] for m in self.streams_idx]
        for level in range(self.config.n_levels):
            if level > 0:
                feats = [None if f is None else self.pool(f) for f in feats]
            feats = [
                None if f is None else run_present(self.stages[s][level], f, present[:, m])
                for s, (m, f) in enumerate(zip(self.streams_idx, feats))
            ]
            ref = next(f for f in feats if f is not None)
            if level < self.config.n_levels - 1:  # attention before every pooling
                heat = self._heatmap(feats, masters, level, ref)
                feats = [None if f is None else f * heat for f in feats]
                heatmaps.append(heat)
            skips.append(torch.cat([f if f is not None else torch.zeros_like(ref) for f in feats], 1))
        logits = self.head(self.decoder(skips)[0])
        bottleneck = [None] * N_MOD
        for s, m in enumerate(self.streams_idx):
            bottleneck[m] = feats[s]
        ref = next(f for f in bottleneck if f is not None)
        return {
            "logits": logits,
            "heatmap": heatmaps[0] if heatmaps else logits.new_ones(logits.shape[0], 1, *logits.shape[2:]),
            "master": masters,
            "modality_features": torch.stack([f if f is not None else torch.zeros_like(ref) for f in bottleneck], 1),
        }

    def _heatmap(self, feats: list[torch.Tensor | None], masters: torch.Tensor, level: int, ref: torch.Tensor) -> torch.Tensor:
        """H [B, 1, *S]: each sample's heatmap comes from its own master stream's attention block."""
        heat = ref.new_zeros(ref.shape[0], 1, *ref.shape[2:])
        for s, m in enumerate(self.streams_idx):
            rows = masters == m
            if feats[s] is None or not bool(rows.any()):
                continue
            h = run_present(self.attention[level], feats[s], rows)
            heat = torch.where(rows.view(-1, *([1] * (heat.ndim - 1))), h, heat)
        return heat

    def loss(self, outputs: dict[str, torch.Tensor], target: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        seg = dice_bce(outputs["logits"], target)
        return {"seg": seg, "total": seg}


@register(
    "master-assistant",
    MasterAssistantConfig,
    "Master-assistant U-Net: one stream per modality, concatenation fusion, spatial attention from the master",
    paper=PAPER,
    presets={
        "tiny": {"base_features": 8, "n_levels": 3, "max_features": 32, "reduction": 4},
        "paper": {"base_features": 32, "n_levels": 5, "max_features": 320},
        "paper2d": {"base_features": 64, "n_levels": 5, "max_features": 1024, "modalities": ("T1c", "FLAIR"),
                    "spatial_dims": 2},
    },
)
def build_master_assistant(config: MasterAssistantConfig) -> MasterAssistantUNet:
    return MasterAssistantUNet(config)
