"""`mmtumor segment` end to end: NIfTI/DICOM/explicit inputs, every subset size, native-space outputs, batch mode.

Pipeline tests use an untrained tiny model exported through the real weights path (fast, exact geometry checks);
the quality tests use the bundled default weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from mmtumor.cli import app

from conftest import REAL, SHAPE

runner = CliRunner()


def _md5(folder: Path) -> dict:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _segment(args, weights) -> object:
    return runner.invoke(app, ["segment", *map(str, args), "--weights", str(weights), "--device", "cpu", "--fast", "--no-preview"])


def test_nifti_folder_outputs_in_native_space(phantom_dir, tiny_weights, tmp_path):
    case = phantom_dir / "Synth_00000"
    before = _md5(case)
    r = runner.invoke(app, ["segment", str(case), "-o", str(tmp_path / "o"), "--weights", str(tiny_weights), "--device", "cpu",
                            "--label-scheme", "brats2023", "--save-probabilities"])
    assert r.exit_code == 0, r.output
    assert _md5(case) == before  # inputs never modified
    out = tmp_path / "o"
    ref = nib.load(str(case / "Synth_00000_t1ce.nii.gz"))
    seg = nib.load(str(out / "segmentation.nii.gz"))
    assert seg.shape == ref.shape and np.allclose(seg.affine, ref.affine)
    data = np.asarray(seg.dataobj)
    assert set(np.unique(data)) <= {0, 1, 2, 3}
    vols = json.loads((out / "volumes.json").read_text())
    voxel_ml = abs(np.linalg.det(ref.affine[:3, :3])) / 1000
    assert vols["WT"] == pytest.approx((data > 0).sum() * voxel_ml, rel=1e-6)
    assert vols["ET"] == pytest.approx((data == 3).sum() * voxel_ml, rel=1e-6)
    report = json.loads((out / "report.json").read_text())
    assert report["modality_subset"]["code"] == "1111" and report["preprocessing"]["reference"] == "T1c"
    assert report["weights"]["name"] == "tinyunet" and report["weights"]["sha256"]
    assert report["options"]["tta"] is False  # mirroring TTA is opt-in (no gain for the bundled default)
    assert report["options"]["min_component_fraction"] == 0.2  # island removal is on by default, and recorded
    assert report["options"]["min_et_voxels"] == 100  # so is the small-ET relabelling (postprocess.DEFAULT_MIN_ET_VOXELS)
    assert report["region_thresholds"] == {"WT": 0.5, "TC": 0.5, "ET": 0.5, "source": "default (0.5)", "note": ""}
    assert report["et_modalities"] == {"modalities": "all present", "source": "default (all present)"}
    assert (out / "preview.png").stat().st_size > 1000 and (out / "volumes.csv").exists()
    prob = nib.load(str(out / "probabilities.nii.gz"))
    assert prob.shape == (*ref.shape, 3)
    assert not list(out.glob(".tmp-*"))
    # the clinician's outputs: lesion table, RANO measurements and their overlay on the T1c grid, the page
    rows = (out / "lesions.csv").read_text().strip().splitlines()
    n_lesions = len(report["lesions"]["tumour"]["lesions"]) + len(report["lesions"]["enhancing"]["lesions"])
    assert len(rows) == 1 + n_lesions and rows[0].startswith("kind,lesion,voxels,WT_ml")
    assert sum(les["volumes_ml"]["WT"] for les in report["lesions"]["tumour"]["lesions"]) + \
        report["lesions"]["tumour"]["below_minimum"]["volume_ml"] == pytest.approx(vols["WT"], abs=1e-3)
    assert report["rano"]["grid"] == "T1c native grid"
    assert len(report["rano"]["measurements"]) == len(report["lesions"]["enhancing"]["lesions"])
    lines = nib.load(str(out / "measurements.nii.gz"))
    assert lines.shape == ref.shape and np.allclose(lines.affine, ref.affine)
    assert set(np.unique(np.asarray(lines.dataobj))) <= {0, 1, 2}
    assert (np.asarray(lines.dataobj) > 0).any() == bool(report["rano"]["measurements"])
    assert report["outputs"]["report_html"].endswith("report.html") and (out / "report.html").is_file()


@pytest.mark.parametrize("mods", [("flair",), ("t1ce", "flair"), ("t1", "t2", "flair")])
def test_every_subset_size_with_explicit_paths(phantom_dir, tiny_weights, tmp_path, mods):
    case = phantom_dir / "Synth_00001"
    flag = {"t1": "--t1", "t1ce": "--t1c", "t2": "--t2", "flair": "--flair"}
    args = []
    for m in mods:
        args += [flag[m], str(case / f"Synth_00001_{m}.nii.gz")]
    r = runner.invoke(app, ["segment", *args, "-o", str(tmp_path / "o"), "--weights", str(tiny_weights), "--device", "cpu",
                            "--tta", "--fast", "--no-preview"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["modality_subset"]["code"].count("1") == len(mods)
    ref_mod = "T1c" if "t1ce" in mods else "FLAIR"
    assert report["preprocessing"]["reference"] == ref_mod
    assert report["options"]["tta"] is False and report["options"]["overlap"] == 0.25  # --fast wins over --tta, as applied


def test_dicom_input_and_dicom_seg(tmp_path, tiny_weights):
    import highdicom as hd
    import pydicom

    from mmtumor.synth import generate_case
    from mmtumor.synth.dicom import write_study

    case = generate_case(5, shape=SHAPE)
    write_study({m: (img, case.affine) for m, img in case.images.items()}, tmp_path / "study", seed=5)
    r = runner.invoke(app, ["segment", str(tmp_path / "study"), "-o", str(tmp_path / "o"), "--weights", str(tiny_weights),
                            "--device", "cpu", "--fast", "--no-preview", "--output-type", "dicom-seg"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["input"]["source"] == "dicom" and report["modality_subset"]["code"] == "1111"
    assert any(not d["used"] for d in report["detections"])  # distractor series listed, not used
    seg = hd.seg.segread(str(tmp_path / "o" / "segmentation.dcm"))
    assert seg.Modality == "SEG" and len(seg.SegmentSequence) == 3
    # one segment per compartment, each with SNOMED CT coded category and type
    codes = [(s.SegmentedPropertyCategoryCodeSequence[0].CodingSchemeDesignator,
              s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning) for s in seg.SegmentSequence]
    assert codes == [("SCT", "Necrosis"), ("SCT", "Edema"), ("SCT", "Neoplasm")]
    # the reference series measured on (T1c) is kept beside the results, on the segmentation's grid
    kept = nib.load(str(tmp_path / "o" / "reference_T1c.nii.gz"))
    assert kept.shape == nib.load(str(tmp_path / "o" / "segmentation.nii.gz")).shape
    ref_uid = seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    t1c_files = [f for f in (tmp_path / "study").rglob("*") if f.is_file()]
    uids = {pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID for f in t1c_files
            if "post" in str(getattr(pydicom.dcmread(f, stop_before_pixels=True), "SeriesDescription", "")).lower()
            or getattr(pydicom.dcmread(f, stop_before_pixels=True), "ContrastBolusAgent", "")}
    assert ref_uid in uids
    src = next(pydicom.dcmread(f, stop_before_pixels=True) for f in t1c_files
               if pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID == ref_uid)
    assert seg.FrameOfReferenceUID == src.FrameOfReferenceUID  # the SEG sits in the source series' frame


def test_batch_mode_continues_past_a_broken_case(phantom_dir, tiny_weights, tmp_path):
    import shutil

    root = tmp_path / "batch"
    shutil.copytree(phantom_dir / "Synth_00000", root / "good")
    (root / "broken").mkdir()
    (root / "broken" / "x_flair.nii.gz").write_bytes(b"garbage")
    r = runner.invoke(app, ["segment", "--batch", str(root), "-o", str(tmp_path / "o"), "--weights", str(tiny_weights),
                            "--device", "cpu", "--fast", "--no-preview"])
    assert r.exit_code == 11  # 10 + one failed patient
    assert (tmp_path / "o" / "good" / "segmentation.nii.gz").exists()
    assert "broken" in r.output and "1 of 2 patient(s) failed" in r.output
    assert not (tmp_path / "o" / "broken" / "segmentation.nii.gz").exists()


def test_bad_inputs_are_one_line_errors(tmp_path, tiny_weights):
    r = runner.invoke(app, ["segment", str(tmp_path / "nope"), "--weights", str(tiny_weights), "--device", "cpu"])
    assert r.exit_code == 1 and "not found" in r.output and "Traceback" not in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["segment", str(tmp_path / "empty"), "--weights", str(tiny_weights), "--device", "cpu"])
    assert r.exit_code == 1 and "no T1, T1c, T2 or FLAIR" in r.output
    r = runner.invoke(app, ["segment", "--t1c", str(tmp_path / "x.nii.gz"), "--weights", str(tiny_weights)])
    assert r.exit_code == 1 and "--t1c" in r.output
    r = runner.invoke(app, ["segment", str(tmp_path / "empty"), "--weights", str(tiny_weights), "--min-component-fraction", "2"])
    assert r.exit_code == 2 and "--min-component-fraction" in r.output and "Traceback" not in r.output  # at parse time
    r = runner.invoke(app, ["segment", str(tmp_path / "empty"), "--weights", str(tiny_weights), "--min-et-voxels", "-5"])
    assert r.exit_code == 2 and "--min-et-voxels" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["segment", str(tmp_path / "empty"), "--weights", str(tiny_weights), "--thresholds", "0.5,0.5"])
    assert r.exit_code == 1 and "region thresholds must be three numbers" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["segment", str(tmp_path / "empty"), "--weights", str(tiny_weights), "--et-modalities", "T2"])
    assert r.exit_code == 1 and "must include T1c" in r.output and "Traceback" not in r.output


def test_small_et_relabelling_is_reported_and_keeps_tumour_core(phantom_dir, tiny_weights, tmp_path):
    """The user is told when the small-ET rule changed the answer, with the voxel count, and TC/WT stay the same."""
    case = phantom_dir / "Synth_00000"
    reports = {}
    for thr in (0, 10**9):  # off, and a threshold above any possible ET: all ET must become NCR
        r = _segment([case, "-o", tmp_path / str(thr), "--min-et-voxels", thr], tiny_weights)
        assert r.exit_code == 0, r.output
        reports[thr] = (json.loads((tmp_path / str(thr) / "report.json").read_text()), r.output)
    (off, out_off), (on, out_on) = reports[0], reports[10**9]
    assert off["volumes_ml"]["ET"] > 0, "the fixture model must predict some ET for this test to mean anything"
    assert off["postprocessing"]["et_voxels_relabelled_ncr"] == 0 and "relabelled" not in out_off
    assert on["volumes_ml"]["ET"] == 0
    assert on["volumes_ml"]["TC"] == pytest.approx(off["volumes_ml"]["TC"]) and on["volumes_ml"]["WT"] == pytest.approx(off["volumes_ml"]["WT"])
    n = on["postprocessing"]["et_voxels_relabelled_ncr"]
    assert n > 0 and any(f"enhancing tumour of {n} voxels" in w for w in on["warnings"])
    assert "relabelled as necrosis" in " ".join(out_on.split())  # shown on the console, not only in report.json
    assert on["input"]["warnings"] == off["input"]["warnings"]


# ------------------------------------------------------------------- quality, with the bundled default weights
def _bundled_default():
    from mmtumor.weights import default_model_name

    if default_model_name() is None:
        pytest.fail("no bundled default weights in weights/")


def test_raw_oblique_thick_slice_input_lands_on_the_tumour(tmp_path):
    """A raw acquisition (oblique, 1x1x4 mm, not skull-stripped-like grid): the result must overlay the tumour in
    native space. Dice against the phantom label resampled to the same native grid."""
    _bundled_default()
    from scipy.ndimage import affine_transform

    from mmtumor.demo import dice_against_truth
    from mmtumor.synth import generate_case

    case = generate_case(424242)
    ang = np.deg2rad(12)
    rot = np.array([[1, 0, 0], [0, np.cos(ang), -np.sin(ang)], [0, np.sin(ang), np.cos(ang)]])
    native_aff = case.affine.copy()
    native_aff[:3, :3] = rot @ case.affine[:3, :3] @ np.diag([1, 1, 4])
    shape = (240, 240, 40)
    centre_src = np.array(case.label.shape) / 2
    native_aff[:3, 3] = case.affine[:3, :3] @ centre_src + case.affine[:3, 3] - native_aff[:3, :3] @ (np.array(shape) / 2)
    m = np.linalg.inv(case.affine) @ native_aff
    for mod, img in case.images.items():
        data = affine_transform(img, m[:3, :3], m[:3, 3], output_shape=shape, order=1)
        nib.save(nib.Nifti1Image(data.astype(np.float32), native_aff), str(tmp_path / f"raw_{mod.file_stem}.nii.gz"))
    truth = affine_transform(case.label, m[:3, :3], m[:3, 3], output_shape=shape, order=0)
    r = runner.invoke(app, ["segment", "--t1", str(tmp_path / "raw_t1.nii.gz"), "--t1c", str(tmp_path / "raw_t1c.nii.gz"),
                            "--t2", str(tmp_path / "raw_t2.nii.gz"), "--flair", str(tmp_path / "raw_flair.nii.gz"),
                            "-o", str(tmp_path / "o"), "--device", "cpu", "--fast", "--no-preview"])
    assert r.exit_code == 0, r.output
    seg = nib.load(str(tmp_path / "o" / "segmentation.nii.gz"))
    assert seg.shape == shape and np.allclose(seg.affine, native_aff, atol=1e-4)
    scores = dice_against_truth(str(tmp_path / "o" / "segmentation.nii.gz"), truth, native_aff)
    assert scores["WT"] > 0.5, scores


def test_real_case_end_to_end(tmp_path):
    _bundled_default()
    case = REAL / "BraTS-GLI-00001-000"
    if not case.exists():
        pytest.skip("../shared/data/real is not available")
    r = runner.invoke(app, ["segment", str(case), "-o", str(tmp_path / "o"), "--device", "cpu", "--fast"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["preprocessing"]["brats_preprocessed"] is True
    assert report["volumes_ml"]["WT"] > 1.0  # the real tumour is large: something must be found
    assert (tmp_path / "o" / "preview.png").stat().st_size > 10_000
    # the clinician's page and lesion table on a real case; BraTS space: the atlas origin is the grid centre
    lesions = report["lesions"]["tumour"]["lesions"]
    assert lesions and report["lesions"]["atlas"].startswith("SRI24")
    centre_x = -(240 - 1) / 2  # x = -i in BraTS files: the centre column's world x
    assert lesions[0]["centroid_atlas_mm"][0] == pytest.approx(lesions[0]["centroid_ras_mm"][0] - centre_x, abs=0.02)
    assert lesions[0]["hemisphere"] == ("right" if lesions[0]["centroid_atlas_mm"][0] > 0 else "left")
    assert report["rano"]["measurements"] and (tmp_path / "o" / "measurements.png").stat().st_size > 5_000
    page = (tmp_path / "o" / "report.html").read_text()
    assert "BraTS-GLI-00001-000" in page and "Sum of products" in page and page.count("data:image/png;base64,") == 2
    assert (tmp_path / "o" / "lesions.csv").read_text().count("\n") == 1 + len(lesions) + len(report["rano"]["measurements"])


def test_report_page_content_and_escaping(phantom_dir, tiny_weights, tmp_path):
    """report.html checked without a browser: what report.json says, user text escaped, images embedded."""
    import shutil

    hostile = tmp_path / 'P<b>&"1'
    shutil.copytree(phantom_dir / "Synth_00000", hostile)
    r = runner.invoke(app, ["segment", str(hostile), "-o", str(tmp_path / "o"), "--weights", str(tiny_weights),
                            "--device", "cpu", "--fast"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    page = (tmp_path / "o" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "P&lt;b&gt;&amp;&quot;1" in page and "P<b>" not in page
    for k in ("NCR", "ED", "ET", "TC", "WT"):
        assert f"{report['volumes_ml'][k]:.2f} mL" in page
    assert report["weights"]["name"] in page and report["mmtumor_version"] in page
    assert all(v in page for v in report["weights"]["sha256"].values())
    assert "Expected Dice" in page and report["modality_subset"]["name"] in page
    assert page.count("data:image/png;base64,") == 1 + bool(report["rano"]["measurements"])  # preview (+ calipers)
    assert "src=\"http" not in page and "<script" not in page  # self-contained, nothing fetched or run
    assert f"{len(report['lesions']['tumour']['lesions'])} tumour lesion(s)" in page
