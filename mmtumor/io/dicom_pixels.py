"""DICOM pixel data: decoding (uncompressed fast path, pylibjpeg plugins, GDCM fallback, JPEG 2000 checked before
decoding), rescaling, and a series' voxels and affine as dcm2niix gives them (``load_series``, ``write_series_nifti``).
Which files form a series, and its geometry, are ``io.dicom``'s job."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import GeometryError, ReadError
from .atomic import write_json_atomic
from .dicom import DicomSeries, float_or_none
from .dicom_geometry import TILT_TOL_DEG, Geometry, SliceRef, stack_affine

_FAST_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}


def read_frames(path: Path) -> tuple[np.ndarray, object]:
    """All frames of a file as (frames, rows, cols), raw stored values (before rescale)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        ts = str(ds.file_meta.TransferSyntaxUID) if "TransferSyntaxUID" in getattr(ds, "file_meta", {}) else "1.2.840.10008.1.2"
        bits, stored = int(ds.BitsAllocated), int(getattr(ds, "BitsStored", ds.BitsAllocated))
        n = int(getattr(ds, "NumberOfFrames", 1) or 1)
        if ts in _FAST_SYNTAXES and bits in (8, 16, 32) and stored == bits and int(getattr(ds, "SamplesPerPixel", 1)) == 1:
            dt = np.dtype(f"{'i' if int(ds.PixelRepresentation) else 'u'}{bits // 8}").newbyteorder("<")
            count = n * int(ds.Rows) * int(ds.Columns)
            arr = np.frombuffer(ds.PixelData, dtype=dt, count=count).reshape(n, int(ds.Rows), int(ds.Columns))
        else:
            if ts in _JPEG2000_SYNTAXES:  # OpenJPEG decodes a damaged stream to garbage without a word: check first
                _check_jpeg2000(ds, n)
            try:
                with warnings.catch_warnings():
                    # a decoder that only warns (a corrupt JPEG 2000 codestream, a short frame) has returned garbage
                    warnings.simplefilter("error")
                    arr = ds.pixel_array
            except Exception as exc:  # non-conformant streams the pylibjpeg plugins reject: GDCM is more lenient
                arr = _frames_gdcm(path, ds, exc)
            arr = arr.reshape(n, int(ds.Rows), int(ds.Columns))
    except Exception as exc:
        raise ReadError(f"cannot decode pixel data of {path.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return arr, ds


#: JPEG 2000 (lossless, lossy) and HTJ2K (lossless, RPCL, lossy) transfer syntaxes
_JPEG2000_SYNTAXES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                      "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}


def _check_jpeg2000(ds, n_frames: int) -> None:
    """Every frame's codestream structurally intact (``io.jpeg2000``), else a ``ValueError`` naming the frame."""
    from pydicom.encaps import generate_frames

    from .jpeg2000 import check_codestream

    for k, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=n_frames)):
        try:
            check_codestream(frame)
        except ValueError as exc:
            raise ValueError(f"corrupt JPEG 2000 codestream in frame {k + 1}: {exc}") from None


def _frames_gdcm(path: Path, ds, first_error: Exception) -> np.ndarray:
    """Fallback decoder (SimpleITK's GDCM) returning stored values: GDCM applies the rescale, we undo it."""
    import SimpleITK as sitk

    if int(getattr(ds, "SamplesPerPixel", 1)) != 1:
        raise first_error
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    try:
        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    except RuntimeError:
        raise first_error from None
    slope = float_or_none(getattr(ds, "RescaleSlope", None)) or 1.0
    inter = float_or_none(getattr(ds, "RescaleIntercept", None)) or 0.0
    raw = np.rint((arr.astype(np.float64) - inter) / slope)
    return raw.astype(np.int32 if raw.min() < 0 else np.uint32)


def read_stack(slices: list[SliceRef], flip_rows: bool = True) -> np.ndarray:
    """Rescaled stack (cols, rows, n) in dcm2niix voxel order; integer dtype when the rescale is lossless."""
    cache: dict[Path, np.ndarray] = {}
    raw = []
    for s in slices:
        if s.path not in cache:
            if len(cache) > 4:  # keep memory flat on long single-frame series
                cache.clear()
            cache[s.path] = read_frames(s.path)[0]
        raw.append(cache[s.path][s.frame or 0])
    stack = np.stack(raw, axis=-1)  # (rows, cols, n)
    slopes = np.array([s.slope for s in slices])
    inters = np.array([s.intercept for s in slices])
    if np.all(slopes == 1.0) and np.all(inters == inters[0]) and float(inters[0]).is_integer():
        lo = float(stack.min()) + inters[0]
        hi = float(stack.max()) + inters[0]
        dt = np.uint16 if lo >= 0 and hi <= 65535 else np.int16 if lo >= -32768 and hi <= 32767 else np.int32
        data = stack.astype(np.int64) + int(inters[0]) if inters[0] else stack
        data = data.astype(dt, copy=False)
    else:
        data = stack.astype(np.float32) * slopes.astype(np.float32) + inters.astype(np.float32)
    data = data.transpose(1, 0, 2)
    return np.ascontiguousarray(np.flip(data, axis=1) if flip_rows else data)


def _resample(data: np.ndarray, geom: Geometry) -> np.ndarray:
    """Even, orthogonal grid from an uneven or sheared stack (linear interpolation)."""
    from scipy.ndimage import map_coordinates

    srt = geom.slices
    if geom.tilt_deg > TILT_TOL_DEG:
        sheared = stack_affine(srt[0], (srt[-1].ipp - srt[0].ipp) / (len(srt) - 1), geom.flip_rows)
        grid = np.indices(geom.shape, dtype=float).reshape(3, -1)
        vox = np.linalg.inv(sheared) @ geom.affine @ np.vstack([grid, np.ones(grid.shape[1])])
        out = map_coordinates(data.astype(np.float32), vox[:3], order=1, mode="nearest")
        return out.reshape(geom.shape).astype(np.float32)
    pos = geom.positions
    target = pos[0] + np.arange(geom.shape[2]) * (pos[-1] - pos[0]) / (geom.shape[2] - 1)
    idx = np.clip(np.searchsorted(pos, target, side="right") - 1, 0, len(pos) - 2)
    w = ((target - pos[idx]) / (pos[idx + 1] - pos[idx])).astype(np.float32)
    d = data.astype(np.float32)
    return d[:, :, idx] * (1 - w) + d[:, :, idx + 1] * w


def load_series(series: DicomSeries) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """Voxels and affine of a series (dcm2niix order), or GeometryError with the refusal reasons."""
    geom = series.geometry
    if geom.status == "refuse":
        raise GeometryError(f"series {series.series_id} '{series.description}': " + "; ".join(geom.messages))
    data = read_stack(geom.slices, geom.flip_rows)
    if geom.volumes > 1:
        data = data.reshape(*data.shape[:2], -1, geom.volumes)
    if geom.status == "resample":
        data = _resample(data, geom)
    affine = geom.affine
    if not geom.flip_rows:  # dcm2niix reorients 3D acquisitions to the closest RAS+ axes (measured on its wheel)
        from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

        t = ornt_transform(io_orientation(affine), axcodes2ornt(("R", "A", "S")))
        affine = affine @ inv_ornt_aff(t, data.shape)
        data = np.ascontiguousarray(apply_orientation(data, t))
    return data, affine, geom


def write_series_nifti(series: DicomSeries, out_path: Path | str, sidecar: dict | None = None) -> Path:
    """Convert one series to NIfTI (qform+sform) plus a JSON sidecar beside it; both written atomically."""
    from .nifti import write_nifti

    data, affine, geom = load_series(series)
    out_path = Path(out_path)
    write_nifti(out_path, data, affine)
    meta = {"Source": "mmtumor DICOM conversion", "SeriesID": series.series_id, **series.header,
            "NumberOfSourceImages": series.n_slices, "Volumes": geom.volumes, "GeometryStatus": geom.status, "GeometryMessages": geom.messages,
            "Problems": series.problems, **(sidecar or {})}
    side = out_path.with_name(out_path.name.replace(".nii.gz", "").replace(".nii", "") + ".json")
    write_json_atomic(side, meta, default=str)
    return out_path
