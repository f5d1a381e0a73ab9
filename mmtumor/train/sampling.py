"""Patch sampling with tumour oversampling, and batch augmentation run on the training device.

Sampling happens in DataLoader workers on memory-mapped arrays (cheap crops); the costly spatial and intensity
augmentation runs batched on the device (GPU when training there), so data loading never starves it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..modalities import Subset
from .cache import CachedCase
from .schedules import draw_present


def crop_patch(case: CachedCase, patch: Sequence[int], rng: np.random.Generator, foreground: bool) -> tuple[np.ndarray, np.ndarray]:
    """A patch of ``case`` (zero-padded where the volume is smaller); centred on a tumour voxel if asked and possible."""
    shape = np.array(case.image.shape[1:])
    patch = np.array(patch)
    if foreground and len(case.fg_index):
        centre = case.fg_index[int(rng.integers(len(case.fg_index)))]
        start = centre - patch // 2 + rng.integers(-(patch // 4), patch // 4 + 1)
    else:
        start = np.array([int(rng.integers(min(0, s - p), max(s - p, 0) + 1)) for s, p in zip(shape, patch)])
    start = np.clip(start, np.minimum(0, shape - patch), np.maximum(shape - patch, 0))
    lo = np.maximum(start, 0)
    hi = np.minimum(start + patch, shape)
    img = np.zeros((case.image.shape[0], *patch), dtype=np.float32)
    reg = np.zeros((case.regions.shape[0], *patch), dtype=np.float32)
    dst = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
    src = tuple(slice(a, b) for a, b in zip(lo, hi))
    img[(slice(None), *dst)] = case.image[(slice(None), *src)]
    reg[(slice(None), *dst)] = case.regions_float((slice(None), *src))
    return img, reg


class PatchStream(torch.utils.data.IterableDataset):
    """Endless stream of (image, regions, present) patches; each worker/rank gets its own random stream."""

    def __init__(self, cases: list[CachedCase], patch: Sequence[int], schedule: str, seed: int, rank: int = 0,
                 fg_fraction: float = 1 / 3, mixed: Sequence[CachedCase] = (), mix_fraction: float = 0.0,
                 subsets: Sequence[Subset] | None = None) -> None:
        """``mixed`` cases (e.g. phantoms beside real scans) give a ``mix_fraction`` share of the patches; ``subsets``
        replaces the schedule (schedules.draw_present)."""
        self.cases, self.patch, self.schedule, self.subsets = cases, tuple(patch), schedule, subsets
        self.seed, self.rank, self.fg_fraction = seed, rank, fg_fraction
        self.mixed, self.mix_fraction = list(mixed), mix_fraction
        self.epoch = 1  # 1-based; the trainer updates it (workers are re-created per epoch)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        rng = np.random.default_rng([self.seed, self.rank, wid, self.epoch])
        while True:
            pool = self.mixed if self.mixed and rng.random() < self.mix_fraction else self.cases
            case = pool[int(rng.integers(len(pool)))]
            img, reg = crop_patch(case, self.patch, rng, foreground=rng.random() < self.fg_fraction)
            present = draw_present(self.schedule, self.epoch, case.present, rng, self.subsets)
            img[~present] = 0.0
            yield torch.from_numpy(img), torch.from_numpy(reg), torch.from_numpy(present)


def _rotation_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Batched 3D rotation matrices from angles [B, 3] (radians)."""
    cx, cy, cz = torch.cos(angles).unbind(1)
    sx, sy, sz = torch.sin(angles).unbind(1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], 1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


def _noise_like(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, made on ``x``'s device.

    Why: a batch of 8 x 4 x 64^3 voxels takes ~40 ms to draw on two CPU threads plus a host-to-device copy, every
    step, while a GPU waits. On the CPU the shared stream ``gen`` is used directly; elsewhere a device generator is
    seeded from it, so runs stay reproducible for a given seed and device.
    """
    if x.device.type == "cpu":
        return torch.randn(x.shape, generator=gen, dtype=x.dtype)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    return torch.randn(x.shape, generator=torch.Generator(device=x.device).manual_seed(seed), device=x.device, dtype=x.dtype)


def _smooth_field(gen: torch.Generator, shape: Sequence[int], channels: int, size: Sequence[int],
                  nodes: int = 4) -> torch.Tensor:
    """Smooth random fields [B, channels, *size] in [-1, 1]: uniform noise on a ``nodes``³ lattice, upsampled
    (cubic-like smoothness from trilinear interpolation of a coarse lattice)."""
    coarse = torch.rand(shape[0], channels, nodes, nodes, nodes, generator=gen) * 2 - 1
    return F.interpolate(coarse, size=tuple(size), mode="trilinear", align_corners=True)


def degrade_resolution(x: torch.Tensor, axis: int | None, factor: float) -> torch.Tensor:
    """One volume [*, D, H, W] as a coarser acquisition would give it, back on its own grid: averaged over
    ``factor`` voxels along ``axis`` (a thick-slice 2D sequence) or along all three axes (``axis`` None: a
    low-resolution scan), then interpolated back. Why: clinical FLAIR and T2 are often 4-6 mm 2D slices while the
    training cases are 1 mm isotropic."""
    size = x.shape[-3:]
    coarse = [max(1, round(n / factor)) if axis is None or a == axis else n for a, n in enumerate(size)]
    v = x.reshape(1, -1, *size)
    v = F.interpolate(F.interpolate(v, size=coarse, mode="area"), size=tuple(size), mode="trilinear",
                      align_corners=False)
    return v.reshape(x.shape)


def augment_batch(x: torch.Tensor, y: torch.Tensor, present: torch.Tensor, gen: torch.Generator,
                  p_spatial: float = 0.5, max_angle_deg: float = 20.0, scale_range=(0.8, 1.2),
                  p_intensity: float = 0.8, soft_labels: bool = False,
                  clinical: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Flips, rotation + scaling (one affine resampling), per-channel intensity scale/shift, gamma, noise.

    ``clinical`` adds what separates hospital scans from the BraTS training set: a smooth elastic displacement in
    the same resampling, a multiplicative bias field per modality (uncorrected scanners), and per modality
    thick slices or low resolution (2D sequences, older protocols), each with probability 0.3.
    Works on the device of ``x``; absent channels stay exactly zero. Resampled targets are thresholded at 0.5
    unless ``soft_labels`` (then the interpolated fractions are kept, like the soft cache).
    """
    b = x.shape[0]
    dev = x.device

    def rand(*shape):  # drawn on the CPU (one seeded stream), so decisions below need no device sync
        return torch.rand(*shape, generator=gen, device="cpu")

    # spatial: rotation + scaling (+ elastic) via one grid (trilinear image, nearest-ish labels via threshold)
    do = rand(b) < p_spatial
    elastic = (rand(b) < 0.3) if clinical else torch.zeros(b, dtype=torch.bool)
    if bool(do.any()) or bool(elastic.any()):
        angles = (rand(b, 3) * 2 - 1) * math.radians(max_angle_deg) * do[:, None]
        scale = scale_range[0] + rand(b, 1) * (scale_range[1] - scale_range[0])
        scale = torch.where(do[:, None], scale, torch.ones_like(scale))
        theta = torch.zeros(b, 3, 4)
        theta[:, :, :3] = _rotation_matrix(angles) / scale[:, :, None]
        grid = F.affine_grid(theta.to(dev), list(x.shape), align_corners=False)
        if bool(elastic.any()):  # up to ~2 voxels of smooth displacement (grid units: 2 / side per voxel)
            amp = elastic.float().view(b, 1, 1, 1, 1) * 4.0 / max(x.shape[2:])
            disp = _smooth_field(gen, x.shape, 3, x.shape[2:], nodes=5) * amp
            grid = grid + disp.permute(0, 2, 3, 4, 1).to(dev, grid.dtype)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        y = F.grid_sample(y, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if not soft_labels:
            y = (y > 0.5).to(y.dtype)
    # flips along each axis
    for axis in (2, 3, 4):
        flip = rand(b) < 0.5
        if bool(flip.any()):
            f = flip.to(dev).view(-1, 1, 1, 1, 1)
            x = torch.where(f, torch.flip(x, (axis,)), x)
            y = torch.where(f, torch.flip(y, (axis,)), y)
    # intensity, per sample and channel, inside the brain only (skull-stripped background stays 0)
    c = x.shape[1]
    brain = (x.abs().sum(1, keepdim=True) > 0).to(x.dtype)
    if clinical:
        x = _clinical_acquisition(x, brain, rand, gen)
    on = (rand(b, c) < p_intensity).float().view(b, c, 1, 1, 1)
    mult = 1 + on * (rand(b, c).view(b, c, 1, 1, 1) * 0.4 - 0.2)
    shift = on * (rand(b, c).view(b, c, 1, 1, 1) * 0.4 - 0.2)
    x = (x * mult.to(dev) + shift.to(dev)) * brain
    gamma = torch.exp(on * (rand(b, c).view(b, c, 1, 1, 1) * 0.6 - 0.3)).to(dev)
    mn = x.amin(dim=(2, 3, 4), keepdim=True)
    rng_ = (x.amax(dim=(2, 3, 4), keepdim=True) - mn).clamp_min(1e-6)
    x = (((x - mn) / rng_) ** gamma * rng_ + mn) * brain
    noise_sd = (on * rand(b, c).view(b, c, 1, 1, 1) * 0.1).to(dev)
    x = x + _noise_like(x, gen) * noise_sd * brain
    x = x * present.view(b, c, 1, 1, 1).to(x.dtype)
    return x, y


def _clinical_acquisition(x: torch.Tensor, brain: torch.Tensor, rand, gen: torch.Generator) -> torch.Tensor:
    """Per sample and modality, each with probability 0.3: a smooth bias field (log-amplitude up to 0.3), and thick
    slices along a random axis (factor 2-3 on the working grid: 4-6 mm at 2 mm) or, one time in three, isotropic
    low resolution (factor 1.5-2)."""
    b, c = x.shape[:2]
    bias = (rand(b, c) < 0.3).float().view(b, c, 1, 1, 1)
    if bool(bias.any()):
        field = _smooth_field(gen, x.shape, c, x.shape[2:], nodes=3) * 0.3 * bias
        x = x * torch.exp(field.to(x.device, x.dtype))
    coarse = rand(b, c) < 0.3
    kinds, factors = rand(b, c), rand(b, c)
    axes = torch.randint(0, 3, (b, c), generator=gen)
    for i, j in coarse.nonzero().tolist():
        if float(kinds[i, j]) < 1 / 3:
            x[i, j] = degrade_resolution(x[i, j], None, 1.5 + 0.5 * float(factors[i, j]))
        else:
            x[i, j] = degrade_resolution(x[i, j], int(axes[i, j]), 2.0 + float(factors[i, j]))
    return x * brain
