"""Healthy anatomy for phantoms: MNI152 2009 tissue maps (from nilearn, offline), placed once on a
BraTS-like 240x240x155 1 mm RAS grid, then per case deformed by a random affine, a smooth elastic
field and the tumour's mass effect, all folded into one coordinate map evaluated once.

Tissue maps are probabilities (partial volume kept): GM and WM from the templates, CSF = brain mask
minus GM and WM. The templates are averages of many brains, so their sulci are blurred; we sharpen
the maps and carve a fixed pattern of thin sulci into the cortex so CSF looks closer to a real scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

from .fields import coarse_shape, smooth_noise, upsample

#: BraTS-like reference grid: 240x240x155 voxels of 1 mm, RAS+ voxel axes.
REF_SHAPE: tuple[int, int, int] = (240, 240, 155)
#: Integer shift placing the MNI 1 mm template (197x233x189) so the brain is centred like BraTS.
_TEMPLATE_OFFSET = np.array([22, 3, 1])
#: voxel -> world (mm, RAS+) of the reference grid; world coordinates are MNI152 coordinates.
REF_AFFINE = np.array([[1.0, 0, 0, -120.0], [0, 1.0, 0, -137.0], [0, 0, 1.0, -73.0], [0, 0, 0, 1.0]])
#: centre of rotation/scaling in reference voxels (middle of the brain's bounding box).
REF_CENTRE = np.array([119.5, 119.5, 78.0])
#: choroid plexus glomera in the atria of the lateral ventricles (MNI mm), where T1c shows them brightly.
_PLEXUS_MNI = ((27.0, -40.0, 12.0), (-27.0, -40.0, 12.0), (20.0, -30.0, 18.0), (-20.0, -30.0, 18.0))
#: dural venous sinuses (MNI mm): straight sinus and the two transverse sinuses, ending at the confluence (torcular);
#: the superior sagittal sinus is traced along the midline brain surface (_sinus_map). Every T1c shows them brightly
#: and skull stripping leaves parts of them, so a model must learn that they are not enhancing tumour.
_STRAIGHT_SINUS_MNI = ((0.0, -50.0, 4.0), (0.0, -70.0, 0.0), (0.0, -88.0, -4.0))
_TRANSVERSE_SINUS_MNI = ((0.0, -96.0, -6.0), (22.0, -96.0, -10.0), (40.0, -88.0, -16.0), (52.0, -72.0, -22.0),
                         (54.0, -55.0, -30.0), (46.0, -42.0, -40.0))


@dataclass(frozen=True)
class Templates:
    """Tissue probability maps on the reference grid (float32, read-only)."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    plexus: np.ndarray  # smooth 0..1 weight near the choroid plexus (multiplied by CSF later)
    deep: np.ndarray  # smooth 0..1 weight of deep grey nuclei (basal ganglia, thalamus; multiplied by GM later)


def _place(data: np.ndarray) -> np.ndarray:
    """Put a template array (MNI 1 mm grid) onto the reference grid by an integer shift (no resampling)."""
    out = np.zeros(REF_SHAPE, np.float32)
    src = [slice(max(0, -o), min(s, r - o)) for o, s, r in zip(_TEMPLATE_OFFSET, data.shape, REF_SHAPE)]
    dst = [slice(sl.start + o, sl.stop + o) for sl, o in zip(src, _TEMPLATE_OFFSET)]
    out[tuple(dst)] = data[tuple(src)]
    return out


def _sharpen(gm: np.ndarray, wm: np.ndarray, csf: np.ndarray, gamma: float = 2.0):
    """Make tissue boundaries crisper (the MNI average is blurrier than one brain) keeping the sum."""
    total = gm + wm + csf
    powered = [np.power(p, gamma) for p in (gm, wm, csf)]
    norm = powered[0] + powered[1] + powered[2]
    norm[norm == 0] = 1.0
    return [(p / norm * total).astype(np.float32) for p in powered]


def _carve_sulci(gm: np.ndarray, csf: np.ndarray, mask: np.ndarray) -> None:
    """Thin CSF sheets in outer cortex from the zero level set of a fixed band-limited noise field."""
    rng = np.random.default_rng(20091)
    low = smooth_noise(rng, coarse_shape(gm.shape, 5.0), 1.0)
    noise = upsample(low, gm.shape)
    # "near the surface" from a blurred mask (cheaper than a distance transform; ~0 deeper than ~12 mm)
    outer = np.clip(2.0 * (1.0 - ndi.gaussian_filter(mask.astype(np.float32), 6.0)), 0.0, 1.0) * mask
    sheet = np.exp(-(noise / 0.22) ** 2) * outer
    moved = gm * sheet * 0.8
    gm -= moved
    csf += moved


@lru_cache(maxsize=1)
def load_templates() -> Templates:
    """MNI152 2009 GM/WM/brain mask (nilearn's bundled copies, no network), prepared once per process."""
    from .fields import single_thread

    with single_thread():
        return _prepare_templates()


def _prepare_templates() -> Templates:
    from nilearn import datasets

    gm_img = datasets.load_mni152_gm_template(resolution=1)
    mask = datasets.load_mni152_brain_mask(resolution=1).get_fdata() > 0
    gm = np.clip(gm_img.get_fdata(), 0, 1) * mask
    wm = np.clip(datasets.load_mni152_wm_template(resolution=1).get_fdata(), 0, 1) * mask
    over = gm + wm
    scale = np.where(over > 1, 1 / np.maximum(over, 1e-6), 1.0)
    gm, wm = gm * scale, wm * scale
    csf = np.clip(mask - gm - wm, 0, 1)
    gm, wm, csf = (_place(a.astype(np.float32)) for a in (gm, wm, csf))
    gm, wm, csf = _sharpen(gm, wm, csf)
    _carve_sulci(gm, csf, (gm + wm + csf) > 0.5)
    plexus = np.zeros(REF_SHAPE, np.float32)
    inv = np.linalg.inv(REF_AFFINE)
    for p in _PLEXUS_MNI:
        c = (inv @ np.array([*p, 1.0]))[:3]
        sl = tuple(slice(int(ci) - 14, int(ci) + 15) for ci in c)
        x, y, z = np.ogrid[sl]
        d2 = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2
        plexus[sl] = np.maximum(plexus[sl], np.exp(-d2 / (2 * 5.0**2)).astype(np.float32))
    # deep grey matter: grey matter far (> ~20 mm) from the brain surface, above the brainstem
    inner = np.clip(2.0 * ndi.gaussian_filter((gm + wm + csf > 0.5).astype(np.float32), 12.0) - 1.0, 0.0, 1.0)
    deep = np.clip((inner - 0.5) * 4.0, 0.0, 1.0) * (gm > 0.3)
    deep[:, :, :50] = 0.0
    deep = ndi.gaussian_filter(deep.astype(np.float32), 2.0)
    for a in (gm, wm, csf, plexus, deep):
        a.setflags(write=False)
    return Templates(gm=gm, wm=wm, csf=csf, plexus=plexus, deep=deep)


@lru_cache(maxsize=1)
def load_sinus_template() -> np.ndarray:
    """0..1 tubes of the dural venous sinuses on the reference grid (read-only). Separate from ``load_templates`` so
    that only domain-randomised phantoms, the one user, pay its ~3 s per process."""
    from .fields import single_thread

    tpl = load_templates()
    with single_thread():
        sinus = _sinus_map(tpl.gm + tpl.wm + tpl.csf > 0.5)
    sinus.setflags(write=False)
    return sinus


def _sinus_path_sagittal(mask: np.ndarray) -> np.ndarray:
    """Superior sagittal sinus: points (voxels) 3 mm inside the midline brain outline, from the frontal lobe over
    the vertex down to the confluence above the cerebellum, found by casting rays in the mid-sagittal plane."""
    inv = np.linalg.inv(REF_AFFINE)
    x0 = int(round((inv @ np.array([0.0, 0.0, 0.0, 1.0]))[0]))
    plane = mask[x0 - 2:x0 + 3].any(axis=0)  # the fissure itself is CSF; a 5 mm slab gives the outline
    centre = (inv @ np.array([0.0, -20.0, 10.0, 1.0]))[1:3]
    pts = []
    for ang in np.deg2rad(np.arange(20.0, 195.0, 2.5)):  # from frontal over the vertex down to the confluence
        d = np.array([np.cos(ang), np.sin(ang)])  # unit vector in (y, z): 0 = anterior, 90 = up, 180 = posterior
        r = np.arange(0.0, 140.0, 0.5)
        yz = centre[None] + r[:, None] * d[None]
        ok = (yz >= 0).all(1) & (yz[:, 0] < plane.shape[0] - 1) & (yz[:, 1] < plane.shape[1] - 1)
        inside = np.zeros(len(r), bool)
        idx = np.rint(yz[ok]).astype(int)
        inside[ok] = plane[idx[:, 0], idx[:, 1]]
        if inside.any():
            last = r[np.flatnonzero(inside)[-1]] - 3.0
            pts.append([x0, *(centre + last * d)])
    return np.array(pts)


def _tubes(shape: tuple[int, int, int], polylines: list[np.ndarray], radius: float) -> np.ndarray:
    """Tubes along polylines (voxel coordinates): full weight within ~1.35 ``radius`` voxels, Gaussian edge. One
    distance transform for all of them: the weight falls with distance, so the nearest polyline decides."""
    seeds = np.zeros(shape, bool)
    for points in polylines:
        dense = [points[0]]
        for a, b in zip(points[:-1], points[1:]):
            n = max(1, int(np.ceil(np.linalg.norm(b - a) / 0.5)))
            dense += [a + (b - a) * t for t in np.linspace(0.0, 1.0, n + 1)[1:]]
        idx = np.rint(np.array(dense)).astype(int)
        idx = idx[np.all((idx >= 0) & (idx < np.array(shape)), axis=1)]
        seeds[tuple(idx.T)] = True
    dist = ndi.distance_transform_edt(~seeds)
    return np.clip(2.5 * np.exp(-(dist**2) / (2 * radius**2)), 0.0, 1.0).astype(np.float32)  # solid core, soft edge


def _sinus_map(mask: np.ndarray) -> np.ndarray:
    """Dural venous sinuses on the reference grid (0..1): superior sagittal, both transverse (one radius), straight."""
    inv = np.linalg.inv(REF_AFFINE)

    def vox(mni):
        return np.array([(inv @ np.array([*p, 1.0]))[:3] for p in mni])

    transverse = np.array(_TRANSVERSE_SINUS_MNI)
    wide = _tubes(mask.shape, [_sinus_path_sagittal(mask), vox(transverse), vox(transverse * [-1.0, 1.0, 1.0])], 2.5)
    return np.maximum(wide, _tubes(mask.shape, [vox(_STRAIGHT_SINUS_MNI)], 2.0))


# ------------------------------------------------------------------------------------------- grid
def output_grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Spacing (mm) and affine of an output grid covering the reference field of view with ``shape`` voxels."""
    shape_arr = np.asarray(shape, float)
    spacing = np.asarray(REF_SHAPE, float) / shape_arr
    vox = np.eye(4)
    vox[:3, :3] = np.diag(spacing)
    vox[:3, 3] = 0.5 * spacing - 0.5  # voxel centres tile the same field of view
    return spacing, REF_AFFINE @ vox


def ref_coords_1d(shape: tuple[int, int, int]) -> list[np.ndarray]:
    """Reference-grid coordinates (mm) of the output voxel centres, per axis."""
    spacing, _ = output_grid(shape)
    return [(np.arange(n) + 0.5) * s - 0.5 for n, s in zip(shape, spacing)]


# ------------------------------------------------------------------------------- spatial transform
@dataclass
class SpatialParams:
    """Per-case random geometry: output point u (reference mm) -> template point c + M (u - c) + t + elastic(u)."""

    matrix: np.ndarray
    translation: np.ndarray
    elastic_mm: float
    elastic_step_mm: float
    brain_scale: float


def sample_spatial(rng: np.random.Generator, randomize: bool) -> SpatialParams:
    """Random rotation, scale and shear; BraTS brains are ~7% smaller than the MNI average in each axis."""
    rot_deg = 20.0 if randomize else 10.0
    angles = np.deg2rad(rng.uniform(-rot_deg, rot_deg, 3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    spread = 0.12 if randomize else 0.06
    brain_scale = float(rng.uniform(0.93 - spread, 0.93 + spread))
    aniso = rng.uniform(-0.04, 0.04, 3)
    scale = np.diag(1.0 / (brain_scale * (1 + aniso)))
    shear = np.eye(3) + np.triu(rng.uniform(-0.03, 0.03, (3, 3)), 1)
    matrix = rz @ ry @ rx @ shear @ scale
    return SpatialParams(
        matrix=matrix,
        translation=rng.uniform(-5, 5, 3),
        elastic_mm=float(rng.uniform(1.5, 4.0 if randomize else 3.0)),
        elastic_step_mm=float(rng.uniform(8.0, 14.0)),
        brain_scale=brain_scale,
    )


@dataclass
class MassEffect:
    """Radial push of the anatomy away from a tumour centre (template coordinates, mm)."""

    centre: np.ndarray
    length_mm: float
    strength: float  # 0..0.7: fraction by which tissue at the centre is pulled from

    def apply(self, coords: np.ndarray) -> None:
        """In place on coords [3, ...]: sample the template closer to the centre, so tissue looks pushed out."""
        d = coords - self.centre.reshape(3, *([1] * (coords.ndim - 1)))
        r2 = (d**2).sum(0)
        factor = 1.0 - self.strength * np.exp(-r2 / self.length_mm**2)
        coords -= d * (1.0 - factor)


def coarse_coords(rng: np.random.Generator, params: SpatialParams, shape: tuple[int, int, int],
                  step_mm: float = 4.0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Template coordinates [3, a, b, c] at coarse control nodes spanning the output voxel centres."""
    axes = ref_coords_1d(shape)
    fov = tuple(float(ax[-1] - ax[0]) for ax in axes)
    low_shape = coarse_shape(fov, step_mm)  # type: ignore[arg-type]
    nodes = [np.linspace(ax[0], ax[-1], n) for ax, n in zip(axes, low_shape)]
    u = np.stack(np.meshgrid(*nodes, indexing="ij")).astype(np.float64)
    rel = u - REF_CENTRE.reshape(3, 1, 1, 1)
    coords = np.einsum("ij,j...->i...", params.matrix, rel) + (REF_CENTRE + params.translation).reshape(3, 1, 1, 1)
    # elastic: noise on a coarser grid, smoothed, upsampled onto the control nodes
    el_shape = coarse_shape(fov, params.elastic_step_mm)  # type: ignore[arg-type]
    for a in range(3):
        coords[a] += params.elastic_mm * upsample(smooth_noise(rng, el_shape, 1.0), low_shape)
    return coords.astype(np.float32), nodes


def sample_maps(maps: list[np.ndarray], coords: np.ndarray, order: int = 1) -> list[np.ndarray]:
    """Evaluate template maps at template coordinates [3, ...] (zero outside)."""
    return [ndi.map_coordinates(m, coords, order=order, mode="constant", cval=0.0, prefilter=False) for m in maps]


def full_coords(low: np.ndarray, shape: tuple[int, int, int], box: tuple[slice, slice, slice]) -> np.ndarray:
    """Upsample coarse coordinates [3, a, b, c] to the output voxels inside ``box``."""
    return np.stack([upsample(low[a], shape, box) for a in range(3)])


def brain_box(low_brain: np.ndarray, shape: tuple[int, int, int], margin: int = 2) -> tuple[slice, slice, slice]:
    """Bounding box (output voxels) of the deformed brain, from its coarse sampling, with a margin."""
    idx = np.argwhere(low_brain > 0.01)
    if idx.size == 0:
        return tuple(slice(0, n) for n in shape)  # type: ignore[return-value]
    out = []
    for a, n in enumerate(shape):
        n_low = low_brain.shape[a]
        lo = (idx[:, a].min() - 1) * (n - 1) / (n_low - 1)
        hi = (idx[:, a].max() + 1) * (n - 1) / (n_low - 1)
        out.append(slice(max(0, int(np.floor(lo)) - margin), min(n, int(np.ceil(hi)) + margin + 1)))
    return tuple(out)  # type: ignore[return-value]
