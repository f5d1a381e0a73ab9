"""DICOM SEG output (highdicom) that references the source series when the input was DICOM.

Each source slice gets its frame by sampling the native-space label map at that slice's pixel centres
(ImagePositionPatient + ImageOrientationPatient + PixelSpacing, LPS -> RAS -> NIfTI voxel), so the SEG is right
whatever voxel order the NIfTI conversion used. Segments: 1 NCR/NET, 2 edema, 3 enhancing tumour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_target
from ..labels import ED, ET, NCR

TYPE2_FROM_SOURCE = ("AccessionNumber", "ReferringPhysicianName", "StudyID", "PatientBirthDate", "PatientSex",
                     "StudyDate", "StudyTime", "PatientName", "PatientID")
SEGMENTS = ((NCR, "Necrotic / non-enhancing tumour core", "Necrosis"),
            (ED, "Peritumoral edema", "Edema"),
            (ET, "Enhancing tumour", "Neoplasm"))


def _source_datasets(root: Path, series_uid: str) -> list:
    import pydicom

    from ..io.dicom import iter_files

    out = []
    for f in iter_files(root):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=False)
        except Exception:  # noqa: BLE001 - non-DICOM files in the folder
            continue
        if getattr(ds, "SeriesInstanceUID", None) == series_uid and hasattr(ds, "ImagePositionPatient"):
            out.append(ds)
    uniq = {ds.SOPInstanceUID: ds for ds in out}
    for ds in uniq.values():  # type-2 attributes a SEG copies from its sources may be absent in real exports
        for attr in TYPE2_FROM_SOURCE:
            if attr not in ds:
                setattr(ds, attr, "")
    return list(uniq.values())


def frames_for_sources(labels: np.ndarray, affine: np.ndarray, sources: list) -> np.ndarray:
    """Label frames [n, rows, cols] in each source image's pixel layout (nearest voxel)."""
    inv = np.linalg.inv(affine)
    frames = []
    for ds in sources:
        rows, cols = int(ds.Rows), int(ds.Columns)
        ipp = np.array(ds.ImagePositionPatient, float)
        iop = np.array(ds.ImageOrientationPatient, float)
        dr, dc = (float(v) for v in ds.PixelSpacing)  # row spacing, column spacing
        r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        lps = ipp + c[..., None] * dc * iop[:3] + r[..., None] * dr * iop[3:]
        ras = lps * np.array([-1.0, -1.0, 1.0])
        vox = ras @ inv[:3, :3].T + inv[:3, 3]
        idx = np.rint(vox).astype(int)
        inside = np.all((idx >= 0) & (idx < np.array(labels.shape)), axis=-1)
        frame = np.zeros((rows, cols), np.uint8)
        ii = idx[inside]
        frame[inside] = labels[ii[:, 0], ii[:, 1], ii[:, 2]]
        frames.append(frame)
    return np.stack(frames)


def write_dicom_seg(path: Path | str, labels: np.ndarray, patient, reference) -> Path:
    """Write a DICOM SEG for ``labels`` (internal scheme, native grid of the reference NIfTI)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from ..version import __version__
    from ..io.nifti import read_nifti

    if patient.source != "dicom" or not patient.dicom:
        raise InputError("--output-type dicom-seg needs DICOM input (it references the source series)")
    uid = patient.dicom_series_uids.get(reference.value)
    if not uid:
        raise InputError(f"no source DICOM series recorded for the reference modality {reference.value}")
    sources = _source_datasets(Path(patient.dicom["root"]), uid)
    if not sources:
        raise InputError(f"cannot find the source DICOM files of series {uid}")
    ref_affine = read_nifti(patient.images[reference], dtype=None).affine
    frames = frames_for_sources(labels, ref_affine, sources)
    seg_map = np.zeros_like(frames)
    descriptions = []
    algo = hd.AlgorithmIdentificationSequence(name="mmtumor", version=__version__, family=codes.cid7162.ArtificialIntelligence)
    for number, (value, label, code) in enumerate(SEGMENTS, start=1):
        seg_map[frames == value] = number
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=label,
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=getattr(codes.SCT, code),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algo))
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=seg_map, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=900, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="mmtumor", manufacturer_model_name="mmtumor brain tumour segmentation",
        software_versions=__version__, device_serial_number="0", series_description="mmtumor tumour segmentation",
        omit_empty_frames=False)
    path = Path(path)
    with atomic_target(path, ".dcm") as tmp:
        seg.save_as(tmp)
    return path
