import numpy as np
import pytest

from mmtumor.errors import InputError, LabelError
from mmtumor.labels import (LabelScheme, from_internal, guess_scheme, labels_to_regions, regions_to_labels, to_internal)
from mmtumor.modalities import FULL, MODALITIES, SUBSETS, Modality, parse_modality, parse_subsets, subset_from_code


def test_fifteen_unique_subsets_in_canonical_order():
    assert len(SUBSETS) == 15
    assert len({s.code for s in SUBSETS}) == 15
    assert SUBSETS[0].code == "1000" and FULL.code == "1111"
    assert [s.size for s in SUBSETS] == sorted(s.size for s in SUBSETS)
    assert subset_from_code("0101").name == "T1c+FLAIR"
    assert [m.value for m in MODALITIES] == ["T1", "T1c", "T2", "FLAIR"]


@pytest.mark.parametrize("bad", ["0000", "11", "10a1", "11111"])
def test_bad_subset_codes(bad):
    with pytest.raises(InputError):
        subset_from_code(bad)


def test_parse_subsets_and_aliases():
    assert [s.code for s in parse_subsets("1111, T1c+FLAIR")] == ["1111", "0101"]
    assert len(parse_subsets("all")) == 15
    assert parse_modality("t1ce") is Modality.T1C and parse_modality("T2F") is Modality.FLAIR
    with pytest.raises(InputError):
        parse_modality("dwi")


def test_label_conversion_round_trips():
    lab = np.array([0, 1, 2, 4, 4, 2])
    assert from_internal(lab, "brats2023").tolist() == [0, 1, 2, 3, 3, 2]
    assert to_internal(from_internal(lab, "brats2023"), "brats2023").tolist() == lab.tolist()
    assert to_internal(lab, "brats2021").tolist() == lab.tolist()
    assert to_internal(np.array([0, 1, 2, 3, 4]), "brats2013").tolist() == [0, 1, 2, 1, 4]


def test_label_values_outside_scheme_rejected():
    with pytest.raises(LabelError):
        to_internal(np.array([0, 3]), LabelScheme.BRATS2021)
    with pytest.raises(LabelError):
        to_internal(np.array([0, 4]), LabelScheme.BRATS2023)


def test_guess_scheme():
    assert guess_scheme({0, 1, 2, 4}) is LabelScheme.BRATS2021
    assert guess_scheme({0, 1, 2, 3}) is LabelScheme.BRATS2023
    assert guess_scheme({0, 1, 2, 3, 4}) is LabelScheme.BRATS2013
    assert guess_scheme({0, 2}, hyphen_naming=True) is LabelScheme.BRATS2023


def test_regions_nested_and_round_trip():
    lab = np.array([0, 1, 2, 4, 0, 2])
    wt, tc, et = labels_to_regions(lab)
    assert wt.tolist() == [False, True, True, True, False, True]
    assert tc.tolist() == [False, True, False, True, False, False]
    assert et.tolist() == [False, False, False, True, False, False]
    assert regions_to_labels(labels_to_regions(lab)).tolist() == lab.tolist()
    # TC predicted outside WT still yields nested labels
    regions = np.array([[0, 0, 1], [1, 0, 1], [0, 0, 1]], dtype=bool)
    out = regions_to_labels(regions)
    assert out.tolist() == [1, 0, 4]
