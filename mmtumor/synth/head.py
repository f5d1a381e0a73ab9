"""Wrap a skull-stripped brain in a synthetic head, so the skull-on path of `segment` can be run on real anatomy.

Why: every labelled real scan we have is skull-stripped (BraTS), but clinical studies arrive with skull, scalp, face
and neck, and then `segment` must find the brain itself (MNI152 atlas registration) before the model sees anything.
This module puts the real brain back into a head: subarachnoid CSF with an enhancing dural edge, the inner table,
fatty diploe, the outer table, temporalis/galea muscle (thicker at the temples), subcutaneous fat and skin, each
layer's thickness varying smoothly around the head; below the brain a neck of muscle with fat planes and a vertebral
column; in front of it orbits (vitreous, orbital fat) and a face with air-filled maxillary sinuses; Rician noise in
the air. Tissue intensities are set relative to the brain's own white-matter level for each contrast (T1c or
FLAIR), from their usual appearance (fat bright on both, cortical bone and air dark, CSF dark on both).

It is a model, not a patient: real heads differ (fat-suppressed sequences, metal, very thin or thick scalp, neck
coverage, the skull base). The result tests the pipeline's mechanics on a real brain, not a vendor's images.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..modalities import Modality
from ..voxels import largest_component
from .artefacts import rician
from .fields import random_field

#: intensity of each head tissue relative to the brain's white-matter level, per contrast
TISSUE = {
    #            csf   dura  bone  diploe muscle fat   skin  vitreous air
    Modality.T1C: (0.30, 1.25, 0.04, 0.95, 0.55, 1.35, 0.70, 0.20, 0.0),
    Modality.T1: (0.30, 0.60, 0.04, 1.00, 0.55, 1.40, 0.70, 0.20, 0.0),
    Modality.FLAIR: (0.25, 0.55, 0.04, 0.75, 0.55, 1.00, 0.65, 0.15, 0.0),
    Modality.T2: (1.60, 0.40, 0.04, 0.80, 0.45, 0.95, 0.70, 1.70, 0.0),
}
_NAMES = ("csf", "dura", "bone", "diploe", "muscle", "fat", "skin", "vitreous", "air")


def head_tissues(brain: np.ndarray, affine: np.ndarray, seed: int = 0, pad_mm: tuple[float, float, float] = (25, 30, 80)
                 ) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice, slice]]:
    """Tissue map (indices into ``_NAMES``, -1 = brain) of a head around ``brain`` (bool, on ``affine``).

    The grid is padded by ``pad_mm`` (lateral and antero-posterior, superior, inferior: room for scalp and neck);
    returns (tissue map, padded affine, where the input grid lies in it). World coordinates of the input voxels are
    unchanged, so labels on ``affine`` still line up.
    """
    rng = np.random.default_rng(seed)
    affine = np.asarray(affine, float)
    sp = np.sqrt((affine[:3, :3] ** 2).sum(0))
    ras_axis = np.abs(affine[:3, :3]).argmax(0)  # the world axis each array axis runs along (axis-aligned input)
    pad_lo, pad_hi = np.zeros(3, int), np.zeros(3, int)
    for ax in range(3):
        w = ras_axis[ax]
        lateral, superior, inferior = pad_mm
        lo_mm, hi_mm = (lateral, lateral) if w < 2 else (inferior, superior)
        if affine[w, ax] < 0:  # the array runs against the world axis
            lo_mm, hi_mm = hi_mm, lo_mm
        pad_lo[ax], pad_hi[ax] = int(round(lo_mm / sp[ax])), int(round(hi_mm / sp[ax]))
    brain = largest_component(np.asarray(brain, bool))
    big = np.pad(brain, list(zip(pad_lo, pad_hi)))
    shift = np.eye(4)
    shift[:3, 3] = -pad_lo
    big_aff = affine @ shift
    inner = tuple(slice(int(a), int(a) + n) for a, n in zip(pad_lo, brain.shape))

    shape = big.shape
    ii = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = (big_aff[:3, :3] @ ii + big_aff[:3, 3:4]).reshape(3, *shape)  # RAS mm
    x, y, z = world
    bw = world[:, big]
    cx, cy = float(np.median(bw[0])), float(np.median(bw[1]))
    z_lo, z_hi = float(bw[2].min()), float(bw[2].max())
    y_front = float(bw[1].max())

    dist = ndi.distance_transform_edt(~big, sampling=sp).astype(np.float32)  # mm outside the brain
    vary = 1.0 + 0.25 * np.clip(random_field(rng, shape, tuple(sp), 40.0), -2, 2)  # layer thickness varies by +-25 %
    temple = np.clip((np.abs(x - cx) - 45.0) / 20.0, 0, 1) * np.clip(1 - np.abs(z - (z_lo + 0.55 * (z_hi - z_lo))) / 40.0, 0, 1)
    bounds = np.cumsum([2.5, 0.8, 1.8, 2.8, 1.6, 2.0, 4.5, 1.5])  # csf | dura | inner table | diploe | outer table | muscle | fat | skin
    t = dist / vary
    tissue = np.full(shape, 8, np.int8)  # air
    layer_tissue = (0, 1, 2, 3, 2, 4, 5, 6)
    muscle_extra = 8.0 * temple  # temporalis
    edges = [np.float32(b) for b in bounds]
    edges[5:] = [e + muscle_extra for e in edges[5:]]
    for k in range(len(edges) - 1, -1, -1):
        tissue[t <= edges[k]] = layer_tissue[k]

    # neck: an elliptic cylinder under the brain, muscle with fat planes, a vertebral column (marrow, cortical shell)
    neck = (((x - cx) / 55.0) ** 2 + ((y - (cy - 5.0)) / 60.0) ** 2 <= 1) & (z < z_lo + 35.0)
    fat_planes = random_field(rng, shape, tuple(sp), 12.0) > 1.0
    soft = neck & (tissue == 8)
    tissue[soft] = np.where(fat_planes[soft], 5, 4)
    spine_r = np.hypot(x - cx, y - (cy - 15.0))
    column = (spine_r <= 13.0) & (z < z_lo + 10.0)  # the brain is written over it below
    tissue[column & (spine_r > 10.0)] = 2
    tissue[column & (spine_r <= 10.0) & (spine_r > 5.0)] = 3
    tissue[column & (spine_r <= 5.0)] = 0  # the cord in its CSF sleeve (brain-like signal is not needed here)
    # face: orbits (globe, fat cone behind it) and maxillary sinuses (air) in soft tissue, in front of the neck
    # MNI152 landmarks scaled to this brain: globes at about (+-32, 52, -38) mm with the frontal pole at y 70 and the
    # cerebellum's lowest point at z -72 of a brain 150 mm tall, i.e. 34 mm above it and 18 mm behind the pole
    z_orbit = z_lo + 0.22 * (z_hi - z_lo)
    face = (((x - cx) / 60.0) ** 2 + ((y - (y_front - 25.0)) / 40.0) ** 2 + ((z - (z_orbit - 25.0)) / 55.0) ** 2 <= 1) & (tissue == 8)
    tissue[face] = 4
    for side in (-1, 1):
        ex, ey = cx + side * 32.0, y_front - 18.0
        tissue[((x - ex) ** 2 + (y - (ey - 14.0)) ** 2 + (z - z_orbit) ** 2 <= 16.0 ** 2) & (tissue >= 4)] = 5
        tissue[((x - ex) ** 2 + (y - ey) ** 2 + (z - z_orbit) ** 2 <= 12.0 ** 2) & (tissue >= 4)] = 7
        tissue[(((x - (cx + side * 25.0)) / 14.0) ** 2 + ((y - (y_front - 20.0)) / 16.0) ** 2
                + ((z - (z_orbit - 35.0)) / 15.0) ** 2 <= 1) & (tissue >= 4)] = 8
    tissue[big] = -1
    return tissue, big_aff, inner


def wrap_in_head(images: dict[Modality, np.ndarray], affine: np.ndarray, brain: np.ndarray | None = None,
                 seed: int = 0, noise: float = 0.025) -> tuple[dict[Modality, np.ndarray], np.ndarray, np.ndarray]:
    """The skull-stripped ``images`` (same grid, zero or constant background) inside a synthetic head.

    ``brain``: the brain mask (default: voxels differing from the corner value of the first image). Returns
    (images on the padded grid, its affine, the brain mask there). Each image keeps its brain voxels; head tissue is
    drawn at ``TISSUE`` times the brain's white-matter level (the 80th percentile inside the brain) with a smooth
    ±8 % texture, and Rician noise of ``noise`` times that level is added outside the brain, air included (the brain
    keeps its voxels, shifted so that the background is 0).
    """
    first = next(iter(images.values()))
    if brain is None:
        brain = first != first.flat[0]
    tissue, big_aff, inner = head_tissues(brain, affine, seed=seed)
    rng = np.random.default_rng(seed + 1)
    texture = 1.0 + 0.08 * np.clip(random_field(rng, tissue.shape, tuple(np.sqrt((big_aff[:3, :3] ** 2).sum(0))), 8.0), -2.5, 2.5)
    in_brain = tissue == -1
    out: dict[Modality, np.ndarray] = {}
    for m, img in images.items():
        img = np.asarray(img, np.float32)
        bg = float(img.flat[0])
        b_small = in_brain[inner]
        vals = img[b_small] - bg
        wm = float(np.percentile(vals, 80)) if vals.size else 1.0
        levels = np.asarray(TISSUE[m], np.float32) * wm
        head = np.where(in_brain, 0.0, levels[np.clip(tissue, 0, None)] * texture).astype(np.float32)
        head[inner] = np.where(b_small, img - bg, head[inner])
        noisy = rician(rng, np.clip(head, 0, None), noise * wm)
        out[m] = np.where(in_brain, head, noisy).astype(np.float32)  # the brain keeps its own voxels (and noise)
    return out, big_aff, in_brain
