"""The geometry of a DICOM series, as dcm2niix reads it: slices sorted along the normal, the affine, and the check that
decides whether a stack converts as is, after resampling (uneven spacing, gantry tilt), or not at all.
Conventions are stated in ``io.dicom``'s docstring and docs/dicom.md."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Tolerances: orientation cosines equal within 1e-3; slice steps even within 1% (and 0.01 mm); tilt > 0.01°.
IOP_TOL = 1e-3
SPACING_REL_TOL = 0.01
SPACING_ABS_TOL = 0.01
TILT_TOL_DEG = 0.01


@dataclass
class SliceRef:
    """One 2D image: a file, or one frame of a multi-frame file."""

    path: Path
    frame: int | None
    ipp: np.ndarray
    iop: np.ndarray
    rows: int
    cols: int
    spacing: tuple[float, float]  # (between rows, between columns) as in PixelSpacing
    instance: int
    echo: int | None
    acquisition: int | None
    time: str
    slope: float = 1.0
    intercept: float = 0.0
    samples: int = 1


@dataclass
class Geometry:
    """Result of the geometry check: how a series becomes a 3D volume, or why it cannot."""

    status: str  # "ok" | "resample" | "refuse"
    messages: list[str]
    slices: list[SliceRef] = field(default_factory=list)  # sorted along the normal, duplicates removed
    shape: tuple[int, int, int] | None = None
    affine: np.ndarray | None = None  # target affine (RAS+, dcm2niix voxel order)
    positions: np.ndarray | None = None  # slice positions along the normal (mm), source stack
    tilt_deg: float = 0.0
    flip_rows: bool = True
    volumes: int = 1  # > 1 for 4D series (slices then ordered position-major, volume-minor)


def orientation_label(iop: np.ndarray) -> str:
    """AX / SAG / COR from the slice normal; 'OBL-AX' etc. when it is more than ~10° off the main axis."""
    n = np.cross(iop[:3], iop[3:])
    axis = int(np.argmax(np.abs(n)))
    name = ("SAG", "COR", "AX")[axis]
    return name if abs(n[axis]) > 0.985 else f"OBL-{name}"


def _lps_to_ras(v: np.ndarray) -> np.ndarray:
    return np.array([-v[0], -v[1], v[2]])


def stack_affine(first: SliceRef, step_lps: np.ndarray, flip_rows: bool = True) -> np.ndarray:
    """dcm2niix's affine: i = columns, j = rows (reversed for 2D acquisitions), k = step between sorted slices; RAS+."""
    row, col = first.iop[:3], first.iop[3:]
    dr, dc = first.spacing  # between rows, between columns
    origin = first.ipp + (first.rows - 1) * dr * col if flip_rows else first.ipp
    a = np.eye(4)
    a[:3, 0] = _lps_to_ras(row * dc)
    a[:3, 1] = _lps_to_ras(-col * dr if flip_rows else col * dr)
    a[:3, 2] = _lps_to_ras(step_lps)
    a[:3, 3] = _lps_to_ras(origin)
    return a


def flips_rows(header: dict) -> bool:
    """dcm2niix (v1.0.2026) reverses the row order of 2D acquisitions; 3D ones it reorients to the closest RAS+ axes."""
    return str(header.get("MRAcquisitionType") or "").strip().upper() != "3D"


def _geometry_4d(slices: list[SliceRef], normal: np.ndarray, m: int, flip_rows: bool) -> Geometry:
    """Every position repeated m times: m volumes ordered by acquisition number, time, instance (as dcm2niix)."""
    def key(s: SliceRef) -> tuple:
        return (round(float(s.ipp @ normal), 3), s.acquisition if s.acquisition is not None else 0.0, s.time, s.instance)

    srt = sorted(slices, key=key)
    first = check_geometry(srt[::m], flip_rows)
    if first.status != "ok":
        return Geometry("refuse", [f"4D series ({m} volumes) with irregular geometry: " + "; ".join(first.messages)])
    msg = f"4D series: {m} volumes of {len(first.slices)} slices (DWI/perfusion/fMRI, not one structural volume)"
    return Geometry("ok", [msg], srt, first.shape, first.affine, first.positions, 0.0, flip_rows, m)


def check_geometry(slices: list[SliceRef], flip_rows: bool = True) -> Geometry:
    """Sort along the normal and decide: ok, resample (with reasons) or refuse (with reasons)."""
    msgs: list[str] = []
    if any(s.samples != 1 for s in slices):
        return Geometry("refuse", ["colour (RGB) images are not MR magnitude data"])
    if len({s.spacing for s in slices}) > 1:
        spac = sorted({s.spacing for s in slices})
        if not np.allclose(spac[0], spac[-1], atol=1e-4):
            return Geometry("refuse", [f"pixel spacing varies inside the series ({spac[0]} .. {spac[-1]})"])
    first = slices[0]
    normal = np.cross(first.iop[:3], first.iop[3:])
    pos = np.array([float(s.ipp @ normal) for s in slices])
    order = np.lexsort((np.array([s.instance for s in slices]), pos))
    srt = [slices[i] for i in order]
    pos = pos[order]
    # repeated positions: 4D (every position repeated equally) or duplicated slices
    uniq, counts = np.unique(np.round(pos, 3), return_counts=True)
    if len(uniq) < len(pos):
        if counts.min() == counts.max() and counts.max() > 1 and len(uniq) > 2:
            return _geometry_4d(slices, normal, int(counts.max()), flip_rows)
        keep, seen = [], set()
        for s, p in zip(srt, np.round(pos, 3), strict=True):
            if p not in seen:
                seen.add(p)
                keep.append(s)
        msgs.append(f"{len(srt) - len(keep)} duplicated slice(s) at the same position; kept the first instance")
        srt = keep
        pos = np.array([float(s.ipp @ normal) for s in srt])
    n = len(srt)
    if n < 3:
        return Geometry("refuse", [f"only {n} slice(s) in this stack: a localizer/scout, not a volume"], srt)
    steps = np.diff(pos)
    med = float(np.median(steps))
    if med <= 0:
        return Geometry("refuse", ["slices do not advance along the slice normal"], srt)
    uneven = np.abs(steps - med) > max(SPACING_ABS_TOL, SPACING_REL_TOL * med)
    span = srt[-1].ipp - srt[0].ipp
    along = float(span @ normal)
    tilt = math.degrees(math.acos(min(1.0, abs(along) / max(np.linalg.norm(span), 1e-9))))
    status = "ok"
    if uneven.any():
        gaps = [int(round(s / med)) - 1 for s in steps[uneven] if s > med]
        if gaps and all(g >= 1 for g in gaps) and len(gaps) == int(uneven.sum()):
            msgs.append(f"{sum(gaps)} missing slice(s) (gaps of {', '.join(f'{s:.2f}' for s in steps[uneven])} mm vs {med:.2f} mm); "
                        f"resampled to even {med:.3g} mm spacing")
        else:
            msgs.append(f"uneven slice spacing ({steps.min():.3g}..{steps.max():.3g} mm); resampled to even {med:.3g} mm spacing")
        status = "resample"
    if tilt > TILT_TOL_DEG:
        msgs.append(f"gantry tilt / sheared stack ({tilt:.2f}°); resampled to an orthogonal grid")
        if status == "resample":
            return Geometry("refuse", msgs[:-1] + [f"gantry tilt ({tilt:.2f}°) together with uneven spacing: cannot rebuild a safe grid"], srt)
        status = "resample"
    if status == "ok":
        step = span / (n - 1)
        shape = (first.cols, first.rows, n)
    elif tilt > TILT_TOL_DEG:
        step = normal * (along / (n - 1))
        shape = (first.cols, first.rows, n)
    else:
        n_even = int(round((pos[-1] - pos[0]) / med)) + 1
        step = normal * ((pos[-1] - pos[0]) / (n_even - 1))
        shape = (first.cols, first.rows, n_even)
    return Geometry(status, msgs, srt, shape, stack_affine(srt[0], step, flip_rows), pos, tilt, flip_rows)
