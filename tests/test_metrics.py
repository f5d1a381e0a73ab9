"""Metrics: hand-computed cases, BraTS edge conventions, and cross-checks against MONAI and brats-evaluation."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.ndimage import binary_erosion, distance_transform_edt, gaussian_filter, generate_binary_structure

from mmtumor.errors import GeometryError, InputError, LabelError
from mmtumor.labels import from_internal
from mmtumor.metrics import (
    HD95_ONE_EMPTY,
    aggregate,
    dice,
    hd95,
    region_metrics,
    sensitivity,
    spacing_from_affine,
    specificity,
    surface_distances,
    to_records,
    volumes_ml,
)

ANISO = (1.0, 0.6, 2.5)


def _blob_labels(seed: int, shape=(36, 32, 28), shift=(0, 0, 0)) -> np.ndarray:
    """Random nested tumour-like label map (internal scheme): ED shell, NCR core, patchy ET ring."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal(shape), 3.0)
    field /= field.std()
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    score = field * 0.6 + 1.5 * (1 - np.sqrt(xx**2 + yy**2 + zz**2))
    score = np.roll(score, shift, axis=(0, 1, 2))
    lab = np.zeros(shape, np.uint8)
    lab[score > 0.6] = 2
    lab[score > 1.0] = 4
    lab[score > 1.25] = 1
    return lab


# ---------------------------------------------------------------- hand-computed cases

def test_dice_sens_spec_by_hand():
    ref = np.zeros((2, 3, 4), bool)
    pred = np.zeros_like(ref)
    ref.flat[[0, 1, 2, 3, 4, 5]] = True      # 6 voxels
    pred.flat[[3, 4, 5, 20]] = True          # 4 voxels, 3 overlap
    assert dice(pred, ref) == pytest.approx(2 * 3 / 10)
    assert sensitivity(pred, ref) == pytest.approx(3 / 6)
    assert specificity(pred, ref) == pytest.approx(17 / 18)  # 18 negatives, one false positive


def test_hd95_single_voxels_isotropic_and_anisotropic():
    a = np.zeros((3, 4, 5), bool)
    b = np.zeros_like(a)
    a[0, 0, 0] = True
    b[0, 0, 3] = True
    assert hd95(a, b) == pytest.approx(3.0)
    assert hd95(a, b, (1.0, 1.0, 2.0)) == pytest.approx(6.0)
    c = np.zeros_like(a)
    c[0, 1, 1] = True
    assert hd95(a, c, (1.0, 2.0, 3.0)) == pytest.approx(math.sqrt(13.0))
    assert hd95(a, c, 2.0) == pytest.approx(2 * math.sqrt(2.0))


def test_hd95_pooled_versus_directed_by_hand():
    # ref: one voxel; pred: that voxel plus one 3 voxels away. Distances pred->ref [0, 3], ref->pred [0].
    ref = np.zeros((5, 5, 8), bool)
    ref[2, 2, 2] = True
    pred = ref.copy()
    pred[2, 2, 5] = True
    d_pred, d_ref = surface_distances(pred, ref)
    assert sorted(d_pred.tolist()) == [0.0, 3.0] and d_ref.tolist() == [0.0]
    # pooled [0, 0, 3]: 95th percentile (linear) = 0.9 * 3
    assert hd95(pred, ref) == pytest.approx(2.7)
    # MONAI: max(p95([0, 3]), p95([0])) = 0.95 * 3
    assert hd95(pred, ref, method="monai") == pytest.approx(2.85)


def test_surface_is_the_face_connected_border():
    cube = np.zeros((7, 7, 7), bool)
    cube[2:5, 2:5, 2:5] = True          # 27 voxels, 26 on the surface, the centre is interior
    d_pred, d_ref = surface_distances(cube, cube)
    assert d_pred.size == 26 and d_ref.size == 26
    assert np.all(d_pred == 0) and hd95(cube, cube) == 0.0


def test_shifted_box_hd95_is_the_shift():
    ref = np.zeros((20, 20, 20), bool)
    ref[5:12, 5:12, 5:12] = True
    pred = np.roll(ref, 2, axis=2)
    # every surface voxel of the shifted box is at most 2 voxels from the other surface; the faces
    # perpendicular to the shift are exactly 2 away, so the 95th percentile is 2 mm x spacing.
    assert hd95(pred, ref) == pytest.approx(2.0)
    assert hd95(pred, ref, (1.0, 1.0, 3.0)) == pytest.approx(6.0)


def test_empty_mask_conventions():
    empty = np.zeros((4, 4, 4), bool)
    one = empty.copy()
    one[1, 1, 1] = True
    assert dice(empty, empty) == 1.0
    assert hd95(empty, empty) == 0.0
    assert hd95(empty, empty, method="monai") == 0.0
    assert dice(one, empty) == 0.0 and dice(empty, one) == 0.0
    assert hd95(one, empty) == HD95_ONE_EMPTY == 373.13
    assert hd95(empty, one, ANISO) == HD95_ONE_EMPTY
    assert sensitivity(one, empty) == 1.0 and sensitivity(empty, one) == 0.0
    assert specificity(empty, empty) == 1.0 and specificity(np.ones_like(one), np.ones_like(one)) == 1.0
    with pytest.raises(InputError):
        surface_distances(one, empty)


def test_bad_inputs_raise_clear_errors():
    a = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(GeometryError):
        dice(a, np.zeros((4, 4, 5)))
    with pytest.raises(GeometryError):
        region_metrics(a, np.zeros((4, 4, 5), np.uint8))
    b = a.copy()
    b[0, 0, 0] = 3
    with pytest.raises(LabelError, match="3"):
        region_metrics(b, a)
    with pytest.raises(InputError):
        hd95(a > 0, a > 0, (1.0, 1.0))
    with pytest.raises(InputError):
        hd95(a > 0, a > 0, (1.0, 0.0, 1.0))
    with pytest.raises(InputError):
        hd95(a > 0, a > 0, method="nope")


def _full_grid_hd95(pred: np.ndarray, ref: np.ndarray, spacing) -> float:
    """Straightforward definition on the whole grid (no bounding-box crop), for equivalence."""
    st = generate_binary_structure(3, 1)
    sp = pred & ~binary_erosion(pred, st)
    sr = ref & ~binary_erosion(ref, st)
    d1 = distance_transform_edt(~sr, sampling=spacing)[sp]
    d2 = distance_transform_edt(~sp, sampling=spacing)[sr]
    return float(np.percentile(np.concatenate([d1, d2]), 95))


def test_bbox_crop_matches_full_grid_even_at_the_image_border():
    ref = _blob_labels(1) > 0
    pred = _blob_labels(2, shift=(9, 0, -5)) > 0   # shifted so the masks touch the image border
    assert pred[-1].any() or pred[0].any() or pred[:, :, 0].any()
    for sp in [(1.0, 1.0, 1.0), ANISO]:
        assert hd95(pred, ref, sp) == pytest.approx(_full_grid_hd95(pred, ref, sp), abs=1e-9)


def test_region_metrics_full_brats_grid_is_fast():
    ref = np.zeros((240, 240, 155), np.uint8)
    ref[80:150, 90:160, 50:110] = 2
    ref[100:130, 110:140, 60:100] = 1
    ref[105:125, 115:135, 65:95] = 4
    pred = np.roll(ref, 3, axis=0)
    t0 = time.perf_counter()
    m = region_metrics(pred, ref, (1.0, 1.0, 1.0))
    elapsed = time.perf_counter() - t0
    for region in ("WT", "TC", "ET"):
        assert m[region]["hd95"] == pytest.approx(3.0)
    assert m["WT"]["dice"] == pytest.approx(1 - 3 / 70)
    assert elapsed < 10.0  # ~0.4 s on one loaded core; generous bound for shared CI machines


def test_region_metrics_use_nested_regions():
    ref = np.zeros((10, 10, 10), np.uint8)
    ref[2:8, 2:8, 2:8] = 2
    ref[3:7, 3:7, 3:7] = 1
    ref[4:6, 4:6, 4:6] = 4
    pred = ref.copy()
    pred[pred == 4] = 1   # ET missed, called necrosis: TC and WT perfect, ET empty in prediction
    m = region_metrics(pred, ref, 1.0)
    assert m["WT"]["dice"] == 1.0 and m["TC"]["dice"] == 1.0
    assert m["ET"]["dice"] == 0.0 and m["ET"]["hd95"] == HD95_ONE_EMPTY and m["ET"]["sens"] == 0.0
    assert ref[4, 4, 4] == 4  # inputs untouched


def test_spacing_from_rotated_affine_and_records():
    theta = 0.4
    rot = np.array([[np.cos(theta), 0, -np.sin(theta)], [0, 1, 0], [np.sin(theta), 0, np.cos(theta)]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag(ANISO)
    assert spacing_from_affine(aff) == pytest.approx(ANISO)
    with pytest.raises(InputError):
        spacing_from_affine(np.zeros((4, 4)))
    ref = _blob_labels(5)
    recs = to_records("m", "c1", "0101", region_metrics(ref, ref, spacing_from_affine(aff)), error=None)
    assert [r["region"] for r in recs] == ["WT", "TC", "ET"]
    assert all(r["dice"] == 1.0 and r["hd95"] == 0.0 and r["subset_code"] == "0101" and "error" in r for r in recs)
    assert aggregate(recs)["overall"]["m"]["ET"]["dice"]["mean"] == 1.0


# ---------------------------------------------------------------- volumes and ET post-processing

def test_volumes_ml_from_affine_and_spacing():
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[:5, :5, :4] = 4      # 100 voxels
    lab[5:, :5, :2] = 1      # 50 voxels
    lab[:, 5:, :3] = 2       # 150 voxels
    aff = np.diag([1.0, 2.0, 2.5, 1.0])   # 5 mm³ voxels
    v = volumes_ml(lab, aff)
    assert v["ET"] == pytest.approx(0.5) and v["NCR"] == pytest.approx(0.25) and v["ED"] == pytest.approx(0.75)
    assert v["TC"] == pytest.approx(0.75) and v["WT"] == pytest.approx(1.5)
    assert volumes_ml(lab, (1.0, 2.0, 2.5)) == pytest.approx(v)
    theta = 0.3   # a rotation does not change the voxel volume
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    aff2 = np.eye(4)
    aff2[:3, :3] = rot @ np.diag([1.0, 2.0, 2.5])
    assert volumes_ml(lab, aff2)["WT"] == pytest.approx(1.5)
    with pytest.raises(InputError):
        volumes_ml(lab, np.eye(2))


# ---------------------------------------------------------------- aggregation

def _rec(method, case, subset, region, d, h=1.0):
    return {"method": method, "case_id": case, "subset_code": subset, "region": region,
            "dice": d, "hd95": h, "sens": d, "spec": 1.0}


def test_aggregate_mean_sd_and_equal_subset_weights():
    recs = [_rec("m", "a", "1111", "WT", 0.8), _rec("m", "b", "1111", "WT", 0.6), _rec("m", "c", "1111", "WT", 0.7),
            _rec("m", "a", "0001", "WT", 0.2)]
    agg = aggregate(recs)
    s = agg["per_subset"]["m"]["1111"]["WT"]["dice"]
    assert s["mean"] == pytest.approx(0.7) and s["sd"] == pytest.approx(0.1) and s["n"] == 3
    assert math.isnan(agg["per_subset"]["m"]["0001"]["WT"]["dice"]["sd"])
    o = agg["overall"]["m"]["WT"]["dice"]
    assert o["mean"] == pytest.approx((0.7 + 0.2) / 2) and o["n_subsets"] == 2   # subsets weigh equally
    with pytest.raises(InputError, match="duplicate"):
        aggregate(recs + [_rec("m", "a", "0001", "WT", 0.3)])
    with pytest.raises(InputError, match="case_id"):
        aggregate([{"method": "m", "subset_code": "1111", "region": "WT", "dice": 1.0}])


# ---------------------------------------------------------------- cross-checks

CASES = [(11, 12, (0, 0, 0)), (13, 14, (3, -2, 1)), (15, 16, (-4, 2, 0))]


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), ANISO])
def test_against_monai(spacing):
    monai_metrics = pytest.importorskip("monai.metrics")
    import torch

    for seed_p, seed_r, shift in CASES:
        pred, ref = _blob_labels(seed_p, shift=shift), _blob_labels(seed_r)
        ours = region_metrics(pred, ref, spacing, hd95_method="monai")
        ours_brats = region_metrics(pred, ref, spacing)
        from mmtumor.labels import labels_to_regions
        p = torch.from_numpy(labels_to_regions(pred)[None].astype(np.float32))
        r = torch.from_numpy(labels_to_regions(ref)[None].astype(np.float32))
        md = monai_metrics.compute_dice(p, r, include_background=True)[0]
        mh = monai_metrics.compute_hausdorff_distance(p, r, include_background=True, percentile=95, spacing=list(spacing))[0]
        mh_dir = [monai_metrics.compute_hausdorff_distance(a, b, include_background=True, percentile=95,
                                                           directed=True, spacing=list(spacing))[0] for a, b in ((p, r), (r, p))]
        for i, region in enumerate(("WT", "TC", "ET")):
            assert ours[region]["dice"] == pytest.approx(float(md[i]), abs=1e-6)
            assert ours[region]["hd95"] == pytest.approx(float(mh[i]), abs=1e-3)
            # the BraTS pooled percentile lies between MONAI's two directed 95th percentiles
            lo, hi = sorted(float(d[i]) for d in mh_dir)
            assert lo - 1e-3 <= ours_brats[region]["hd95"] <= hi + 1e-3


@pytest.fixture(scope="module")
def brats_evaluator():
    pytest.importorskip("brats_evaluation", reason="brats-evaluation (official BraTS package) not installed")
    import warnings
    from importlib.resources import files

    from panoptica import Panoptica_Evaluator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Panoptica_Evaluator.load_from_config(str(files("brats_evaluation").joinpath("configs", "config_gli.yaml")))


def test_against_official_brats_evaluation(brats_evaluator):
    """The package's own evaluator on BraTS-2023 labels, 1 mm isotropic (BraTS' grid).

    Its global HD95 is computed in voxel units (it does not pass the spacing down), so the
    anisotropic check below calls the package's HD95 function with the spacing directly.
    """
    import warnings

    for seed_p, seed_r, shift in CASES:
        pred, ref = _blob_labels(seed_p, shift=shift), _blob_labels(seed_r)
        ours = region_metrics(pred, ref, (1.0, 1.0, 1.0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = brats_evaluator.evaluate(from_internal(pred, "brats2023"), from_internal(ref, "brats2023"),
                                           skip_groups=["snfh", "netc", "rc"])
        for group, region in (("wt", "WT"), ("tc", "TC"), ("et", "ET")):
            d = res[group].to_dict(True)
            assert ours[region]["dice"] == pytest.approx(float(d["global_bin_dsc"]), abs=1e-6)
            assert ours[region]["hd95"] == pytest.approx(float(d["global_bin_hd95"]), abs=1e-3)


def test_against_official_brats_hd95_anisotropic(brats_evaluator):
    from panoptica.metrics.hausdorff_distance import _compute_hausdorff_distance95

    for seed_p, seed_r, shift in CASES:
        pred, ref = _blob_labels(seed_p, shift=shift) > 0, _blob_labels(seed_r) > 0
        theirs = float(_compute_hausdorff_distance95(ref, pred, voxelspacing=ANISO))
        assert hd95(pred, ref, ANISO) == pytest.approx(theirs, abs=1e-3)
