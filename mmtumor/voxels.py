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


def connected_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected components of a 3-D mask (8-connected in 2-D): the connectivity the tumour post-processing and
    the lesion table (``mmtumor.lesions``) share, so a lesion the report lists is one the post-processing kept."""
    from scipy.ndimage import generate_binary_structure, label

    mask = np.asarray(mask, dtype=bool)
    comp, n = label(mask, structure=generate_binary_structure(mask.ndim, mask.ndim))
    return comp, int(n)


def surface_mask(mask: np.ndarray) -> np.ndarray:
    """Surface voxels: the mask minus its erosion by the face-connected cross (voxels on the array border count)."""
    from scipy.ndimage import binary_erosion, generate_binary_structure

    mask = np.asarray(mask, dtype=bool)
    return mask & ~binary_erosion(mask, structure=generate_binary_structure(mask.ndim, 1), border_value=0)


def sample_on_grid(volume: np.ndarray, affine: np.ndarray, shape: Sequence[int], target_affine: np.ndarray,
                   world_map: np.ndarray | None = None, order: int = 0) -> np.ndarray:
    """``volume`` (on ``affine``'s grid) sampled at the voxel centres of another grid; ``world_map`` (4x4, RAS mm)
    maps a target-world point to the same anatomy in the volume's world (e.g. a rigid alignment of two studies).
    order 0 = nearest (labels), 1 = linear; outside the volume reads 0."""
    from scipy.ndimage import map_coordinates

    m = np.linalg.inv(np.asarray(affine, float)) @ (np.eye(4) if world_map is None else np.asarray(world_map, float))
    m = m @ np.asarray(target_affine, float)
    idx = np.stack(np.meshgrid(*[np.arange(int(s), dtype=np.float32) for s in shape], indexing="ij"), axis=0)
    coords = np.einsum("ij,j...->i...", m[:3, :3].astype(np.float32), idx) + m[:3, 3].astype(np.float32)[:, None, None, None]
    src = np.asarray(volume)
    out = map_coordinates(src.astype(np.float32) if order else src, coords, order=order, mode="constant", cval=0)
    return out.astype(src.dtype) if order == 0 else out
