"""RANO bidimensional measurement of enhancing lesions, and the imaging-only response category between two scans.

What is measured (Wen et al., "RANO 2.0", J Clin Oncol 41:5187-5199, 2023; Wen et al., J Clin Oncol 28:1963-1972,
2010, for the measurement itself):

* On the axial slices of the grid the measurement is made on (the T1c's native grid, or the reference series' when
  T1c is absent): the "axial" slices are those across the voxel axis closest to the scanner's head-foot axis, so an
  oblique-axial acquisition is measured in its own slice plane. For each enhancing lesion, the longest in-plane
  diameter over all those slices, and on the same slice the longest diameter perpendicular to it.
* Diameters are in mm from the voxel geometry (the affine): anisotropic and oblique grids are handled exactly.
  A lesion's extent is taken edge to edge (from the outer edges of its voxels, as calipers are placed on the
  lesion's border), so a voxelised ellipse of axes 2a x 2b measures about 2a x 2b (tests/test_rano.py).
  The perpendicular diameter is the longest run of lesion inside one line perpendicular to the longest diameter
  (a chord, not the lesion's width: a C-shaped lesion is not measured across its gap). A closed enhancing ring is
  measured across the necrosis it encloses (outer margin to outer margin, holes filled on the slice), as
  ring-enhancing glioblastoma is measured in practice; an open ring is not closed.
* Measurable: both diameters at least 10 mm, and the lesion on at least two slices. When slices are more than 5 mm
  apart (slice thickness plus gap, taken from the voxel spacing), the minimum diameter is twice the slice spacing.
* Target lesions: RANO 2.0 selects up to three measurable enhancing lesions, the largest first (by product of
  diameters here); their sum of products of perpendicular diameters (SPD) is the bidimensional tumour burden.
* Response (``response``): RANO 2.0's imaging thresholds, bidimensional (SPD) and volumetric (enhancing volume):
  decrease >= 50 % (SPD) or >= 65 % (volume) partial response; increase >= 25 % (SPD) or >= 40 % (volume)
  progression; no enhancing tumour left complete response; otherwise stable. A new measurable enhancing lesion is
  progression. These are measurements only: a RANO response also needs clinical status, corticosteroid dose,
  confirmation on a later scan and the reference scan (nadir or post-radiotherapy baseline), which the tool does
  not know.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MIN_DIAMETER_MM = 10.0
MAX_SLICE_SPACING_MM = 5.0
MAX_TARGETS = 3
PR_SPD, PD_SPD = -50.0, 25.0
PR_VOLUME, PD_VOLUME = -65.0, 40.0
CITATION = ("Wen PY et al. RANO 2.0: Update to the Response Assessment in Neuro-Oncology criteria for high- and "
            "low-grade gliomas in adults. J Clin Oncol 2023;41(33):5187-5199")


@dataclass
class Measurement:
    """One enhancing lesion's bidimensional measurement. Endpoints are scanner RAS mm, for drawing."""

    lesion: int
    slice_index: int
    slices: int
    longest_mm: float
    perpendicular_mm: float
    product_mm2: float
    measurable: bool
    reason: str
    longest_endpoints_ras: tuple[tuple[float, float, float], tuple[float, float, float]]
    perpendicular_endpoints_ras: tuple[tuple[float, float, float], tuple[float, float, float]] | None
    target: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def axial_axis(affine: np.ndarray) -> int:
    """The voxel axis closest to the scanner's head-foot (S-I) axis: slices across it are the axial slices."""
    cols = np.asarray(affine, float)[:3, :3]
    cols = cols / np.linalg.norm(cols, axis=0)
    return int(np.argmax(np.abs(cols[2])))


def slice_spacing(affine: np.ndarray) -> float:
    """Distance between axial slices in mm (slice thickness plus gap, as the voxel grid records it)."""
    a = np.asarray(affine, float)[:3, :3]
    return float(np.linalg.norm(a[:, axial_axis(affine)]))


def min_diameter(spacing_mm: float) -> float:
    """RANO's minimum measurable diameter: 10 mm, or twice the slice spacing when slices are over 5 mm apart."""
    return max(MIN_DIAMETER_MM, 2.0 * spacing_mm) if spacing_mm > MAX_SLICE_SPACING_MM else MIN_DIAMETER_MM


class _Plane:
    """One axial slice's in-plane geometry: voxel (p, q) <-> 2-D mm coordinates in an orthonormal in-plane basis."""

    def __init__(self, affine: np.ndarray, axis: int) -> None:
        self.affine = np.asarray(affine, float)
        self.axis = axis
        self.inplane = [a for a in range(3) if a != axis]
        e1, e2 = (self.affine[:3, a] for a in self.inplane)
        u1 = e1 / np.linalg.norm(e1)
        w = e2 - (e2 @ u1) * u1
        u2 = w / np.linalg.norm(w)
        self.to_2d = np.array([[e1 @ u1, e2 @ u1], [e1 @ u2, e2 @ u2]])  # (p, q) -> mm
        self.from_2d = np.linalg.inv(self.to_2d)
        self.step = float(min(np.linalg.norm(e1), np.linalg.norm(e2)))

    def to_world(self, k: int, points_2d: np.ndarray) -> np.ndarray:
        pq = np.atleast_2d(points_2d) @ self.from_2d.T
        idx = np.zeros((len(pq), 3))
        idx[:, self.axis] = k
        idx[:, self.inplane[0]], idx[:, self.inplane[1]] = pq[:, 0], pq[:, 1]
        return idx @ self.affine[:3, :3].T + self.affine[:3, 3]


_CORNERS = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])


def _longest(pixels: np.ndarray, plane: _Plane) -> tuple[float, np.ndarray, np.ndarray]:
    """Longest edge-to-edge diameter of a slice's pixels: the farthest pair of pixel corners (on their convex hull)."""
    corners = (pixels[:, None, :] + _CORNERS[None]).reshape(-1, 2) @ plane.to_2d.T
    try:
        from scipy.spatial import ConvexHull

        hull = corners[ConvexHull(corners).vertices]
    except Exception:  # noqa: BLE001 - degenerate (collinear) sets: use all corners
        hull = np.unique(corners, axis=0)
    d = np.linalg.norm(hull[:, None, :] - hull[None, :, :], axis=-1)
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    return float(d[i, j]), hull[i], hull[j]


def _perpendicular(slice_mask: np.ndarray, plane: _Plane, a: np.ndarray, b: np.ndarray
                   ) -> tuple[float, np.ndarray | None, np.ndarray | None]:
    """Longest chord perpendicular to a-b inside the lesion, sampled every quarter of the finest pixel."""
    d = (b - a) / np.linalg.norm(b - a)
    n = np.array([-d[1], d[0]])
    pix = np.argwhere(slice_mask)
    corners = (pix[:, None, :] + _CORNERS[None]).reshape(-1, 2) @ plane.to_2d.T
    h = plane.step / 4.0
    t = np.arange((corners @ d).min(), (corners @ d).max() + h, h)
    s = np.arange((corners @ n).min(), (corners @ n).max() + h, h)
    pts = t[:, None, None] * d + s[None, :, None] * n  # [T, S, 2] mm
    pq = np.rint(pts @ plane.from_2d.T).astype(int)
    inside = np.all((pq >= 0) & (pq < np.array(slice_mask.shape)), axis=-1)
    pq = np.where(inside[..., None], pq, 0)
    hit = inside & slice_mask[pq[..., 0], pq[..., 1]]
    best, where = 0, None
    for ti in range(len(t)):  # longest run of consecutive samples inside, per line
        row = np.concatenate(([0], hit[ti].astype(np.int8), [0]))
        edges = np.flatnonzero(np.diff(row))
        if len(edges):
            runs = edges[1::2] - edges[::2]
            r = int(np.argmax(runs))
            if runs[r] > best:
                best, where = int(runs[r]), (ti, int(edges[2 * r]), int(edges[2 * r + 1]) - 1)
    if where is None:
        return 0.0, None, None
    ti, s0, s1 = where
    length = best * h  # samples are h apart: n samples cover n*h edge to edge
    return float(length), t[ti] * d + (s[s0] - h / 2) * n, t[ti] * d + (s[s1] + h / 2) * n


def measure_lesion(mask: np.ndarray, affine: np.ndarray, number: int = 1) -> Measurement:
    """RANO bidimensional measurement of one lesion (a 3-D mask on the grid ``affine`` describes)."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("empty lesion mask")
    from .voxels import bbox_of

    box = bbox_of(mask, margin=1)  # measure inside the lesion's box: same geometry, a fraction of the voxels
    start = np.array([b.start for b in box], dtype=float)
    mask = mask[box]
    affine = np.asarray(affine, float).copy()
    affine[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    axis = axial_axis(affine)
    plane = _Plane(affine, axis)
    counts = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    ks = np.flatnonzero(counts)
    if not len(ks):
        raise ValueError("empty lesion mask")
    best = None
    for k in ks:
        sl = np.take(mask, k, axis=axis)
        length, p, q = _longest(np.argwhere(sl).astype(float), plane)
        if best is None or length > best[0] + 1e-9:
            best = (length, k, p, q)
    length, k, p, q = best
    from scipy.ndimage import binary_fill_holes

    sl = binary_fill_holes(np.take(mask, k, axis=axis))  # a ring is measured across its necrotic centre
    perp, r, s = _perpendicular(sl, plane, p, q)
    spacing = slice_spacing(affine)
    need = min_diameter(spacing)
    reasons = []
    if length < need or perp < need:
        reasons.append(f"diameters {length:.1f} x {perp:.1f} mm, under {need:.0f} mm")
    if len(ks) < 2:
        reasons.append("on one slice only")
    ends = tuple(tuple(round(float(v), 2) for v in w) for w in plane.to_world(int(k), np.stack([p, q])))
    perp_ends = (tuple(tuple(round(float(v), 2) for v in w) for w in plane.to_world(int(k), np.stack([r, s])))
                 if r is not None else None)
    return Measurement(lesion=number, slice_index=int(k + start[axis]), slices=int(len(ks)), longest_mm=round(length, 1),
                       perpendicular_mm=round(perp, 1), product_mm2=round(length * perp, 1),
                       measurable=not reasons, reason="; ".join(reasons) or "measurable",
                       longest_endpoints_ras=ends, perpendicular_endpoints_ras=perp_ends)  # type: ignore[arg-type]


def measure(numbered: np.ndarray, affine: np.ndarray, lesions: list[int] | None = None) -> dict:
    """Measure every numbered enhancing lesion (``lesions.find_lesions``' map) and choose the RANO 2.0 targets."""
    numbered = np.asarray(numbered)
    ids = lesions if lesions is not None else [int(v) for v in np.unique(numbered) if v]
    meas = [measure_lesion(numbered == i, affine, i) for i in ids]
    targets = sorted((m for m in meas if m.measurable), key=lambda m: -m.product_mm2)[:MAX_TARGETS]
    for m in targets:
        m.target = True
    spacing = slice_spacing(affine)
    return {"measurements": [m.as_dict() for m in meas],
            "targets": [m.lesion for m in targets],
            "spd_mm2": round(sum(m.product_mm2 for m in targets), 1),
            "measurable_lesions": sum(m.measurable for m in meas),
            "axial_axis": axial_axis(affine), "slice_spacing_mm": round(spacing, 2),
            "min_diameter_mm": min_diameter(spacing),
            "rules": f"{CITATION}; up to {MAX_TARGETS} measurable enhancing target lesions, largest first"}


def percent_change(before: float, after: float) -> float | None:
    """Change in % of ``before``; None when there was nothing before (a percentage of zero is undefined)."""
    if before <= 0:
        return None
    return round(100.0 * (after - before) / before, 1)


def response(spd_before: float, spd_after: float, et_ml_before: float, et_ml_after: float,
             new_measurable_lesions: int = 0) -> dict:
    """RANO 2.0 imaging-only categories from the change in SPD (bidimensional) and in enhancing volume
    (volumetric), each judged on its own. Categories: CR, PR, SD, PD, or "not evaluable" (nothing to compare)."""

    def category(before: float, after: float, pr: float, pd: float) -> tuple[str, str]:
        change = percent_change(before, after)
        if new_measurable_lesions:
            return "PD", f"{new_measurable_lesions} new measurable enhancing lesion(s)"
        if before <= 0:
            return ("not evaluable", "no measurable enhancing disease at baseline") if after <= 0 else \
                ("PD", "enhancing disease where there was none")
        if after <= 0:
            return "CR", "no enhancing disease left (imaging only)"
        if change <= pr:
            return "PR", f"{change:+.1f} % (partial response at <= {pr:.0f} %)"
        if change >= pd:
            return "PD", f"{change:+.1f} % (progression at >= +{pd:.0f} %)"
        return "SD", f"{change:+.1f} % (between {pr:.0f} % and +{pd:.0f} %)"

    bi, bi_why = category(spd_before, spd_after, PR_SPD, PD_SPD)
    vol, vol_why = category(et_ml_before, et_ml_after, PR_VOLUME, PD_VOLUME)
    return {"bidimensional": {"category": bi, "why": bi_why, "spd_change_percent": percent_change(spd_before, spd_after)},
            "volumetric": {"category": vol, "why": vol_why,
                           "et_volume_change_percent": percent_change(et_ml_before, et_ml_after)},
            "caveat": "Imaging measurements only. A RANO response also needs clinical status, corticosteroid dose, "
                      "confirmation on a later scan and the right reference scan (nadir or post-radiotherapy "
                      "baseline); this tool knows none of them.",
            "rules": f"{CITATION}: PR SPD <= {PR_SPD:.0f} % or volume <= {PR_VOLUME:.0f} %; PD SPD >= +{PD_SPD:.0f} % "
                     f"or volume >= +{PD_VOLUME:.0f} % or a new measurable lesion; CR no enhancing disease"}
