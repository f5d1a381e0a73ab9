"""The one intensity normalisation of the project, shared by the phantom generator, training and inference.

Two methods, both computed inside the brain only (background stays 0):

- ``zscore``: (x - mean) / std over brain voxels. Invariant to any scanner scale and offset, but the
  statistics include the tumour: a large bright edema shifts every normal tissue's value.
- ``peak``: x / p, p = the main mode of a smoothed histogram of brain voxels (normal brain tissue,
  WM/GM, dominates every modality's histogram) above a dark floor (``DARK_FLOOR``). Anchors normal tissue
  at 1 whatever the tumour burden; invariant to scale only, so inputs that are already standardised
  (negative values inside the brain, e.g. the BraTS 2013 ``*_subtrMeanDivStd`` files) are first shifted so
  their 0.5th brain percentile is 0.

The default is chosen by measurement against real scans: see docs/synth.md ("Intensity normalisation").
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from ..voxels import largest_component

METHODS = ("zscore", "peak")
#: chosen by the measurement documented in docs/synth.md
DEFAULT_METHOD = "peak"
#: ``peak`` ignores modes below this fraction of the 99th brain percentile: air, cortical bone and the dark gap
#: around the brain when an atlas mask includes a shell of non-brain (skull-on scans). Without it such a mask could
#: put the mode on that dark shell and scale the image up 25-fold (measured on a real brain in a synthetic head,
#: docs/preprocessing.md); normal tissue's mode lies far above it, and on 136 phantom images and 12 real brains the
#: peak is bit-identical with and without the floor.
DARK_FLOOR = 0.1


def brain_mask_from_image(images) -> np.ndarray:
    """Brain mask of skull-stripped images: union over modalities of voxels clearly above the background.

    ``images`` is one array, a sequence of arrays or a mapping of them (same shape). The background of
    skull-stripped scans is 0 but may carry a little noise or a constant offset (z-scored files), so a voxel
    counts when it differs from the background value (the most common value on the image border) by more than
    2% of the robust foreground range; the largest connected component is kept and holes are filled.
    """
    arrays = list(images.values()) if isinstance(images, Mapping) else (
        [images] if isinstance(images, np.ndarray) else list(images))
    arrays = [np.asarray(a) for a in arrays if a is not None]
    if not arrays:
        raise InputError("no image to compute a brain mask from")
    shape = arrays[0].shape
    mask = np.zeros(shape, bool)
    for a in arrays:
        if a.shape != shape:
            raise InputError(f"images for one brain mask differ in shape: {shape} vs {a.shape}")
        mask |= _foreground(a.astype(np.float32, copy=False))
    return largest_component(mask)


def _border_value(a: np.ndarray) -> float:
    border = np.concatenate([a[0].ravel(), a[-1].ravel(), a[:, 0].ravel(), a[:, -1].ravel(),
                             a[:, :, 0].ravel(), a[:, :, -1].ravel()])
    return float(np.median(border))


def _foreground(a: np.ndarray) -> np.ndarray:
    bg = _border_value(a)
    diff = np.abs(a - bg)
    nz = diff[diff > 0]
    if nz.size == 0:
        return np.zeros(a.shape, bool)
    hi = float(np.percentile(nz[:: max(1, nz.size // 200000)], 99))
    return diff > 0.02 * hi


def histogram_peak(values: np.ndarray, bins: int = 256, smooth_bins: float = 3.0, above: float | None = None) -> float:
    """Main mode of a Gaussian-smoothed histogram of ``values`` clipped to their 0.5-99.5 percentile range.

    ``above``: only bins centred above this value can be the mode (the histogram itself is unchanged, so when the
    main mode is above it the answer is the same as without it).
    """
    values = np.asarray(values, np.float64).ravel()
    if values.size == 0:
        raise InputError("cannot find a histogram peak in an empty brain mask")
    sample = values[:: max(1, values.size // 500000)]
    lo, hi = np.percentile(sample, [0.5, 99.5])
    if hi <= lo:
        return float(hi)
    hist, edges = np.histogram(sample, bins=bins, range=(lo, hi))
    hist = ndi.gaussian_filter1d(hist.astype(np.float64), smooth_bins)
    if above is not None:
        allowed = 0.5 * (edges[:-1] + edges[1:]) > above
        if allowed.any():
            hist = np.where(allowed, hist, -1.0)
    k = int(np.argmax(hist))
    return float(0.5 * (edges[k] + edges[k + 1]))


def normalize_intensity(image: np.ndarray, mask: np.ndarray | None = None, method: str | None = None) -> np.ndarray:
    """Normalised float32 copy of ``image`` (never modified); 0 outside ``mask`` (default: its own foreground)."""
    method = DEFAULT_METHOD if method is None else method
    if method not in METHODS:
        raise InputError(f"unknown normalisation '{method}' (use one of {', '.join(METHODS)})")
    image = np.asarray(image, np.float32)
    mask = brain_mask_from_image(image) if mask is None else np.asarray(mask, bool)
    if mask.shape != image.shape:
        raise InputError(f"mask shape {mask.shape} differs from image shape {image.shape}")
    out = np.zeros(image.shape, np.float32)
    vals = image[mask].astype(np.float64)
    if vals.size == 0:
        return out
    if method == "zscore":
        sd = float(vals.std())
        out[mask] = (vals - vals.mean()) / (sd if sd > 0 else 1.0)
        return out
    if np.percentile(vals, 1) < 0:  # already standardised input: restore a zero below the darkest tissue
        vals = vals - float(np.percentile(vals, 0.5))
    peak = histogram_peak(vals, above=DARK_FLOOR * float(np.percentile(vals[:: max(1, vals.size // 500000)], 99)))
    out[mask] = vals / (peak if peak > 0 else (float(vals.max()) or 1.0))
    return out
