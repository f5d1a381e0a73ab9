"""Tumour label maps for phantoms, internal BraTS<=2021 labels: 1 NCR/NET, 2 edema, 4 enhancing.

Procedural lesions are built from a lobulated signed-distance proxy (union of stretched balls whose
surface is perturbed by smooth noise): the core is where it is negative, necrosis lies deeper than a
rim of varying thickness, the rim is enhancing except where a smooth field opens gaps, and edema
extends further, preferring white matter. Real expert label maps (``../shared/data/tumour-shapes``)
are placed as well, randomly rotated, flipped, scaled and deformed, when that folder exists.
Everything is computed in a small box around each lesion, in millimetres, so anisotropic or coarse
output grids work and the cost does not depend on the image size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .fields import coarse_shape, smooth_noise, upsample

NCR, ED, ET = 1, 2, 4


@dataclass
class LesionPlan:
    """Where and how big a lesion is, decided before the anatomy is warped (mass effect needs it)."""

    centre: np.ndarray  # reference-grid mm (output space)
    wt_radius: float  # mm, radius of a ball with the intended whole-tumour volume
    core_fraction: float  # core radius / whole-tumour radius
    enhancing: bool
    shape: str = "procedural"  # or the file name of a real shape
    params: dict = field(default_factory=dict)

    @property
    def core_radius(self) -> float:
        return self.wt_radius * self.core_fraction


def shapes_dir() -> Path:
    """``../shared/data/tumour-shapes`` beside the repository (absent on users' machines)."""
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "tumour-shapes"


@lru_cache(maxsize=1)
def load_real_shapes(folder: str | None = None) -> tuple[tuple[str, np.ndarray], ...]:
    """Real label maps cropped to their lesion, resampled to 1 mm RAS, internal labels. Empty if absent."""
    import nibabel as nib

    from ..labels import guess_scheme, to_internal

    root = Path(folder) if folder else shapes_dir()
    if not root.is_dir():
        return ()
    out = []
    for path in sorted(root.glob("*.nii*")):
        try:
            img = nib.as_closest_canonical(nib.load(str(path)))
            data = np.rint(np.asanyarray(img.dataobj)).astype(np.int16)
        except Exception:  # an unreadable optional shape is skipped, not fatal
            continue
        fg = np.nonzero(data)
        if not fg[0].size:
            continue
        crop = data[tuple(slice(int(a.min()), int(a.max()) + 1) for a in fg)]
        values = set(np.unique(crop).tolist())
        crop = to_internal(crop, "brats2023" if 3 in values and 4 not in values else guess_scheme(values))
        zooms = np.asarray(img.header.get_zooms()[:3], float)
        if not np.allclose(zooms, 1.0, atol=0.05):
            crop = ndi.zoom(crop, zooms, order=0)
        crop = crop.astype(np.uint8)
        crop.setflags(write=False)
        out.append((path.name.split(".")[0], crop))
    return tuple(out)


# ------------------------------------------------------------------------------------- planning
def plan_lesions(rng: np.random.Generator, candidates: np.ndarray, n_real_shapes: int,
                 randomize: bool) -> list[LesionPlan]:
    """Sizes, kinds and centres (chosen among candidate points, mm) of the lesions of one case."""
    if len(candidates) == 0:
        return []
    multifocal = rng.random() < 0.15
    n = 1 + (int(rng.integers(1, 3)) if multifocal else 0)
    plans = []
    for i in range(n):
        centre = candidates[int(rng.integers(len(candidates)))].astype(float)
        # whole-tumour radius: 70% BraTS-like 18..42 mm (~25..300 mL), 30% small 7..18 mm (~1.5..25 mL);
        # satellites of multifocal cases are smaller
        if i == 0:
            big = rng.random() < 0.7
            wt_radius = float(rng.uniform(18.0, 42.0) if big else np.exp(rng.uniform(np.log(7.0), np.log(18.0))))
        else:
            wt_radius = float(rng.uniform(5.0, 16.0))
        enhancing = bool(rng.random() > 0.2) if i == 0 else plans[0].enhancing
        kind = "procedural"
        if i == 0 and n_real_shapes and rng.random() < 0.35:
            kind = f"real:{int(rng.integers(n_real_shapes))}"
        plans.append(LesionPlan(centre=centre, wt_radius=wt_radius, core_fraction=float(rng.uniform(0.3, 0.8)),
                                enhancing=enhancing, shape=kind))
    return plans


# ------------------------------------------------------------------------------------- building
def _local_box(centre: np.ndarray, radius: float, axes: list[np.ndarray]) -> tuple[slice, ...] | None:
    sl = []
    for c, ax in zip(centre, axes):
        lo, hi = np.searchsorted(ax, c - radius), np.searchsorted(ax, c + radius)
        if hi <= lo:
            return None
        sl.append(slice(int(lo), int(hi)))
    return tuple(sl)


def _noise(rng: np.random.Generator, shape: tuple[int, ...], spacing: np.ndarray, scale_mm: float) -> np.ndarray:
    fov = tuple(float(n * s) for n, s in zip(shape, spacing))
    return upsample(smooth_noise(rng, coarse_shape(fov, scale_mm), 1.0), shape)  # type: ignore[arg-type]


def _random_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    q = rng.normal(size=3)
    q /= np.linalg.norm(q) + 1e-12
    ang = np.deg2rad(rng.uniform(-max_deg, max_deg))
    k = np.array([[0, -q[2], q[1]], [q[2], 0, -q[0]], [-q[1], q[0], 0]])
    return np.eye(3) + np.sin(ang) * k + (1 - np.cos(ang)) * (k @ k)


def _procedural(rng: np.random.Generator, plan: LesionPlan, rel: list[np.ndarray], sub_shape, spacing,
                wm: np.ndarray, randomize: bool) -> np.ndarray:
    """Labels of one procedural lesion in its local box; ``rel`` are mm offsets from the centre per axis."""
    R = plan.core_radius
    n_blobs = int(rng.integers(1, 5))
    dist = None
    for b in range(n_blobs):
        stretch = np.diag(rng.uniform(0.75, 1.35, 3)) @ _random_rotation(rng, 180)
        off = np.zeros(3) if b == 0 else rng.normal(size=3) * R * 0.55
        rb = R * (1.0 if b == 0 else rng.uniform(0.4, 0.85))
        d = [rel[a] - off[a] for a in range(3)]
        q = [stretch[i, 0] * d[0] + stretch[i, 1] * d[1] + stretch[i, 2] * d[2] for i in range(3)]
        s = np.sqrt(q[0] ** 2 + q[1] ** 2 + q[2] ** 2) - rb
        dist = s if dist is None else np.minimum(dist, s)
    lob = rng.uniform(0.15, 0.5)
    dist = dist - lob * R * _noise(rng, sub_shape, spacing, max(3.0, 0.45 * R))
    core = dist < 0
    labels = np.zeros(sub_shape, np.uint8)
    # edema: further out, along white matter
    extent = plan.wt_radius - R
    if rng.random() < 0.08:
        extent = rng.uniform(0.5, 3.0)
    wm_bias = rng.uniform(0.5, 1.2)
    ed_field = dist - extent * (1 + wm_bias * (wm - 0.5) + 0.35 * _noise(rng, sub_shape, spacing, max(4.0, 0.4 * extent)))
    labels[(ed_field < 0) & (wm + 0.0 > 0.05)] = ED
    labels[core] = NCR
    plan.params.update(n_blobs=n_blobs, lobulation=round(float(lob), 3), edema_extent_mm=round(float(extent), 2))
    if not plan.enhancing:
        plan.params["pattern"] = "non-enhancing"
        return labels
    if R < 7 and rng.random() < 0.5:
        et = core
        plan.params["pattern"] = "solid"
    else:
        thick = rng.uniform(1.5, max(2.0, min(8.0, 0.6 * R)))
        th = thick * (1 + 0.5 * _noise(rng, sub_shape, spacing, max(3.0, 0.4 * R)))
        et = core & (dist >= -np.maximum(th, 0.8))
        gap_q = rng.uniform(-3.0, -0.2) if rng.random() < 0.6 else -9.0  # share of the rim missing
        gaps = _noise(rng, sub_shape, spacing, max(4.0, 0.6 * R)) < gap_q * 0.5
        et &= ~gaps
        nodules = core & (_noise(rng, sub_shape, spacing, 4.0) > rng.uniform(1.2, 2.2))
        et |= nodules
        plan.params.update(pattern="rim", rim_mm=round(float(thick), 2))
    labels[et] = ET
    return labels


def _real_shape(rng: np.random.Generator, plan: LesionPlan, shape_arr: np.ndarray, rel: list[np.ndarray],
                sub_shape, spacing) -> np.ndarray:
    """A real expert label map, randomly rotated/flipped/scaled/deformed, sampled at the local mm offsets."""
    tc_vol = float(np.isin(shape_arr, (NCR, ET)).sum()) or float((shape_arr > 0).sum())
    wt_vol = float((shape_arr > 0).sum())
    target = 4.0 / 3.0 * np.pi * plan.wt_radius**3
    scale = float(np.clip((target / wt_vol) ** (1 / 3), 0.5, 1.6))
    rot = _random_rotation(rng, 30.0)
    flip = np.diag(rng.choice([-1.0, 1.0], 3))
    inv = np.linalg.inv(rot @ flip * scale)  # local mm -> shape voxels
    centre = (np.array(shape_arr.shape) - 1) / 2.0
    coords = [sum(inv[i, a] * rel[a] for a in range(3)) + centre[i] for i in range(3)]
    coords = [np.broadcast_to(c, sub_shape) for c in coords]
    amp = rng.uniform(0.0, 3.0)
    coords = np.stack([c + amp * _noise(rng, sub_shape, spacing, 10.0) for c in coords])
    if not plan.enhancing:  # a low-grade-like variant of the shape: enhancing becomes non-enhancing core
        shape_arr = np.where(shape_arr == ET, NCR, shape_arr).astype(np.uint8)
    labels = ndi.map_coordinates(shape_arr, coords, order=0, mode="constant", cval=0).astype(np.uint8)
    plan.params.update(scale=round(scale, 3), core_ml_source=round(tc_vol / 1000, 2))
    return labels


def lesion_radius_extent(plan: LesionPlan, shape_arr: np.ndarray | None) -> float:
    """Half-size (mm) of the box that surely contains the lesion."""
    if shape_arr is not None:
        return 0.5 * float(np.linalg.norm(shape_arr.shape)) * 1.6 + 8
    return plan.wt_radius * 1.9 + 8


def build_tumour(rng: np.random.Generator, plans: list[LesionPlan], axes: list[np.ndarray], spacing: np.ndarray,
                 wm: np.ndarray, csf: np.ndarray, brain: np.ndarray, randomize: bool = False) -> np.ndarray:
    """Label map (uint8, internal labels) over the grid whose voxel centres are ``axes`` (mm per axis)."""
    labels = np.zeros(tuple(len(a) for a in axes), np.uint8)
    real = load_real_shapes()
    for plan in plans:
        shape_arr = real[int(plan.shape.split(":")[1])][1] if plan.shape.startswith("real:") and real else None
        if shape_arr is None:
            plan.shape = "procedural"
        else:
            plan.params["source"] = real[int(plan.shape.split(":")[1])][0]
        box = _local_box(plan.centre, lesion_radius_extent(plan, shape_arr), axes)
        if box is None:
            continue
        sub_shape = tuple(s.stop - s.start for s in box)
        rel = [(axes[a][box[a]] - plan.centre[a]).reshape([-1 if i == a else 1 for i in range(3)]) for a in range(3)]
        if shape_arr is None:
            lesion = _procedural(rng, plan, rel, sub_shape, spacing, wm[box], randomize)
        else:
            lesion = _real_shape(rng, plan, shape_arr, rel, sub_shape, spacing)
        lesion[~brain[box]] = 0
        lesion[(lesion == ED) & (csf[box] > 0.6)] = 0  # fluid spaces do not swell
        current = labels[box]
        # later lesions never overwrite a more specific label (ET > NCR > ED)
        rank = np.array([0, 2, 1, 0, 3], np.uint8)
        labels[box] = np.where(rank[lesion] > rank[current], lesion, current)
    return labels
