"""DICOM writer for phantoms: every vendor style, orientation, distractor and broken-series kind re-reads correctly."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest

from mmtumor.io.dicom import discover_series
from mmtumor.io.dicom_pixels import load_series
from mmtumor.modalities import Modality
from mmtumor.synth.dicom import BROKEN_KINDS, ORIENTATIONS, PROTOCOLS, VENDORS, acquisition_grid, write_series, write_study

SHAPE = (32, 28, 12)


def _volume(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = rng.random(SHAPE).astype(np.float32) * 500 + 20
    aff = np.diag([1.2, 1.1, 2.0, 1.0])
    aff[:3, 3] = [-20.0, -15.0, -12.0]
    return data, aff


def _canonical(data: np.ndarray, aff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Same grid in RAS+ axis order: compares volumes whatever voxel order the converter chose (dcm2niix's)."""
    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, dtype=np.float32), aff))
    return np.asanyarray(img.dataobj), img.affine


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_series_round_trip(tmp_path, vendor, orientation):
    data, aff = _volume()
    rec = write_series(data, aff, tmp_path, Modality.T2, vendor, orientation, 3, slice_thickness=3.0)
    ds = pydicom.dcmread(rec.files[0])
    assert ds.Manufacturer.lower().startswith(vendor[:2])
    assert ds.SeriesDescription in [p.description for p in PROTOCOLS[vendor]["T2"]]
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    assert abs(iop[:3] @ iop[3:]) < 1e-5 and np.allclose(np.linalg.norm(iop.reshape(2, 3), axis=1), 1, atol=1e-5)
    normal = np.cross(iop[:3], iop[3:])
    expected = {"axial": 2, "sagittal": 0, "coronal": 1}.get(orientation)
    if expected is not None:
        assert abs(normal[expected]) > 0.999
    else:
        assert max(abs(normal)) < 0.99  # oblique really is oblique
    assert float(ds.SliceThickness) == pytest.approx(3.0)
    series = discover_series(tmp_path).series
    assert len(series) == 1
    vol, affine, geom = load_series(series[0])
    assert geom.status == "ok"
    got, got_aff = _canonical(vol, affine)
    want, want_aff = _canonical(rec.data, rec.affine)
    assert np.allclose(got_aff, want_aff, atol=1e-3)
    assert np.abs(got - want).max() <= rec.extra["slope"] / 2 + 1e-3


def test_acquisition_grid_covers_field_of_view():
    data, aff = _volume()
    out, new = acquisition_grid(data, aff, "sagittal", 4.0, inplane=1.0)
    assert np.linalg.norm(new[:3, 2]) == pytest.approx(4.0)
    assert out.shape[2] == int((SHAPE[0] * 1.2) // 4.0)
    assert out.max() > 0


def test_integer_data_written_exactly(tmp_path):
    data = np.arange(np.prod(SHAPE), dtype=np.int32).reshape(SHAPE) % 3000 - 1000
    rec = write_series(data, np.eye(4), tmp_path, Modality.T1, "ge")
    assert rec.extra["slope"] == 1.0
    vol, aff, _ = load_series(discover_series(tmp_path).series[0])
    assert vol.dtype == np.int16 and np.array_equal(_canonical(vol, aff)[0], _canonical(data, rec.affine)[0])


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"])  # RLE, JPEG 2000 lossless
def test_compressed_series_decode(tmp_path, syntax):
    shape = (64, 64, 4)  # OpenJPEG's default 6 resolution levels need >= 32 pixels per side
    data = (np.arange(np.prod(shape)).reshape(shape) % 4000).astype(np.uint16)
    rec = write_series(data, np.eye(4), tmp_path, Modality.FLAIR, "philips", transfer_syntax=syntax)
    assert str(pydicom.dcmread(next(tmp_path.iterdir())).file_meta.TransferSyntaxUID) == syntax
    vol, aff, _ = load_series(discover_series(tmp_path).series[0])
    assert np.array_equal(_canonical(vol, aff)[0], _canonical(data, rec.affine)[0])


@pytest.mark.parametrize("vendor", VENDORS)
def test_study_distractors_and_broken(tmp_path, vendor):
    vols = {m: _volume(i) for i, m in enumerate(Modality)}
    recs = write_study(vols, tmp_path, seed=3, vendor=vendor, broken=BROKEN_KINDS)
    kinds = [r.kind for r in recs]
    assert {"LOC", "DWI", "ADC", "MPR", "T1", "T1c", "T2", "FLAIR"} <= set(kinds)
    broken = {k for r in recs if r.broken for k in r.broken.split("+")}
    assert set(BROKEN_KINDS) <= broken
    t1c = next(r for r in recs if r.kind == "T1c")
    assert pydicom.dcmread(t1c.files[0]).ContrastBolusAgent
    assert all(not hasattr(pydicom.dcmread(r.files[0]), "ContrastBolusAgent") for r in recs if r.kind in ("T1", "T2", "FLAIR"))
    shared = [r for r in recs if r.broken and "shared_folder" in r.broken]
    assert len(shared) == 2 and shared[0].folder == shared[1].folder
    gap = next(r for r in recs if r.broken and "missing_slice" in r.broken)
    assert len(gap.files) == gap.data.shape[2] - 1  # one slice removed
    for r in recs:
        assert all(f.exists() for f in r.files)
    sops = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for r in recs for f in r.files]
    assert len(set(sops)) == len(sops)  # every image is its own instance (duplicates get new UIDs too)


def test_write_study_rejects_unknown_broken_kind(tmp_path):
    with pytest.raises(ValueError):
        write_study({Modality.T1: _volume()}, tmp_path, broken=("exploded",))


def test_simpleitk_reads_written_series(tmp_path):
    """SimpleITK (GDCM) re-reads the series with the same voxels at the same world positions."""
    import SimpleITK as sitk

    data, aff = _volume()
    rec = write_series(np.rint(data), aff, tmp_path, Modality.T1, "siemens", "oblique", 1, slice_thickness=3.0)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    img = reader.Execute()
    arr = sitk.GetArrayFromImage(img).transpose(2, 1, 0)  # (x, y, z) = (column, row, slice)
    assert np.abs(arr - rec.data).max() <= rec.extra["slope"] / 2 + 1e-3  # resampled floats, stored with a slope
    for idx in [(0, 0, 0), (5, 7, 3), tuple(s - 1 for s in arr.shape)]:
        lps = np.array(img.TransformIndexToPhysicalPoint(tuple(int(i) for i in idx)))
        ras = (rec.affine @ np.array([*idx, 1.0]))[:3]
        assert np.allclose(lps * [-1, -1, 1], ras, atol=1e-3)
