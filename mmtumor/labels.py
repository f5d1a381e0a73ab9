"""Label schemes and tumour regions.

Internal scheme: BraTS<=2021 — 0 background, 1 NCR/NET (necrotic / non-enhancing core), 2 ED (edema),
4 ET (enhancing tumour). BraTS 2023+ writes ET as 3 (1 NETC, 2 SNFH, 3 ET). BraTS 2013 has
1 necrosis, 2 edema, 3 non-enhancing tumour, 4 enhancing: read-only, mapped 3 -> 1.
Regions: WT = {1,2,4}, TC = {1,4}, ET = {4}.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from .errors import LabelError, InputError


class LabelScheme(str, Enum):
    BRATS2021 = "brats2021"
    BRATS2023 = "brats2023"
    BRATS2013 = "brats2013"


NCR, ED, ET = 1, 2, 4
INTERNAL_LABELS = (0, NCR, ED, ET)
LABEL_NAMES = {NCR: "NCR/NET", ED: "ED", ET: "ET"}
REGIONS = ("WT", "TC", "ET")
REGION_LABELS = {"WT": (NCR, ED, ET), "TC": (NCR, ET), "ET": (ET,)}
SCHEME_VALUES = {
    LabelScheme.BRATS2021: {0, 1, 2, 4},
    LabelScheme.BRATS2023: {0, 1, 2, 3},
    LabelScheme.BRATS2013: {0, 1, 2, 3, 4},
}


def parse_scheme(name: str) -> LabelScheme:
    try:
        return LabelScheme(name.strip().lower())
    except ValueError:
        raise InputError(f"unknown label scheme '{name}' (use brats2021 or brats2023)") from None


def _check(labels: np.ndarray, scheme: LabelScheme) -> None:
    values = set(np.unique(labels).tolist())
    extra = values - SCHEME_VALUES[scheme]
    if extra:
        raise LabelError(f"label values {sorted(extra)} are not in the {scheme.value} scheme {sorted(SCHEME_VALUES[scheme])}")


def to_internal(labels: np.ndarray, scheme: LabelScheme | str) -> np.ndarray:
    """Any supported scheme -> internal BraTS<=2021 labels (uint8)."""
    scheme = LabelScheme(scheme)
    labels = np.asarray(labels)
    _check(labels, scheme)
    out = labels.astype(np.uint8, copy=True)
    if scheme is LabelScheme.BRATS2023:
        out[labels == 3] = ET
    elif scheme is LabelScheme.BRATS2013:
        out[labels == 3] = NCR
    return out


def from_internal(labels: np.ndarray, scheme: LabelScheme | str) -> np.ndarray:
    """Internal labels -> brats2021 or brats2023 (2013 is read-only)."""
    scheme = LabelScheme(scheme)
    labels = np.asarray(labels)
    _check(labels, LabelScheme.BRATS2021)
    out = labels.astype(np.uint8, copy=True)
    if scheme is LabelScheme.BRATS2023:
        out[labels == ET] = 3
    elif scheme is LabelScheme.BRATS2013:
        raise InputError("writing the BraTS 2013 scheme is not supported; use brats2021 or brats2023")
    return out


def guess_scheme(values: set[int], hyphen_naming: bool = False) -> LabelScheme:
    """Scheme from the label values present (and the file naming): 3 with 4 -> 2013, 3 alone -> 2023."""
    if 3 in values and 4 in values:
        return LabelScheme.BRATS2013
    if 3 in values or hyphen_naming:
        return LabelScheme.BRATS2023
    return LabelScheme.BRATS2021


def labels_to_regions(labels: np.ndarray) -> np.ndarray:
    """Internal labels [...] -> bool regions [3, ...] in the order WT, TC, ET."""
    labels = np.asarray(labels)
    return np.stack([np.isin(labels, REGION_LABELS[r]) for r in REGIONS])


def regions_to_labels(regions: np.ndarray) -> np.ndarray:
    """Bool regions [3, ...] (WT, TC, ET) -> internal labels, nesting enforced (ET ⊂ TC ⊂ WT)."""
    wt, tc, et = (np.asarray(r, dtype=bool) for r in regions)
    out = np.zeros(wt.shape, dtype=np.uint8)
    out[wt] = ED
    out[tc] = NCR
    out[et] = ET
    return out
