"""DICOM discovery, geometry checks and conversion; geometry equal to the dcm2niix wheel's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from mmtumor.cli import app
from mmtumor.detect import detect_study
from mmtumor.errors import GeometryError, InputError
from mmtumor.io.dicom import ENHANCED_MR, discover_series
from mmtumor.io.dicom_pixels import load_series, write_series_nifti
from mmtumor.modalities import Modality
from mmtumor.synth.dicom import PROTOCOLS, acquisition_grid, write_series, write_study

DCM2NIIX = shutil.which("dcm2niix", path=str(Path(sys.executable).parent)) or shutil.which("dcm2niix")
needs_dcm2niix = pytest.mark.skipif(DCM2NIIX is None, reason="dcm2niix wheel not installed")
SHAPE = (40, 36, 14)


def _volume(seed: int = 0, integer: bool = False):
    rng = np.random.default_rng(seed)
    data = rng.random(SHAPE) * 800 + 10
    aff = np.diag([1.0, 1.1, 2.5, 1.0])
    aff[:3, 3] = [-20.0, -18.0, -15.0]
    return (np.rint(data) if integer else data), aff


def _dcm2niix(src: Path, out: Path) -> nib.Nifti1Image:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([DCM2NIIX, "-z", "y", "-f", "ref", "-o", str(out), str(src)], check=True, capture_output=True)
    return nib.load(str(next(out.glob("ref*.nii.gz"))))


@needs_dcm2niix
@pytest.mark.parametrize("acq", ["2D", "3D"])  # dcm2niix orders voxels differently for 2D and 3D acquisitions
@pytest.mark.parametrize("orientation,descending", [("axial", False), ("axial", True), ("sagittal", True), ("coronal", False),
                                                    ("coronal", True), ("oblique", True), ("oblique", False), (None, False)])
def test_geometry_equals_dcm2niix(tmp_path, orientation, descending, acq):
    data, aff = _volume(integer=orientation is None)
    if orientation is not None:
        data, aff = acquisition_grid(data, aff, orientation, 3.0, descending=descending)
    proto = next(p for p in PROTOCOLS["siemens"]["T1"] if p.acq_type == acq)
    write_series(data, aff, tmp_path / "dcm", Modality.T1, "siemens", None, 5, protocol=proto)
    ref = _dcm2niix(tmp_path / "dcm", tmp_path / "ref")
    series = discover_series(tmp_path / "dcm").series
    out = write_series_nifti(series[0], tmp_path / "ours.nii.gz")
    ours = nib.load(str(out))
    assert ours.shape == ref.shape
    assert np.abs(ours.affine - ref.affine).max() < 1e-3
    assert np.abs(ours.get_qform() - ref.get_qform()).max() < 1e-3 and int(ours.header["qform_code"]) == 1
    a, b = np.asanyarray(ours.dataobj), np.asanyarray(ref.dataobj)
    if orientation is None:
        assert ours.get_data_dtype() == np.uint16 and np.array_equal(a, b)
    else:
        assert np.allclose(a, b, rtol=1e-5, atol=1e-3)
    side = json.loads((tmp_path / "ours.json").read_text())
    assert side["SeriesNumber"] == 5 and side["GeometryStatus"] == "ok"


@needs_dcm2niix
def test_generated_study_matches_dcm2niix(tmp_path):
    vols = {m: _volume(i) for i, m in enumerate(Modality)}
    recs = write_study(vols, tmp_path / "study", seed=4, vendor="ge", acquisition="random", distractors=False)
    for rec in recs:
        ref = _dcm2niix(rec.folder, tmp_path / f"ref{rec.series_number}")
        s = discover_series(rec.folder).series[0]
        data, affine, _ = load_series(s)
        assert data.shape == ref.shape and np.abs(affine - ref.affine).max() < 1e-3
        assert np.allclose(data, ref.get_fdata(), atol=1e-3, rtol=1e-5)


def test_broken_series_outcomes(tmp_path):
    vols = {m: _volume(i) for i, m in enumerate(Modality)}
    recs = write_study(vols, tmp_path, seed=1, vendor="siemens", broken=("missing_slice", "duplicate_slice", "mixed_orientation"))
    disc = discover_series(tmp_path)
    by_uid: dict = {}
    for s in disc.series:
        by_uid.setdefault(s.uid, []).append(s)
    gap = next(r for r in recs if r.broken and "missing_slice" in r.broken)
    g = by_uid[gap.series_uid][0].geometry
    assert g.status == "resample" and "missing slice" in g.messages[0]
    data, affine, _ = load_series(by_uid[gap.series_uid][0])
    assert data.shape == gap.data.shape  # the gap is filled back to even spacing
    assert np.allclose(affine[:3, 2], gap.affine[:3, 2], atol=1e-3)
    keep = [k for k in range(gap.data.shape[2]) if k != gap.data.shape[2] // 2]
    assert np.abs(data[:, ::-1, keep] - gap.data[:, :, keep]).max() < 0.01
    dup = next(r for r in recs if r.broken and "duplicate_slice" in r.broken)
    gd = by_uid[dup.series_uid][0].geometry
    assert gd.status == "ok" and "duplicated" in gd.messages[0] and gd.shape[2] == dup.data.shape[2]
    mixed = next(r for r in recs if r.broken and "mixed_orientation" in r.broken)
    parts = by_uid[mixed.series_uid]
    assert len(parts) == 2 and all("split into 2 parts" in p.problems[-1] for p in parts)
    assert parts[0].geometry.status == "ok" and parts[1].geometry.status == "refuse"
    with pytest.raises(GeometryError, match="localizer"):
        load_series(parts[1])
    loc = [s for s in disc.series if s.header.get("SeriesDescription") == "localizer"]
    assert len(loc) == 3 and all(s.geometry.status == "refuse" for s in loc)


def test_4d_series_converted_like_dcm2niix_but_never_a_modality(tmp_path):
    from datetime import datetime, timedelta

    rng = np.random.default_rng(3)
    _, aff = _volume()
    vols = [np.rint(rng.random((24, 20, 6)) * 900) for _ in range(3)]
    for v in (2, 0, 1):  # files written out of order
        write_series(vols[v], aff, tmp_path / "fourd", "DWI", "siemens", None, 9, series_uid="1.2.3.9", name_prefix=f"V{v}_",
                     first_instance=1 + 6 * v, acquisition_time=datetime(2024, 1, 1, 10) + timedelta(seconds=10 * v),
                     extra={"AcquisitionNumber": v + 1})
    s = discover_series(tmp_path / "fourd").series[0]
    assert s.geometry.volumes == 3 and s.size == (24, 20, 6, 3) and "4D" in s.geometry.messages[0]
    data, affine, _ = load_series(s)
    assert data.shape == (24, 20, 6, 3)
    for v in range(3):
        assert np.array_equal(data[..., v], vols[v][:, ::-1, :])
    facts = {**s.facts(), "SeriesDescription": "T2 TSE", "DiffusionBValue": None, "ImageType": "ORIGINAL\\PRIMARY"}
    assert detect_study([facts])[0].label == "OTHER"
    if DCM2NIIX is not None:
        ref = _dcm2niix(tmp_path / "fourd", tmp_path / "ref")
        assert np.array_equal(np.asanyarray(ref.dataobj), data) and np.abs(ref.affine - affine).max() < 1e-3


def test_gantry_tilt_resampled(tmp_path):
    data, aff = _volume()
    sheared = aff.copy()
    sheared[1, 2] = 0.4  # each slice shifted 0.4 mm along y: a tilted stack
    write_series(data, sheared, tmp_path / "tilt", Modality.T2, "ge")
    t = discover_series(tmp_path / "tilt").series[0]
    assert t.geometry.status == "resample" and "tilt" in t.geometry.messages[0]
    vol, affine, _ = load_series(t)
    assert abs(affine[:3, 0] @ affine[:3, 2]) < 1e-6 and abs(affine[:3, 1] @ affine[:3, 2]) < 1e-6  # orthogonal
    assert vol.shape == data.shape


def test_enhanced_multiframe(tmp_path):
    data, aff = _volume(integer=True)
    single = write_series(data, aff, tmp_path / "single", Modality.FLAIR, "philips")
    dsets = [pydicom.dcmread(f) for f in single.files]
    mf = dsets[0]
    mf.SOPClassUID = mf.file_meta.MediaStorageSOPClassUID = ENHANCED_MR
    mf.NumberOfFrames = len(dsets)
    shared = pydicom.Dataset()
    po, pm = pydicom.Dataset(), pydicom.Dataset()
    po.ImageOrientationPatient = mf.ImageOrientationPatient
    pm.PixelSpacing, pm.SliceThickness = mf.PixelSpacing, mf.SliceThickness
    shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = [po], [pm]
    mf.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for ds in reversed(dsets):  # frames stored in reverse order: sorting must use positions
        fg, pp = pydicom.Dataset(), pydicom.Dataset()
        pp.ImagePositionPatient = ds.ImagePositionPatient
        fg.PlanePositionSequence = [pp]
        frames.append(fg)
    mf.PerFrameFunctionalGroupsSequence = frames
    mf.PixelData = b"".join(ds.PixelData for ds in reversed(dsets))
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        delattr(mf, kw)
    (tmp_path / "multi").mkdir()
    mf.save_as(tmp_path / "multi" / "enhanced.dcm", enforce_file_format=True)
    a, aa, _ = load_series(discover_series(tmp_path / "single").series[0])
    series = discover_series(tmp_path / "multi").series
    assert len(series) == 1 and series[0].n_slices == len(dsets)
    b, ab, _ = load_series(series[0])
    assert np.array_equal(a, b) and np.allclose(aa, ab, atol=1e-6)
    if DCM2NIIX is not None:  # and the same as dcm2niix's reading of the enhanced file
        ref = _dcm2niix(tmp_path / "multi", tmp_path / "ref")
        assert np.array_equal(np.asanyarray(ref.dataobj), b) and np.abs(ref.affine - ab).max() < 1e-3


PYDICOM_DATA = Path(pydicom.__file__).parent / "data" / "test_files"


@pytest.mark.skipif(not (PYDICOM_DATA / "dicomdirtests").exists(), reason="pydicom test data not shipped")
def test_pydicom_test_data_excluded(tmp_path):
    """Localizers, mixed-orientation pilots, derived MIPs, CT/CR and DICOMDIR never become a modality."""
    disc = discover_series(PYDICOM_DATA / "dicomdirtests")
    assert disc.skipped.get("non-image object", 0) >= 1  # the DICOMDIR files
    dets = detect_study([s.facts() for s in disc.series])
    descs = {s.description for s in disc.series}
    ids = [s.series_id for s in disc.series]
    assert len(set(ids)) == len(ids)  # SeriesNumbers shared by several series still give unique ids
    assert {"FAST LOCALIZER", "T/S/C RF FAST PILOT"} <= descs
    for s, d in zip(disc.series, dets, strict=True):
        assert d.label == "OTHER", (s.description, d)
    pilot = [s for s in disc.series if s.description == "T/S/C RF FAST PILOT"]
    assert len(pilot) >= 2 and pilot[0].n_orientations >= 2
    mip = [d for s, d in zip(disc.series, dets, strict=True) if "ANGIO" in s.description]
    assert mip and all("ImageType" in d.reasons[0] for d in mip)


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_implicit.dcm"])
def test_pydicom_compressed_variants_decode(tmp_path, name):
    from mmtumor.io.dicom_pixels import read_frames as _frames

    if not (PYDICOM_DATA / name).exists():
        pytest.skip("pydicom test file missing")
    ref, _ = _frames(PYDICOM_DATA / "MR_small.dcm")
    arr, _ = _frames(PYDICOM_DATA / name)
    assert np.array_equal(arr.astype(np.int32), ref.astype(np.int32))


def test_exact_copies_are_not_a_4d_series(tmp_path):
    data, aff = _volume(integer=True)
    rec = write_series(data, aff, tmp_path / "a", Modality.T2, "ge")
    shutil.copytree(tmp_path / "a", tmp_path / "copy")  # the same export twice
    disc = discover_series(tmp_path)
    assert len(disc.series) == 1 and disc.skipped["duplicate SOPInstanceUID"] == len(rec.files)
    assert disc.series[0].geometry.volumes == 1 and disc.series[0].geometry.status == "ok"


def test_discovery_ignores_junk_and_reports_empty(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "DICOMDIR").write_bytes(b"\0" * 10)
    with pytest.raises(InputError, match="no DICOM image series"):
        from mmtumor.convert import study_report

        study_report(tmp_path)
    with pytest.raises(InputError):
        discover_series(tmp_path / "missing")


def test_cli_convert_and_inspect(tmp_path):
    vols = {m: _volume(i) for i, m in enumerate(Modality)}
    write_study(vols, tmp_path / "study", seed=2, vendor="philips")
    runner = CliRunner()
    res = runner.invoke(app, ["inspect", str(tmp_path / "study"), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["kind"] == "dicom" and set(rep["selected"]) == {"T1", "T1c", "T2", "FLAIR"}
    res = runner.invoke(app, ["convert", str(tmp_path / "study"), str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.output
    for stem in ("t1", "t1c", "t2", "flair"):
        assert (tmp_path / "out" / f"{stem}.nii.gz").exists()
        side = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
        assert side["Detection"]["label"].lower() == stem and side["Detection"]["reasons"]
    # override: force the T2 slot onto the FLAIR series
    flair_id = rep["selected"]["FLAIR"]
    res = runner.invoke(app, ["convert", str(tmp_path / "study"), str(tmp_path / "out2"), "-q", "--t2", flair_id])
    assert res.exit_code == 0
    assert json.loads((tmp_path / "out2" / "t2.json").read_text())["AssignedBy"] == "user override"
    (tmp_path / "map.json").write_text(json.dumps({"t1ce": rep["selected"]["T1"]}))
    res = runner.invoke(app, ["convert", str(tmp_path / "study"), str(tmp_path / "out4"), "-q", "--mapping", str(tmp_path / "map.json")])
    assert res.exit_code == 0
    assert json.loads((tmp_path / "out4" / "t1c.json").read_text())["SeriesID"] == rep["selected"]["T1"]
    res = runner.invoke(app, ["convert", str(tmp_path / "nothing"), str(tmp_path / "out3")])
    assert res.exit_code == 1 and "Traceback" not in res.output


def _grayscale_compressed_files() -> list[Path]:
    out = []
    for f in sorted(PYDICOM_DATA.glob("*.dcm")) if PYDICOM_DATA.exists() else []:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:
            continue
        if ds.file_meta.get("TransferSyntaxUID") is not None and ds.file_meta.TransferSyntaxUID.is_compressed \
                and int(ds.get("SamplesPerPixel", 1)) == 1 and "Rows" in ds \
                and "embedded" not in f.name and "rtdose_rle_1frame" not in f.name:
            out.append(f)
    return out


@pytest.mark.parametrize("path", _grayscale_compressed_files(), ids=lambda p: p.name)
def test_compressed_decode_agrees_with_gdcm(path):
    """Every grayscale compressed file in pydicom's test data: our decoder (pylibjpeg, GDCM fallback) = GDCM's values."""
    import SimpleITK as sitk

    from mmtumor.io.dicom_pixels import read_frames as _frames

    arr, ds = _frames(path)
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float64).reshape(arr.shape)
    slope, inter = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    ts = ds.file_meta.TransferSyntaxUID.name
    lossy = ("Lossless" not in ts and "RLE" not in ts) or "Near-Lossless" in ts  # DCT decoders may differ by rounding
    diff = np.abs(arr * slope + inter - ref)
    assert diff.max() <= (max(4.0, 0.02 * np.ptp(ref)) if lossy else 0.0), diff.max()


@needs_dcm2niix
@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"])  # RLE, JPEG 2000 lossless
def test_compressed_series_match_dcm2niix(tmp_path, syntax):
    rng = np.random.default_rng(5)
    data = np.rint(rng.random((64, 64, 6)) * 3000)
    data, aff = acquisition_grid(data, np.diag([1.0, 1.0, 3.0, 1.0]), "oblique", 3.0)
    write_series(np.rint(data), aff, tmp_path / "dcm", Modality.T2, "ge", None, 2, transfer_syntax=syntax)
    ref = _dcm2niix(tmp_path / "dcm", tmp_path / "ref")
    vol, affine, _ = load_series(discover_series(tmp_path / "dcm").series[0])
    assert np.array_equal(vol, np.asanyarray(ref.dataobj)) and np.abs(affine - ref.affine).max() < 1e-3


@needs_dcm2niix
def test_philips_precise_scaling_like_dcm2niix(tmp_path):
    """Philips private scale slope (2005,100E): values (PV*RS+RI)/(RS*SS), dcm2niix's default."""
    data = np.rint(np.random.default_rng(2).random((24, 20, 6)) * 1000)
    rec = write_series(data, np.eye(4), tmp_path / "ph", Modality.T2, "philips", rescale=(1.5, -10.0),
                       protocol=PROTOCOLS["philips"]["T2"][0])
    for f in rec.files:
        ds = pydicom.dcmread(f)
        ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True).add_new(0x0E, "FL", 0.02)
        ds.save_as(f)
    s = discover_series(tmp_path / "ph").series[0]
    assert s.header["PhilipsScaleSlope"] == pytest.approx(0.02)
    vol, affine, _ = load_series(s)
    ref = _dcm2niix(tmp_path / "ph", tmp_path / "ref")
    assert np.allclose(vol, ref.get_fdata(), rtol=1e-6, atol=1e-3) and np.abs(affine - ref.affine).max() < 1e-3
    stored = np.rint((data + 10) / 1.5)
    assert np.allclose(vol[:, ::-1, :], (stored * 1.5 - 10) / (1.5 * 0.02), rtol=1e-6)


def test_jpeg2000_check_accepts_every_intact_codestream_in_pydicoms_test_data():
    """No false alarm: the structural check passes every JPEG 2000 / HTJ2K frame pydicom ships (vendor padding,
    JP2 wrappers, RGB, multi-tile), so refusing a damaged one never costs a good series."""
    from pydicom.encaps import generate_frames

    from mmtumor.io.jpeg2000 import check_codestream

    j2k = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
           "1.2.840.10008.1.2.4.203")
    checked = 0
    for f in sorted(PYDICOM_DATA.glob("*.dcm")):
        try:
            ds = pydicom.dcmread(f)
            if str(ds.file_meta.TransferSyntaxUID) not in j2k or "PixelData" not in ds:
                continue
            frames = list(generate_frames(ds.PixelData, number_of_frames=int(getattr(ds, "NumberOfFrames", 1) or 1)))
        except Exception:  # noqa: BLE001 - files pydicom itself cannot parse are not ours to judge
            continue
        for frame in frames:
            check_codestream(frame)
            checked += 1
    if not checked:
        pytest.skip("pydicom's test data holds no JPEG 2000 file")
    assert checked >= 5
