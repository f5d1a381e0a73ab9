"""Spatial preprocessing of raw clinical scans and its exact inverse back to the reference's native grid.

Pipeline (see docs/preprocessing.md): load -> pick the reference modality -> define a 1 mm working grid aligned
with the reference's own (reoriented) axes -> resample the reference -> rigidly register every other modality to
the reference (SimpleITK, Mattes mutual information, multi-resolution) and resample it once onto the working grid
-> brain extraction (MNI152 atlas registration, or the existing zero background of skull-stripped input) ->
optional N4 -> arrays ``[4, D, H, W]``. BraTS-preprocessed input (one 1 mm grid, skull-stripped) only gets a
lossless reorientation (the identity for BraTS files) and no interpolation at all.

Geometry conventions: every affine here is nibabel's voxel -> RAS+ mm. SimpleITK works in LPS; the conversion
happens in ``_to_sitk`` / ``_grid_image`` only. The working orientation defaults to ``LPS`` axis codes (nibabel's
reading of BraTS files, i.e. the array layout models are trained on), so BraTS input and raw input give arrays laid
out the same way; pass ``orientation="RAS"`` for RAS canonical arrays.

SimpleITK and nilearn are imported inside functions: ``import mmtumor`` stays light.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import GeometryError, InputError
from ..voxels import largest_component
from ..modalities import MODALITIES, Modality, parse_modality

#: Reference priority: the contrast whose grid the result is returned in.
REFERENCE_PRIORITY: tuple[Modality, ...] = (Modality.T1C, Modality.FLAIR, Modality.T2, Modality.T1)

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS (its own inverse)

Progress = Callable[[str], None]


# ----------------------------------------------------------------------------------------------------------------
# Result


@dataclass
class PreprocessResult:
    """Everything inference needs, plus what ``to_native`` needs to invert the spatial steps.

    ``data`` is ``[4, D, H, W]`` float32 in the canonical order T1, T1c, T2, FLAIR (absent modalities are zeros),
    voxels outside ``brain_mask`` set to 0 when brain extraction ran. ``affine`` is the working grid's voxel -> RAS
    affine. ``native_shape``/``native_affine`` describe the reference input file (3D part).
    """

    data: np.ndarray
    present: np.ndarray
    brain_mask: np.ndarray
    affine: np.ndarray
    reference: Modality
    native_shape: tuple[int, int, int]
    native_affine: np.ndarray
    brats_preprocessed: bool
    # inverse: working index k -> reoriented-native index i = scale * k + shift (per axis), then un-reorient
    ornt_to_working: np.ndarray = field(repr=False, default=None)  # nibabel orientation transform native -> working axes
    scale: np.ndarray = field(repr=False, default=None)
    shift: np.ndarray = field(repr=False, default=None)
    reoriented_shape: tuple[int, int, int] = (0, 0, 0)
    #: rigid transform per modality, 4x4 in RAS mm, mapping a reference-world point to the same anatomy in that
    #: modality's world (identity for the reference)
    transforms: dict[Modality, np.ndarray] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: 4x4 RAS transform reference world -> MNI152 world (None when the atlas was not used)
    to_mni: np.ndarray | None = None
    #: the atlas mask cut back to the dark shell around the brain (mmtumor.preprocess.brainmask); None when the atlas
    #: was not used or the refinement failed. ``brain_mask`` stays the atlas mask: the refined one is not safe for
    #: a dark tumour at the brain surface on its own, so `Predictor` combines the two.
    refined_mask: np.ndarray | None = None

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]

    @property
    def modalities(self) -> tuple[Modality, ...]:
        return tuple(m for m, p in zip(MODALITIES, self.present, strict=True) if p)


# ----------------------------------------------------------------------------------------------------------------
# Input loading and validation


ImageInput = "tuple[np.ndarray, np.ndarray] | Path | str | object"


#: more non-finite (NaN/Inf) voxels than this fraction of an image refuse it: zeroing them would change the answer
#: (7 % NaN in a T1c cut the whole tumour from 126 to 86 mL in a test); fewer are zeroed with a warning
MAX_NONFINITE_FRACTION = 0.01
#: smallest field of view (mm) along any axis that can hold a brain tumour worth segmenting
MIN_FOV_MM = 40.0
#: largest field of view (mm) along any axis: beyond it the image is not a head scan (and its 1 mm working grid
#: would not fit in memory)
MAX_FOV_MM = 600.0
#: voxel edges (mm) beyond which a result is warned to be unreliable (clinical 2D series reach about 7 mm)
MAX_VOXEL_MM = 8.0


def _load_one(mod: Modality, item, warnings: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(data float32 3D, affine float64, description). Accepts (data, affine), a Volume, or a NIfTI path.

    Refuses what cannot be a usable MR volume (non-scalar voxels, a slice, a tiny field of view, too many non-finite
    voxels) and adds a warning to ``warnings`` for what it had to change or doubts (some non-finite voxels, very
    coarse voxels)."""
    warnings = warnings if warnings is not None else []
    if isinstance(item, (str, Path)):
        from ..io.nifti import read_nifti

        vol = read_nifti(item)
        data, affine, name = vol.data, vol.affine, Path(item).name
    elif isinstance(item, tuple) and len(item) == 2:
        data, affine, name = np.asarray(item[0]), np.asarray(item[1], dtype=np.float64), f"{mod.value} array"
    elif hasattr(item, "data") and hasattr(item, "affine"):
        data, affine = np.asarray(item.data), np.asarray(item.affine, dtype=np.float64)
        name = Path(item.path).name if getattr(item, "path", None) else f"{mod.value} volume"
    else:
        raise InputError(f"{mod.value}: expected a NIfTI path or a (data, affine) pair, got {type(item).__name__}")
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{name}: shape {data.shape} is not a 3D volume")
    if min(data.shape) < 2:
        raise InputError(f"{name}: shape {data.shape} is a 2D image (a single slice); a 3D volume is needed")
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise GeometryError(f"{name}: the affine is not a usable voxel-to-world matrix")
    if data.dtype.fields is not None or data.dtype.kind not in "biuf":
        raise InputError(f"{name}: voxels of type {data.dtype} are not a scalar (grey-level) MR image")
    data = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        if bad == data.size:
            raise InputError(f"{name}: every voxel is non-finite (NaN or Inf)")
        if bad > MAX_NONFINITE_FRACTION * data.size:
            raise InputError(f"{name}: {bad} voxels ({100 * bad / data.size:.1f} %) are NaN or Inf, more than "
                             f"{100 * MAX_NONFINITE_FRACTION:g} %: the image is corrupt or not an MR magnitude image")
        data = np.where(finite, data, 0.0).astype(np.float32)
        warnings.append(f"{name}: {bad} non-finite voxels (NaN/Inf, {100 * bad / data.size:.2f} %) were set to 0")
    if float(data.max()) <= float(data.min()):
        raise InputError(f"{name}: the image is empty (every voxel is {float(data.min()):g})")
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    fov = np.asarray(data.shape) * spacing
    if float(fov.min()) < MIN_FOV_MM:
        raise InputError(f"{name}: field of view {'x'.join(f'{f:.0f}' for f in fov)} mm is too small to hold a brain "
                         f"(each axis needs at least {MIN_FOV_MM:g} mm)")
    if float(fov.max()) > MAX_FOV_MM:
        raise InputError(f"{name}: field of view {'x'.join(f'{f:.0f}' for f in fov)} mm is larger than any head "
                         f"({MAX_FOV_MM:g} mm at most per axis); check the voxel size in the header")
    if float(spacing.max()) > MAX_VOXEL_MM:
        warnings.append(f"{name}: voxels of {'x'.join(f'{s:.3g}' for s in spacing)} mm are coarser than {MAX_VOXEL_MM:g} mm "
                        "along an axis; the result is unreliable at this resolution")
    return data, affine, name


#: anatomical MR has correlated neighbouring voxels (0.6-0.85 on real BraTS scans, down to about 0.2 on noisy 6 mm
#: phantoms); pure noise has about 0
MIN_NEIGHBOUR_CORRELATION = 0.1


def neighbour_correlation(data: np.ndarray, max_voxels: int = 2_000_000) -> float:
    """Pearson correlation of each voxel with its neighbour along the first axis, over the non-background voxels: a
    cheap test of whether an image shows structure at all (out-of-distribution inputs such as pure noise)."""
    step = max(1, int(np.ceil((data.size / max_voxels) ** (1 / 3))))
    d = data[::step, ::step, ::step] if step > 1 else data
    a, b = d[:-1].ravel(), d[1:].ravel()
    keep = (a != d.min()) | (b != d.min())
    a, b = a[keep], b[keep]
    if a.size < 100 or float(a.std()) == 0 or float(b.std()) == 0:
        return 1.0
    return float(np.corrcoef(a, b)[0, 1])


def _load_images(images: Mapping, warnings: list[str] | None = None) -> dict[Modality, tuple[np.ndarray, np.ndarray, str]]:
    if not images:
        raise InputError("no images given: at least one of T1, T1c, T2, FLAIR is needed")
    out = {}
    for key, item in images.items():
        if item is None:
            continue
        mod = key if isinstance(key, Modality) else parse_modality(str(key))
        out[mod] = _load_one(mod, item, warnings)
    smoothness = {mod: neighbour_correlation(data) for mod, (data, _, _) in out.items()} if warnings is not None else {}
    if smoothness and max(smoothness.values()) < MIN_NEIGHBOUR_CORRELATION:
        # one structured image is enough: coarse, noisy single series can score about 0 on their own
        warnings.append("every input looks like noise, not anatomy (neighbouring voxels nearly uncorrelated: "
                        + ", ".join(f"{m.value} {c:.2f}" for m, c in smoothness.items()) + "); the result is unreliable")
    if not out:
        raise InputError("no images given: at least one of T1, T1c, T2, FLAIR is needed")
    return out


def choose_reference(present, reference: Modality | str | None = None) -> Modality:
    """T1c, else FLAIR, else T2, else T1 — or the one asked for, if present."""
    present = set(present)
    if reference is not None:
        ref = reference if isinstance(reference, Modality) else parse_modality(str(reference))
        if ref not in present:
            raise InputError(f"reference modality {ref.value} is not among the inputs")
        return ref
    return next(m for m in REFERENCE_PRIORITY if m in present)


# ----------------------------------------------------------------------------------------------------------------
# Geometry helpers


def _spacing(affine: np.ndarray) -> np.ndarray:
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def _axcodes(affine: np.ndarray) -> str:
    import nibabel as nib

    return "".join(nib.aff2axcodes(affine))


def reorient(data: np.ndarray, affine: np.ndarray, orientation: str = "LPS") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lossless axis permutation/flip to the closest ``orientation`` axis codes; returns (data, affine, ornt)."""
    import nibabel.orientations as no

    ornt = no.ornt_transform(no.io_orientation(affine), no.axcodes2ornt(tuple(orientation)))
    out = no.apply_orientation(data, ornt)
    new_affine = affine @ no.inv_ornt_aff(ornt, data.shape[:3])
    return np.ascontiguousarray(out), new_affine, ornt


def _undo_orientation(data: np.ndarray, ornt: np.ndarray, native_shape) -> np.ndarray:
    """Inverse of ``reorient`` on the last three axes (exact: flips and transposes only)."""
    import nibabel.orientations as no

    # inverse transform: where each working axis came from
    inv = np.zeros_like(ornt)
    for native_axis, (work_axis, flip) in enumerate(ornt):
        inv[int(work_axis)] = (native_axis, flip)
    lead = data.ndim - 3
    if lead:
        out = np.stack([no.apply_orientation(c, inv) for c in data.reshape(-1, *data.shape[-3:])])
        out = out.reshape(*data.shape[:lead], *out.shape[-3:])
    else:
        out = no.apply_orientation(data, inv)
    assert tuple(out.shape[-3:]) == tuple(native_shape), (out.shape, native_shape)
    return np.ascontiguousarray(out)


def working_grid(shape, affine, target_spacing: float = 1.0, tol: float = 1e-3):
    """A grid with the axes of (reoriented) ``affine`` and ``target_spacing`` mm covering the same field of view.

    Voxel k of the new grid sits at continuous index ``scale * k + shift`` of the old one, where the field-of-view
    edges coincide (``shift = scale/2 - 1/2``). Axes already at the target spacing are kept exactly (scale 1).
    Returns (shape, affine, scale, shift).
    """
    sp = _spacing(affine)
    new_sp = np.where(np.abs(sp - target_spacing) <= tol * target_spacing, sp, float(target_spacing))
    new_shape = np.maximum(1, np.round(np.asarray(shape[:3]) * sp / new_sp)).astype(int)
    scale = new_sp / sp
    shift = scale / 2.0 - 0.5
    m = np.eye(4)
    m[:3, :3] = np.diag(scale)
    m[:3, 3] = shift
    return tuple(int(v) for v in new_shape), affine @ m, scale, shift


def _to_sitk(data: np.ndarray, affine: np.ndarray):
    """numpy (i, j, k) + RAS affine -> SimpleITK image with the same physical geometry (LPS)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data, dtype=np.float32).transpose(2, 1, 0)))
    _set_geometry(img, affine)
    return img


def _set_geometry(img, affine: np.ndarray) -> None:
    lps = _LPS @ np.asarray(affine, dtype=np.float64)
    sp = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    img.SetSpacing([float(v) for v in sp])
    img.SetDirection([float(v) for v in (lps[:3, :3] / sp).flatten()])
    img.SetOrigin([float(v) for v in lps[:3, 3]])


def _grid_image(shape, affine):
    """An empty SimpleITK image describing a grid (resampling target)."""
    import SimpleITK as sitk

    img = sitk.Image([int(s) for s in shape], sitk.sitkFloat32)
    _set_geometry(img, affine)
    return img


def _from_sitk(img) -> np.ndarray:
    import SimpleITK as sitk

    return np.ascontiguousarray(sitk.GetArrayFromImage(img).transpose(2, 1, 0))


def _resample(moving, grid, transform=None, interp: str = "linear") -> np.ndarray:
    import SimpleITK as sitk

    if transform is None:
        transform = sitk.Transform(3, sitk.sitkIdentity)
    method = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor, "bspline": sitk.sitkBSpline}[interp]
    out = sitk.Resample(moving, grid, transform, method, 0.0, sitk.sitkFloat32)
    return _from_sitk(out)


def _transform_to_ras(transform) -> np.ndarray:
    """SimpleITK (LPS) matrix transform -> 4x4 RAS matrix mapping reference-world points to moving-world points."""
    t = transform
    m = np.eye(4)
    a = np.array(t.GetMatrix()).reshape(3, 3)
    c = np.array(t.GetCenter())
    tr = np.array(t.GetTranslation())
    m[:3, :3] = a
    m[:3, 3] = tr + c - a @ c
    return _LPS @ m @ _LPS


def rigid_parameters(matrix: np.ndarray, points: np.ndarray | None = None) -> tuple[float, float]:
    """(rotation angle in degrees, translation in mm) of a 4x4 rigid transform; translation is the mean
    displacement of ``points`` (N x 3, mm) when given, else of the origin."""
    r = matrix[:3, :3]
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.degrees(np.arccos(cos)))
    if points is None:
        return angle, float(np.linalg.norm(matrix[:3, 3]))
    moved = points @ r.T + matrix[:3, 3]
    return angle, float(np.linalg.norm(moved - points, axis=1).mean())


# ----------------------------------------------------------------------------------------------------------------
# Recognising BraTS-preprocessed input


def _looks_skull_stripped(data: np.ndarray, affine: np.ndarray) -> bool:
    """Skull-stripped images have an exactly constant background (zero) around one brain-sized blob.

    Raw MR has noisy air background and a head (with skull, scalp, often neck) of 2.5-6 L; a stripped brain is
    0.6-2.3 L inside >= 30 % constant background.
    """
    bg = data <= data.min()
    frac_bg = float(bg.mean())
    voxel_ml = float(abs(np.linalg.det(affine[:3, :3]))) / 1000.0
    fg_ml = float((~bg).sum()) * voxel_ml
    return frac_bg >= 0.3 and 500.0 <= fg_ml <= 2300.0


def _is_brats_loaded(loaded: Mapping[Modality, tuple[np.ndarray, np.ndarray, str]], tol: float = 0.05) -> tuple[bool, str]:
    items = list(loaded.values())
    data0, aff0, name0 = items[0]
    for data, aff, name in items[1:]:
        if data.shape != data0.shape or not np.allclose(aff, aff0, atol=1e-3):
            return False, f"{name} and {name0} are not on one grid"
    sp = _spacing(aff0)
    if np.any(np.abs(sp - 1.0) > tol):
        return False, f"spacing {tuple(round(float(s), 3) for s in sp)} mm is not 1 mm isotropic"
    rot = np.abs(aff0[:3, :3] / sp)
    if np.any((rot > 1e-3) & (rot < 1 - 1e-3)):
        return False, "the grid is oblique"
    for data, aff, name in items:
        if not _looks_skull_stripped(data, aff):
            return False, f"{name} does not look skull-stripped"
    return True, "one 1 mm axis-aligned grid, skull-stripped"


def is_brats_preprocessed(images: Mapping) -> bool:
    """True when the images already look BraTS-preprocessed: all on one grid, ~1 mm isotropic, axis-aligned,
    every one skull-stripped (constant zero background around a brain-sized region)."""
    return _is_brats_loaded(_load_images(images))[0]


# ----------------------------------------------------------------------------------------------------------------
# Registration


@dataclass
class RegistrationSettings:
    """Knobs of the rigid co-registration; the defaults are tuned for 240^3-ish heads on a few CPU cores."""

    shrink: tuple[int, ...] = (4, 2, 1)  # on a copy of the reference at ``spacing`` mm
    spacing: float = 2.0  # finest level (mm): 2 mm keeps it a few seconds per pair and ~0.3 mm accurate
    smoothing_mm: tuple[float, ...] = (4.0, 2.0, 1.0)
    iterations: int = 100
    sampling: float = 0.05  # of the voxels at each level; 0.05 gave the same error as 0.1 on the real case
    bins: int = 32
    seed: int = 20231001
    min_step: float = 0.001  # a slow relaxation (0.7) and a small final step: random sampling makes the gradient
    # noisy, and a fast relaxation (0.5, 0.01) stopped ~1 degree short on the test phantom
    atlas_iterations: int = 60
    atlas_dof: int = 12  # 7 = similarity (rigid + isotropic scale), 12 = affine (after the similarity)


def _downsampled_reference(img, spacing: float):
    """An image block-averaged (BinShrink: anti-aliased and fast) to about ``spacing`` mm: the registration copy."""
    import SimpleITK as sitk

    factors = [max(1, int(round(spacing / sp))) for sp in img.GetSpacing()]
    if max(factors) == 1:
        return img
    return sitk.BinShrink(sitk.Cast(img, sitk.sitkFloat32), factors)


def _registration_method(settings: RegistrationSettings, levels: int | None = None, iterations: int | None = None):
    import SimpleITK as sitk

    n = len(settings.shrink) if levels is None else levels
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(settings.sampling, settings.seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=settings.min_step, numberOfIterations=iterations or settings.iterations,
        relaxationFactor=0.7, gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(settings.shrink[:n]))
    reg.SetSmoothingSigmasPerLevel(list(settings.smoothing_mm[:n]))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return reg


def _foreground_centre(img) -> np.ndarray:
    """Physical centre of mass of the above-Otsu foreground (robust to background noise)."""
    import SimpleITK as sitk

    mask = sitk.OtsuThreshold(img, 0, 1)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    if not stats.HasLabel(1):
        size = np.array(img.GetSize())
        return np.array(img.TransformContinuousIndexToPhysicalPoint(((size - 1) / 2.0).tolist()))
    return np.array(stats.GetCentroid(1))


def register_rigid(fixed, moving, settings: RegistrationSettings):
    """Rigid MI registration; returns (SimpleITK Euler3DTransform fixed->moving points, final metric, init name).

    Initialisation: images of one session share the scanner's world coordinates, so the header (identity, rotation
    centre at the fixed foreground centre) is tried first; the centres-of-mass alignment is used instead when it
    gives a better starting metric (files whose world coordinates disagree, e.g. from different exams).
    """
    import SimpleITK as sitk

    centre = _foreground_centre(fixed)
    header = sitk.Euler3DTransform()
    header.SetCenter(centre.tolist())
    moments = sitk.Euler3DTransform()
    moments.SetCenter(centre.tolist())
    moments.SetTranslation((_foreground_centre(moving) - centre).tolist())
    reg = _registration_method(settings)
    candidates = []
    for name, init in (("header", header), ("centres of mass", moments)):
        reg.SetInitialTransform(init, inPlace=False)
        try:
            value = reg.MetricEvaluate(fixed, moving)
        except RuntimeError:
            value = np.inf
        candidates.append((value, name, init))
    value, name, init = min(candidates, key=lambda c: c[0])
    final = sitk.Euler3DTransform(init)
    reg.SetInitialTransform(final, inPlace=True)
    reg.Execute(fixed, moving)
    return final, float(reg.GetMetricValue()), name


def register_studies(fixed: np.ndarray, fixed_affine: np.ndarray, moving: np.ndarray, moving_affine: np.ndarray,
                     settings: RegistrationSettings | None = None) -> tuple[np.ndarray, float, str]:
    """Rigid alignment of two scans (e.g. two time points of one patient), the co-registration ``preprocess_case``
    uses: returns (4x4 RAS matrix mapping a fixed-world point to the same anatomy in the moving world, metric, init)."""
    settings = settings or RegistrationSettings()
    f = _downsampled_reference(_to_sitk(fixed, fixed_affine), settings.spacing)
    m = _downsampled_reference(_to_sitk(moving, moving_affine), settings.spacing)
    tf, metric, init = register_rigid(f, m, settings)
    return _transform_to_ras(tf), metric, init


# ----------------------------------------------------------------------------------------------------------------
# Brain extraction


@functools.lru_cache(maxsize=2)
def _load_atlas(head_shell: bool = False):
    """MNI152 2009 template (T1, skull-stripped, 2 mm) and its brain mask, bundled with nilearn (offline).

    ``head_shell`` wraps the brain in a crude T1-like head (CSF 0-3 mm dark, bone 3-9 mm dark, scalp 9-15 mm
    bright): registering a brain-only template to a head with skull otherwise tends to inflate the brain onto the
    scalp (the scale is free in the similarity/affine stage).
    """
    from nilearn import datasets
    from scipy import ndimage

    tpl_img = datasets.load_mni152_template(resolution=2)
    msk_img = datasets.load_mni152_brain_mask(resolution=2)
    msk = np.asarray(msk_img.get_fdata() > 0)
    tpl = np.asarray(tpl_img.get_fdata(), dtype=np.float32) * msk
    if head_shell:
        pad = 10
        big = np.pad(msk, pad)
        dist = ndimage.distance_transform_edt(~big, sampling=_spacing(msk_img.affine))[pad:-pad, pad:-pad, pad:-pad]
        brain_level = float(np.median(tpl[msk]))
        tpl = np.where(~msk & (dist <= 3), 0.2 * brain_level, tpl)
        tpl = np.where((dist > 3) & (dist <= 9), 0.05 * brain_level, tpl)
        tpl = np.where((dist > 9) & (dist <= 15), 1.3 * brain_level, tpl)
    tpl, msk = tpl.astype(np.float32), msk
    tpl.setflags(write=False)
    msk.setflags(write=False)  # cached: read-only so that no caller can change it
    return (tpl, tpl_img.affine), (msk, msk_img.affine)


def _head_top_centre(fixed) -> np.ndarray:
    """Centre of the top 150 mm (superior) of the head foreground: neck coverage would bias a plain centre of mass."""
    import SimpleITK as sitk

    mask = sitk.OtsuThreshold(fixed, 0, 1)
    arr = sitk.GetArrayFromImage(mask).transpose(2, 1, 0) > 0
    idx = np.argwhere(arr)
    if len(idx) == 0:
        return _foreground_centre(fixed)
    direction = np.array(fixed.GetDirection()).reshape(3, 3)
    pts = (idx * np.array(fixed.GetSpacing())) @ direction.T + np.array(fixed.GetOrigin())  # LPS
    top = pts[:, 2].max()
    keep = pts[:, 2] >= top - 150.0
    return pts[keep].mean(axis=0)


def atlas_brain_mask(ref_fixed, grid, settings: RegistrationSettings,
                     head_shell: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """Register the MNI152 template to the reference (similarity, then affine) and warp its brain mask.

    Returns (mask on ``grid`` as bool array, 4x4 RAS transform reference->MNI, metric).
    """
    final, metric = _atlas_transform(ref_fixed, settings, head_shell)
    (_, _), (msk, msk_aff) = _load_atlas(head_shell)
    mask_img = _to_sitk(msk.astype(np.float32), msk_aff)
    warped = _resample(mask_img, grid, final, "linear") >= 0.5
    return largest_component(warped), _transform_to_ras(final), metric


def register_to_mni(data: np.ndarray, affine: np.ndarray, head_shell: bool = False,
                    settings: RegistrationSettings | None = None) -> tuple[np.ndarray, float]:
    """The brain extraction's atlas registration on its own: (4x4 RAS transform image world -> MNI152 mm, metric).
    Used to place lesions (hemisphere, midline) when brain extraction did not run (skull-stripped input)."""
    settings = settings or RegistrationSettings()
    fixed = _downsampled_reference(_to_sitk(data, affine), settings.spacing)
    final, metric = _atlas_transform(fixed, settings, head_shell)
    return _transform_to_ras(final), metric


def _atlas_transform(ref_fixed, settings: RegistrationSettings, head_shell: bool):
    """Similarity then (atlas_dof 12) affine registration of the MNI152 template to ``ref_fixed``."""
    import SimpleITK as sitk

    (tpl, tpl_aff), (msk, msk_aff) = _load_atlas(head_shell)
    moving = _to_sitk(tpl, tpl_aff)
    mni_brain_centre = np.array(moving.TransformContinuousIndexToPhysicalPoint(
        np.argwhere(msk).mean(axis=0).tolist()))
    centre = _head_top_centre(ref_fixed)
    # the top of the brain lies ~ 10 mm below the top of the head; the head-top centre is taken over 150 mm, the
    # MNI brain centre over ~ 130 mm, so the two centres agree to ~ 1 cm, within the capture range of the pyramid
    sim = sitk.Similarity3DTransform()
    sim.SetCenter(centre.tolist())
    sim.SetTranslation((mni_brain_centre - centre).tolist())
    reg = _registration_method(settings, levels=2, iterations=settings.atlas_iterations)
    reg.SetInitialTransform(sim, inPlace=True)
    reg.Execute(ref_fixed, moving)
    metric = float(reg.GetMetricValue())
    final = sim
    if settings.atlas_dof == 12:
        aff = sitk.AffineTransform(3)
        aff.SetCenter(sim.GetCenter())
        aff.SetMatrix(sim.GetMatrix())
        aff.SetTranslation(sim.GetTranslation())
        reg2 = _registration_method(settings, levels=2, iterations=settings.atlas_iterations)
        reg2.SetInitialTransform(aff, inPlace=True)
        reg2.Execute(ref_fixed, moving)
        metric = float(reg2.GetMetricValue())
        final = aff
    return final, metric


def _head_mask(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Head foreground of an unstripped image: Otsu threshold, largest component, holes filled."""
    import SimpleITK as sitk

    otsu = _from_sitk(sitk.OtsuThreshold(_to_sitk(data, affine), 0, 1)) > 0
    return largest_component(otsu)


# ----------------------------------------------------------------------------------------------------------------
# N4


def n4_correct(data: np.ndarray, affine: np.ndarray, mask: np.ndarray, shrink: int = 4,
               iterations: tuple[int, ...] = (50, 50, 30)) -> np.ndarray:
    """N4 bias-field correction (Tustison 2010) fitted on a shrunk copy, the field applied at full resolution."""
    import SimpleITK as sitk

    img = _to_sitk(np.maximum(data, 0) + 1e-3, affine)
    msk = sitk.Cast(_to_sitk(mask.astype(np.float32), affine) > 0.5, sitk.sitkUInt8)
    small = sitk.Shrink(img, [shrink] * 3)
    small_mask = sitk.Shrink(msk, [shrink] * 3)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(iterations))
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(img)
    field = np.exp(_from_sitk(log_field))
    out = data / field.astype(np.float32)
    return np.where(data == 0, 0, out).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Main entry points


class _Clock:
    def __init__(self, result_timings: dict, progress: Progress | None):
        self.timings = result_timings
        self.progress = progress

    def step(self, name: str):
        clock = self

        class _Ctx:
            def __enter__(self):
                if clock.progress is not None:
                    clock.progress(name)
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                clock.timings[name] = clock.timings.get(name, 0.0) + time.perf_counter() - self.t0
                return False

        return _Ctx()


def preprocess_case(
    images: Mapping,
    *,
    reference: Modality | str | None = None,
    skull_strip: str | bool = "auto",
    n4: bool = False,
    target_spacing: float = 1.0,
    orientation: str = "LPS",
    registration: RegistrationSettings | None = None,
    progress: Progress | None = None,
    coregistered: bool = False,
) -> PreprocessResult:
    """Bring one case's modalities onto one 1 mm brain-extracted working grid aligned with the reference.

    ``images`` maps a Modality (or a name such as 't1ce') to a NIfTI path, a ``Volume`` or a ``(data, affine)``
    pair. ``skull_strip``: True = MNI152 atlas brain mask, False = none (mask = reference foreground), 'auto' =
    atlas only when the reference does not already look skull-stripped. ``coregistered``: the images are known to be
    aligned already (a BraTS-layout data set, as ``benchmark`` reads): no rigid registration, one resampling onto the
    working grid. See docs/preprocessing.md.
    """
    settings = registration or RegistrationSettings()
    timings: dict[str, float] = {}
    clock = _Clock(timings, progress)
    steps: list[str] = []
    warnings: list[str] = []
    if skull_strip not in ("auto", True, False):
        raise InputError(f"skull_strip must be 'auto', True or False, not {skull_strip!r}")
    if not target_spacing or target_spacing <= 0:
        raise InputError(f"target spacing must be positive, got {target_spacing}")
    orientation = orientation.upper()
    if len(orientation) != 3 or any(sum(c in pair for c in orientation) != 1 for pair in ("LR", "PA", "IS")):
        raise InputError(f"orientation must be three axis codes such as LPS or RAS, not {orientation!r}")

    with clock.step("load"):
        loaded = _load_images(images, warnings)
    ref = choose_reference(loaded, reference)
    ref_data, ref_aff, ref_name = loaded[ref]
    steps.append(f"reference modality: {ref.value} ({ref_name}, {'x'.join(map(str, ref_data.shape))}, "
                 f"{_axcodes(ref_aff)}, spacing {_fmt_sp(_spacing(ref_aff))} mm)")

    brats, why = _is_brats_loaded(loaded)
    if brats:
        return _preprocess_brats(loaded, ref, orientation, steps, warnings, timings, clock, why, n4)
    steps.append(f"not BraTS-preprocessed ({why}): full spatial preprocessing")

    # 1. working grid = the reference reoriented (lossless) then regridded to target_spacing on its own axes
    with clock.step("reorient+resample reference"):
        ro_data, ro_aff, ornt = reorient(ref_data, ref_aff, orientation)
        shape, work_aff, scale, shift = working_grid(ro_data.shape, ro_aff, target_spacing)
        grid = _grid_image(shape, work_aff)
        ref_native = _to_sitk(ref_data, ref_aff)
        out = np.zeros((4, *shape), dtype=np.float32)
        identity_axes = np.allclose(scale, 1.0) and np.allclose(shift, 0.0)
        out[ref.index] = ro_data if identity_axes else _resample(ref_native, grid)
    steps.append(f"reoriented {_axcodes(ref_aff)} -> {_axcodes(ro_aff)} (lossless axis permutation/flip)")
    steps.append(f"working grid {'x'.join(map(str, shape))} at {_fmt_sp(_spacing(work_aff))} mm, axes of the "
                 f"{ref.value} (linear interpolation{'; none needed' if identity_axes else ''})")

    # 2. rigid co-registration of every other modality to the reference, one resampling onto the working grid
    transforms: dict[Modality, np.ndarray] = {ref: np.eye(4)}
    fixed = None
    brain_pts = None
    for mod in MODALITIES:
        if mod == ref or mod not in loaded:
            continue
        data, aff, name = loaded[mod]
        if coregistered:
            with clock.step(f"resample {mod.value}"):
                same = data.shape == ref_data.shape and np.allclose(aff, ref_aff, atol=1e-3)
                out[mod.index] = reorient(data, aff, orientation)[0] if same and identity_axes else _resample(_to_sitk(data, aff), grid)
            steps.append(f"{mod.value} ({name}) taken as co-registered with the {ref.value}: no registration")
            continue
        if fixed is None:
            with clock.step("registration reference copy"):
                fixed = _downsampled_reference(_to_sitk(out[ref.index], work_aff), settings.spacing)
                brain_pts = _sample_points(out[ref.index], work_aff)
        with clock.step(f"register {mod.value}"):
            moving = _to_sitk(data, aff)
            t0 = time.perf_counter()
            tf, metric, init = register_rigid(fixed, _downsampled_reference(moving, settings.spacing), settings)
            secs = time.perf_counter() - t0
            out[mod.index] = _resample(moving, grid, tf)
        transforms[mod] = _transform_to_ras(tf)
        angle, shift_mm = rigid_parameters(transforms[mod], brain_pts)
        steps.append(f"registered {mod.value} ({name}) -> {ref.value}: rigid, Mattes MI, {len(settings.shrink)} levels "
                     f"to {settings.spacing:g} mm, init {init}; rotation {angle:.2f} deg, mean shift {shift_mm:.2f} mm, "
                     f"metric {metric:.3f}, {secs:.1f} s")
        if angle > 20 or shift_mm > 30:
            warnings.append(f"{mod.value}: large correction ({angle:.0f} deg, {shift_mm:.0f} mm): check the overlay")

    present = np.array([m in loaded for m in MODALITIES])

    # 3. brain extraction
    ref_stripped = _looks_skull_stripped(ref_data, ref_aff)
    strip = (not ref_stripped) if skull_strip == "auto" else bool(skull_strip)
    if skull_strip == "auto":
        steps.append(f"skull stripping auto: the {ref.value} {'looks' if ref_stripped else 'does not look'} skull-stripped")
    to_mni = None
    refined = None
    if strip:
        with clock.step("brain extraction (MNI152 atlas)"):
            if fixed is None:
                fixed = _downsampled_reference(_to_sitk(out[ref.index], work_aff), settings.spacing)
            mask, to_mni, metric = atlas_brain_mask(fixed, grid, settings, head_shell=not ref_stripped)
        vol_ml = float(mask.sum() * abs(np.linalg.det(work_aff[:3, :3])) / 1000.0)
        steps.append(f"brain extraction: MNI152 2009 template{'' if ref_stripped else ' with a synthetic head shell'} "
                     f"registered to the {ref.value} ({'similarity + affine' if settings.atlas_dof == 12 else 'similarity'}"
                     f", Mattes MI), brain mask warped, largest component, holes filled: {vol_ml:.0f} mL")
        if not ref_stripped:
            from .brainmask import refine_brain_mask

            with clock.step("brain mask refinement"):
                refined, why = refine_brain_mask(out, [m in loaded for m in MODALITIES], mask, tuple(_spacing(work_aff)))
            steps.append(f"brain mask refined on the image (dark CSF/bone shell, all modalities): {why}"
                         + ("" if refined is not None else "; the atlas mask is used alone"))
        # the affine atlas mask holds 1.3-1.9x the brain on a skull-on head (up to 2.3 L); when the refinement
        # accepted a brain inside it, that size is expected, not a failed registration
        if not 800 <= vol_ml <= 2200 and refined is None:
            warnings.append(f"brain mask volume {vol_ml:.0f} mL is implausible: the atlas registration may have failed")
    elif ref_stripped:
        mask = largest_component(out[ref.index] > out[ref.index].min())
        strip = True  # the other modalities get the reference's brain mask (they may not be stripped)
        steps.append(f"brain mask = non-zero voxels of the already skull-stripped {ref.value} (largest component, "
                     "holes filled), applied to every modality")
    else:
        mask = _head_mask(out[ref.index], work_aff)
        steps.append("no brain extraction (skull_strip=False); mask = head foreground of the reference (Otsu)")
    if strip:
        out *= mask[None]

    # 4. N4
    if n4:
        with clock.step("N4 bias correction"):
            for mod in loaded:
                out[mod.index] = n4_correct(out[mod.index], work_aff, mask)
        steps.append("N4 bias-field correction inside the brain mask (fitted at 1/4 resolution)")

    result = PreprocessResult(
        data=out, present=present, brain_mask=mask, affine=work_aff, reference=ref,
        native_shape=tuple(ref_data.shape), native_affine=ref_aff, brats_preprocessed=False,
        ornt_to_working=ornt, scale=scale, shift=shift, reoriented_shape=tuple(ro_data.shape),
        transforms=transforms, steps=steps, timings=timings, warnings=warnings)
    result.to_mni = to_mni
    result.refined_mask = refined
    return result


def _preprocess_brats(loaded, ref, orientation, steps, warnings, timings, clock, why, n4) -> PreprocessResult:
    """BraTS-preprocessed input: lossless reorientation only (identity for BraTS files), no interpolation."""
    ref_data, ref_aff, _ = loaded[ref]
    with clock.step("reorient"):
        ro_ref, ro_aff, ornt = reorient(ref_data, ref_aff, orientation)
        out = np.zeros((4, *ro_ref.shape), dtype=np.float32)
        for mod, (data, aff, _) in loaded.items():
            out[mod.index] = ro_ref if mod == ref else reorient(data, aff, orientation)[0]
        mask = np.zeros(ro_ref.shape, dtype=bool)
        for mod in loaded:
            mask |= out[mod.index] > out[mod.index].min()
    identity = _is_identity_ornt(ornt)
    steps.append(f"BraTS-preprocessed input recognised ({why}): no registration, resampling or skull stripping")
    steps.append("orientation: identity (already " + orientation + ")" if identity else
                 f"reoriented {_axcodes(ref_aff)} -> {_axcodes(ro_aff)} (lossless axis permutation/flip)")
    steps.append("brain mask = non-zero voxels of any input")
    if n4:
        with clock.step("N4 bias correction"):
            for mod in loaded:
                out[mod.index] = n4_correct(out[mod.index], ro_aff, mask)
        steps.append("N4 bias-field correction inside the brain mask (fitted at 1/4 resolution)")
    present = np.array([m in loaded for m in MODALITIES])
    return PreprocessResult(
        data=out, present=present, brain_mask=mask, affine=ro_aff, reference=ref,
        native_shape=tuple(ref_data.shape), native_affine=ref_aff, brats_preprocessed=True,
        ornt_to_working=ornt, scale=np.ones(3), shift=np.zeros(3), reoriented_shape=tuple(ro_ref.shape),
        transforms={m: np.eye(4) for m in loaded}, steps=steps, timings=timings, warnings=warnings)


def _is_identity_ornt(ornt: np.ndarray) -> bool:
    return bool(np.all(ornt[:, 0] == np.arange(3)) and np.all(ornt[:, 1] == 1))


def _sample_points(data: np.ndarray, affine: np.ndarray, n: int = 2000) -> np.ndarray:
    """World points (RAS mm) of the head foreground: where a rigid correction's displacement is reported."""
    fg = np.argwhere(data > np.percentile(data, 60))
    if len(fg) == 0:
        fg = np.argwhere(np.ones(data.shape, dtype=bool))
    rng = np.random.default_rng(0)
    fg = fg[rng.choice(len(fg), size=min(n, len(fg)), replace=False)]
    return fg @ affine[:3, :3].T + affine[:3, 3]


def _fmt_sp(sp) -> str:
    return "x".join(f"{float(s):.3g}" for s in sp)


def to_native(volume: np.ndarray, result: PreprocessResult, order: int = 0) -> np.ndarray:
    """Bring a working-grid result (``[D, H, W]`` labels or ``[C, D, H, W]`` probabilities) back to the
    reference's native grid: exactly ``result.native_shape`` with ``result.native_affine``.

    order 0 = nearest neighbour (labels; dtype kept), order 1 = linear (probabilities). The inverse of the
    resampling is a per-axis scale + shift (the working grid shares the reference's axes), the inverse of the
    reorientation a lossless flip/transpose; BraTS-preprocessed input returns a bit-identical copy.
    """
    from scipy import ndimage

    volume = np.asarray(volume)
    if volume.ndim not in (3, 4):
        raise InputError(f"to_native expects a 3D or 4D array, got shape {volume.shape}")
    work_shape = tuple(result.brain_mask.shape)
    if tuple(volume.shape[-3:]) != work_shape:
        raise GeometryError(f"array shape {volume.shape[-3:]} does not match the working grid {work_shape}")
    if order not in (0, 1):
        raise InputError("order must be 0 (labels) or 1 (probabilities)")
    is_bool = volume.dtype == bool
    if is_bool:
        volume = volume.astype(np.uint8)
    ro_shape = tuple(result.reoriented_shape)
    if np.allclose(result.scale, 1.0) and np.allclose(result.shift, 0.0) and work_shape == ro_shape:
        back = volume
    else:
        # reoriented-native index i = scale * k + shift  ->  k = (i - shift) / scale
        inv_scale = 1.0 / np.asarray(result.scale)
        offset = -np.asarray(result.shift) * inv_scale
        channels = volume.reshape(-1, *work_shape)
        outs = [ndimage.affine_transform(c, inv_scale, offset=offset, output_shape=ro_shape, order=order,
                                         mode="nearest", prefilter=False) for c in channels]
        back = np.stack(outs).reshape(*volume.shape[:-3], *ro_shape)
    native = _undo_orientation(back, result.ornt_to_working, result.native_shape)
    if native is volume:
        native = native.copy()
    return native.astype(bool) if is_bool else native
