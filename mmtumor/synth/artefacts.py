"""Acquisition artefacts for phantoms: bias field, partial-volume blur, thick slices, Rician noise,
gamma and the global scale/offset that differ between scanners."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .fields import _interp_matrix, coarse_shape, smooth_noise, upsample


def bias_field(rng: np.random.Generator, shape: tuple[int, ...], spacing: np.ndarray, strength: float) -> np.ndarray:
    """Smooth multiplicative field exp(strength * n), n smooth unit noise over ~70 mm."""
    fov = tuple(float(n * s) for n, s in zip(shape, spacing))
    low = smooth_noise(rng, coarse_shape(fov, 70.0), 0.7)
    return np.exp(strength * upsample(low, shape)).astype(np.float32)  # type: ignore[arg-type]


def thick_slices(img: np.ndarray, axis: int, factor: int) -> np.ndarray:
    """Simulate a thick-slice acquisition: average slabs of ``factor`` slices, then interpolate back linearly."""
    if factor <= 1 or img.shape[axis] < 2 * factor:
        return img
    n = img.shape[axis]
    slab = ndi.uniform_filter1d(img, factor, axis=axis, mode="nearest")
    idx = np.arange(factor // 2, n, factor)
    thick = np.take(slab, idx, axis=axis)
    m = _interp_matrix(n, len(idx))
    # the interpolation matrix spans first..last thick slice; good enough for edges a few slices wide
    moved = np.moveaxis(thick, axis, -1)
    out = np.matmul(moved, m.T)
    return np.ascontiguousarray(np.moveaxis(out, -1, axis)).astype(np.float32)


def rician(rng: np.random.Generator, img: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of a complex signal with Gaussian noise in both channels (MR magnitude images are Rician)."""
    re = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
    im = sigma * rng.standard_normal(img.shape, dtype=np.float32)
    return np.sqrt(re * re + im * im)


def acquire(rng: np.random.Generator, img: np.ndarray, spacing: np.ndarray, randomize: bool, params: dict) -> np.ndarray:
    """Apply one scanner's artefacts to a noise-free image (WM ~ 1); records what it drew in ``params``."""
    strength = rng.uniform(0.05, 0.4 if randomize else 0.2)
    img = img * bias_field(rng, img.shape, spacing, strength)
    blur = rng.uniform(0.2, 1.2 if randomize else 0.7)
    img = ndi.gaussian_filter(img, blur / spacing, truncate=2.5)
    thick = None
    if rng.random() < (0.5 if randomize else 0.15):
        axis = int(rng.integers(3))
        mm = rng.uniform(2.0, 6.0 if randomize else 5.0)
        factor = int(round(mm / spacing[axis]))
        if factor > 1:
            img = thick_slices(img, axis, factor)
            thick = {"axis": axis, "mm": round(float(mm), 2)}
    if randomize and rng.random() < 0.5:
        gamma = float(np.exp(rng.uniform(-0.35, 0.35)))
        img = np.power(np.clip(img, 0, None), gamma)
    else:
        gamma = 1.0
    sigma = rng.uniform(0.005, 0.08 if randomize else 0.03)
    img = rician(rng, img.astype(np.float32, copy=False), float(sigma))
    params.update(bias=round(float(strength), 3), blur_mm=round(float(blur), 3), thick_slices=thick,
                  gamma=round(gamma, 3), noise_sigma=round(float(sigma), 4))
    return img.astype(np.float32, copy=False)
