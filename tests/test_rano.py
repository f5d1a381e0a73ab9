"""RANO bidimensional measurement on analytic shapes whose answers are known (mmtumor.rano)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ellipsoid, grid_affine
from mmtumor.rano import axial_axis, measure, measure_lesion, min_diameter, percent_change, response


@pytest.mark.parametrize("spacing,oblique,inplane", [
    ((1.0, 1.0, 1.0), 0.0, 0.0),
    ((0.8, 1.2, 3.0), 0.0, 30.0),     # anisotropic voxels, ellipse rotated in-plane
    ((0.8, 1.2, 3.0), 20.0, 30.0),    # ... on an oblique (tilted) grid
    ((0.5, 0.5, 5.0), 25.0, -55.0),   # thick slices, other tilt and rotation
])
def test_ellipsoid_diameters_are_its_axes(spacing, oblique, inplane):
    shape = (int(110 / spacing[0]), int(110 / spacing[1]), int(40 / spacing[2]) | 1)
    centre = [(s - 1) / 2 for s in shape]
    mask = ellipsoid(shape, spacing, (20.0, 12.0, 8.0), inplane, centre)
    m = measure_lesion(mask, grid_affine(spacing, oblique))
    tol = float(np.hypot(spacing[0], spacing[1]))  # one in-plane voxel diagonal
    assert abs(m.longest_mm - 40.0) <= tol, m
    assert abs(m.perpendicular_mm - 24.0) <= tol, m
    assert m.slice_index == shape[2] // 2  # the central slice holds the largest section
    assert m.measurable and m.slices >= 2
    a, b = (np.asarray(p) for p in m.longest_endpoints_ras)
    c, d = (np.asarray(p) for p in m.perpendicular_endpoints_ras)
    assert abs(np.linalg.norm(b - a) - m.longest_mm) < 0.1  # endpoints are the measured diameter, in scanner mm
    assert abs(np.dot((b - a) / np.linalg.norm(b - a), (d - c) / np.linalg.norm(d - c))) < 0.02  # perpendicular


def test_longest_diameter_direction_follows_the_rotation():
    mask = ellipsoid((100, 100, 9), (1, 1, 3), (20, 10, 6), 30.0)
    m = measure_lesion(mask, grid_affine((1, 1, 3)))
    a, b = (np.asarray(p) for p in m.longest_endpoints_ras)
    angle = np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0])) % 180
    assert abs(angle - 30.0) < 4.0


def test_small_lesion_is_not_measurable():
    mask = ellipsoid((40, 40, 20), (1, 1, 1), (4.0, 4.0, 4.0))
    m = measure_lesion(mask, grid_affine())
    assert m.longest_mm < 10 and not m.measurable
    assert "under 10 mm" in m.reason


def test_one_slice_lesion_is_not_measurable():
    mask = np.zeros((60, 60, 5), bool)
    mask[10:40, 15:40, 2] = True
    m = measure_lesion(mask, grid_affine((1, 1, 5)))
    assert m.longest_mm > 30 and m.perpendicular_mm > 20
    assert not m.measurable and "one slice" in m.reason


def test_thick_slices_raise_the_minimum_diameter():
    assert min_diameter(1.0) == 10.0 and min_diameter(5.0) == 10.0
    assert min_diameter(6.5) == 13.0  # twice the slice spacing when slices are over 5 mm apart
    mask = ellipsoid((60, 60, 7), (1, 1, 6.5), (6.0, 6.0, 15.0))  # 12 mm across: measurable at 5 mm, not at 6.5
    m = measure_lesion(mask, grid_affine((1, 1, 6.5)))
    assert 11 <= m.longest_mm <= 14 and not m.measurable


def test_two_lesions_sum_of_products_and_targets():
    shape, sp = (140, 100, 30), (1.0, 1.0, 2.0)
    numbered = np.zeros(shape, np.int32)
    numbered[ellipsoid(shape, sp, (15, 10, 8), 0, (40, 50, 15))] = 1
    numbered[ellipsoid(shape, sp, (8, 6, 6), 45, (100, 50, 15))] = 2
    res = measure(numbered, grid_affine(sp))
    by = {m["lesion"]: m for m in res["measurements"]}
    assert abs(by[1]["longest_mm"] - 30) <= 1.5 and abs(by[1]["perpendicular_mm"] - 20) <= 1.5
    assert abs(by[2]["longest_mm"] - 16) <= 1.5 and abs(by[2]["perpendicular_mm"] - 12) <= 1.5
    assert res["targets"] == [1, 2]
    assert res["spd_mm2"] == pytest.approx(by[1]["product_mm2"] + by[2]["product_mm2"], abs=0.2)
    assert 30 * 20 + 16 * 12 - 120 < res["spd_mm2"] < 30 * 20 + 16 * 12 + 120


def test_at_most_three_targets_largest_first():
    shape, sp = (200, 60, 20), (1.0, 1.0, 2.0)
    numbered = np.zeros(shape, np.int32)
    for i, r in enumerate((7, 12, 9, 10), start=1):
        numbered[ellipsoid(shape, sp, (r, r, 6), 0, (25 + 48 * (i - 1), 30, 10))] = i
    res = measure(numbered, grid_affine(sp))
    assert res["targets"] == [2, 4, 3]  # the three largest, by product; lesion 1 is measurable but not a target
    assert sum(m["target"] for m in res["measurements"]) == 3


def test_axial_axis_of_a_sagittal_grid():
    sagittal = np.zeros((4, 4))
    sagittal[:3, :3] = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]  # voxel axis 1 runs head-foot
    sagittal[3, 3] = 1
    assert axial_axis(sagittal) == 1
    assert axial_axis(grid_affine(oblique_degrees=30)) == 2


def test_response_categories():
    assert percent_change(100, 40) == -60.0 and percent_change(0, 5) is None
    assert response(1000, 400, 10, 8)["bidimensional"]["category"] == "PR"
    assert response(1000, 400, 10, 8)["volumetric"]["category"] == "SD"  # -20 %: not -65 %
    r = response(1000, 1300, 10, 14.5)
    assert r["bidimensional"]["category"] == "PD" and r["volumetric"]["category"] == "PD"
    assert response(1000, 1100, 10, 10.5)["bidimensional"]["category"] == "SD"
    assert response(1000, 0, 10, 0)["bidimensional"]["category"] == "CR"
    assert response(1000, 900, 10, 9, new_measurable_lesions=1)["volumetric"]["category"] == "PD"
    assert "clinical status" in response(1, 1, 1, 1)["caveat"]


def test_closed_ring_is_measured_across_its_centre():
    sp = (1.0, 1.0, 2.0)
    ring = ellipsoid((100, 100, 21), sp, (20, 14, 10), 20.0) & ~ellipsoid((100, 100, 21), sp, (14, 9, 6), 20.0)
    m = measure_lesion(ring, grid_affine(sp))
    assert abs(m.longest_mm - 40) <= 1.5 and abs(m.perpendicular_mm - 28) <= 1.5
