"""Registration and resampling with SimpleITK: the rigid co-registration of modalities (and of two studies of one
patient), the MNI152 atlas registration behind brain extraction, and the numpy <-> SimpleITK geometry bridge.

Every affine here is nibabel's voxel -> RAS+ mm; SimpleITK works in LPS and the conversion happens in ``to_sitk`` /
``grid_image`` / ``transform_to_ras`` only. SimpleITK and nilearn are imported inside functions.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..voxels import largest_component

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS (its own inverse)


def _spacing(affine: np.ndarray) -> np.ndarray:
    return np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))


def to_sitk(data: np.ndarray, affine: np.ndarray):
    """numpy (i, j, k) + RAS affine -> SimpleITK image with the same physical geometry (LPS)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data, dtype=np.float32).transpose(2, 1, 0)))
    set_geometry(img, affine)
    return img


def set_geometry(img, affine: np.ndarray) -> None:
    lps = _LPS @ np.asarray(affine, dtype=np.float64)
    sp = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    img.SetSpacing([float(v) for v in sp])
    img.SetDirection([float(v) for v in (lps[:3, :3] / sp).flatten()])
    img.SetOrigin([float(v) for v in lps[:3, 3]])


def grid_image(shape, affine):
    """An empty SimpleITK image describing a grid (resampling target)."""
    import SimpleITK as sitk

    img = sitk.Image([int(s) for s in shape], sitk.sitkFloat32)
    set_geometry(img, affine)
    return img


def from_sitk(img) -> np.ndarray:
    import SimpleITK as sitk

    return np.ascontiguousarray(sitk.GetArrayFromImage(img).transpose(2, 1, 0))


def resample_image(moving, grid, transform=None, interp: str = "linear") -> np.ndarray:
    import SimpleITK as sitk

    if transform is None:
        transform = sitk.Transform(3, sitk.sitkIdentity)
    method = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor, "bspline": sitk.sitkBSpline}[interp]
    out = sitk.Resample(moving, grid, transform, method, 0.0, sitk.sitkFloat32)
    return from_sitk(out)


def transform_to_ras(transform) -> np.ndarray:
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


def downsampled_reference(img, spacing: float):
    """An image block-averaged (BinShrink: anti-aliased and fast) to about ``spacing`` mm: the registration copy."""
    import SimpleITK as sitk

    factors = [max(1, int(round(spacing / sp))) for sp in img.GetSpacing()]
    if max(factors) == 1:
        return img
    return sitk.BinShrink(sitk.Cast(img, sitk.sitkFloat32), factors)


def registration_method(settings: RegistrationSettings, levels: int | None = None, iterations: int | None = None):
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


def foreground_centre(img) -> np.ndarray:
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

    centre = foreground_centre(fixed)
    header = sitk.Euler3DTransform()
    header.SetCenter(centre.tolist())
    moments = sitk.Euler3DTransform()
    moments.SetCenter(centre.tolist())
    moments.SetTranslation((foreground_centre(moving) - centre).tolist())
    reg = registration_method(settings)
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
    f = downsampled_reference(to_sitk(fixed, fixed_affine), settings.spacing)
    m = downsampled_reference(to_sitk(moving, moving_affine), settings.spacing)
    tf, metric, init = register_rigid(f, m, settings)
    return transform_to_ras(tf), metric, init


# ----------------------------------------------------------------------------------------------------------------
# Brain extraction


@functools.lru_cache(maxsize=2)
def load_atlas(head_shell: bool = False):
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


def head_top_centre(fixed) -> np.ndarray:
    """Centre of the top 150 mm (superior) of the head foreground: neck coverage would bias a plain centre of mass."""
    import SimpleITK as sitk

    mask = sitk.OtsuThreshold(fixed, 0, 1)
    arr = sitk.GetArrayFromImage(mask).transpose(2, 1, 0) > 0
    idx = np.argwhere(arr)
    if len(idx) == 0:
        return foreground_centre(fixed)
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
    final, metric = atlas_transform(ref_fixed, settings, head_shell)
    (_, _), (msk, msk_aff) = load_atlas(head_shell)
    mask_img = to_sitk(msk.astype(np.float32), msk_aff)
    warped = resample_image(mask_img, grid, final, "linear") >= 0.5
    return largest_component(warped), transform_to_ras(final), metric


def register_to_mni(data: np.ndarray, affine: np.ndarray, head_shell: bool = False,
                    settings: RegistrationSettings | None = None) -> tuple[np.ndarray, float]:
    """The brain extraction's atlas registration on its own: (4x4 RAS transform image world -> MNI152 mm, metric).
    Used to place lesions (hemisphere, midline) when brain extraction did not run (skull-stripped input)."""
    settings = settings or RegistrationSettings()
    fixed = downsampled_reference(to_sitk(data, affine), settings.spacing)
    final, metric = atlas_transform(fixed, settings, head_shell)
    return transform_to_ras(final), metric


def atlas_transform(ref_fixed, settings: RegistrationSettings, head_shell: bool):
    """Similarity then (atlas_dof 12) affine registration of the MNI152 template to ``ref_fixed``."""
    import SimpleITK as sitk

    (tpl, tpl_aff), (msk, msk_aff) = load_atlas(head_shell)
    moving = to_sitk(tpl, tpl_aff)
    mni_brain_centre = np.array(moving.TransformContinuousIndexToPhysicalPoint(
        np.argwhere(msk).mean(axis=0).tolist()))
    centre = head_top_centre(ref_fixed)
    # the top of the brain lies ~ 10 mm below the top of the head; the head-top centre is taken over 150 mm, the
    # MNI brain centre over ~ 130 mm, so the two centres agree to ~ 1 cm, within the capture range of the pyramid
    sim = sitk.Similarity3DTransform()
    sim.SetCenter(centre.tolist())
    sim.SetTranslation((mni_brain_centre - centre).tolist())
    reg = registration_method(settings, levels=2, iterations=settings.atlas_iterations)
    reg.SetInitialTransform(sim, inPlace=True)
    reg.Execute(ref_fixed, moving)
    metric = float(reg.GetMetricValue())
    final = sim
    if settings.atlas_dof == 12:
        aff = sitk.AffineTransform(3)
        aff.SetCenter(sim.GetCenter())
        aff.SetMatrix(sim.GetMatrix())
        aff.SetTranslation(sim.GetTranslation())
        reg2 = registration_method(settings, levels=2, iterations=settings.atlas_iterations)
        reg2.SetInitialTransform(aff, inPlace=True)
        reg2.Execute(ref_fixed, moving)
        metric = float(reg2.GetMetricValue())
        final = aff
    return final, metric
