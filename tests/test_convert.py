"""A DICOM study to NIfTI (``mmtumor.convert``): a tumour series that cannot be used is named with the modality it
would have been and the reason, and the run says it goes on without it; 4D enhanced multi-frame series are refused."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from mmtumor.convert import convert_study
from mmtumor.io.dicom import ENHANCED_MR
from mmtumor.modalities import Modality
from mmtumor.synth.dicom import write_series, write_study


def _volume(seed: int):
    rng = np.random.default_rng(seed)
    aff = np.diag([1.0, 1.1, 2.5, 1.0])
    aff[:3, 3] = [-20.0, -18.0, -15.0]
    return np.rint(rng.random((40, 36, 14)) * 800 + 10), aff


def test_a_t1c_with_unusable_geometry_is_named_not_dropped_silently(tmp_path):
    recs = write_study({m: _volume(i) for i, m in enumerate(Modality)}, tmp_path / "study", seed=2, vendor="ge",
                       distractors=False)
    t1c = next(r for r in recs if r.modality is Modality.T1C)
    for f in t1c.files:  # every slice at one position: no volume can be rebuilt
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [0.0, 0.0, 0.0]
        ds.save_as(f)
    report = convert_study(tmp_path / "study", tmp_path / "out")
    assert "T1c" not in report.written and {"T1", "T2", "FLAIR"} <= set(report.written)
    assert all(p.is_file() and p.parent == tmp_path / "out" for p in report.written.values())
    assert report.missing == ["T1c"] and report.to_json()["missing"] == ["T1c"]
    said = [w for w in report.warnings if "looks like T1c" in w]
    assert len(said) == 1 and "going on without T1c" in said[0] and t1c.description in said[0]


def test_a_series_without_any_position_is_named_too(tmp_path):
    recs = write_study({m: _volume(i) for i, m in enumerate(Modality)}, tmp_path / "study", seed=3, vendor="siemens",
                       distractors=False)
    flair = next(r for r in recs if r.modality is Modality.FLAIR)
    for f in flair.files:
        ds = pydicom.dcmread(f)
        del ds.ImagePositionPatient
        ds.save_as(f)
    report = convert_study(tmp_path / "study", tmp_path / "out")
    assert "FLAIR" not in report.written
    assert any("looks like FLAIR" in w and "no file has usable geometry" in w and "going on without FLAIR" in w
               for w in report.warnings)


def test_4d_enhanced_multiframe_series_are_refused_not_misordered(tmp_path):
    """Two volumes in one enhanced multi-frame file, frames interleaved: not converted, and the reason is given."""
    vol, aff = _volume(0)
    single = write_series(vol, aff, tmp_path / "single", "DWI", "philips", None, 9)
    dsets = [pydicom.dcmread(f) for f in single.files]
    mf = dsets[0]
    mf.SOPClassUID = mf.file_meta.MediaStorageSOPClassUID = ENHANCED_MR
    shared, po, pm = pydicom.Dataset(), pydicom.Dataset(), pydicom.Dataset()
    po.ImageOrientationPatient = mf.ImageOrientationPatient
    pm.PixelSpacing, pm.SliceThickness = mf.PixelSpacing, mf.SliceThickness
    shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = [po], [pm]
    mf.SharedFunctionalGroupsSequence = [shared]
    frames, pixels = [], []
    for ds in dsets:
        for _ in range(2):  # volume 1 and volume 2 of each position, interleaved
            fg, pp = pydicom.Dataset(), pydicom.Dataset()
            pp.ImagePositionPatient = ds.ImagePositionPatient
            fg.PlanePositionSequence = [pp]
            frames.append(fg)
            pixels.append(ds.PixelData)
    mf.NumberOfFrames = len(frames)
    mf.PerFrameFunctionalGroupsSequence = frames
    mf.PixelData = b"".join(pixels)
    mf.SeriesDescription = "DTI 2 volumes"
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        delattr(mf, kw)
    (tmp_path / "multi").mkdir()
    mf.save_as(tmp_path / "multi" / "enhanced.dcm", enforce_file_format=True)
    report = convert_study(tmp_path / "multi", tmp_path / "out", all_series=True)
    assert report.written_all == [] and not list((tmp_path / "out").glob("*.nii.gz"))
    assert any("4D enhanced multi-frame" in e for e in report.errors)


def _corrupt_frame(path, how: str) -> None:
    """Damage the JPEG 2000 codestream of one file the way broken transfers and disks do."""
    from pydicom.encaps import encapsulate, generate_frames

    ds = pydicom.dcmread(path)
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    n = len(frame)
    if how == "truncated":
        frame = frame[: int(0.6 * n)]
    elif how == "tail overwritten":
        frame[int(0.7 * n):] = b"\x00" * (n - int(0.7 * n))
    elif how == "marker in packet data":
        frame[n // 2:n // 2 + 2] = b"\xff\x97"
    elif how == "tile-part length":
        sot = frame.find(b"\xff\x90")
        frame[sot + 6:sot + 10] = (n * 2).to_bytes(4, "big")
    ds.PixelData = encapsulate([bytes(frame)])
    ds.save_as(path)


@pytest.mark.parametrize("how", ["truncated", "tail overwritten", "marker in packet data", "tile-part length"])
def test_a_corrupt_jpeg2000_frame_refuses_its_series(tmp_path, how):
    """OpenJPEG decodes damaged codestreams to garbage without a word: the structural check refuses the series."""
    from mmtumor.io.dicom_pixels import read_frames as _frames
    from mmtumor.errors import ReadError

    vols = {m: _volume(i) for i, m in enumerate(Modality)}
    recs = write_study(vols, tmp_path / "study", seed=4, vendor="siemens", distractors=False,
                       transfer_syntax="1.2.840.10008.1.2.4.90")
    t1c = next(r for r in recs if r.modality is Modality.T1C)
    intact, _ = _frames(t1c.files[5])  # the intact stream decodes
    assert intact.shape[0] == 1
    _corrupt_frame(t1c.files[5], how)
    with pytest.raises(ReadError, match="JPEG 2000"):
        _frames(t1c.files[5])
    report = convert_study(tmp_path / "study", tmp_path / "out")
    assert "T1c" not in report.written and {"T1", "T2", "FLAIR"} <= set(report.written)
    said = [e for e in report.errors if "(T1c)" in e]
    assert len(said) == 1 and "corrupt JPEG 2000" in said[0] and "going on without T1c" in said[0]
