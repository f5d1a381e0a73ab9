"""DICOM writer for phantom studies: realistic MR series (Siemens, GE, Philips styles) from volumes with affines.

Why: the DICOM converter and the modality detector must be tested against PACS-like studies (vendor naming,
oblique acquisitions, localizers, DWI/ADC, broken series) that we can generate with known ground truth.

Public API
----------
``write_study(volumes, out_dir, seed, vendor=None, distractors=True, broken=(), acquisition="native")``
    ``volumes``: ``{Modality: (data, affine)}`` (``affine`` voxel -> RAS+ mm, any grid). Writes one series per
    modality (one file per slice), plus distractors (a 3-plane localizer, DWI trace and ADC, an MPR reformat
    of the T1c) when ``distractors``, and the requested ``broken`` kinds (see :data:`BROKEN_KINDS`):
    ``missing_slice`` (a middle slice file of the T2 series removed), ``duplicate_slice`` (a middle FLAIR slice
    written twice under a new SOPInstanceUID), ``mixed_orientation`` (two sagittal slices appended to the T1
    series under its SeriesInstanceUID), ``shared_folder`` (T2 and FLAIR written into one folder).
    ``vendor``: ``"siemens" | "ge" | "philips"`` or None (drawn from ``seed``). ``acquisition``: ``"native"``
    (the volumes' own grids), ``"random"`` (per series a vendor-typical plane/thickness, oblique included) or a
    dict ``{Modality: (orientation, slice_thickness_mm)}``. Returns a list of :class:`SeriesRecord` (the truth:
    kind, modality, folder, files, description, broken tag, data and affine as written).
``write_series(data, affine, out_dir, modality, vendor="siemens", orientation=None, series_number=1, ...)``
    One series. ``modality`` is a :class:`Modality` or a distractor kind (``"LOC"``, ``"DWI"``, ``"ADC"``,
    ``"MPR"``). Slices run along the third voxel axis of ``data``; column index = first voxel axis, row index =
    second. ImageOrientationPatient/ImagePositionPatient come from the affine converted RAS -> LPS.
``acquisition_grid(data, affine, orientation, slice_thickness, inplane=None)``
    Resample a volume into an axial/sagittal/coronal/oblique acquisition grid covering the same field of view.

Stored values: integer input that fits 16 bits is written exactly (slope 1, intercept 0); float input is
quantised to uint16 with RescaleSlope = range/65535 and RescaleIntercept = minimum (error <= slope/2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from ..modalities import Modality
from .protocols import (  # noqa: F401 - re-exported: the study writer's vocabulary
    _CONTRAST_AGENTS, _MANUFACTURER, BROKEN_KINDS, DISTRACTOR_KINDS, MR_IMAGE_STORAGE, ORIENTATIONS, PROTOCOLS, VENDORS,
    Protocol)

@dataclass
class SeriesRecord:
    """What was written for one series: the ground truth the converter/detector is checked against."""

    kind: str  # "T1", "T1c", "T2", "FLAIR", "LOC", "DWI", "ADC", "MPR"
    modality: Modality | None  # truth for the 4 modalities, None for distractors
    series_number: int
    series_uid: str
    description: str
    folder: Path
    files: list[Path]
    data: np.ndarray  # voxels written (after acquisition resampling, before quantisation)
    affine: np.ndarray
    orientation: str
    broken: str | None = None
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ geometry
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _rot(axis: int, deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def plane_axes(orientation: str, oblique_deg: tuple[float, float] = (15.0, 10.0)) -> np.ndarray:
    """3x3 matrix whose columns are DICOM row cosine, column cosine and slice normal, in LPS."""
    o = orientation.lower()
    if o in ("axial", "oblique"):
        row, col = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    elif o == "sagittal":
        row, col = np.array([0, 1.0, 0]), np.array([0, 0, -1.0])
    elif o == "coronal":
        row, col = np.array([1.0, 0, 0]), np.array([0, 0, -1.0])
    else:
        raise ValueError(f"unknown orientation '{orientation}' (expected one of {ORIENTATIONS})")
    m = np.stack([row, col, np.cross(row, col)], axis=1)
    if o == "oblique":
        m = _rot(0, oblique_deg[0]) @ _rot(1, oblique_deg[1]) @ m
    return m


def acquisition_grid(data: np.ndarray, affine: np.ndarray, orientation: str, slice_thickness: float,
                     inplane: float | None = None, oblique_deg: tuple[float, float] = (15.0, 10.0),
                     descending: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``data`` into an acquisition grid covering the same field of view.

    The new grid has DICOM-style axes (column index, row index, slice) with ``inplane`` mm pixels (default: the
    input's smallest spacing) and ``slice_thickness`` mm slices; a thick slice averages the volume over its slab
    (3 sub-samples), as a 2D acquisition does. ``descending`` stores slices against the normal (some scanners do).
    """
    from scipy.ndimage import map_coordinates

    affine = np.asarray(affine, dtype=float)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
    inplane = float(inplane or spacing.min())
    axes_ras = _LPS_TO_RAS @ plane_axes(orientation, oblique_deg)
    if descending:
        axes_ras[:, 2] *= -1
    corners = np.array([[i, j, k, 1.0] for i in (-0.5, data.shape[0] - 0.5) for j in (-0.5, data.shape[1] - 0.5)
                        for k in (-0.5, data.shape[2] - 0.5)])
    world = (affine @ corners.T)[:3].T
    proj = world @ axes_ras  # coordinates along the new axes
    lo, hi = proj.min(0), proj.max(0)
    steps = np.array([inplane, inplane, float(slice_thickness)])
    shape = np.maximum(np.floor((hi - lo) / steps).astype(int), 1)
    start = lo + (hi - lo - (shape - 1) * steps) / 2  # centre the grid in the field of view
    new_aff = np.eye(4)
    new_aff[:3, :3] = axes_ras * steps
    new_aff[:3, 3] = axes_ras @ start
    sub = (-1 / 3, 0.0, 1 / 3) if slice_thickness > 1.5 * spacing.min() else (0.0,)
    out = np.zeros(tuple(shape), dtype=np.float32)
    inv = np.linalg.inv(affine)
    ii, jj, kk = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    for s in sub:
        vox = np.stack([ii.ravel(), jj.ravel(), kk.ravel() + s, np.ones(ii.size)])
        src = (inv @ new_aff @ vox)[:3]
        out += map_coordinates(np.asarray(data, dtype=np.float32), src, order=1, mode="constant", cval=0.0).reshape(shape)
    return out / len(sub), new_aff


# ------------------------------------------------------------------------------------------ writing
@dataclass
class StudyInfo:
    """Patient/study identity shared by the series of one study (deterministic from the seed)."""

    seed: int = 0
    patient_id: str = "PHANTOM0001"
    patient_name: str = "PHANTOM^MMTUMOR"
    study_uid: str = ""
    frame_uid: str = ""
    start: datetime = datetime(2024, 3, 14, 9, 30, 0)
    vendor: str = "siemens"
    model: str = ""
    field_strength: float = 3.0

    def __post_init__(self) -> None:
        from pydicom.uid import generate_uid

        self.study_uid = self.study_uid or generate_uid(entropy_srcs=["study", str(self.seed)])
        self.frame_uid = self.frame_uid or generate_uid(entropy_srcs=["frame", str(self.seed)])
        if not self.model:
            self.model = _MANUFACTURER[self.vendor][1][self.seed % len(_MANUFACTURER[self.vendor][1])]


def _ds_num(v: float) -> str:
    """Decimal String value with at most 16 characters."""
    v = float(v)
    s = f"{v:.10g}"
    if len(s) > 16:
        s = f"{v:.8g}"
    return s if s not in ("-0", "") else "0"


def _quantise(data: np.ndarray, rescale: str | tuple[float, float]) -> tuple[np.ndarray, float, float, bool]:
    """Stored integer array, slope, intercept, signed."""
    data = np.asarray(data)
    if rescale == "auto" and (np.issubdtype(data.dtype, np.integer) or np.all(np.mod(data, 1) == 0)):
        lo, hi = float(data.min()), float(data.max())
        if lo >= 0 and hi <= 65535:
            return data.astype(np.uint16), 1.0, 0.0, False
        if lo >= -32768 and hi <= 32767:
            return data.astype(np.int16), 1.0, 0.0, True
    if rescale == "auto":
        lo, hi = float(np.min(data)), float(np.max(data))
        slope = float(f"{max(hi - lo, 1e-6) / 65535:.6g}")
        intercept = float(f"{lo:.6g}")
    else:
        slope, intercept = float(rescale[0]), float(rescale[1])
    q = np.clip(np.rint((np.asarray(data, dtype=np.float64) - intercept) / slope), 0, 65535)
    return q.astype(np.uint16), slope, intercept, False


def _vary(text: str, rng: np.random.Generator) -> str:
    """Realistic spelling variation of a description (case, separators) without changing its tokens."""
    r = rng.random()
    if r < 0.2:
        text = text.upper()
    elif r < 0.3:
        text = text.lower()
    if rng.random() < 0.2:
        text = re.sub(r"[ _]", "_" if " " in text else " ", text)
    return text


def write_series(data: np.ndarray, affine: np.ndarray, out_dir: Path | str, modality: Modality | str,
                 vendor: str = "siemens", orientation: str | None = None, series_number: int = 1, *,
                 slice_thickness: float | None = None, study: StudyInfo | None = None, protocol: Protocol | None = None,
                 rng: np.random.Generator | None = None, description: str | None = None, contrast_agent: str | None = None,
                 acquisition_time: datetime | None = None, series_uid: str | None = None, file_ext: str = ".dcm",
                 name_prefix: str = "IM", transfer_syntax: str | None = None, rescale: str | tuple[float, float] = "auto",
                 image_type: str | None = None, extra: dict | None = None, vary: bool = False,
                 first_instance: int = 1) -> SeriesRecord:
    """Write one MR series, one file per slice (slices along the third voxel axis of ``data``).

    ``orientation`` (axial/sagittal/coronal/oblique) first resamples the volume into that acquisition grid with
    ``slice_thickness`` (default: the protocol's). ``transfer_syntax`` may be a compressed UID pydicom can encode
    (RLE Lossless, JPEG 2000 Lossless). Returns the :class:`SeriesRecord`.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = rng if rng is not None else np.random.default_rng(series_number)
    kind = modality.value if isinstance(modality, Modality) else str(modality)
    vendor = vendor.lower()
    study = study or StudyInfo(vendor=vendor)
    proto = protocol or PROTOCOLS[vendor][kind][int(rng.integers(len(PROTOCOLS[vendor][kind])))]
    data = np.asarray(data)
    affine = np.asarray(affine, dtype=float)
    if orientation is not None:
        data, affine = acquisition_grid(data, affine, orientation, slice_thickness or proto.thickness)
    desc = description or (_vary(proto.description, rng) if vary else proto.description)
    stored, slope, intercept, signed = _quantise(data, rescale)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid(entropy_srcs=[study.study_uid, "series", str(series_number), kind])
    when = acquisition_time or study.start + timedelta(minutes=3 * series_number)

    lin = affine[:3, :3]
    sp = np.sqrt((lin ** 2).sum(0))
    row_lps = (_LPS_TO_RAS @ lin[:, 0]) / sp[0]
    col_lps = (_LPS_TO_RAS @ lin[:, 1]) / sp[1]
    iop = [_ds_num(v) for v in (*row_lps, *col_lps)]
    tr, te = rng.uniform(*proto.tr), rng.uniform(*proto.te)
    ti = rng.uniform(*proto.ti) if proto.ti else None
    flip = rng.uniform(*proto.flip)
    manufacturer = _MANUFACTURER[vendor][0]
    itype = image_type or proto.image_type
    files: list[Path] = []
    n = data.shape[2]
    # constant attributes once per series; only position, instance and pixels change per slice (save_as dominates)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100" if "²" not in desc else "ISO_IR 192"
    ds.ImageType = itype.split("\\")
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.StudyDate = study.start.strftime("%Y%m%d")
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = when.strftime("%Y%m%d")
    ds.StudyTime = study.start.strftime("%H%M%S")
    ds.Modality = "MR"
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = study.model
    ds.InstitutionName = "MMTUMOR PHANTOM HOSPITAL"
    ds.StudyDescription = "MRI BRAIN W/WO CONTRAST"
    ds.SeriesDescription = desc
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    if contrast_agent:
        ds.ContrastBolusAgent = contrast_agent
    ds.ScanningSequence = proto.scanning_sequence.split("\\")
    ds.SequenceVariant = proto.sequence_variant.split("\\")
    ds.ScanOptions = ""
    ds.MRAcquisitionType = proto.acq_type
    ds.SequenceName = proto.sequence_name
    ds.SliceThickness = _ds_num(sp[2])
    ds.RepetitionTime = _ds_num(round(tr, 2))
    ds.EchoTime = _ds_num(round(te, 2))
    if ti is not None:
        ds.InversionTime = _ds_num(round(ti, 1))
    ds.MagneticFieldStrength = _ds_num(study.field_strength)
    ds.EchoNumbers = 1
    ds.SpacingBetweenSlices = _ds_num(sp[2])
    ds.ProtocolName = proto.protocol
    ds.FlipAngle = _ds_num(round(flip, 1))
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = iop
    ds.FrameOfReferenceUID = study.frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(data.shape[1]), int(data.shape[0])
    ds.PixelSpacing = [_ds_num(sp[1]), _ds_num(sp[0])]  # row spacing (between rows), column spacing
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleIntercept = _ds_num(intercept)
    ds.RescaleSlope = _ds_num(slope)
    ds.RescaleType = "US"
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    for k in range(n):
        ipp = _LPS_TO_RAS @ (affine @ np.array([0.0, 0.0, k, 1.0]))[:3]
        sop_uid = generate_uid(entropy_srcs=[series_uid, "sop", name_prefix, str(first_instance + k)])
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPInstanceUID = sop_uid
        ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = (when + timedelta(seconds=k * 0.1)).strftime("%H%M%S.%f")[:13]
        ds.InstanceNumber = first_instance + k
        ds.ImagePositionPatient = [_ds_num(v) for v in ipp]
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        if transfer_syntax:
            ds.compress(transfer_syntax, encoding_plugin="pylibjpeg" if transfer_syntax.startswith("1.2.840.10008.1.2.4.9") else "")
        path = out_dir / f"{name_prefix}{series_number:03d}{k + 1:04d}{file_ext}"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return SeriesRecord(kind=kind, modality=modality if isinstance(modality, Modality) else None,
                        series_number=series_number, series_uid=series_uid, description=desc, folder=out_dir,
                        files=files, data=np.asarray(data), affine=affine, orientation=orientation or "native",
                        extra={"slope": slope, "intercept": intercept, "tr": tr, "te": te, "ti": ti, "flip": flip})


# ------------------------------------------------------------------------------------------ studies
_DEFAULT_ORDER = (Modality.T1, Modality.T2, Modality.FLAIR, Modality.T1C)  # post-contrast is acquired last


def _loc_volume(ref: np.ndarray, ref_aff: np.ndarray, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Three single-slice planes through the centre (a 3-plane localizer)."""
    out = []
    for o in ("sagittal", "coronal", "axial"):
        vol, aff = acquisition_grid(ref, ref_aff, o, 8.0, inplane=2 * float(np.sqrt((ref_aff[:3, :3] ** 2).sum(0)).min()))
        mid = vol.shape[2] // 2
        a = aff.copy()
        a[:3, 3] = (aff @ np.array([0, 0, mid, 1.0]))[:3]
        out.append((vol[:, :, mid:mid + 1], a, o))
    return out


def write_study(volumes: dict[Modality, tuple[np.ndarray, np.ndarray]], out_dir: Path | str, seed: int = 0,
                vendor: str | None = None, distractors: bool = True, broken: tuple[str, ...] | list[str] = (),
                acquisition: str | dict = "native", transfer_syntax: str | None = None, vary: bool = True) -> list[SeriesRecord]:
    """Write a PACS-like study (see the module docstring); returns the truth for every series written."""
    from pydicom.uid import generate_uid

    unknown = set(broken) - set(BROKEN_KINDS)
    if unknown:
        raise ValueError(f"unknown broken kinds {sorted(unknown)}; expected {BROKEN_KINDS}")
    rng = np.random.default_rng(seed)
    vendor = (vendor or VENDORS[int(rng.integers(len(VENDORS)))]).lower()
    study = StudyInfo(seed=seed, vendor=vendor, patient_id=f"PHANTOM{seed:05d}")
    out_dir = Path(out_dir)
    records: list[SeriesRecord] = []
    number = 1
    ext = "" if vendor == "ge" else ".dcm"  # some exports carry no extension
    ref_mod = next(m for m in (Modality.T1C, Modality.T1, Modality.FLAIR, Modality.T2) if m in volumes)
    ref_data, ref_aff = volumes[ref_mod]

    if distractors:
        loc_uid = generate_uid(entropy_srcs=[study.study_uid, "loc"])
        folder = out_dir / f"{number:03d}_localizer"
        for j, (vol, aff, _o) in enumerate(_loc_volume(ref_data, ref_aff, rng)):
            rec = write_series(vol, aff, folder, "LOC", vendor, None, number, study=study, rng=rng, series_uid=loc_uid,
                               file_ext=ext, name_prefix=f"IM{j}_")
            if j == 0:
                records.append(rec)
            else:
                records[-1].files.extend(rec.files)
        records[-1].orientation = "mixed"
        number += 1

    acq_time = study.start + timedelta(minutes=5)
    for mod in _DEFAULT_ORDER:
        if mod not in volumes:
            continue
        data, aff = volumes[mod]
        proto = PROTOCOLS[vendor][mod.value][int(rng.integers(len(PROTOCOLS[vendor][mod.value])))]
        orientation, thick = None, None
        if acquisition == "random":
            orientation, thick = proto.plane, max(proto.thickness, 1.0)
        elif isinstance(acquisition, dict) and mod in acquisition:
            orientation, thick = acquisition[mod]
        share = "shared_folder" in broken and mod in (Modality.T2, Modality.FLAIR)
        folder = out_dir / ("shared" if share else f"{number:03d}_{re.sub(r'[^A-Za-z0-9]+', '_', proto.description)}")
        agent = _CONTRAST_AGENTS[int(rng.integers(len(_CONTRAST_AGENTS)))] if mod is Modality.T1C else None
        rec = write_series(data, aff, folder, mod, vendor, orientation, number, slice_thickness=thick, study=study, protocol=proto,
                           rng=rng, contrast_agent=agent, acquisition_time=acq_time, file_ext=ext, vary=vary,
                           transfer_syntax=transfer_syntax, name_prefix=f"IM{mod.value}_" if share else "IM")
        rec.broken = "shared_folder" if share else None
        records.append(rec)
        acq_time += timedelta(minutes=6)
        number += 1
        if distractors and mod is Modality.FLAIR:  # DWI/ADC usually come between FLAIR and contrast
            for kind in ("DWI", "ADC"):
                vol, a2 = acquisition_grid(data, aff, "axial", 5.0, inplane=2.0)
                extra = {"DiffusionBValue": 1000.0} if kind == "DWI" else {}
                records.append(write_series(vol, a2, out_dir / f"{number:03d}_{kind}", kind, vendor, None, number, study=study,
                                            rng=rng, acquisition_time=acq_time, file_ext=ext, extra=extra))
                acq_time += timedelta(minutes=2)
                number += 1
    if distractors and Modality.T1C in volumes:
        vol, a2 = acquisition_grid(*volumes[Modality.T1C], "axial", 3.0)
        records.append(write_series(vol, a2, out_dir / f"{number:03d}_MPR", "MPR", vendor, None, number, study=study, rng=rng,
                                    acquisition_time=acq_time, file_ext=ext))
        number += 1
    _apply_broken(records, broken, study, rng, ext)
    return records


def _by_mod(records: list[SeriesRecord], *mods: Modality) -> SeriesRecord | None:
    """First series of the preferred modalities that is not broken yet (else the first one at all)."""
    for intact in (True, False):
        for m in mods:
            for r in records:
                if r.modality is m and (r.broken is None or not intact):
                    return r
    return None


def _tag(rec: SeriesRecord, kind: str) -> None:
    rec.broken = f"{rec.broken}+{kind}" if rec.broken else kind


def _apply_broken(records: list[SeriesRecord], broken, study: StudyInfo, rng: np.random.Generator, ext: str) -> None:
    """Damage series in place, the way real exports break."""
    import pydicom
    from pydicom.uid import generate_uid

    if "missing_slice" in broken:
        rec = _by_mod(records, Modality.T2, Modality.T1C, Modality.T1, Modality.FLAIR)
        if rec is not None and len(rec.files) >= 5:
            victim = rec.files.pop(len(rec.files) // 2)
            victim.unlink()
            _tag(rec, "missing_slice")
    if "duplicate_slice" in broken:
        rec = _by_mod(records, Modality.FLAIR, Modality.T2, Modality.T1, Modality.T1C)
        if rec is not None:
            src = rec.files[len(rec.files) // 2]
            ds = pydicom.dcmread(src)
            uid = generate_uid(entropy_srcs=[str(src), "dup"])
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
            ds.InstanceNumber = len(rec.files) + 1
            dup = src.with_name(src.stem + "_dup" + ext)
            ds.save_as(dup, enforce_file_format=True)
            rec.files.append(dup)
            _tag(rec, "duplicate_slice")
    if "mixed_orientation" in broken:
        rec = _by_mod(records, Modality.T1, Modality.T1C, Modality.T2, Modality.FLAIR)
        if rec is not None:
            vol, aff = acquisition_grid(rec.data, rec.affine, "sagittal", 6.0)
            mid = vol.shape[2] // 2
            extra = write_series(vol[:, :, mid:mid + 2], aff @ _shift(mid), rec.folder, rec.kind, study.vendor, None,
                                 rec.series_number, study=study, rng=rng, series_uid=rec.series_uid, description=rec.description,
                                 file_ext=ext, name_prefix="IMX")
            rec.files.extend(extra.files)
            _tag(rec, "mixed_orientation")
            rec.extra["mixed_parts"] = 2


def _shift(k: int) -> np.ndarray:
    m = np.eye(4)
    m[2, 3] = k
    return m
