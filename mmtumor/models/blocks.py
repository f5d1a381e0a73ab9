"""Shared building blocks: nnU-Net-style conv stages and a plain U-Net encoder/decoder (2D or 3D).

Every fusion method reuses these so that "a U-Net" means the same thing across methods:
conv -> InstanceNorm (affine) -> LeakyReLU(0.01); two convs per stage; the first conv of a stage is strided (stride 2)
to go down; transposed convs (kernel 2, stride 2) to go up; features ``base * 2**level`` capped at ``max_features``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

NEG_SLOPE = 0.01


def conv_nd(spatial_dims: int) -> type[nn.Module]:
    return {2: nn.Conv2d, 3: nn.Conv3d}[_check_dims(spatial_dims)]


def conv_transpose_nd(spatial_dims: int) -> type[nn.Module]:
    return {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[_check_dims(spatial_dims)]


def instance_norm_nd(spatial_dims: int) -> type[nn.Module]:
    return {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[_check_dims(spatial_dims)]


def _check_dims(spatial_dims: int) -> int:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    return spatial_dims


def level_features(base_features: int, n_levels: int, max_features: int) -> list[int]:
    """Channels per resolution level: ``base * 2**i`` capped at ``max_features`` (nnU-Net's 32..320)."""
    return [min(base_features * 2**i, max_features) for i in range(n_levels)]


class ConvNormAct(nn.Sequential):
    """conv -> InstanceNorm (affine) -> LeakyReLU(0.01), 'same' padding for odd kernels."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_dims: int = 3,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            conv_nd(spatial_dims)(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation),
            instance_norm_nd(spatial_dims)(out_channels, affine=True),
            nn.LeakyReLU(NEG_SLOPE, inplace=True),
        )


class ConvStage(nn.Sequential):
    """Two ConvNormAct; the first may be strided (nnU-Net downsamples with the stage's first conv)."""

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int = 3, stride: int = 1, kernel_size: int = 3) -> None:
        super().__init__(
            ConvNormAct(in_channels, out_channels, spatial_dims, kernel_size, stride=stride),
            ConvNormAct(out_channels, out_channels, spatial_dims, kernel_size),
        )


class SegHead(nn.Module):
    """1x1(x1) conv to the region logits."""

    def __init__(self, in_channels: int, out_channels: int = 3, spatial_dims: int = 3) -> None:
        super().__init__()
        self.conv = conv_nd(spatial_dims)(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def crop_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Crop ``x`` spatially to ``ref``'s size (a transposed conv overshoots by one voxel on odd sizes)."""
    if x.shape[2:] == ref.shape[2:]:
        return x
    slices = [slice(None), slice(None)] + [slice(0, s) for s in ref.shape[2:]]
    return x[tuple(slices)]


class UNetEncoder(nn.Module):
    """Stages at ``n_levels`` resolutions; returns the list of stage outputs, full resolution first."""

    def __init__(self, in_channels: int, features: Sequence[int], spatial_dims: int = 3) -> None:
        super().__init__()
        self.features = list(features)
        chans = [in_channels, *self.features]
        self.stages = nn.ModuleList(
            ConvStage(chans[i], chans[i + 1], spatial_dims, stride=1 if i == 0 else 2) for i in range(len(self.features))
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class UNetDecoder(nn.Module):
    """Transposed-conv up, concatenate the skip, ConvStage. Input: encoder skips (full res first).

    Returns the decoder features at every decoder level, full resolution first:
    ``[features[0] @ 1, features[1] @ 1/2, ..., features[-2] @ 1/2**(n_levels-2)]``.
    """

    def __init__(self, features: Sequence[int], spatial_dims: int = 3, skip_features: Sequence[int] | None = None) -> None:
        super().__init__()
        self.features = list(features)
        skip = list(skip_features) if skip_features is not None else self.features
        n = len(self.features)
        convT = conv_transpose_nd(spatial_dims)
        self.ups = nn.ModuleList(convT(skip[i + 1] if i == n - 2 else self.features[i + 1], self.features[i], 2, stride=2) for i in range(n - 1))
        self.stages = nn.ModuleList(ConvStage(self.features[i] + skip[i], self.features[i], spatial_dims) for i in range(n - 1))

    def forward(self, skips: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        x = skips[-1]
        outs: list[torch.Tensor] = []
        for i in range(len(self.features) - 2, -1, -1):
            up = crop_to(self.ups[i](x), skips[i])
            x = self.stages[i](torch.cat([up, skips[i]], dim=1))
            outs.append(x)
        return outs[::-1]


class UNet(nn.Module):
    """nnU-Net-style U-Net returning decoder features (no head): ``[full-res, 1/2, 1/4, ...]``.

    ``out[0]`` has ``base_features`` channels at the input resolution; ``out[1:]`` are the lower decoder levels a
    method can put deep-supervision heads on.
    """

    def __init__(self, in_channels: int, base_features: int = 32, n_levels: int = 5, max_features: int = 320, spatial_dims: int = 3) -> None:
        super().__init__()
        if n_levels < 2:
            raise ValueError("a U-Net needs at least 2 resolution levels")
        self.features = level_features(base_features, n_levels, max_features)
        self.encoder = UNetEncoder(in_channels, self.features, spatial_dims)
        self.decoder = UNetDecoder(self.features, spatial_dims)

    @property
    def decoder_features(self) -> list[int]:
        """Channels of the decoder outputs, full resolution first."""
        return self.features[:-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.decoder(self.encoder(x))


class DeepSupervisionHeads(nn.Module):
    """One SegHead per decoder level used for deep supervision (level 0 = full resolution = the main head)."""

    def __init__(self, channels: Sequence[int], n_lower: int, out_channels: int = 3, spatial_dims: int = 3) -> None:
        super().__init__()
        n = 1 + max(0, min(n_lower, len(channels) - 1))
        self.heads = nn.ModuleList(SegHead(channels[i], out_channels, spatial_dims) for i in range(n))

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [head(f) for head, f in zip(self.heads, feats, strict=False)]


def init_weights(module: nn.Module) -> None:
    """nnU-Net initialisation: Kaiming normal (a = 0.01) for convs, zero bias."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            nn.init.kaiming_normal_(m.weight, a=NEG_SLOPE)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def present_rows(mask: torch.Tensor) -> torch.Tensor | None:
    """Row indices where ``mask`` [B] is True; ``None`` when every row is (so callers can skip gather/scatter)."""
    if bool(mask.all()):
        return None
    return mask.nonzero(as_tuple=True)[0]


def take_rows(x: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    return x if rows is None else x.index_select(0, rows)


def scatter_rows(values: torch.Tensor, rows: torch.Tensor | None, batch: int) -> torch.Tensor:
    """Put per-present-row ``values`` back into a zero tensor of ``batch`` rows (absent rows stay exactly 0)."""
    if rows is None:
        return values
    out = values.new_zeros((batch, *values.shape[1:]))
    return out.index_copy(0, rows, values)


def run_present(fn, x: torch.Tensor, mask: torch.Tensor):
    """Run ``fn`` only on the rows of ``x`` whose ``mask`` [B] is True and scatter the result back (absent rows exactly 0).

    ``fn`` may return a tensor or a list of tensors. Returns ``None`` when no row is present, so callers can skip
    a whole modality branch (and fill zeros of a shape they know from another branch).
    """
    if not bool(mask.any()):
        return None
    rows = present_rows(mask)
    out = fn(take_rows(x, rows))
    if isinstance(out, torch.Tensor):
        return scatter_rows(out, rows, x.shape[0])
    return [scatter_rows(o, rows, x.shape[0]) for o in out]
