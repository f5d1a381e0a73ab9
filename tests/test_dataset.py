import json

import numpy as np
import pytest

from mmtumor.errors import GeometryError, InputError, NoCasesError, ReadError
from mmtumor.io.dataset import (build_manifest, cases_from_manifest, discover_cases, find_cases, load_case,
                                load_or_create_manifest, make_split)
from mmtumor.io.nifti import read_nifti, write_nifti
from mmtumor.modalities import Modality

from conftest import make_case, write_img


def test_brats2020_naming_nii_gz(brats2020_dir):
    cases = find_cases(brats2020_dir)
    assert len(cases) == 5
    c = cases[0]
    assert c.naming == "brats2020" and c.subset.code == "1111" and c.label is not None
    loaded = load_case(c)
    assert loaded.image.shape == (4, 12, 10, 8) and loaded.present.all()
    assert set(np.unique(loaded.label)) == {0, 1, 2, 4}


def test_brats2023_naming_plain_nii_and_label_conversion(tmp_path):
    make_case(tmp_path, "BraTS-GLI-00001-000", naming="brats2023", modalities=("t1n", "t1c", "t2w", "t2f"), ext=".nii")
    (c,) = find_cases(tmp_path)
    assert c.naming == "brats2023" and c.subset.code == "1111"
    loaded = load_case(c)
    assert set(np.unique(loaded.label)) == {0, 1, 2, 4}  # 3 (ET) became 4 internally


def test_missing_modalities_and_missing_label(tmp_path):
    make_case(tmp_path, "a", modalities=("t1ce", "flair"), label=False)
    (c,) = find_cases(tmp_path)
    assert c.subset.code == "0101" and c.label is None
    loaded = load_case(c)
    assert loaded.present.tolist() == [False, True, False, True]
    assert np.all(loaded.image[0] == 0) and np.all(loaded.image[2] == 0)
    with pytest.raises(NoCasesError):
        find_cases(tmp_path, require_label=True)


def test_free_names_in_case_folder(tmp_path):
    folder = tmp_path / "patient7"
    write_img(folder / "Flair_norm.nii.gz", np.ones((4, 4, 4), np.float32))
    write_img(folder / "T1c_norm.nii.gz", np.ones((4, 4, 4), np.float32))
    write_img(folder / "brainmask.nii.gz", np.ones((4, 4, 4), np.uint8))
    write_img(folder / "notes.nii.gz", np.ones((4, 4, 4), np.uint8))
    cases, unknown = discover_cases(tmp_path)
    assert [c.case_id for c in cases] == ["patient7"]
    assert set(cases[0].images) == {Modality.FLAIR, Modality.T1C}
    assert [p.name for p in unknown] == ["notes.nii.gz"]


def test_mismatched_geometry_names_the_files(tmp_path):
    folder = make_case(tmp_path, "x", modalities=("t1", "t2"), label=False)
    write_img(folder / "x_flair.nii.gz", np.zeros((12, 10, 9), np.float32))
    (c,) = find_cases(tmp_path)
    with pytest.raises(GeometryError, match="x_flair.nii.gz"):
        load_case(c)
    aff = np.eye(4)
    aff[0, 3] = 5
    write_img(folder / "x_flair.nii.gz", np.zeros((12, 10, 8), np.float32), aff)
    with pytest.raises(GeometryError, match="affine"):
        load_case(find_cases(tmp_path)[0])


def test_corrupt_file_is_a_read_error(tmp_path):
    folder = make_case(tmp_path, "y", modalities=("t1",), label=False)
    (folder / "y_t1.nii.gz").write_bytes(b"not a nifti at all")
    with pytest.raises(ReadError, match="y_t1.nii.gz"):
        load_case(find_cases(tmp_path)[0])


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(InputError):
        find_cases(tmp_path / "nope")
    with pytest.raises(NoCasesError):
        find_cases(tmp_path)


def test_split_deterministic_and_disjoint():
    ids = [f"c{i:02d}" for i in range(20)]
    a = make_split(ids, seed=3)
    b = make_split(list(reversed(ids)), seed=3)
    assert a == b
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (14, 2, 4)
    assert set(a["train"]) | set(a["val"]) | set(a["test"]) == set(ids)
    assert not (set(a["train"]) & set(a["test"]))
    assert make_split(ids, seed=4) != a
    with pytest.raises(InputError):
        make_split(ids, ratios=(0.5, 0.5, 0.5))


def test_manifest_written_once_and_reused(brats2020_dir, tmp_path):
    path = tmp_path / "run" / "manifest.json"
    m1 = load_or_create_manifest(brats2020_dir, path, seed=1)
    assert path.exists()
    data = json.loads(path.read_text())
    data["split"]["train"] = sorted(data["split"]["train"])
    # reused as is even when a different seed is asked later
    m2 = load_or_create_manifest(brats2020_dir, path, seed=99)
    assert m2["split"] == m1["split"] and m2["seed"] == 1
    cases = cases_from_manifest(m2, "train")
    assert all(c.label is not None for c in cases)
    assert build_manifest(brats2020_dir, seed=1)["split"] == m1["split"]


def test_write_nifti_atomic_keeps_affine(tmp_path):
    aff = np.diag([-1.0, -1.0, 2.0, 1.0])
    aff[:3, 3] = [10, 20, -30]
    p = write_nifti(tmp_path / "a.nii.gz", np.arange(24, dtype=np.int16).reshape(2, 3, 4), aff)
    v = read_nifti(p)
    assert np.allclose(v.affine, aff) and v.spacing == (1.0, 1.0, 2.0) and v.orientation == "LPS"
    assert [q.name for q in tmp_path.iterdir()] == ["a.nii.gz"]
    from mmtumor.io.atomic import default_file_mode

    assert (p.stat().st_mode & 0o777) == default_file_mode()  # not mkstemp's private 0600
