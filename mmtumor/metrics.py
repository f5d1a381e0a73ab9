"""Segmentation metrics with the BraTS conventions: pure numpy/scipy, no torch.

Conventions (see docs/metrics.md for the exact definitions):

* Dice = 2|P∩R| / (|P|+|R|); **1.0 when both masks are empty**.
* HD95 in mm from the voxel spacing, surface based (surface = mask XOR its 6-connected erosion),
  surface-to-surface Euclidean distances in both directions, **pooled**, 95th percentile with linear
  interpolation — the definition of the official BraTS evaluation package (``brats-evaluation`` /
  panoptica). ``method="monai"`` gives MONAI's variant (max of the two directed 95th percentiles).
  **0.0 when both are empty, 373.13 mm when exactly one is empty** (BraTS).
* Sensitivity TP/(TP+FN), **1.0 when the reference is empty**; specificity TN/(TN+FP) over the whole
  image grid, **1.0 when the reference covers the whole grid**.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .errors import GeometryError, InputError, LabelError
from .labels import ED, ET, NCR, REGIONS, labels_to_regions

#: HD95 (mm) when exactly one of prediction and reference is empty: the BraTS 2021 convention
#: (the diagonal of the 240x240x155 mm BraTS volume, rounded).
HD95_ONE_EMPTY = 373.13
#: HD95 when both are empty: no boundary to miss, so no error.
HD95_BOTH_EMPTY = 0.0
METRIC_NAMES = ("dice", "hd95", "sens", "spec")
#: Metrics where larger is better (HD95 is the exception).
HIGHER_IS_BETTER = {"dice": True, "hd95": False, "sens": True, "spec": True}


def _pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred).astype(bool, copy=False)
    ref = np.asarray(ref).astype(bool, copy=False)
    if pred.shape != ref.shape:
        raise GeometryError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    return pred, ref


def _spacing(spacing: float | Sequence[float] | None, ndim: int) -> np.ndarray:
    if spacing is None:
        return np.ones(ndim)
    sp = np.atleast_1d(np.asarray(spacing, dtype=np.float64))
    if sp.size == 1:
        sp = np.repeat(sp, ndim)
    if sp.size != ndim or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(f"voxel spacing {tuple(sp.tolist())} does not fit a {ndim}-D image (need {ndim} positive values)")
    return sp


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice overlap; 1.0 when both are empty (nothing to find, nothing found)."""
    pred, ref = _pair(pred, ref)
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    if n_pred + n_ref == 0:
        return 1.0
    inter = int(np.count_nonzero(pred & ref))
    return 2.0 * inter / (n_pred + n_ref)


def sensitivity(pred: np.ndarray, ref: np.ndarray) -> float:
    """TP / (TP + FN); 1.0 when the reference is empty (no tumour voxel could be missed)."""
    pred, ref = _pair(pred, ref)
    n_ref = int(np.count_nonzero(ref))
    if n_ref == 0:
        return 1.0
    return int(np.count_nonzero(pred & ref)) / n_ref


def specificity(pred: np.ndarray, ref: np.ndarray) -> float:
    """TN / (TN + FP) over the whole grid; 1.0 when the reference has no negative voxel."""
    pred, ref = _pair(pred, ref)
    neg = ~ref
    n_neg = int(np.count_nonzero(neg))
    if n_neg == 0:
        return 1.0
    return int(np.count_nonzero(neg & ~pred)) / n_neg


def _bbox_crop(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to the bounding box of their union, padded by one background voxel.

    Every surface voxel lies inside the union's box, so nearest-surface distances are unchanged;
    the padding makes voxels on the image border count as surface, as scipy's erosion does
    (border_value=0). Erosion then works on the tumour's box instead of the 240x240x155 grid.
    """
    union = pred | ref
    slices = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        idx = np.flatnonzero(union.any(axis=other))
        slices.append(slice(int(idx[0]), int(idx[-1]) + 1))
    box = tuple(slices)
    return np.pad(pred[box], 1), np.pad(ref[box], 1)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels: the mask minus its erosion by the face-connected (6-neighbour in 3-D) cross."""
    from .voxels import surface_mask

    return surface_mask(mask)


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: float | Sequence[float] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: (pred surface -> ref surface, ref surface -> pred surface).

    Both masks must be non-empty. Distances are Euclidean in physical units (voxel spacing applied
    per axis) from the centre of each surface voxel to the centre of the nearest surface voxel of
    the other mask.
    """
    from scipy.spatial import cKDTree

    pred, ref = _pair(pred, ref)
    if not pred.any() or not ref.any():
        raise InputError("surface distances need two non-empty masks")
    sp = _spacing(spacing, pred.ndim)
    p, r = _bbox_crop(pred, ref)
    # Nearest-neighbour queries between the two surfaces' voxel centres (in mm): the same exact Euclidean distances
    # as a distance transform of the surface, but the cost follows the surface size, not the bounding-box volume.
    pts_pred = np.argwhere(_surface(p)) * sp
    pts_ref = np.argwhere(_surface(r)) * sp
    return cKDTree(pts_ref).query(pts_pred)[0], cKDTree(pts_pred).query(pts_ref)[0]


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: float | Sequence[float] | None = None,
         method: str = "brats") -> float:
    """95th-percentile Hausdorff distance in mm.

    ``method="brats"`` (default): 95th percentile of the pooled surface distances of both directions,
    as the official BraTS evaluation (panoptica) computes it. ``method="monai"``: the larger of the two
    directed 95th percentiles, as ``monai.metrics.compute_hausdorff_distance(percentile=95)``.
    BraTS conventions: 0.0 when both are empty, 373.13 mm when exactly one is empty.
    """
    if method not in ("brats", "monai"):
        raise InputError(f"unknown HD95 method '{method}' (use brats or monai)")
    pred, ref = _pair(pred, ref)
    spacing = tuple(_spacing(spacing, pred.ndim).tolist())  # validated even when the result is a convention
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not has_pred and not has_ref:
        return HD95_BOTH_EMPTY
    if has_pred != has_ref:
        return HD95_ONE_EMPTY
    d_pred, d_ref = surface_distances(pred, ref, spacing)
    if method == "brats":
        return float(np.percentile(np.concatenate([d_pred, d_ref]), 95))
    return float(max(np.percentile(d_pred, 95), np.percentile(d_ref, 95)))


def _check_internal(labels: np.ndarray, name: str) -> None:
    """Refuse label values outside 0/1/2/4, so a BraTS-2023 '3' is never silently ignored."""
    labels = np.asarray(labels)
    if labels.dtype.kind == "b":
        raise LabelError(f"{name} is a boolean mask; give a label map with values 0/1/2/4")
    if labels.dtype.kind == "u" and labels.dtype.itemsize <= 2:
        values = set(np.flatnonzero(np.bincount(labels.ravel(), minlength=1)).tolist())  # fast path
    else:
        uniq = np.unique(labels)
        if labels.dtype.kind == "f" and not np.all(np.mod(uniq, 1) == 0):
            raise LabelError(f"{name} holds non-integer label values")
        values = set(uniq.astype(np.int64).tolist())
    extra = values - {0, NCR, ED, ET}
    if extra:
        raise LabelError(f"{name} holds label values {sorted(extra)} outside the internal scheme 0/1/2/4 "
                         "(convert BraTS 2023 labels with mmtumor.labels.to_internal first)")


def region_metrics(pred_labels: np.ndarray, ref_labels: np.ndarray, spacing: float | Sequence[float] | None = None,
                   hd95_method: str = "brats") -> dict[str, dict[str, float]]:
    """Dice, HD95 (mm), sensitivity and specificity for WT, TC and ET from internal label maps.

    Both maps must be in the internal BraTS<=2021 scheme (0/1/2/4) on the reference's native grid.
    """
    pred_labels, ref_labels = np.asarray(pred_labels), np.asarray(ref_labels)
    if pred_labels.shape != ref_labels.shape:
        raise GeometryError(f"prediction shape {pred_labels.shape} differs from reference shape {ref_labels.shape}")
    _check_internal(pred_labels, "prediction")
    _check_internal(ref_labels, "reference")
    pred_regions, ref_regions = labels_to_regions(pred_labels), labels_to_regions(ref_labels)
    out: dict[str, dict[str, float]] = {}
    for i, region in enumerate(REGIONS):
        p, r = pred_regions[i], ref_regions[i]
        out[region] = {
            "dice": dice(p, r),
            "hd95": hd95(p, r, spacing, method=hd95_method),
            "sens": sensitivity(p, r),
            "spec": specificity(p, r),
        }
    return out


def spacing_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel spacing (mm) along the array axes: the column norms of the affine's 3x3 part (rotation-safe)."""
    a = np.asarray(affine, dtype=np.float64)
    if a.shape not in ((4, 4), (3, 3)):
        raise InputError(f"expected a 4x4 affine, got an array of shape {a.shape}")
    sp = np.linalg.norm(a[:3, :3], axis=0)
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError("the affine has a zero or invalid voxel size")
    return tuple(float(x) for x in sp)  # type: ignore[return-value]


def to_records(method: str, case_id: str, subset_code: str, metrics: Mapping[str, Mapping[str, float]],
               **extra: object) -> list[dict]:
    """``region_metrics`` output -> flat records for :func:`aggregate` and the report (one per region)."""
    return [{"method": method, "case_id": case_id, "subset_code": subset_code, "region": region,
             **{m: vals.get(m) for m in METRIC_NAMES}, **extra} for region, vals in metrics.items()]


def voxel_volume_mm3(affine_or_spacing: np.ndarray | Sequence[float] | float) -> float:
    """Volume of one voxel in mm³ from a 4x4 (or 3x3) affine, or from per-axis spacing."""
    a = np.asarray(affine_or_spacing, dtype=np.float64)
    if a.ndim == 2 and a.shape in ((4, 4), (3, 3)):
        vol = abs(float(np.linalg.det(a[:3, :3])))
    elif a.ndim <= 1 and a.size in (1, 3):
        vol = float(np.prod(np.repeat(a, 3) if a.size == 1 else a))
        if np.any(a <= 0):
            raise InputError(f"voxel spacing {a.tolist()} must be positive")
    else:
        raise InputError(f"expected a 4x4 affine or 3 spacings, got an array of shape {a.shape}")
    if not math.isfinite(vol) or vol <= 0:
        raise InputError("the affine has a zero or invalid voxel volume")
    return vol


def volumes_ml(labels: np.ndarray, affine_or_spacing: np.ndarray | Sequence[float] | float) -> dict[str, float]:
    """Volumes in mL of NCR, ED, ET and the regions TC (NCR+ET) and WT (NCR+ED+ET), internal labels."""
    labels = np.asarray(labels)
    _check_internal(labels, "label map")
    ml = voxel_volume_mm3(affine_or_spacing) / 1000.0
    n = {k: int(np.count_nonzero(labels == v)) for k, v in (("NCR", NCR), ("ED", ED), ("ET", ET))}
    return {
        "NCR": n["NCR"] * ml,
        "ED": n["ED"] * ml,
        "ET": n["ET"] * ml,
        "TC": (n["NCR"] + n["ET"]) * ml,
        "WT": (n["NCR"] + n["ED"] + n["ET"]) * ml,
    }


def _mean_sd(values: Sequence[float]) -> dict[str, float | int]:
    arr = np.asarray(values, dtype=np.float64)
    n = int(arr.size)
    return {
        "mean": float(arr.mean()) if n else float("nan"),
        "sd": float(arr.std(ddof=1)) if n > 1 else float("nan"),
        "n": n,
    }


def aggregate(records: Iterable[Mapping], metrics: Sequence[str] = METRIC_NAMES) -> dict:
    """Per case -> mean ± sd per subset -> mean over subsets, per method and region.

    A record is ``{method, case_id, subset_code, region, dice, hd95, sens, spec}``. The SD is the
    sample SD over cases (NaN when a subset has one case). The mean over subsets weights each subset
    equally (as in the A2FSeg paper's "mean" row), whatever its number of cases; ``n_subsets`` says
    how many subsets it covers. Returns ``{"per_subset": {method: {subset: {region: {metric: {mean, sd,
    n}}}}}, "overall": {method: {region: {metric: {mean, sd_over_subsets, n_subsets}}}}}``.
    Raises InputError on duplicate (method, case, subset, region) records or missing fields.
    """
    groups: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    seen: set[tuple] = set()
    for rec in records:
        try:
            key = (str(rec["method"]), str(rec["case_id"]), str(rec["subset_code"]), str(rec["region"]))
        except KeyError as exc:
            raise InputError(f"metric record lacks field {exc.args[0]!r}") from None
        if key in seen:
            raise InputError(f"duplicate metric record for method={key[0]} case={key[1]} subset={key[2]} region={key[3]}")
        seen.add(key)
        for m in metrics:
            if m in rec and rec[m] is not None:
                groups[(key[0], key[2], key[3])][m].append(float(rec[m]))
    per_subset: dict = {}
    for (method, subset, region), vals in groups.items():  # first-seen method order is kept
        per_subset.setdefault(method, {}).setdefault(subset, {})[region] = {m: _mean_sd(v) for m, v in vals.items()}
    overall: dict = {}
    for method, subsets in per_subset.items():
        by_region: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for regions in subsets.values():
            for region, stats in regions.items():
                for m, s in stats.items():
                    by_region[region][m].append(s["mean"])
        overall[method] = {
            region: {m: {"mean": float(np.mean(v)), "sd_over_subsets": float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"),
                         "n_subsets": len(v)} for m, v in ms.items()}
            for region, ms in by_region.items()
        }
    return {"per_subset": per_subset, "overall": overall}
