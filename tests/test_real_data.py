"""Real data as it is stored: compressed NIfTI (.nii.bz2) everywhere a .nii.gz is read, and fixed split files
honoured by `train` and `benchmark` so validation cases never train."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmtumor.cli import app
from mmtumor.errors import InputError
from mmtumor.io.dataset import find_cases, load_case, load_or_create_manifest, read_split_file
from mmtumor.io.nifti import is_nifti, read_nifti, strip_nifti_suffix, write_nifti

from conftest import SHARED, make_case

REAL_TRAIN = SHARED / "data" / "real-train"
runner = CliRunner()


def test_bz2_nifti_is_a_nifti_everywhere(tmp_path):
    assert is_nifti("a_t1.nii.bz2") and strip_nifti_suffix("a_t1.NII.BZ2") == "a_t1"
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    affine = np.diag([2.0, 1.5, 3.0, 1.0])
    affine[:3, 3] = (-10, 5, 7)
    out = write_nifti(tmp_path / "x.nii.bz2", data, affine)
    with open(out, "rb") as f:
        assert f.read(3) == b"BZh"  # really bzip2, not a renamed .nii
    back = read_nifti(out)
    assert np.array_equal(back.data, data) and np.allclose(back.affine, affine)


def test_bz2_cases_are_discovered_and_loaded(tmp_path):
    make_case(tmp_path, "BraTS19_X_1", ext=".nii.bz2")
    make_case(tmp_path, "BraTS19_Y_1", modalities=("t1ce", "flair"), ext=".nii.bz2")
    cases = find_cases(tmp_path, require_label=True)
    assert [c.case_id for c in cases] == ["BraTS19_X_1", "BraTS19_Y_1"]
    assert cases[1].subset.code == "0101"
    loaded = load_case(cases[0])
    assert loaded.image.shape == (4, 12, 10, 8) and set(np.unique(loaded.label)) == {0, 1, 2, 4}


def _split(tmp_path: Path, obj) -> Path:
    p = tmp_path / "splits.json"
    p.write_text(json.dumps(obj))
    return p


def test_split_file_rules(tmp_path):
    ids = ["a", "b", "c", "d"]
    split = read_split_file(_split(tmp_path, {"note": "x", "val": ["c", "a"]}), ids)
    assert split == {"train": ["b", "d"], "val": ["a", "c"], "test": []}
    split = read_split_file(_split(tmp_path, {"train": ["a"], "test": ["d"]}), ids)
    assert split == {"train": ["a"], "val": [], "test": ["d"]}  # an explicit train list is taken as it is
    with pytest.raises(InputError, match="not in the data: zz"):
        read_split_file(_split(tmp_path, {"val": ["zz"]}), ids)
    with pytest.raises(InputError, match="both 'train' and 'val'"):
        read_split_file(_split(tmp_path, {"train": ["a"], "val": ["a"]}), ids)
    with pytest.raises(InputError, match="must be a list"):
        read_split_file(_split(tmp_path, {"val": "a"}), ids)
    with pytest.raises(InputError, match="JSON object"):
        read_split_file(_split(tmp_path, ["a"]), ids)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="cannot read split file"):
        read_split_file(tmp_path / "bad.json", ids)
    with pytest.raises(InputError, match="not found"):
        read_split_file(tmp_path / "missing.json", ids)


def test_split_file_overrides_a_stale_manifest(tmp_path):
    data = tmp_path / "data"
    for i in range(4):
        make_case(data, f"BraTS19_C{i}_1")
    man = tmp_path / "run" / "manifest.json"
    seeded = load_or_create_manifest(data, man)  # an earlier run's seeded split
    fixed = load_or_create_manifest(data, man, split_file=_split(tmp_path, {"val": ["BraTS19_C2_1"]}))
    assert fixed["split"]["val"] == ["BraTS19_C2_1"] and "BraTS19_C2_1" not in fixed["split"]["train"]
    assert json.loads(man.read_text())["split"] == fixed["split"] != seeded["split"]


def test_train_and_benchmark_honour_the_split_file(tmp_path):
    """Training validates on exactly the file's val cases and never samples them; the benchmark scores them alone."""
    from mmtumor.synth import write_dataset

    data = tmp_path / "data"
    write_dataset(data, 4, seed=5, shape=(40, 40, 26))
    ids = sorted(p.name for p in data.iterdir() if p.is_dir())
    split = _split(tmp_path, {"val": [ids[1]], "test": [ids[3]]})
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", str(data), "--method", "unet", "-o", str(run), "--preset", "tiny", "--epochs", "1",
                            "--iters-per-epoch", "1", "--patch", "32", "32", "32", "--device", "cpu", "--workers", "0",
                            "--no-amp", "--val-every", "1", "--split-file", str(split), "-q"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["split"] == {"train": [ids[0], ids[2]], "val": [ids[1]], "test": [ids[3]]}
    assert json.loads((run / "config.json").read_text())["split_file"] == str(split)
    r = runner.invoke(app, ["weights", "export", str(run), "-o", str(tmp_path / "w"), "--name", "mini"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["benchmark", str(data), "--weights", str(tmp_path / "w" / "mini.safetensors"), "--split", "val",
                            "--split-file", str(split), "--subsets", "1111", "-o", str(tmp_path / "bench"), "-q", "-d", "cpu"])
    assert r.exit_code == 0, r.output
    import csv

    with open(tmp_path / "bench" / "per_case.csv") as f:
        assert {row["case_id"] for row in csv.DictReader(f)} == {ids[1]}
    r = runner.invoke(app, ["benchmark", str(data), "--weights", str(tmp_path / "w" / "mini.safetensors"), "--split", "val",
                            "--split-file", str(tmp_path / "nope.json"), "-o", str(tmp_path / "b2"), "-q"])
    assert r.exit_code == 1 and "split file not found" in r.output and "Traceback" not in r.output


@pytest.fixture
def real_train() -> Path:
    if not REAL_TRAIN.exists():
        pytest.skip("../shared/data/real-train is not available")
    return REAL_TRAIN


def test_the_real_training_set_reads_as_stored(real_train, tmp_path):
    cases = find_cases(real_train, require_label=True)
    assert len(cases) == 36 and all(c.subset.code == "1111" for c in cases)
    manifest = load_or_create_manifest(real_train, tmp_path / "m.json", split_file=real_train / "splits.json")
    val = set(json.loads((real_train / "splits.json").read_text())["val"])
    assert set(manifest["split"]["val"]) == val and len(manifest["split"]["train"]) == 28
    assert not val & set(manifest["split"]["train"])
    smallest = min(cases, key=lambda c: sum(p.stat().st_size for p in c.files))
    loaded = load_case(smallest)
    assert loaded.image.ndim == 4 and loaded.present.all() and np.allclose(np.abs(np.diag(loaded.affine))[:3], 1)
    assert set(np.unique(loaded.label)) <= {0, 1, 2, 4} and (loaded.label > 0).sum() > 1000


def test_bundled_models_record_their_real_training_cases(real_train, tmp_path):
    """Every real-trained bundled model records the fingerprints of the 28 `train` labels it trained on, never a
    `val` case, so bench_real leaves none of them out and `benchmark` refuses them on `--split train`."""
    import sys

    from mmtumor.weights import list_models, resolve
    from mmtumor.weights.provenance import case_fingerprints

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_real

    labels = case_fingerprints(find_cases(real_train, require_label=True))
    val = set(json.loads((real_train / "splits.json").read_text())["val"])
    metas = {m.name: resolve(m.name).meta for m in list_models() if m.source == "bundled"}
    real = sorted(n for n, m in metas.items() if str(m.get("training_data", "")).startswith("real:"))
    assert len(real) == 8 and "a2fseg-cpu" in real
    for name in real:
        cases = metas[name]["training_cases"]
        assert len(cases) == 28 and not val & set(cases), name
        assert all(labels[cid] == fp for cid, fp in cases.items()), name  # the very files of real-train
    assert bench_real.trained_here(sorted(metas), real_train, "val", tmp_path / "v") == []
    assert [n for n, _, k in bench_real.trained_here(real, real_train, "train", tmp_path / "t") if k == 28] == real
