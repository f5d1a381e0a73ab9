"""Lesion table (mmtumor.lesions) on shapes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import grid_affine
from mmtumor.labels import ED, ET, NCR
from mmtumor.lesions import AtlasFrame, MIN_LESION_ML, find_lesions, lesion_rows


def _two_cubes(spacing=(1.0, 1.0, 2.0)):
    lab = np.zeros((80, 40, 20), np.uint8)
    lab[10:30, 10:30, 5:15] = ED      # 20x20x10 voxels of 2 mm3: 8 mL
    lab[15:25, 15:25, 8:12] = ET      # 10x10x4: 0.8 mL of ET inside
    lab[40:50, 10:20, 5:10] = NCR     # 10x10x5: 1 mL, 10 voxels (10 mm) away along x
    lab[70, 35, 18] = ED              # one voxel: under the minimum size
    return lab, grid_affine(spacing, origin=(-40.0, 0.0, 0.0))


def test_components_volumes_and_order():
    lab, aff = _two_cubes()
    table, numbered = find_lesions(lab, aff, "tumour")
    assert [les.number for les in table.lesions] == [1, 2]
    big, small = table.lesions
    assert big.volumes_ml["WT"] == pytest.approx(8.0) and big.volumes_ml["ET"] == pytest.approx(0.8)
    assert big.volumes_ml["ED"] == pytest.approx(7.2) and big.volumes_ml["NCR"] == 0
    assert small.volumes_ml["TC"] == pytest.approx(1.0) and small.volumes_ml["NCR"] == pytest.approx(1.0)
    assert table.below_minimum == {"count": 1, "volume_ml": pytest.approx(0.002)}
    assert set(np.unique(numbered)) == {0, 1, 2}
    # centroid of voxels 10..29, 10..29, 5..14 -> (19.5, 19.5, 9.5) voxels -> mm through the affine
    assert big.centroid_ras_mm == pytest.approx((-40 + 19.5, 19.5, 19.0), abs=0.01)
    assert big.centroid_lps_mm == pytest.approx((40 - 19.5, -19.5, 19.0), abs=0.01)
    # edge to edge: x voxel 29 -> 40 is 11 voxel centres apart = 11 mm
    assert big.nearest_lesion == 2 and small.nearest_lesion == 1
    assert big.nearest_lesion_mm == pytest.approx(11.0) and small.nearest_lesion_mm == pytest.approx(11.0)
    assert big.hemisphere == "unknown" and big.crosses_midline is None


def test_enhancing_lesions_are_et_only():
    lab, aff = _two_cubes()
    table, _ = find_lesions(lab, aff, "enhancing")
    assert len(table.lesions) == 1 and table.lesions[0].volumes_ml["ET"] == pytest.approx(0.8)
    assert table.lesions[0].nearest_lesion_mm is None


def test_corner_touching_voxels_are_one_lesion():
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[2:8, 2:8, 2:8] = ED
    lab[8:14, 8:14, 8:14] = ED  # touches the first only at a corner: 26-connectivity joins them
    table, _ = find_lesions(lab, np.eye(4), "tumour")
    assert len(table.lesions) == 1


def test_hemisphere_and_midline_in_atlas_frame():
    lab, aff = _two_cubes((1.0, 1.0, 1.0))
    # atlas x = world x + 20: the midline (x = 0) at world x = -20, i.e. voxel 20, through the big cube (10..29)
    shift = np.eye(4)
    shift[0, 3] = 20.0
    working = np.linalg.inv(aff)
    table, _ = find_lesions(lab, aff, "tumour", AtlasFrame("test", shift, working))
    big, small = table.lesions
    assert big.crosses_midline is True and small.crosses_midline is False
    assert small.hemisphere == "right" and small.centroid_atlas_mm[0] == pytest.approx(24.5)
    assert big.centroid_working_voxel == pytest.approx((19.5, 19.5, 9.5))


def test_minimum_size_is_the_stated_one():
    lab = np.zeros((30, 30, 30), np.uint8)
    n = int(MIN_LESION_ML * 1000)  # voxels of 1 mm3 that make exactly the minimum
    lab.reshape(-1)[:n] = ED
    table, _ = find_lesions(lab, np.eye(4), "tumour")
    assert len(table.lesions) == 1
    lab.reshape(-1)[n - 1] = 0
    table, _ = find_lesions(lab, np.eye(4), "tumour")
    assert not table.lesions and table.below_minimum["count"] == 1


def test_rows_carry_measurements_on_enhancing_lesions():
    lab, aff = _two_cubes()
    tumour, _ = find_lesions(lab, aff, "tumour")
    enh, _ = find_lesions(lab, aff, "enhancing")
    rows = lesion_rows([tumour.as_dict(), enh.as_dict()], {1: {"longest_mm": 14.1, "perpendicular_mm": 10.0, "product_mm2": 141.0,
                                           "measurable": True, "target": True}})
    assert [r["kind"] for r in rows] == ["tumour", "tumour", "enhancing"]
    assert rows[0]["longest_diameter_mm"] == "" and rows[2]["longest_diameter_mm"] == 14.1
