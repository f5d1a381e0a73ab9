"""Reading the input images and refusing what cannot be a usable MR volume, before any spatial work.

Each image is a NIfTI path, a (data, affine) pair or a loaded volume; the checks (and their thresholds, stated where
they are defined) turn unusable input into one clear error, and doubtful input into a warning for the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import GeometryError, InputError
from ..modalities import Modality, parse_modality


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


def load_image(mod: Modality, item, warnings: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, str]:
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


def load_images(images: Mapping, warnings: list[str] | None = None) -> dict[Modality, tuple[np.ndarray, np.ndarray, str]]:
    if not images:
        raise InputError("no images given: at least one of T1, T1c, T2, FLAIR is needed")
    out = {}
    for key, item in images.items():
        if item is None:
            continue
        mod = key if isinstance(key, Modality) else parse_modality(str(key))
        out[mod] = load_image(mod, item, warnings)
    smoothness = {mod: neighbour_correlation(data) for mod, (data, _, _) in out.items()} if warnings is not None else {}
    if smoothness and max(smoothness.values()) < MIN_NEIGHBOUR_CORRELATION:
        # one structured image is enough: coarse, noisy single series can score about 0 on their own
        warnings.append("every input looks like noise, not anatomy (neighbouring voxels nearly uncorrelated: "
                        + ", ".join(f"{m.value} {c:.2f}" for m, c in smoothness.items()) + "); the result is unreliable")
    if not out:
        raise InputError("no images given: at least one of T1, T1c, T2, FLAIR is needed")
    return out
