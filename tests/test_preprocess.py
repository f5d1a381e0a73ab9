"""Spatial preprocessing (mmtumor.preprocess.spatial): registration, resampling, brain mask and the exact inverse.

The phantom is analytic (defined in world mm), so every grid can be sampled exactly and the ground truth is known
in any space: a head of nested ellipsoids (scalp, skull, CSF, brain with a white-matter core and texture,
ventricles) and a tumour ball.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mmtumor.errors import InputError, MmtumorError
from mmtumor.modalities import Modality as M
from mmtumor.preprocess import is_brats_preprocessed, preprocess_case, to_native
from mmtumor.preprocess.spatial import RegistrationSettings, n4_correct, reorient, rigid_parameters

BRAIN_C = np.array([0.0, -18.0, 12.0])
BRAIN_R = np.array([68.0, 85.0, 62.0])
TUMOUR_C = np.array([30.0, 5.0, 28.0])
TUMOUR_R = 22.0
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "BraTS-GLI-00001-000"
FAST = RegistrationSettings(spacing=3.0, shrink=(2, 1), smoothing_mm=(3.0, 1.5), iterations=60, sampling=0.1,
                            atlas_iterations=30)


def rot(ax: float, ay: float, az: float) -> np.ndarray:
    ax, ay, az = np.radians([ax, ay, az])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _ell(p, c, r, pad=0.0):
    return (((p - c) / (r + pad)) ** 2).sum(-1)


def brain_fn(p):
    return (_ell(p, BRAIN_C, BRAIN_R) <= 1).astype(np.float32)


def tumour_fn(p):
    return (((p - TUMOUR_C) ** 2).sum(-1) <= TUMOUR_R**2).astype(np.float32)


def head(p: np.ndarray, kind: str) -> np.ndarray:
    """Phantom intensity at world points ``p`` (..., 3): 't1c' (bright scalp, dark skull/CSF) or 'flair'."""
    brain = _ell(p, BRAIN_C, BRAIN_R) <= 1
    csf = _ell(p, BRAIN_C, BRAIN_R, 3) <= 1
    skull = _ell(p, BRAIN_C, BRAIN_R, 9) <= 1
    scalp = _ell(p, BRAIN_C + [0, 0, -10], BRAIN_R + [14, 14, 24]) <= 1
    vent = (_ell(p, np.array([-8.0, -15, 18]), np.array([6.0, 28, 10])) <= 1) | (
        _ell(p, np.array([9.0, -12, 16]), np.array([5.0, 24, 9])) <= 1)
    tum = tumour_fn(p) > 0
    tex = np.sin(p[..., 0] / 6.0 + 0.3) * np.sin(p[..., 1] / 7.0) * np.sin(p[..., 2] / 5.0 + 1.0)
    wm = _ell(p, BRAIN_C + [4, 6, 8], BRAIN_R * 0.6) <= 1
    lv = {"t1c": (0.9, 0.1, 0.2, 0.7, 0.5, 0.08, 0.2, 0.95), "flair": (0.6, 0.05, 0.1, 0.4, 0.55, 0.06, 0.1, 1.0)}[kind]
    v = np.where(scalp, lv[0], 0.0)
    v = np.where(skull, lv[1], v)
    v = np.where(csf, lv[2], v)
    v = np.where(brain, np.where(wm, lv[3], lv[4]) + lv[5] * tex, v)
    v = np.where(vent, lv[6], v)
    return np.where(tum, lv[7], v).astype(np.float32)


def grid_affine(shape, spacing, rotation, centre) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = rotation @ np.diag(spacing)
    a[:3, 3] = centre - a[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    return a


def sample(fn, shape, affine, thick_axis: int | None = None, sub: int = 5) -> np.ndarray:
    """Sample ``fn`` at voxel centres; with ``thick_axis`` average ``sub`` points across the slice (partial volume)."""
    idx = np.indices(shape, dtype=np.float32).reshape(3, -1).T
    offsets = [0.0] if thick_axis is None else (np.arange(sub) + 0.5) / sub - 0.5
    acc = 0.0
    for o in offsets:
        off = np.zeros(3, dtype=np.float32)
        if thick_axis is not None:
            off[thick_axis] = o
        acc = acc + fn((idx + off) @ affine[:3, :3].T + affine[:3, 3])
    return (acc / len(offsets)).reshape(shape).astype(np.float32)


def dice(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2.0 * (a & b).sum() / max(1, a.sum() + b.sum())


# ---------------------------------------------------------------------------------------------------------------
# Raw oblique thick-slice case with a rigidly moved second modality


@pytest.fixture(scope="module")
def raw_case():
    # reference T1c: oblique (15/-8/5 degrees), x flipped, 3 x 3 x 6 mm (thick slices on the third axis)
    shape = (67, 77, 30)
    ref_aff = grid_affine(shape, [3, 3, 6], rot(15, -8, 5) @ np.diag([-1, 1, 1]), BRAIN_C + [3, -2, -5])
    ref = sample(lambda p: head(p, "t1c"), shape, ref_aff, thick_axis=2)
    # FLAIR: axial 3.5 mm grid, other field of view, head moved by a known rigid T (reference world -> FLAIR world)
    true = np.eye(4)
    true[:3, :3] = rot(3, -2, 4)
    true[:3, 3] = np.array([3.0, -2.0, 2.5]) + BRAIN_C - true[:3, :3] @ BRAIN_C
    inv = np.linalg.inv(true)
    mshape = (52, 60, 52)
    mov_aff = grid_affine(mshape, [3.5, 3.5, 3.5], np.eye(3), BRAIN_C + [0, 0, -8])
    mov = sample(lambda q: head(q @ inv[:3, :3].T + inv[:3, 3], "flair"), mshape, mov_aff)
    res = preprocess_case({"t1ce": (ref, ref_aff), M.FLAIR: (mov, mov_aff)}, skull_strip=True, target_spacing=3.0,
                          registration=FAST)
    return dict(ref=ref, ref_aff=ref_aff, shape=shape, true=true, res=res)


def test_raw_registration_recovers_known_rigid_offset(raw_case):
    res = raw_case["res"]
    assert res.reference == M.T1C and not res.brats_preprocessed
    assert list(res.present) == [False, True, False, True]
    pts = np.argwhere(res.brain_mask)[::20] @ res.affine[:3, :3].T + res.affine[:3, 3]
    angle, shift = rigid_parameters(np.linalg.inv(raw_case["true"]) @ res.transforms[M.FLAIR], pts)
    truth_angle, truth_shift = rigid_parameters(raw_case["true"], pts)
    assert truth_angle > 4 and truth_shift > 3  # the offset to recover is a real one
    assert angle < 1.0 and shift < 1.0, (angle, shift)
    assert any(s.startswith("registered FLAIR") for s in res.steps)
    assert "register FLAIR" in res.timings


def test_raw_working_grid_geometry(raw_case):
    res = raw_case["res"]
    assert res.data.shape == (4, *res.brain_mask.shape) and res.data.dtype == np.float32
    assert np.allclose(res.spacing, 3.0)
    assert "".join(nib.aff2axcodes(res.affine)) == "LPS"
    assert not res.data[M.T1.index].any() and not res.data[M.T2.index].any()
    # the working-grid FLAIR shows the tumour where the phantom has it (forward mapping is right)
    truth_work = sample(tumour_fn, res.brain_mask.shape, res.affine) > 0.5
    assert dice(res.data[M.FLAIR.index] > 0.8, truth_work) > 0.85


def test_raw_label_back_to_native_space(raw_case):
    res, shape = raw_case["res"], raw_case["shape"]
    label = (res.data[M.FLAIR.index] > 0.8).astype(np.uint8)  # a "segmentation" made in the working grid
    native = to_native(label, res, order=0)
    assert native.shape == shape and native.dtype == np.uint8
    assert np.array_equal(res.native_affine, raw_case["ref_aff"])
    truth = sample(tumour_fn, shape, raw_case["ref_aff"], thick_axis=2) >= 0.5
    assert dice(native, truth) > 0.9
    probs = np.stack([label.astype(np.float32), 1 - label.astype(np.float32)])
    pn = to_native(probs, res, order=1)
    assert pn.shape == (2, *shape) and 0 <= pn.min() and pn.max() <= 1
    assert dice(pn[0] >= 0.5, truth) > 0.9
    nb = to_native(label.astype(bool), res)
    assert nb.dtype == bool and np.array_equal(nb, native.astype(bool))


def test_raw_atlas_brain_mask(raw_case):
    res = raw_case["res"]
    truth = sample(brain_fn, res.brain_mask.shape, res.affine) > 0.5
    assert dice(res.brain_mask, truth) > 0.8
    assert not res.data[:, ~res.brain_mask].any()  # skull stripped: nothing outside the mask
    assert any("MNI152" in s for s in res.steps)


def test_raw_case_is_not_brats(raw_case):
    assert not is_brats_preprocessed({M.T1C: (raw_case["ref"], raw_case["ref_aff"])})


# ---------------------------------------------------------------------------------------------------------------
# BraTS-preprocessed input: identity, bit-identical round trip


def _brats_like(rng) -> tuple[dict, np.ndarray]:
    shape = (150, 180, 130)
    aff = np.array([[-1.0, 0, 0, 75], [0, -1, 0, 72], [0, 0, 1, -53], [0, 0, 0, 1]])  # BraTS-like LPS axis codes
    i, j, k = np.ogrid[: shape[0], : shape[1], : shape[2]]
    inside = ((i - 75) / 68.0) ** 2 + ((j - 90) / 85.0) ** 2 + ((k - 65) / 62.0) ** 2 <= 1
    imgs = {}
    for m, base in ((M.T1, 300), (M.T2, 500), (M.FLAIR, 400)):
        v = (base + 50 * rng.standard_normal(shape)).astype(np.float32)
        imgs[m] = (np.where(inside, np.abs(v) + 1, 0).astype(np.float32), aff)
    return imgs, inside


def test_brats_preprocessed_identity_bit_identical():
    rng = np.random.default_rng(0)
    imgs, inside = _brats_like(rng)
    assert is_brats_preprocessed(imgs)
    res = preprocess_case(imgs)
    assert res.brats_preprocessed and res.reference == M.FLAIR
    assert any("BraTS-preprocessed input recognised" in s for s in res.steps)
    for m, (d, _a) in imgs.items():
        assert np.array_equal(res.data[m.index], d)
    assert np.array_equal(res.affine, imgs[M.FLAIR][1]) and np.array_equal(res.brain_mask, inside)
    label = rng.integers(0, 5, size=inside.shape).astype(np.uint8)
    back = to_native(label, res)
    assert back is not label and back.dtype == np.uint8 and np.array_equal(back, label)
    probs = rng.random((3, *inside.shape), dtype=np.float32)
    assert np.array_equal(to_native(probs, res, order=1), probs)
    # asking for RAS arrays: a lossless flip, still a bit-identical round trip
    res_ras = preprocess_case(imgs, orientation="RAS")
    assert "".join(nib.aff2axcodes(res_ras.affine)) == "RAS"
    assert np.array_equal(res_ras.data[M.T1.index], imgs[M.T1][0][::-1, ::-1, :])
    assert np.array_equal(to_native(res_ras.data[M.T2.index], res_ras, order=1), imgs[M.T2][0])


def test_brats_from_files_with_4d_single_volume(tmp_path):
    rng = np.random.default_rng(1)
    imgs, _ = _brats_like(rng)
    paths = {}
    for m, (d, a) in imgs.items():
        arr = d[..., None] if m == M.T2 else d  # a 4D file with one volume
        paths[m] = tmp_path / f"{m.file_stem}.nii"
        nib.save(nib.Nifti1Image(arr, a), paths[m])
    res = preprocess_case(paths, reference=M.T2)
    assert res.brats_preprocessed and res.reference == M.T2 and res.native_shape == imgs[M.T2][0].shape
    assert np.array_equal(res.data[M.T2.index], imgs[M.T2][0])


# ---------------------------------------------------------------------------------------------------------------
# Orientation / anisotropy without registration


@pytest.mark.parametrize("codes", ["RAS", "LPS", "PSL", "ILA"])
def test_any_orientation_single_modality(codes):
    """One skull-on modality in any axis order, 1 x 1 x 3 mm: the working grid is 1 mm LPS and the inverse exact."""
    import nibabel.orientations as no

    base = np.diag([1.0, 1.0, 3.0, 1.0])
    ornt = no.axcodes2ornt(tuple(codes))
    shape = (60, 50, 24)
    perm = np.zeros((4, 4))
    perm[3, 3] = 1
    for axis, (world, flip) in enumerate(ornt):
        perm[int(world), axis] = flip
    aff = perm @ base
    aff[:3, 3] = -aff[:3, :3] @ (np.array(shape) - 1) / 2.0
    fn = lambda p: (((p / np.array([25.0, 22, 30])) ** 2).sum(-1) <= 1) * (1.0 + 0.01 * p[..., 0]) + 0.05  # noqa: E731
    data = sample(fn, shape, aff).astype(np.float32)
    res = preprocess_case({M.T2: (data, aff)}, skull_strip=False)
    assert "".join(nib.aff2axcodes(res.affine)) == "LPS" and np.allclose(res.spacing, 1.0)
    # the working grid holds the function at its own world coordinates (interior, away from slab edges)
    expected = sample(fn, res.brain_mask.shape, res.affine)
    assert np.abs(res.data[M.T2.index] - expected).mean() < 0.05
    back = to_native(res.data[M.T2.index], res, order=1)
    assert back.shape == shape
    # in-plane axes are 1 mm already: only the slice axis is interpolated, so the round trip is near-exact
    assert np.abs(back - data).mean() < 0.02


def test_reorient_is_lossless():
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    aff = np.diag([-2.0, 1.0, 3.0, 1.0])
    out, new_aff, _ = reorient(data, aff, "RAS")
    assert out.shape == (2, 3, 4) and np.array_equal(out, data[::-1])
    # same world position for the same voxel value
    assert np.allclose(new_aff @ [0, 0, 0, 1], aff @ [1, 0, 0, 1])


# ---------------------------------------------------------------------------------------------------------------
# N4 and errors


def test_n4_removes_smooth_bias():
    shape = (40, 40, 40)
    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    aff[:3, 3] = -60
    i, j, k = np.indices(shape)
    mask = ((i - 20) ** 2 + (j - 20) ** 2 + (k - 20) ** 2) <= 17**2
    rng = np.random.default_rng(2)
    tissue = np.where((i + j) % 10 < 5, 100.0, 140.0) + rng.normal(0, 2, shape)  # two "tissues"
    bias = np.exp(0.4 * (i - 20) / 20.0 + 0.2 * (k - 20) / 20.0)
    img = np.where(mask, tissue * bias, 0).astype(np.float32)
    out = n4_correct(img, aff, mask, shrink=2, iterations=(30, 30))
    low_before = img[mask & ((i + j) % 10 < 5)]
    low_after = out[mask & ((i + j) % 10 < 5)]
    cv = lambda x: x.std() / x.mean()  # noqa: E731
    assert cv(low_after) < 0.6 * cv(low_before)


@pytest.mark.parametrize(
    "images, message",
    [
        ({}, "no images"),
        ({M.T1: (np.ones((64, 64, 1), np.float32), np.eye(4))}, "2D"),
        ({M.T1: (np.ones((64, 64), np.float32), np.eye(4))}, "3D"),
        ({M.T1: (np.zeros((16, 16, 16), np.float32), np.eye(4))}, "empty"),
        ({M.T1: (np.ones((16, 16, 16, 3), np.float32), np.eye(4))}, "3D"),
        ({M.T1: (np.random.rand(16, 16, 16).astype(np.float32), np.eye(4))}, "too small to hold a brain"),
        ({M.T1: (np.random.rand(16, 16, 16).astype(np.float32), np.zeros((4, 4)))}, "affine"),
        ({"t5": (np.random.rand(16, 16, 16).astype(np.float32), np.eye(4))}, "unknown modality"),
    ],
)
def test_unusable_input_gives_clear_error(images, message):
    with pytest.raises(MmtumorError, match=message):
        preprocess_case(images)


def test_bad_options():
    img = {M.T1: (np.random.rand(16, 16, 16).astype(np.float32), np.eye(4))}
    with pytest.raises(InputError, match="orientation"):
        preprocess_case(img, orientation="LLS")
    with pytest.raises(InputError, match="skull_strip"):
        preprocess_case(img, skull_strip="yes")


def test_missing_file_and_bad_reference(tmp_path):
    with pytest.raises(MmtumorError, match="not found"):
        preprocess_case({M.T1: tmp_path / "nope.nii.gz"})
    with pytest.raises(InputError, match="reference"):
        preprocess_case({M.T1: (np.random.rand(64, 64, 64).astype(np.float32), np.eye(4))}, reference=M.T1C)


# ---------------------------------------------------------------------------------------------------------------
# Real BraTS case (skipped without ../shared)


@pytest.mark.skipif(not REAL.exists(), reason="../shared/data/real not available")
def test_real_brats_case_recognised_and_untouched():
    files = {m: REAL / f"BraTS-GLI-00001-000-{s}.nii.gz" for m, s in
             ((M.T1, "t1n"), (M.T1C, "t1c"), (M.T2, "t2w"), (M.FLAIR, "t2f"))}
    assert is_brats_preprocessed(files)
    res = preprocess_case(files)
    assert res.brats_preprocessed and res.reference == M.T1C and res.data.shape == (4, 240, 240, 155)
    t1c = nib.load(str(files[M.T1C]))
    assert np.array_equal(res.data[M.T1C.index], np.asarray(t1c.dataobj, dtype=np.float32))
    label = (res.data[M.FLAIR.index] > np.percentile(res.data[M.FLAIR.index][res.brain_mask], 98)).astype(np.uint8)
    back = to_native(label, res)
    assert back.shape == t1c.shape and np.array_equal(back, label)
    assert np.allclose(res.native_affine, t1c.affine)


def test_auto_skull_strip_keeps_existing_brain_mask():
    """A skull-stripped but oblique (non-BraTS) image: no atlas, its own non-zero region is the brain mask."""
    imgs, inside = _brats_like(np.random.default_rng(3))
    data, aff = imgs[M.FLAIR]
    oblique = np.eye(4)
    oblique[:3, :3] = rot(12, 0, 0)
    res = preprocess_case({M.FLAIR: (data, oblique @ aff)})
    assert not res.brats_preprocessed and res.to_mni is None
    assert not any("MNI152" in s for s in res.steps)
    assert any("already skull-stripped" in s for s in res.steps)
    assert np.array_equal(res.brain_mask, inside) and np.array_equal(res.data[M.FLAIR.index], data)
