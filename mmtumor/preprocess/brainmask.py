"""Refine an atlas brain mask on the image, and keep the tumour safe while doing it.

Why: the MNI152 atlas mask that `preprocess_case` warps onto a skull-on scan is affine, so it follows the head's
size and pose but not this brain's surface. On real brains wrapped in a synthetic head (skull, scalp, face, neck;
`mmtumor.synth.head`) it held 450-900 mL of non-brain (Dice 0.70-0.87 with the brain), and the model, which only
ever saw skull-stripped brains, drew tumour in orbital fat and under the cerebellum and changed its answer inside
the brain next to the scalp it could now see (docs/preprocessing.md, docs/bench-clinical-real.md).

The brain is separated from everything bright outside it by a dark shell, CSF and cortical bone, on T1, T1c and
FLAIR alike (on T2 the CSF is bright but the bone is not). So:

1. *evidence*: voxels above ``threshold`` x the tissue level (histogram peak inside the atlas mask's core) in
   **every** available modality (a thick-slice series blurs the shell; requiring all of them keeps it dark
   wherever one modality shows it);
2. *opening*: erode by ``open_mm``, keep the component that holds most of the atlas core, dilate back: thin
   bridges through the shell break;
3. *geodesic growth* by ``grow_mm`` inside the evidence (no jump across the shell), a closing by ``close_mm``, holes
   filled, restricted to the atlas mask dilated by ``band_mm``.

A dark, cystic or necrotic tumour that reaches the brain surface fails step 1 and would be cut away, so the
refined mask is never used alone: `Predictor` runs the model once on the atlas mask, keeps the tumour components
that lie mostly inside the refined mask, adds them (with a margin) to it, runs again on that mask, and keeps only
tumour that the first pass also found (`tumour_safe_mask`, `consensus_filter`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .normalize import DARK_FLOOR, histogram_peak
from ..voxels import largest_component

#: refinement parameters (mm or fractions), set once from anatomy, not fitted: shell = CSF 1-3 mm + bone 2-7 mm
THRESHOLD = 0.45
OPEN_MM = 3.0
CORE_MM = 15.0
GROW_MM = 4.0
CLOSE_MM = 3.0
BAND_MM = 3.0
#: a refined mask outside [MIN_FRACTION, 1.05] x the atlas mask's volume, or under MIN_ML, means it failed. The
#: atlas mask scales with the skull and held 1.3-1.9x the brain on the test heads; an atrophic 1.0 L brain in a large
#: head gives 0.45, so the floor is 0.4 (0.5 rejected a right 1084 mL mask against 2159 mL on a held-out test head)
MIN_FRACTION = 0.4
MIN_ML = 700.0
#: tumour-safety: a first-pass component counts as inside the brain when this fraction of it is inside the refined
#: mask; it joins the second pass's mask with MARGIN_MM around it
INSIDE_FRACTION = 0.5
MARGIN_MM = 5.0


def _box(mask: np.ndarray, pad: int) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - pad, 0)
    hi = np.minimum(idx.max(0) + pad + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def refine_brain_mask(data: np.ndarray, present, atlas_mask: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> tuple[np.ndarray | None, str]:
    """The atlas mask cut back to the dark CSF/bone shell around the brain; (None, why) when that fails.

    ``data``: [4, D, H, W] unmasked images on the working grid (modalities in ``present``); ``spacing`` in mm.
    """
    atlas_mask = np.asarray(atlas_mask, bool)
    sp = np.asarray(spacing, float)
    if not atlas_mask.any():
        return None, "empty atlas mask"
    box = _box(atlas_mask, int(np.ceil((BAND_MM + 8) / sp.min())))
    atlas = atlas_mask[box]
    core = ndi.distance_transform_edt(atlas, sampling=sp) > CORE_MM
    if core.sum() < 1000:
        return None, "atlas mask too small for a core"
    band = ndi.distance_transform_edt(~atlas, sampling=sp) <= BAND_MM
    evidence = band.copy()
    for i in np.flatnonzero(present):
        x = data[i][box]
        v = x[core]
        level = histogram_peak(v, above=DARK_FLOOR * float(np.percentile(v, 99)))
        if level <= 0:
            return None, f"no tissue level in modality {i}"
        evidence &= x > THRESHOLD * level
    eroded = ndi.distance_transform_edt(evidence, sampling=sp) > OPEN_MM
    lab, n = ndi.label(eroded)
    hits = np.bincount(lab[core & eroded], minlength=n + 1)
    hits[0] = 0
    if n == 0 or hits.max() == 0:
        return None, "no brain-like region in the atlas core"
    mask = (ndi.distance_transform_edt(lab != int(np.argmax(hits)), sampling=sp) <= OPEN_MM) & evidence
    steps = int(round(GROW_MM / sp.min()))
    if steps:
        mask = ndi.binary_dilation(mask, iterations=steps, mask=evidence)
    closed = ndi.distance_transform_edt(~mask, sampling=sp) <= CLOSE_MM
    mask = ndi.distance_transform_edt(closed, sampling=sp) > CLOSE_MM
    mask = largest_component(ndi.binary_fill_holes(mask) & band)
    out = np.zeros(atlas_mask.shape, bool)
    out[box] = mask
    ml, atlas_ml = out.sum() * sp.prod() / 1000.0, atlas_mask.sum() * sp.prod() / 1000.0
    if ml < MIN_ML or ml < MIN_FRACTION * atlas_ml or ml > 1.05 * atlas_ml:
        return None, f"refined mask of {ml:.0f} mL against the atlas's {atlas_ml:.0f} mL is implausible"
    return out, f"{ml:.0f} mL (atlas {atlas_ml:.0f} mL)"


def tumour_safe_mask(first_wt: np.ndarray, refined: np.ndarray, atlas_mask: np.ndarray, spacing=(1.0, 1.0, 1.0)
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(mask for the second pass, where tumour is allowed in its result).

    First-pass whole-tumour components mostly inside ``refined`` are the tumour; the second pass sees ``refined``
    plus the atlas mask within MARGIN_MM of them, so a dark tumour at the brain surface is not cut away, while
    components mostly outside it (orbital fat, neck) vanish from view.
    """
    keep = _mostly_inside(first_wt, refined)
    near = ndi.distance_transform_edt(~keep, sampling=spacing) <= MARGIN_MM if keep.any() else keep
    return refined | (near & atlas_mask), near


def consensus_filter(labels: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, int]:
    """Second-pass tumour components with less than half their voxels in ``allowed`` (near first-pass tumour)
    are set to background: a tumour must be found with both masks. Returns (labels, voxels removed)."""
    gone = (labels > 0) & ~_mostly_inside(labels > 0, allowed)
    out = labels.copy()
    out[gone] = 0
    return out, int(gone.sum())


def _mostly_inside(mask: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The connected components of ``mask`` with at least INSIDE_FRACTION of their voxels in ``region``."""
    lab, n = ndi.label(mask)
    if not n:
        return np.zeros(mask.shape, bool)
    ok = np.bincount(lab[region], minlength=n + 1) >= INSIDE_FRACTION * np.bincount(lab.ravel(), minlength=n + 1)
    ok[0] = False
    return ok[lab]
