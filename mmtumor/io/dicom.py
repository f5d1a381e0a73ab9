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
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, ReadError
from .dicom_geometry import (  # noqa: F401 - re-exported: the geometry types belong to a series
    IOP_TOL, SPACING_ABS_TOL, SPACING_REL_TOL, TILT_TOL_DEG, Geometry, SliceRef, check_geometry, flips_rows,
    orientation_label, stack_affine)

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
def float_or_none(v) -> float | None:
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
                                float_or_none(slope) or 1.0, float_or_none(inter) or 0.0, samples))
        return out
    ipp, iop, ps = getattr(ds, "ImagePositionPatient", None), getattr(ds, "ImageOrientationPatient", None), getattr(ds, "PixelSpacing", None)
    if ipp is None or iop is None or ps is None or len(ipp) != 3 or len(iop) != 6:
        raise ReadError(f"{path.name}: no ImagePositionPatient/ImageOrientationPatient/PixelSpacing")
    echo = getattr(ds, "EchoNumbers", None)
    slope = float_or_none(getattr(ds, "RescaleSlope", None)) or 1.0
    inter = float_or_none(getattr(ds, "RescaleIntercept", None)) or 0.0
    ss = _philips_scale_slope(ds)
    if ss:  # dcm2niix's default "precise" Philips values: (PV * RS + RI) / (RS * SS)
        slope, inter = 1.0 / ss, inter / (slope * ss)
    return [SliceRef(path, None, np.array([float(x) for x in ipp]), np.array([float(x) for x in iop]), rows, cols,
                     (float(ps[0]), float(ps[1])), int(getattr(ds, "InstanceNumber", 0) or 0),
                     None if echo in (None, "") else int(echo if not isinstance(echo, (list, tuple)) else echo[0]),
                     float_or_none(getattr(ds, "AcquisitionNumber", None)), str(getattr(ds, "AcquisitionTime", "") or ""),
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
    ss = float_or_none(val)
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
