"""Spatial preprocessing of raw clinical scans and its exact inverse back to the reference's native grid.

Pipeline (see docs/preprocessing.md): load -> pick the reference modality -> define a 1 mm working grid aligned
with the reference's own (reoriented) axes -> resample the reference -> rigidly register every other modality to
the reference (SimpleITK, Mattes mutual information, multi-resolution) and resample it once onto the working grid
-> brain extraction (MNI152 atlas registration, or the existing zero background of skull-stripped input) ->
optional N4 -> arrays ``[4, D, H, W]``. BraTS-preprocessed input (one 1 mm grid, skull-stripped) only gets a
lossless reorientation (the identity for BraTS files) and no interpolation at all.

Geometry conventions: every affine here is nibabel's voxel -> RAS+ mm. SimpleITK works in LPS; the conversion
happens in ``registration.py`` (``to_sitk``, ``grid_image``) only. The working orientation defaults to ``LPS`` axis codes (nibabel's
reading of BraTS files, i.e. the array layout models are trained on), so BraTS input and raw input give arrays laid
out the same way; pass ``orientation="RAS"`` for RAS canonical arrays.

SimpleITK and nilearn are imported inside functions: ``import mmtumor`` stays light.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import GeometryError, InputError
from ..voxels import largest_component
from ..modalities import MODALITIES, Modality, parse_modality
from .inputs import load_images
from .registration import (  # noqa: F401 - RegistrationSettings and rigid_parameters are part of this module's API
    RegistrationSettings, atlas_brain_mask, downsampled_reference, from_sitk, grid_image, register_rigid,
    resample_image, rigid_parameters, to_sitk, transform_to_ras)

#: Reference priority: the contrast whose grid the result is returned in.
REFERENCE_PRIORITY: tuple[Modality, ...] = (Modality.T1C, Modality.FLAIR, Modality.T2, Modality.T1)


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
    return _is_brats_loaded(load_images(images))[0]


def _head_mask(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Head foreground of an unstripped image: Otsu threshold, largest component, holes filled."""
    import SimpleITK as sitk

    otsu = from_sitk(sitk.OtsuThreshold(to_sitk(data, affine), 0, 1)) > 0
    return largest_component(otsu)


# ----------------------------------------------------------------------------------------------------------------
# N4


def n4_correct(data: np.ndarray, affine: np.ndarray, mask: np.ndarray, shrink: int = 4,
               iterations: tuple[int, ...] = (50, 50, 30)) -> np.ndarray:
    """N4 bias-field correction (Tustison 2010) fitted on a shrunk copy, the field applied at full resolution."""
    import SimpleITK as sitk

    img = to_sitk(np.maximum(data, 0) + 1e-3, affine)
    msk = sitk.Cast(to_sitk(mask.astype(np.float32), affine) > 0.5, sitk.sitkUInt8)
    small = sitk.Shrink(img, [shrink] * 3)
    small_mask = sitk.Shrink(msk, [shrink] * 3)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(iterations))
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(img)
    field = np.exp(from_sitk(log_field))
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
        loaded = load_images(images, warnings)
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
        grid = grid_image(shape, work_aff)
        ref_native = to_sitk(ref_data, ref_aff)
        out = np.zeros((4, *shape), dtype=np.float32)
        identity_axes = np.allclose(scale, 1.0) and np.allclose(shift, 0.0)
        out[ref.index] = ro_data if identity_axes else resample_image(ref_native, grid)
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
                out[mod.index] = reorient(data, aff, orientation)[0] if same and identity_axes else resample_image(to_sitk(data, aff), grid)
            steps.append(f"{mod.value} ({name}) taken as co-registered with the {ref.value}: no registration")
            continue
        if fixed is None:
            with clock.step("registration reference copy"):
                fixed = downsampled_reference(to_sitk(out[ref.index], work_aff), settings.spacing)
                brain_pts = _sample_points(out[ref.index], work_aff)
        with clock.step(f"register {mod.value}"):
            moving = to_sitk(data, aff)
            t0 = time.perf_counter()
            tf, metric, init = register_rigid(fixed, downsampled_reference(moving, settings.spacing), settings)
            secs = time.perf_counter() - t0
            out[mod.index] = resample_image(moving, grid, tf)
        transforms[mod] = transform_to_ras(tf)
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
                fixed = downsampled_reference(to_sitk(out[ref.index], work_aff), settings.spacing)
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
