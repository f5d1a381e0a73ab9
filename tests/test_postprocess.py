"""Post-processing rules of the inference core: small tumour islands and a tiny enhancing tumour."""

from __future__ import annotations

import numpy as np
import pytest

from mmtumor.errors import InputError
from mmtumor.postprocess import check_component_fraction, check_min_et_voxels, drop_small_components, relabel_small_et


def test_relabel_small_et_total_and_component():
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[2:6, 2:6, 2:6] = 4        # 64 voxels
    lab[15, 15, 15] = 4           # 1 voxel, separate component
    before = lab.copy()
    out = relabel_small_et(lab, 10, mode="component")
    assert out[15, 15, 15] == 1 and np.count_nonzero(out == 4) == 64
    assert np.array_equal(lab, before)                          # input untouched
    assert np.array_equal(relabel_small_et(lab, 10), lab)       # total 65 >= 10: unchanged
    out_total = relabel_small_et(lab, 100)                      # total 65 < 100: all ET -> NCR
    assert np.count_nonzero(out_total == 4) == 0 and np.count_nonzero(out_total == 1) == 65
    with pytest.raises(InputError):
        relabel_small_et(lab, 10, mode="bad")


def test_drop_small_components_keeps_comparable_lesions_and_removes_islands():
    lab = np.zeros((30, 30, 30), np.uint8)
    lab[2:12, 2:12, 2:12] = 2        # main lesion: 1000 voxels of edema ...
    lab[5:8, 5:8, 5:8] = 4           # ... with enhancing tumour inside
    lab[20:27, 20:27, 2:8] = 2       # 294 voxels: 29 % of the largest, a second lesion
    lab[25:28, 2:5, 20:23] = 1       # 27 voxels of NCR (3 %): an island
    lab[15, 15, 25] = 4              # 1 voxel of ET: an island
    before = lab.copy()
    out = drop_small_components(lab, 0.2)
    assert np.array_equal(lab, before)                                   # input untouched
    assert np.count_nonzero(out) == 1000 + 294                           # both lesions kept, islands gone
    assert np.count_nonzero(out == 4) == 27 and np.count_nonzero(out == 1) == 0
    assert np.count_nonzero(drop_small_components(lab, 0.5)) == 1000     # only the largest at 50 %
    assert np.array_equal(drop_small_components(lab, 0), lab)            # 0 = off
    assert np.array_equal(drop_small_components(np.zeros((4, 4, 4), np.uint8), 0.2), np.zeros((4, 4, 4)))
    diag = np.zeros((5, 5, 5), np.uint8)
    diag[1, 1, 1] = diag[2, 2, 2] = 2                                    # 26-connected: one component
    assert np.count_nonzero(drop_small_components(diag, 0.9)) == 2
    with pytest.raises(InputError):
        drop_small_components(lab, 1.5)


def test_option_checks_are_one_line_input_errors():
    check_component_fraction(0)
    check_component_fraction(1)
    check_min_et_voxels(0)
    with pytest.raises(InputError, match="fraction must be in"):
        check_component_fraction(-0.1)
    with pytest.raises(InputError, match="must be >= 0"):
        check_min_et_voxels(-1)
