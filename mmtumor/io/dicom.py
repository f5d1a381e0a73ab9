"""DICOM series discovery and DICOM -> NIfTI conversion with dcm2niix-equal geometry.

Why this module: clinical studies arrive as folders of DICOM files (many series, mixed vendors, localizers,
reformats, sometimes compressed). We read headers only to find and split series, check each series' geometry,
and convert the chosen ones with the same voxel order and affine as dcm2niix:

* NIfTI i = DICOM column, j = DICOM row reversed (dcm2niix flips rows), k = slices sorted ascending along the
  slice normal ``n = row_cosine x column_cosine`` (never by file name or InstanceNumber); 3D acquisitions are then
  reoriented to the closest RAS+ axes, as dcm2niix does by default;
* affine = LPS -> RAS of ``[row_cos * col_spacing, -col_cos * row_spacing, step, IPP_first + (rows-1) * col_cos
  * row_spacing]``, with ``step`` the real slice step from the ImagePositionPatient of the first and last slices;
  qform and sform both set.

Geometry outcomes (consistent, documented in docs/dicom.md): fewer than 3 slices, varying pixel spacing, RGB and
Siemens mosaic images are *refused*; 4D series (every position repeated) convert as 4D but are never a modality; missing slices / uneven spacing and gantry tilt (sheared stacks)
are *converted with a warning* after resampling to an even, orthogonal grid; duplicated slices (same position)
keep the first instance with a warning; a series mixing orientations or image sizes is split like dcm2niix does.

Compressed transfer syntaxes decode through pydicom's pixel handlers with the pylibjpeg plugins (JPEG baseline/
extended/lossless and JPEG-LS via pylibjpeg-libjpeg, JPEG 2000 via pylibjpeg-openjpeg) and pydicom's own RLE
decoder: pure pip wheels, the same code path as uncompressed files, and no second image library with its own
geometry conventions (SimpleITK/GDCM would re-sort slices its own way).
"""

from __future__ import annotations

import math
import warnings
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from .atomic import write_json_atomic

from ..errors import GeometryError, InputError, ReadError

#: SOP classes that never hold a convertible image (SR, presentation states, raw data, DICOMDIR, KO, ...).
NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.1.3.10",  # Media Storage Directory (DICOMDIR)
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, spatial registration, fiducials, segmentation
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF/CDA
    "1.2.840.10008.5.1.4.1.1.481.",  # RT objects
    "1.2.840.10008.5.1.4.1.1.4.2",  # MR spectroscopy
    "1.2.840.10008.5.1.4.1.1.9.",  # waveforms
)
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"

#: Header fields copied into ``DicomSeries.header`` (and the JSON sidecar); DICOM names and units (ms, degrees).
HEADER_FIELDS = (
    "Modality", "Manufacturer", "ManufacturerModelName", "MagneticFieldStrength", "SeriesDescription", "ProtocolName",
    "SequenceName", "PulseSequenceName", "ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType",
    "RepetitionTime", "EchoTime", "InversionTime", "FlipAngle", "EchoTrainLength", "ContrastBolusAgent", "ImageType",
    "AcquisitionContrast", "SeriesNumber", "SeriesInstanceUID", "StudyInstanceUID", "SeriesDate", "SeriesTime",
    "AcquisitionTime", "BodyPartExamined", "SliceThickness", "SpacingBetweenSlices", "DiffusionBValue", "SOPClassUID",
    "PatientPosition",
)

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


@dataclass
class DicomSeries:
    """One convertible unit: a SeriesInstanceUID, split by orientation / image size / echo like dcm2niix."""

    uid: str
    part: int
    n_parts: int
    header: dict
    slices: list[SliceRef]
    problems: list[str] = field(default_factory=list)
    n_orientations: int = 1  # orientations found in the whole SeriesInstanceUID
    id_suffix: str = ""  # set when two SeriesInstanceUIDs share a SeriesNumber
    _geometry: Geometry | None = field(default=None, repr=False)

    @property
    def series_id(self) -> str:
        """Short, stable identifier for tables and CLI overrides: '<SeriesNumber>' or '<SeriesNumber>.<part>'."""
        num = self.header.get("SeriesNumber")
        base = (str(num) if num is not None else self.uid[-8:]) + self.id_suffix
        return f"{base}.{self.part + 1}" if self.n_parts > 1 else base

    @property
    def description(self) -> str:
        return str(self.header.get("SeriesDescription") or self.header.get("ProtocolName") or "")

    @property
    def n_slices(self) -> int:
        return len(self.slices)

    @property
    def size(self) -> tuple[int, ...]:
        s = self.slices[0]
        g = self.geometry
        if g.volumes > 1 and g.shape is not None:
            return (s.cols, s.rows, g.shape[2], g.volumes)
        return (s.cols, s.rows, self.n_slices)

    @property
    def spacing(self) -> tuple[float, float, float]:
        s = self.slices[0]
        g = self.geometry
        dz = float(np.linalg.norm(g.affine[:3, 2])) if g.affine is not None else float("nan")
        return (s.spacing[1], s.spacing[0], dz)

    @property
    def orientation(self) -> str:
        return orientation_label(self.slices[0].iop)

    @property
    def geometry(self) -> Geometry:
        if self._geometry is None:
            itype = self.header.get("ImageType") or []
            if "MOSAIC" in [str(t).upper() for t in (itype if isinstance(itype, list) else [itype])]:
                self._geometry = Geometry("refuse", ["Siemens mosaic (EPI) images are not supported (use dcm2niix for them)"])
            else:
                self._geometry = check_geometry(self.slices, flips_rows(self.header))
        return self._geometry

    def facts(self) -> dict:
        """Everything modality detection needs, as plain values."""
        g = self.geometry
        return {**self.header, "n_slices": self.n_slices, "n_orientations": self.n_orientations,
                "in_plane_mm": min(self.slices[0].spacing), "slice_mm": self.spacing[2],
                "geometry_status": g.status, "series_id": self.series_id, "n_volumes": g.volumes}


@dataclass
class Discovery:
    """All series found under a folder, plus what was skipped and why."""

    root: Path
    series: list[DicomSeries]
    n_files: int
    skipped: dict[str, int]
    #: series none of whose files had usable geometry (so no DicomSeries exists for them): header, count, reason
    unusable: list[dict] = field(default_factory=list)


# ----------------------------------------------------------------------------------------- header reading
def _f(v) -> float | None:
    try:
        return None if v is None or v == "" else float(v)
    except (TypeError, ValueError):
        return None


def _plain(v):
    """pydicom values -> JSON-friendly Python values."""
    from pydicom.multival import MultiValue

    if v is None:
        return None
    if isinstance(v, (MultiValue, list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (int, float, str)):
        if type(v) not in (int, float, str):  # DSfloat, IS, PersonName ...
            if isinstance(v, float):
                return float(v)
            if isinstance(v, int):
                return int(v)
            return str(v)
        return v
    return str(v)


def _first_in_seq(ds, *path):
    """Value at a nested path of (sequence, ..., keyword) taking the first item of each sequence."""
    cur = ds
    for name in path[:-1]:
        seq = getattr(cur, name, None)
        if not seq:
            return None
        cur = seq[0]
    return getattr(cur, path[-1], None)


def _header_of(ds) -> dict:
    h = {}
    for name in HEADER_FIELDS:
        val = getattr(ds, name, None)
        if val is not None and val != "":
            h[name] = _plain(val)
    ss = _philips_scale_slope(ds)
    if ss:
        h["PhilipsScaleSlope"] = ss
        h["UsePhilipsFloatNotDisplayScaling"] = 1
    if str(getattr(ds, "SOPClassUID", "")) == ENHANCED_MR:  # enhanced MR keeps parameters in functional groups
        shared = getattr(ds, "SharedFunctionalGroupsSequence", None)
        per = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
        for src in ([shared[0]] if shared else []) + ([per[0]] if per else []):
            for key, path in (("RepetitionTime", ("MRTimingAndRelatedParametersSequence", "RepetitionTime")),
                              ("FlipAngle", ("MRTimingAndRelatedParametersSequence", "FlipAngle")),
                              ("EchoTime", ("MREchoSequence", "EffectiveEchoTime")),
                              ("InversionTime", ("MRModifierSequence", "InversionTimes")),
                              ("DiffusionBValue", ("MRDiffusionSequence", "DiffusionBValue")),
                              ("ContrastBolusAgent", ("ContrastBolusUsageSequence", "ContrastBolusAgentAdministered"))):
                v = _first_in_seq(src, *path)
                if v is not None and key not in h:
                    h[key] = _plain(v[0] if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue" else v)
            if "ContrastBolusAgent" in h and h["ContrastBolusAgent"] in ("NO", "no"):
                del h["ContrastBolusAgent"]
        if "ScanningSequence" not in h:  # enhanced MR describes the sequence with EchoPulseSequence/InversionRecovery
            echo = str(getattr(ds, "EchoPulseSequence", "") or "")
            seq = {"SPIN": ["SE"], "GRADIENT": ["GR"], "BOTH": ["SE", "GR"]}.get(echo, [])
            if str(getattr(ds, "InversionRecovery", "")) == "YES":
                seq.append("IR")
            if seq:
                h["ScanningSequence"] = seq
    return h


def _is_non_image(ds) -> str | None:
    sop = str(getattr(ds, "SOPClassUID", "") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
    if any(sop.startswith(p) for p in NON_IMAGE_SOP_PREFIXES) or hasattr(ds, "DirectoryRecordSequence"):
        return "non-image object"
    if "Rows" not in ds or "Columns" not in ds:
        return "no image (no Rows/Columns)"
    return None


def _read_header(path: Path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        pass
    except Exception:
        return None
    try:  # files without the 128-byte preamble; accept only if they look like DICOM
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:
        return None
    return ds if "SOPClassUID" in ds or "Rows" in ds else None


def _slices_of(ds, path: Path) -> list[SliceRef]:
    """Single-frame file -> one SliceRef; enhanced multi-frame -> one per frame (functional groups)."""
    nframes = int(getattr(ds, "NumberOfFrames", 1) or 1)
    rows, cols = int(ds.Rows), int(ds.Columns)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    shared = ds.SharedFunctionalGroupsSequence[0] if getattr(ds, "SharedFunctionalGroupsSequence", None) else None
    per = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if nframes > 1 or per is not None:
        out = []
        for f in range(nframes):
            fg = per[f] if per is not None and f < len(per) else None

            def grab(seq, kw, fg=fg):
                for src in (fg, shared):
                    if src is not None and getattr(src, seq, None):
                        v = getattr(getattr(src, seq)[0], kw, None)
                        if v is not None:
                            return v
                return None

            ipp = grab("PlanePositionSequence", "ImagePositionPatient")
            iop = grab("PlaneOrientationSequence", "ImageOrientationPatient")
            ps = grab("PixelMeasuresSequence", "PixelSpacing")
            if ipp is None or iop is None or ps is None:
                raise ReadError(f"{path.name}: frame {f + 1} lacks position/orientation/spacing")
            slope = grab("PixelValueTransformationSequence", "RescaleSlope")
            inter = grab("PixelValueTransformationSequence", "RescaleIntercept")
            echo = grab("MREchoSequence", "EffectiveEchoTime")
            stack = grab("FrameContentSequence", "StackID")
            temporal = grab("FrameContentSequence", "TemporalPositionIndex")
            out.append(SliceRef(path, f, np.array([float(x) for x in ipp]), np.array([float(x) for x in iop]), rows, cols,
                                (float(ps[0]), float(ps[1])), f + 1,
                                None if echo is None else int(round(float(echo) * 100)),
                                None if temporal is None else float(temporal), str(stack or ""),
                                _f(slope) or 1.0, _f(inter) or 0.0, samples))
        return out
    ipp, iop, ps = getattr(ds, "ImagePositionPatient", None), getattr(ds, "ImageOrientationPatient", None), getattr(ds, "PixelSpacing", None)
    if ipp is None or iop is None or ps is None or len(ipp) != 3 or len(iop) != 6:
        raise ReadError(f"{path.name}: no ImagePositionPatient/ImageOrientationPatient/PixelSpacing")
    echo = getattr(ds, "EchoNumbers", None)
    slope = _f(getattr(ds, "RescaleSlope", None)) or 1.0
    inter = _f(getattr(ds, "RescaleIntercept", None)) or 0.0
    ss = _philips_scale_slope(ds)
    if ss:  # dcm2niix's default "precise" Philips values: (PV * RS + RI) / (RS * SS)
        slope, inter = 1.0 / ss, inter / (slope * ss)
    return [SliceRef(path, None, np.array([float(x) for x in ipp]), np.array([float(x) for x in iop]), rows, cols,
                     (float(ps[0]), float(ps[1])), int(getattr(ds, "InstanceNumber", 0) or 0),
                     None if echo in (None, "") else int(echo if not isinstance(echo, (list, tuple)) else echo[0]),
                     _f(getattr(ds, "AcquisitionNumber", None)), str(getattr(ds, "AcquisitionTime", "") or ""),
                     slope, inter, samples)]


def _philips_scale_slope(ds) -> float | None:
    """Philips private MR scale slope (2005,100E), used for floating-point ('precise') values as dcm2niix does."""
    import struct

    if "PHILIPS" not in str(getattr(ds, "Manufacturer", "")).upper():
        return None
    try:
        val = ds.get_private_item(0x2005, 0x0E, "Philips MR Imaging DD 001").value
    except (KeyError, AttributeError):
        elem = ds.get((0x2005, 0x100E))
        if elem is None:
            return None
        val = elem.value
    if isinstance(val, bytes):
        val = struct.unpack("<f", val[:4])[0] if len(val) >= 4 else None
    if isinstance(val, (list, tuple)) or type(val).__name__ == "MultiValue":
        val = val[0] if len(val) else None
    ss = _f(val)
    return ss if ss and math.isfinite(ss) and ss > 0 else None


def iter_files(root: Path) -> Iterable[Path]:
    """Every regular file below ``root`` (any name, with or without .dcm), hidden files excluded."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def discover_series(root: Path | str, progress: Callable[[int, int], None] | None = None) -> Discovery:
    """Find every image series below ``root`` (headers only) and split it the way dcm2niix does."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"folder not found: {root}")
    files = [root] if root.is_file() else list(iter_files(root))
    skipped: dict[str, int] = defaultdict(int)
    groups: dict[str, list[SliceRef]] = defaultdict(list)
    headers: dict[str, dict] = {}
    bad: dict[str, list[str]] = defaultdict(list)
    seen_sop: set[str] = set()
    for n, path in enumerate(files):
        if progress:
            progress(n + 1, len(files))
        ds = _read_header(path)
        if ds is None:
            skipped["not DICOM"] += 1
            continue
        why = _is_non_image(ds)
        if why:
            skipped[why] += 1
            continue
        sop = str(getattr(ds, "SOPInstanceUID", "") or "")
        if sop and sop in seen_sop:  # the same image exported twice (two folders, copies): keep one
            skipped["duplicate SOPInstanceUID"] += 1
            continue
        seen_sop.add(sop)
        uid = str(getattr(ds, "SeriesInstanceUID", "") or f"nouid:{path.parent}")
        try:
            refs = _slices_of(ds, path)
        except ReadError as exc:
            bad[uid].append(str(exc))
            skipped["no geometry"] += 1
            headers.setdefault(uid, _header_of(ds))
            continue
        groups[uid].extend(refs)
        if uid not in headers:
            headers[uid] = _header_of(ds)
    series: list[DicomSeries] = []
    for uid, refs in groups.items():
        series.extend(_split(uid, refs, headers[uid], bad.get(uid, [])))
    unusable = [{"uid": uid, "header": headers[uid], "files": len(msgs), "reason": msgs[0]}
                for uid, msgs in bad.items() if uid not in groups]
    series.sort(key=lambda s: (_sortnum(s.header.get("SeriesNumber")), s.uid, s.part))
    uids_per_number: dict[str, list[str]] = defaultdict(list)
    for s in series:
        if s.uid not in uids_per_number[s.series_id.split(".")[0]]:
            uids_per_number[s.series_id.split(".")[0]].append(s.uid)
    for s in series:  # two series with one SeriesNumber: ids 5, 5b, 5c ... (in UID order)
        rank = uids_per_number[s.series_id.split(".")[0]].index(s.uid)
        s.id_suffix = "" if rank == 0 else chr(ord("a") + rank)
    return Discovery(root=root, series=series, n_files=len(files), skipped=dict(skipped), unusable=unusable)


def _sortnum(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.inf


def _split(uid: str, refs: list[SliceRef], header: dict, bad: list[str]) -> list[DicomSeries]:
    """Split one SeriesInstanceUID by orientation, image size, pixel spacing and echo (dcm2niix's rules)."""
    keys: dict[tuple, list[SliceRef]] = {}
    for r in refs:
        iop_key = None
        for k in keys:  # orientation equal within tolerance; same image size and echo
            if k[1:] == (r.rows, r.cols, r.echo) and np.allclose(k[0], r.iop, atol=IOP_TOL):
                iop_key = k
                break
        if iop_key is None:
            iop_key = (tuple(r.iop), r.rows, r.cols, r.echo)
            keys[iop_key] = []
        keys[iop_key].append(r)
    n_orient = len({tuple(np.round(k[0], 2)) for k in keys})
    parts = sorted(keys.values(), key=lambda rs: (-len(rs), rs[0].instance))
    out = []
    for i, rs in enumerate(parts):
        s = DicomSeries(uid=uid, part=i, n_parts=len(parts), header=dict(header), slices=rs, n_orientations=n_orient)
        if bad:
            s.problems.append(f"{len(bad)} file(s) without usable geometry ignored")
        if len(parts) > 1:
            why = []
            if n_orient > 1:
                why.append(f"{n_orient} orientations")
            if len({(p[0].rows, p[0].cols) for p in parts}) > 1:
                why.append("different image sizes")
            if len({p[0].echo for p in parts}) > 1:
                why.append("several echoes")
            s.problems.append(f"series split into {len(parts)} parts ({', '.join(why) or 'different stacks'}); this is part {i + 1}")
        out.append(s)
    return out


# ----------------------------------------------------------------------------------------- geometry
def orientation_label(iop: np.ndarray) -> str:
    """AX / SAG / COR from the slice normal; 'OBL-AX' etc. when it is more than ~10° off the main axis."""
    n = np.cross(iop[:3], iop[3:])
    axis = int(np.argmax(np.abs(n)))
    name = ("SAG", "COR", "AX")[axis]
    return name if abs(n[axis]) > 0.985 else f"OBL-{name}"


def _lps_to_ras(v: np.ndarray) -> np.ndarray:
    return np.array([-v[0], -v[1], v[2]])


def _affine(first: SliceRef, step_lps: np.ndarray, flip_rows: bool = True) -> np.ndarray:
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
    return Geometry(status, msgs, srt, shape, _affine(srt[0], step, flip_rows), pos, tilt, flip_rows)


# ----------------------------------------------------------------------------------------- pixels
_FAST_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}


def _frames(path: Path) -> tuple[np.ndarray, object]:
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
    slope = _f(getattr(ds, "RescaleSlope", None)) or 1.0
    inter = _f(getattr(ds, "RescaleIntercept", None)) or 0.0
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
            cache[s.path] = _frames(s.path)[0]
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
        sheared = _affine(srt[0], (srt[-1].ipp - srt[0].ipp) / (len(srt) - 1), geom.flip_rows)
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


# ----------------------------------------------------------------------------------------- study level
def looks_like_dicom(path: Path | str, max_files: int = 200) -> bool:
    """True when a folder (or file) holds DICOM files and no NIfTI: decides how ``inspect`` treats it."""
    from .nifti import is_nifti

    path = Path(path)
    files = [path] if path.is_file() else []
    if path.is_dir():
        for i, f in enumerate(iter_files(path)):
            if is_nifti(f):
                return False
            files.append(f)
            if i >= max_files:
                break
    for f in files:
        try:
            with open(f, "rb") as fh:
                head = fh.read(132)
        except OSError:
            continue
        if head[128:132] == b"DICM" or f.name.upper() == "DICOMDIR":
            return True
    return False
