"""Lesions: the connected components of a segmentation, each with its size, position and neighbours.

Pure functions on an internal label map (0, 1 NCR, 2 ED, 4 ET) and its voxel -> RAS affine; nothing is resampled.

* Connectivity: 26 (voxels touching by a face, an edge or a corner belong to one lesion), the same as the tumour
  post-processing (``mmtumor.voxels.connected_components``).
* Minimum size: components under ``MIN_LESION_ML`` (0.05 mL = 50 mm³, e.g. a 4.6 mm cube) are not listed as lesions;
  their count and volume are reported as ``below_minimum`` so nothing disappears silently.
* Two kinds: ``tumour`` lesions are components of the whole tumour (NCR + ED + ET); ``enhancing`` lesions are
  components of ET alone (what RANO measures, ``mmtumor.rano``). Lesions are numbered by volume, largest first.
* Positions: centroid in scanner coordinates (RAS as NIfTI stores it, and LPS as DICOM viewers show it), on the
  working grid (voxel index of the preprocessed volume) and in atlas space (MNI152 mm when the case was registered to
  the atlas; for BraTS-preprocessed input the SRI24 grid centre is the origin). Hemisphere follows the atlas x axis
  (x > 0 right, patient's right); a lesion "crosses the midline" when it reaches more than ``MIDLINE_MARGIN_MM`` into
  both hemispheres. Without an atlas both are "unknown".
* Multifocality: the distance from a lesion's edge to the nearest edge of another lesion of the same kind, between
  the centres of the edge voxels, in mm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .labels import ED, ET, NCR
from .metrics import volumes_ml, voxel_volume_mm3
from .voxels import connected_components, surface_mask

CONNECTIVITY = 26
MIN_LESION_ML = 0.05
MIDLINE_MARGIN_MM = 2.0
KINDS = ("tumour", "enhancing")


@dataclass
class Lesion:
    """One connected component. Volumes in mL per compartment (NCR, ED, ET) and region (TC, WT)."""

    kind: str
    number: int
    voxels: int
    volumes_ml: dict[str, float]
    centroid_ras_mm: tuple[float, float, float]
    centroid_lps_mm: tuple[float, float, float]
    centroid_working_voxel: tuple[float, float, float] | None
    centroid_atlas_mm: tuple[float, float, float] | None
    hemisphere: str  # left | right | unknown
    crosses_midline: bool | None
    nearest_lesion_mm: float | None = None
    nearest_lesion: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class LesionTable:
    """All lesions of one kind, plus what fell under the minimum size."""

    kind: str
    lesions: list[Lesion]
    below_minimum: dict[str, float] = field(default_factory=dict)  # {"count": n, "volume_ml": v}

    def as_dict(self) -> dict:
        return {"kind": self.kind, "connectivity": CONNECTIVITY, "min_lesion_ml": MIN_LESION_ML,
                "lesions": [les.as_dict() for les in self.lesions], "below_minimum": self.below_minimum}


@dataclass
class AtlasFrame:
    """Where the atlas is: ``to_atlas`` maps scanner RAS mm to atlas mm (midline at x = 0); ``to_working`` maps
    scanner RAS mm to working-grid voxel indices. Either may be None."""

    name: str | None = None
    to_atlas: np.ndarray | None = None
    to_working: np.ndarray | None = None


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def _round3(v) -> tuple[float, float, float]:
    return tuple(round(float(x), 2) for x in v)  # type: ignore[return-value]


def lesion_mask(labels: np.ndarray, kind: str) -> np.ndarray:
    """The voxels a lesion of ``kind`` is made of."""
    if kind == "tumour":
        return np.isin(labels, (NCR, ED, ET))
    if kind == "enhancing":
        return np.asarray(labels) == ET
    raise ValueError(f"unknown lesion kind {kind!r} (one of {KINDS})")


def find_lesions(labels: np.ndarray, affine: np.ndarray, kind: str = "tumour", frame: AtlasFrame | None = None,
                 min_ml: float = MIN_LESION_ML) -> tuple[LesionTable, np.ndarray]:
    """The lesion table of ``kind`` and a map of lesion numbers (0 = none) on the same grid as ``labels``."""
    labels = np.asarray(labels)
    affine = np.asarray(affine, dtype=np.float64)
    frame = frame or AtlasFrame()
    comp, n = connected_components(lesion_mask(labels, kind))
    voxel_ml = voxel_volume_mm3(affine) / 1000.0
    sizes = np.bincount(comp.ravel(), minlength=n + 1)[1:]
    keep = [c + 1 for c in np.argsort(-sizes, kind="stable") if sizes[c] * voxel_ml >= min_ml]
    small = [c + 1 for c in range(n) if sizes[c] * voxel_ml < min_ml]
    from scipy.ndimage import find_objects

    boxes = find_objects(comp)
    numbered = np.zeros(labels.shape, np.int32)
    lesions: list[Lesion] = []
    for number, c in enumerate(keep, start=1):  # each lesion within its own box: cost follows the lesion's size
        box = boxes[c - 1]
        mask = comp[box] == c
        numbered[box][mask] = number
        offset = np.array([b.start for b in box], dtype=np.float64)
        lesions.append(_describe(kind, number, mask, labels[box], offset, affine, frame))
    _nearest(lesions, numbered, affine)
    below = {"count": len(small), "volume_ml": round(float(sum(sizes[c - 1] for c in small) * voxel_ml), 4)}
    return LesionTable(kind, lesions, below), numbered


def _describe(kind: str, number: int, mask: np.ndarray, labels: np.ndarray, offset: np.ndarray, affine: np.ndarray,
              frame: AtlasFrame) -> Lesion:
    """One lesion from its mask and labels inside its bounding box (``offset``: the box's first voxel)."""
    idx = np.argwhere(mask).astype(np.float64) + offset
    world = _apply(affine, idx)
    centroid = world.mean(axis=0)
    vols = {k: round(v, 4) for k, v in volumes_ml(np.where(mask, labels, 0), affine).items()}
    working = _round3(_apply(frame.to_working, centroid[None])[0]) if frame.to_working is not None else None
    atlas = hemisphere = crosses = None
    if frame.to_atlas is not None:
        ax = _apply(frame.to_atlas, world)
        atlas = _round3(ax.mean(axis=0))
        hemisphere = "right" if atlas[0] > 0 else "left"
        crosses = bool(ax[:, 0].max() > MIDLINE_MARGIN_MM and ax[:, 0].min() < -MIDLINE_MARGIN_MM)
    return Lesion(kind=kind, number=number, voxels=int(mask.sum()), volumes_ml=vols,
                  centroid_ras_mm=_round3(centroid), centroid_lps_mm=_round3(centroid * [-1, -1, 1]),
                  centroid_working_voxel=working, centroid_atlas_mm=atlas, hemisphere=hemisphere or "unknown",
                  crosses_midline=crosses)


def _nearest(lesions: list[Lesion], numbered: np.ndarray, affine: np.ndarray) -> None:
    """Edge-to-edge distance from each lesion to its nearest neighbour (in place)."""
    if len(lesions) < 2:
        return
    from scipy.spatial import cKDTree

    edge = surface_mask(numbered > 0)
    idx = np.argwhere(edge)
    owner = numbered[tuple(idx.T)]
    pts = _apply(affine, idx.astype(np.float64))
    for les in lesions:
        mine = owner == les.number
        tree = cKDTree(pts[~mine])
        dist, j = tree.query(pts[mine])
        best = int(np.argmin(dist))
        les.nearest_lesion_mm = round(float(dist[best]), 2)
        les.nearest_lesion = int(owner[~mine][j[best]])


def lesion_rows(tables: list[dict], measurements: dict[int, dict] | None = None) -> list[dict]:
    """Flat rows for lesions.csv from ``LesionTable.as_dict()`` tables: one per lesion; RANO columns on enhancing
    lesions."""
    measurements = measurements or {}
    rows = []
    for table in tables:
        for les in table["lesions"]:
            atlas = les["centroid_atlas_mm"]
            row = {"kind": les["kind"], "lesion": les["number"], "voxels": les["voxels"],
                   **{f"{k}_ml": les["volumes_ml"][k] for k in ("WT", "TC", "ET", "NCR", "ED")},
                   **{f"centroid_{a}_ras_mm": v for a, v in zip("xyz", les["centroid_ras_mm"])},
                   **{f"centroid_{a}_atlas_mm": v for a, v in zip("xyz", atlas or ("", "", ""))},
                   "hemisphere": les["hemisphere"],
                   "crosses_midline": "" if les["crosses_midline"] is None else les["crosses_midline"],
                   "nearest_lesion": les["nearest_lesion"] or "", "nearest_lesion_mm": les["nearest_lesion_mm"] or ""}
            m = measurements.get(les["number"]) if les["kind"] == "enhancing" else None
            row.update({"longest_diameter_mm": m["longest_mm"] if m else "",
                        "perpendicular_diameter_mm": m["perpendicular_mm"] if m else "",
                        "product_mm2": m["product_mm2"] if m else "", "measurable": m["measurable"] if m else "",
                        "target": m["target"] if m else ""})
            rows.append(row)
    return rows
