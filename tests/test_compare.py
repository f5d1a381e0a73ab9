"""`mmtumor compare`: two phantom time points with a known shrinkage and a known head movement between them."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import ellipsoid, rotation
from mmtumor.cli import app
from mmtumor.labels import ED, ET, NCR

runner = CliRunner()
GRID = (120, 120, 78)  # the phantom's field of view at 2 mm
SPACING = (2.0, 2.0, 155 / 78)  # the phantom generator covers 240 x 240 x 155 mm
CENTRE = (70, 62, 44)  # voxel; inside the phantom brain, right hemisphere


@pytest.fixture(scope="module")
def phantom():
    from mmtumor.modalities import Modality
    from mmtumor.synth import generate_case

    case = generate_case(3, shape=GRID)
    assert np.allclose(np.linalg.norm(case.affine[:3, :3], axis=0), SPACING)
    return case.images[Modality.T1C].astype(np.float32), case.affine


def tumour(scale: float, centre=CENTRE) -> np.ndarray:
    """Edema shell, enhancing ellipsoid (15 x 10 x 8 mm semi-axes, times ``scale``) and a necrotic centre."""
    lab = np.zeros(GRID, np.uint8)
    lab[ellipsoid(GRID, SPACING, (25 * scale, 20 * scale, 16 * scale), 0, centre)] = ED
    lab[ellipsoid(GRID, SPACING, (15 * scale, 10 * scale, 8 * scale), 0, centre)] = ET
    lab[ellipsoid(GRID, SPACING, (6 * scale, 4 * scale, 3 * scale), 0, centre)] = NCR
    return lab


def result_folder(folder: Path, image: np.ndarray, affine: np.ndarray, labels: np.ndarray, name="P1") -> Path:
    """What `segment` leaves for a NIfTI patient, reduced to what `compare` reads."""
    folder.mkdir(parents=True)
    nib.save(nib.Nifti1Image(image, affine), str(folder / "t1c.nii.gz"))
    nib.save(nib.Nifti1Image(labels, affine), str(folder / "segmentation.nii.gz"))
    report = {"patient": name, "label_scheme": "brats2021", "preprocessing": {"reference": "T1c"},
              "input": {"source": "nifti", "images": {"T1c": str(folder / "t1c.nii.gz")}}, "outputs": {}}
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def moved(affine: np.ndarray) -> np.ndarray:
    """The head repositioned between the scans: 6 degrees about z and 60 mm along x (beyond the lesions' size)."""
    m = np.eye(4)
    m[:3, :3] = rotation(2, 6.0)
    m[:3, 3] = (60.0, -10.0, 5.0)
    return m @ affine


def test_known_shrinkage_after_head_movement(phantom, tmp_path):
    image, affine = phantom
    base_lab, follow_lab = tumour(1.0), tumour(0.6)
    base = result_folder(tmp_path / "t0", image, affine, base_lab)
    follow = result_folder(tmp_path / "t1", image, moved(affine), follow_lab)
    r = runner.invoke(app, ["compare", str(base), str(follow), "-o", str(tmp_path / "cmp")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    voxel_ml = float(np.prod(SPACING)) / 1000
    for k, values in (("ET", (ET,)), ("TC", (ET, NCR)), ("WT", (ED, ET, NCR))):
        b, f = (np.isin(x, values).sum() * voxel_ml for x in (base_lab, follow_lab))
        assert res["volumes"][k]["baseline_ml"] == pytest.approx(b, abs=1e-3)
        assert res["volumes"][k]["followup_ml"] == pytest.approx(f, abs=1e-3)
        assert res["volumes"][k]["change_percent"] == pytest.approx(100 * (f - b) / b, abs=0.1)
    # the known shapes: volume scales with 0.6^3, within what 2 mm voxels allow
    wt = res["volumes"]["WT"]
    assert wt["baseline_ml"] == pytest.approx(4 / 3 * np.pi * 25 * 20 * 16 / 1000, rel=0.05)
    assert wt["change_percent"] == pytest.approx(100 * (0.6 ** 3 - 1), abs=4)
    # diameters: 30 x 20 mm -> 18 x 12 mm, each within a voxel diagonal
    tol = np.hypot(*SPACING[:2])
    (mb,), (mf,) = (res[k]["rano"]["measurements"] for k in ("baseline_measurements", "followup_measurements"))
    assert abs(mb["longest_mm"] - 30) <= tol and abs(mb["perpendicular_mm"] - 20) <= tol
    assert abs(mf["longest_mm"] - 18) <= tol and abs(mf["perpendicular_mm"] - 12) <= tol
    assert res["spd"]["change_percent"] == pytest.approx(100 * (mf["product_mm2"] / mb["product_mm2"] - 1), abs=0.1)
    assert res["spd"]["change_percent"] < -50
    assert res["response"]["bidimensional"]["category"] == "PR"
    assert res["response"]["volumetric"]["category"] == "PR"  # ET -78 %: past RANO 2.0's -65 %
    # the head moved 60 mm: the lesion matches only because the studies were aligned
    assert res["lesions"]["tumour"] == {"matches": {"1": [1]}, "new": [], "resolved": []}
    assert res["lesions"]["enhancing"]["new"] == [] and res["lesions"]["enhancing"]["resolved"] == []
    assert res["alignment"]["rotation_deg"] == pytest.approx(6.0, abs=0.5)
    page = (tmp_path / "cmp" / "report.html").read_text()
    assert "PR" in page and "clinical status" in page and "data:image/png;base64," in page
    assert (tmp_path / "cmp" / "comparison.png").stat().st_size > 5000
    csv_text = (tmp_path / "cmp" / "lesion_changes.csv").read_text()
    assert "SPD (mm2)" in csv_text and "RANO 2.0 imaging category (bidimensional),,PR," in csv_text


def test_without_alignment_the_moved_lesion_looks_new(phantom, tmp_path):
    image, affine = phantom
    base = result_folder(tmp_path / "t0", image, affine, tumour(1.0))
    follow = result_folder(tmp_path / "t1", image, moved(affine), tumour(0.6))
    r = runner.invoke(app, ["compare", str(base), str(follow), "-o", str(tmp_path / "cmp"), "--no-register"])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert res["lesions"]["tumour"]["new"] == [1] and res["lesions"]["tumour"]["resolved"] == [1]
    assert res["response"]["bidimensional"]["category"] == "PD"  # a new measurable lesion


def test_new_lesion_is_progression(phantom, tmp_path):
    image, affine = phantom
    follow_lab = tumour(1.0)
    follow_lab[ellipsoid(GRID, SPACING, (8, 8, 8), 0, (40, 60, 44))] = ET  # 16 mm: measurable, elsewhere
    base = result_folder(tmp_path / "t0", image, affine, tumour(1.0))
    follow = result_folder(tmp_path / "t1", image, affine, follow_lab)
    r = runner.invoke(app, ["compare", str(base), str(follow), "-o", str(tmp_path / "cmp")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert res["lesions"]["enhancing"]["new"] == [2] and res["lesions"]["enhancing"]["new_measurable"] == [2]
    assert res["response"]["bidimensional"]["category"] == "PD" and "new measurable" in res["response"]["bidimensional"]["why"]
    assert res["volumes"]["WT"]["change_ml"] > 0


def test_not_a_result_folder_is_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["compare", str(tmp_path / "nope"), str(tmp_path / "empty"), "-o", str(tmp_path / "cmp")])
    assert r.exit_code != 0 and "not found" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "cmp").exists()


def test_patient_folders_are_segmented_first(phantom_dir, tiny_weights, tmp_path):
    out = tmp_path / "cmp"
    r = runner.invoke(app, ["compare", str(phantom_dir / "Synth_00000"), str(phantom_dir / "Synth_00001"), "-o", str(out),
                            "--weights", str(tiny_weights), "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "compare.json").read_text())
    for name in ("baseline", "followup"):
        assert res[name]["folder"] == str(out / name)
        assert (out / name / "segmentation.nii.gz").is_file() and (out / name / "report.html").is_file()
    assert res["baseline"]["patient"] == "Synth_00000" and res["followup"]["patient"] == "Synth_00001"
    assert any("different patients" in n for n in res["notes"])  # two phantoms are not one patient: said so
    assert not list(tmp_path.glob(".mmtumor-compare-*"))  # the working folder is gone
