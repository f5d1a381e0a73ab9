"""Voxel-array helpers that every layer needs (resampling, boxes, connected components), kept below all of them so
that preprocessing, inference and training share one copy and none imports another to get it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def resize(image: np.ndarray, shape: Sequence[int], order: int = 1) -> np.ndarray:
    """[C, *S] -> [C, *shape]; order 1 = trilinear, 0 = nearest (``torch.nn.functional.interpolate``)."""
    import torch
    import torch.nn.functional as F

    if tuple(image.shape[1:]) == tuple(shape):
        return image
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    mode = "trilinear" if order else "nearest"
    out = F.interpolate(t, size=tuple(int(s) for s in shape), mode=mode, **({"align_corners": False} if order else {}))
    return out[0].numpy()


def resample_to_spacing(image: np.ndarray, spacing: Sequence[float], target: float, order: int = 1) -> np.ndarray:
    """Resample [C, D, H, W] so voxels are ``target`` mm, keeping the field of view (voxel-centre convention of
    ``interpolate`` with align_corners=False: training caches and inference use this one function)."""
    shape = [max(1, int(round(n * s / target))) for n, s in zip(image.shape[1:], spacing)]
    return resize(image, shape, order)


def bbox_of(mask: np.ndarray, margin: int = 2) -> tuple[slice, ...]:
    """Slices of the box around the True voxels plus ``margin`` (clipped); the whole array when nothing is True."""
    if not mask.any():
        return tuple(slice(0, s) for s in mask.shape)
    idx = np.nonzero(mask)
    return tuple(slice(max(int(i.min()) - margin, 0), min(int(i.max()) + 1 + margin, s)) for i, s in zip(idx, mask.shape))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Largest connected component (face connectivity) with holes filled: a brain or head mask must never keep a
    stray island or leave a hole where a dark tumour lies."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask
    lab, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        mask = lab == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(mask)
