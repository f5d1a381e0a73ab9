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

VENDORS = ("siemens", "ge", "philips")
ORIENTATIONS = ("axial", "sagittal", "coronal", "oblique")
BROKEN_KINDS = ("missing_slice", "duplicate_slice", "mixed_orientation", "shared_folder")
DISTRACTOR_KINDS = ("LOC", "DWI", "ADC", "MPR")

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"

_MANUFACTURER = {
    "siemens": ("SIEMENS", ("Prisma", "Skyra", "Avanto_fit")),
    "ge": ("GE MEDICAL SYSTEMS", ("SIGNA Premier", "DISCOVERY MR750", "Optima MR450w")),
    "philips": ("Philips Medical Systems", ("Ingenia", "Achieva dStream", "Ingenia Elition X")),
}


@dataclass(frozen=True)
class Protocol:
    """One vendor protocol: names and sequence parameters (ranges are sampled per series)."""

    description: str
    protocol: str
    sequence_name: str
    scanning_sequence: str
    sequence_variant: str
    acq_type: str  # "2D" | "3D"
    tr: tuple[float, float]
    te: tuple[float, float]
    ti: tuple[float, float] | None
    flip: tuple[float, float]
    plane: str = "axial"  # the plane this protocol is usually acquired in
    thickness: float = 1.0
    image_type: str = "ORIGINAL\\PRIMARY\\M\\ND"


P = Protocol
#: vendor -> kind -> protocol variants. Kinds: T1, T1c, T2, FLAIR and distractors LOC, DWI, ADC, MPR.
PROTOCOLS: dict[str, dict[str, list[Protocol]]] = {
    "siemens": {
        "T1": [
            P("t1_mprage_sag_p2_iso", "t1_mprage_sag_p2_iso", "*tfl3d1_16ns", "GR\\IR", "SK\\SP\\MP", "3D",
              (1900, 2300), (2.2, 3.0), (900, 1100), (8, 9), "sagittal", 1.0),
            P("t1_se_tra", "t1_se_tra", "*se2d1", "SE", "SP\\OSP", "2D", (450, 650), (8, 12), None, (70, 90), "axial", 5.0),
            P("T1 MPRAGE PRE", "T1_MPRAGE_PRE", "*tfl3d1", "GR\\IR", "SK\\SP\\MP", "3D",
              (2000, 2300), (2.3, 3.2), (900, 1000), (8, 9), "sagittal", 1.0),
            P("t1_fl2d_tra", "t1_fl2d_tra", "*fl2d1", "GR", "SP\\OSP", "2D", (230, 300), (2.4, 2.8), None, (65, 75), "axial", 5.0),
        ],
        "T1c": [
            P("t1_mprage_sag_p2_iso_post", "t1_mprage_sag_p2_iso_post", "*tfl3d1_16ns", "GR\\IR", "SK\\SP\\MP", "3D",
              (1900, 2300), (2.2, 3.0), (900, 1100), (8, 9), "sagittal", 1.0),
            P("T1 MPRAGE +C", "T1_MPRAGE_KM", "*tfl3d1", "GR\\IR", "SK\\SP\\MP", "3D",
              (2000, 2300), (2.3, 3.2), (900, 1000), (8, 9), "sagittal", 1.0),
            P("t1_se_tra_KM", "t1_se_tra_KM", "*se2d1", "SE", "SP\\OSP", "2D", (450, 650), (8, 12), None, (70, 90), "axial", 5.0),
            P("t1_mprage_tra_GD", "t1_mprage_tra_GD", "*tfl3d1_16ns", "GR\\IR", "SK\\SP\\MP", "3D",
              (1900, 2300), (2.2, 3.0), (900, 1100), (8, 9), "axial", 1.0),
        ],
        "T2": [
            P("t2_tse_tra", "t2_tse_tra", "*tse2d1_15", "SE", "SK\\SP\\OSP", "2D", (4000, 6500), (85, 110), None, (120, 150), "axial", 5.0),
            P("t2_tse_tra_p2_512", "t2_tse_tra_p2_512", "*tse2d1_17", "SE", "SK\\SP\\OSP", "2D", (5000, 7000), (90, 105), None, (150, 150), "axial", 4.0),
            P("t2_spc_sag_p2_iso", "t2_spc_sag_p2_iso", "*spc_314ns", "SE", "SK\\SP\\OSP", "3D", (3200, 3200), (400, 420), None, (120, 120), "sagittal", 1.0),
            P("T2 TSE AX", "T2_TSE_AX", "*tse2d1_13", "SE", "SK\\SP\\OSP", "2D", (4500, 6000), (90, 100), None, (140, 150), "oblique", 4.0),
        ],
        "FLAIR": [
            P("t2_tirm_tra_dark-fluid", "t2_tirm_tra_dark-fluid", "*tir2d1_15", "SE\\IR", "SK\\SP\\MP\\OSP", "2D",
              (8000, 9000), (80, 95), (2370, 2500), (150, 150), "axial", 5.0),
            P("t2_spc_da-fl_sag_p2_iso", "t2_spc_da-fl_sag_p2_iso", "*spcir_278ns", "SE\\IR", "SK\\SP\\MP\\OSP", "3D",
              (5000, 5000), (380, 400), (1800, 1800), (120, 120), "sagittal", 1.0),
            P("FLAIR AX", "t2_flair_tra", "*tir2d1_13", "SE\\IR", "SK\\SP\\MP\\OSP", "2D",
              (9000, 9500), (85, 90), (2500, 2500), (150, 150), "axial", 4.0),
            P("t2_tirm_cor_dark-fluid", "t2_tirm_cor_dark-fluid", "*tir2d1_15", "SE\\IR", "SK\\SP\\MP\\OSP", "2D",
              (8000, 9000), (80, 95), (2370, 2500), (150, 150), "coronal", 4.0),
        ],
        "LOC": [P("localizer", "localizer", "*fl2d1", "GR", "SP", "2D", (8.6, 8.6), (4.0, 4.0), None, (20, 20)),
                P("AAHead_Scout", "AAHead_Scout_64ch", "*fl3d1_ns", "GR", "SP", "3D", (3.2, 3.2), (1.4, 1.4), None, (8, 8))],
        "DWI": [P("ep2d_diff_3scan_trace_p2", "ep2d_diff_3scan_trace_p2", "*ep_b1000t", "EP", "SK\\SP", "2D",
                  (4000, 6500), (85, 95), None, (90, 90), "axial", 5.0, "ORIGINAL\\PRIMARY\\DIFFUSION\\NONE\\ND\\NORM")],
        "ADC": [P("ep2d_diff_3scan_trace_p2_ADC", "ep2d_diff_3scan_trace_p2", "*ep_b0_1000", "EP", "SK\\SP", "2D",
                  (4000, 6500), (85, 95), None, (90, 90), "axial", 5.0, "DERIVED\\PRIMARY\\DIFFUSION\\ADC\\ND\\NORM")],
        "MPR": [P("t1_mprage_sag_p2_iso_post_MPR_tra", "t1_mprage_sag_p2_iso_post", "*tfl3d1_16ns", "GR\\IR", "SK\\SP\\MP", "3D",
                  (1900, 2300), (2.2, 3.0), (900, 1100), (8, 9), "axial", 3.0, "DERIVED\\SECONDARY\\MPR\\CSA MPR\\ND\\NORM")],
    },
    "ge": {
        "T1": [
            P("Sag 3D BRAVO", "Sag 3D BRAVO", "efgre3d", "GR", "SS\\SK", "3D", (7.5, 8.5), (3.0, 3.3), (450, 450), (12, 12), "sagittal", 1.0),
            P("AX T1 SE", "AX T1 SE", "fse", "SE", "SK\\OSP", "2D", (450, 600), (9, 12), None, (90, 90), "axial", 5.0),
            P("Ax T1 FLAIR", "Ax T1 FLAIR", "fsirs", "SE\\IR", "SK\\OSP\\MP", "2D", (1800, 2200), (20, 25), (720, 780), (90, 90), "axial", 5.0),
            P("SAG 3D FSPGR PRE", "SAG 3D FSPGR PRE", "efgre3d", "GR", "SS\\SK", "3D", (7.0, 8.0), (2.8, 3.2), None, (12, 15), "sagittal", 1.2),
        ],
        "T1c": [
            P("AX T1 POST GAD", "AX T1 POST GAD", "fse", "SE", "SK\\OSP", "2D", (450, 600), (9, 12), None, (90, 90), "axial", 5.0),
            P("Sag 3D BRAVO +C", "Sag 3D BRAVO +C", "efgre3d", "GR", "SS\\SK", "3D", (7.5, 8.5), (3.0, 3.3), (450, 450), (12, 12), "sagittal", 1.0),
            P("+C Ax T1 FLAIR", "+C Ax T1 FLAIR", "fsirs", "SE\\IR", "SK\\OSP\\MP", "2D", (1800, 2200), (20, 25), (720, 780), (90, 90), "axial", 5.0),
            P("COR T1 C+", "COR T1 C+", "fse", "SE", "SK\\OSP", "2D", (450, 600), (9, 12), None, (90, 90), "coronal", 4.0),
        ],
        "T2": [
            P("Ax T2 FRFSE", "Ax T2 FRFSE", "frfse", "SE", "SK\\OSP", "2D", (4500, 6000), (95, 110), None, (111, 125), "axial", 5.0),
            P("AX T2 PROPELLER", "AX T2 PROPELLER", "fse", "SE", "SK\\OSP", "2D", (5000, 7000), (100, 120), None, (142, 142), "axial", 4.0),
            P("Sag CUBE T2", "Sag CUBE T2", "fse3d", "SE", "SK\\OSP", "3D", (2500, 3000), (80, 110), None, (90, 90), "sagittal", 1.2),
            P("OBL T2 FSE", "OBL T2 FSE", "fse", "SE", "SK\\OSP", "2D", (4000, 5500), (90, 105), None, (125, 125), "oblique", 4.0),
        ],
        "FLAIR": [
            P("Ax T2 FLAIR", "Ax T2 FLAIR", "fsirs", "SE\\IR", "SK\\OSP\\MP", "2D", (8500, 10000), (110, 130), (2200, 2400), (90, 90), "axial", 5.0),
            P("Sag CUBE FLAIR", "Sag CUBE FLAIR", "fse3dir", "SE\\IR", "SK\\OSP\\MP", "3D", (6000, 6500), (110, 140), (1800, 1900), (90, 90), "sagittal", 1.2),
            P("AX FLAIR", "AX FLAIR", "fsirs", "SE\\IR", "SK\\OSP\\MP", "2D", (9000, 11000), (120, 145), (2400, 2600), (90, 90), "axial", 4.0),
            P("COR T2 FLAIR", "COR T2 FLAIR", "fsirs", "SE\\IR", "SK\\OSP\\MP", "2D", (8500, 10000), (110, 130), (2200, 2400), (90, 90), "coronal", 4.0),
        ],
        "LOC": [P("3-Plane Loc", "3-Plane Loc", "fgre", "GR", "SS", "2D", (5.0, 5.5), (1.5, 1.6), None, (30, 30))],
        "DWI": [P("Ax DWI 1000b", "Ax DWI 1000b", "epi", "EP", "SK\\SS", "2D", (6000, 8000), (70, 90), None, (90, 90), "axial", 5.0,
                  "ORIGINAL\\PRIMARY\\OTHER")],
        "ADC": [P("ADC (10^-6 mm²/s):Ax DWI 1000b", "Ax DWI 1000b", "epi", "EP", "SK\\SS", "2D", (6000, 8000), (70, 90), None, (90, 90),
                  "axial", 5.0, "DERIVED\\PRIMARY\\ADC")],
        "MPR": [P("Sag 3D BRAVO +C MPR AX", "Sag 3D BRAVO +C", "efgre3d", "GR", "SS\\SK", "3D", (7.5, 8.5), (3.0, 3.3), (450, 450), (12, 12),
                  "axial", 3.0, "DERIVED\\SECONDARY\\REFORMATTED\\AVERAGE")],
    },
    "philips": {
        "T1": [
            P("T1W_3D_TFE", "T1W_3D_TFE", "T1TFE", "GR", "MP\\SK", "3D", (8.0, 8.5), (3.6, 3.9), None, (8, 8), "sagittal", 1.0),
            P("T1W_SE", "T1W_SE", "SE", "SE", "SK", "2D", (500, 650), (10, 15), None, (90, 90), "axial", 5.0),
            P("sT1W_3D_TFE pre", "sT1W_3D_TFE", "T1TFE", "GR", "MP\\SK", "3D", (8.0, 8.5), (3.6, 3.9), None, (8, 8), "axial", 1.0),
            P("T1W_FFE", "T1W_FFE", "FFE", "GR", "SK", "2D", (250, 350), (4.0, 4.6), None, (70, 80), "axial", 5.0),
        ],
        "T1c": [
            P("T1W_3D_TFE +C", "T1W_3D_TFE +C", "T1TFE", "GR", "MP\\SK", "3D", (8.0, 8.5), (3.6, 3.9), None, (8, 8), "sagittal", 1.0),
            P("T1W_SE_GD", "T1W_SE_GD", "SE", "SE", "SK", "2D", (500, 650), (10, 15), None, (90, 90), "axial", 5.0),
            P("sT1W_3D_TFE_post_gado", "sT1W_3D_TFE", "T1TFE", "GR", "MP\\SK", "3D", (8.0, 8.5), (3.6, 3.9), None, (8, 8), "axial", 1.0),
            P("T1W_SE_COR_CONTRAST", "T1W_SE_COR", "SE", "SE", "SK", "2D", (500, 650), (10, 15), None, (90, 90), "coronal", 4.0),
        ],
        "T2": [
            P("T2W_TSE", "T2W_TSE", "TSE", "SE", "SK", "2D", (3000, 4500), (80, 100), None, (90, 90), "axial", 5.0),
            P("T2W_TSE_TRA", "T2W_TSE_TRA", "TSE", "SE", "SK", "2D", (3500, 5000), (90, 110), None, (90, 90), "oblique", 4.0),
            P("3D_T2W_VIEW", "3D_T2W_VIEW", "TSE", "SE", "SK", "3D", (2500, 2500), (250, 280), None, (90, 90), "sagittal", 1.0),
            P("sT2W_TSE_COR", "sT2W_TSE_COR", "TSE", "SE", "SK", "2D", (3000, 4500), (80, 100), None, (90, 90), "coronal", 4.0),
        ],
        "FLAIR": [
            P("T2W_FLAIR", "T2W_FLAIR", "IR", "IR", "SK", "2D", (10000, 11000), (120, 140), (2700, 2800), (90, 90), "axial", 5.0),
            P("3D_Brain_VIEW_FLAIR", "3D_Brain_VIEW_FLAIR", "IR", "SE\\IR", "SK\\MP", "3D", (4800, 4800), (280, 340), (1650, 1650), (40, 90),
              "sagittal", 1.1),
            P("FLAIR_longTR", "FLAIR_longTR", "IR", "IR", "SK", "2D", (11000, 12000), (125, 140), (2800, 2850), (90, 90), "axial", 4.0),
            P("sFLAIR_TRA", "sFLAIR_TRA", "IR", "IR", "SK", "2D", (10000, 11000), (120, 140), (2700, 2800), (90, 90), "oblique", 4.0),
        ],
        "LOC": [P("Survey", "Survey", "FFE", "GR", "SK", "2D", (10, 11), (4.6, 4.6), None, (15, 15))],
        "DWI": [P("DWI_SENSE", "DWI_SENSE", "EPI", "EP\\SE", "SK", "2D", (3000, 4500), (70, 90), None, (90, 90), "axial", 5.0,
                  "ORIGINAL\\PRIMARY\\M_SE\\M\\SE")],
        "ADC": [P("dADC_DWI_SENSE", "DWI_SENSE", "EPI", "EP\\SE", "SK", "2D", (3000, 4500), (70, 90), None, (90, 90), "axial", 5.0,
                  "DERIVED\\PRIMARY\\DIFFUSION\\ADC")],
        "MPR": [P("T1W_3D_TFE +C MPR tra", "T1W_3D_TFE +C", "T1TFE", "GR", "MP\\SK", "3D", (8.0, 8.5), (3.6, 3.9), None, (8, 8),
                  "axial", 3.0, "DERIVED\\SECONDARY\\MPR")],
    },
}

_CONTRAST_AGENTS = ("Gadovist", "DOTAREM", "MultiHance", "Gadavist 1.0 mmol/ml", "Clariscan", "GADOLINIUM")


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
