"""Affine-safe NIfTI reading and atomic writing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from .atomic import atomic_target

from ..errors import GeometryError, ReadError

#: every NIfTI form nibabel reads (compressed ones included; the real training set is stored as .nii.bz2)
NIFTI_SUFFIXES = (".nii.gz", ".nii.bz2", ".nii")


def is_nifti(path: Path | str) -> bool:
    name = str(path).lower()
    return name.endswith(NIFTI_SUFFIXES)


def strip_nifti_suffix(name: str) -> str:
    for suf in NIFTI_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


@dataclass
class Volume:
    """Voxel array with the affine (voxel -> RAS+ mm) it came with."""

    data: np.ndarray
    affine: np.ndarray
    path: Path | None = None

    @property
    def spacing(self) -> tuple[float, ...]:
        return voxel_spacing(self.affine)

    @property
    def orientation(self) -> str:
        return "".join(nib.aff2axcodes(self.affine))


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]


def load_header(path: Path | str) -> nib.Nifti1Image:
    """Open a NIfTI lazily (header only), with a clear error for unreadable files."""
    path = Path(path)
    if not path.exists():
        raise ReadError(f"file not found: {path}")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many kinds
        raise ReadError(f"cannot read NIfTI {path}: {exc}") from None
    if len(img.shape) < 3:
        raise ReadError(f"{path} is not a 3D image (shape {img.shape})")
    return img


def read_nifti(path: Path | str, dtype=np.float32) -> Volume:
    """Read a 3D NIfTI (a 4D one with a single volume is squeezed) keeping its affine."""
    img = load_header(path)
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise ReadError(f"cannot read voxel data of {path}: {exc}") from None
    if data.dtype.fields is not None or data.dtype.kind not in "biuf":  # RGB(A) records, complex numbers
        kind = "an RGB colour image" if data.dtype.fields is not None else f"of type {data.dtype}"
        raise ReadError(f"{path} is {kind}; a scalar (grey-level) MR volume is needed")
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ReadError(f"{path} has shape {data.shape}; expected a 3D volume")
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    return Volume(data=data, affine=img.affine.astype(np.float64), path=Path(path))


def write_nifti(path: Path | str, data: np.ndarray, affine: np.ndarray, header: nib.Nifti1Header | None = None) -> Path:
    """Write atomically (temp file in the same folder, then rename) with qform and sform set."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=np.float64), header=header)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    suffix = next((suf for suf in NIFTI_SUFFIXES if str(path).lower().endswith(suf)), ".nii")
    with atomic_target(path, suffix) as tmp:
        nib.save(img, tmp)
    return path


def same_grid(shape_a, affine_a, shape_b, affine_b, atol: float = 1e-3) -> bool:
    return tuple(shape_a[:3]) == tuple(shape_b[:3]) and np.allclose(affine_a, affine_b, atol=atol)


def check_same_grid(paths: list[Path], atol: float = 1e-3) -> None:
    """Raise GeometryError naming the files when images that should share a grid do not."""
    if len(paths) < 2:
        return
    ref = load_header(paths[0])
    for p in paths[1:]:
        img = load_header(p)
        if tuple(img.shape[:3]) != tuple(ref.shape[:3]):
            raise GeometryError(f"shape mismatch: {paths[0].name} {tuple(ref.shape[:3])} vs {p.name} {tuple(img.shape[:3])}")
        if not np.allclose(img.affine, ref.affine, atol=atol):
            raise GeometryError(f"affine mismatch between {paths[0].name} and {p.name} (images are not on the same grid)")
