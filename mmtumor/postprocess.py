"""Post-processing of predicted labels, applied by the inference core (``mmtumor.infer.core``) for ``segment``,
``benchmark`` and training validation alike. Pure functions on internal labels (0, 1 NCR, 2 ED, 4 ET); each returns
a copy. Why each rule exists, and what it did to measured Dice, is said where it is defined (docs/segment.md)."""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .labels import ET, NCR


#: a voxel belongs to a region when its probability exceeds 0.5, unless the weights carry their own thresholds
NEUTRAL_THRESHOLDS = (0.5, 0.5, 0.5)


def check_region_thresholds(thresholds) -> tuple[float, float, float]:
    """Region probability thresholds (WT, TC, ET; or "WT,TC,ET") as a tuple; one-line error unless three in (0, 1).

    Why a model may carry its own (metadata ``region_thresholds``, chosen on real validation cases by
    benchmarks/bench_thresholds_real.py): the CPU models work on a 2 mm grid and their probabilities are resampled
    to the 1 mm working grid, which flattens thin structures such as an enhancing rim below 0.5."""
    if isinstance(thresholds, str):  # the CLI's form: "0.5,0.4,0.3"
        thresholds = thresholds.replace(",", " ").split()
    try:
        values = tuple(float(t) for t in thresholds)
    except (TypeError, ValueError):
        raise InputError(f"region thresholds must be three numbers (WT TC ET), not {thresholds!r}") from None
    if len(values) != 3 or not all(0 < t < 1 for t in values):
        raise InputError(f"region thresholds must be three numbers in (0, 1) for WT, TC and ET, not {list(values)}")
    return values  # type: ignore[return-value]


def check_component_fraction(min_fraction: float) -> None:
    """One-line error for a ``--min-component-fraction`` outside [0, 1] (checked before any work is done)."""
    if not 0 <= min_fraction <= 1:
        raise InputError(f"the minimum tumour-component fraction must be in [0, 1], not {min_fraction}")


def drop_small_components(labels: np.ndarray, min_fraction: float) -> np.ndarray:
    """Tumour post-processing: remove whole-tumour components smaller than ``min_fraction`` of the largest (a copy).

    Components are 26-connected over all tumour labels; a removed component loses its NCR/ED/ET with it (becomes
    background), so WT, TC and ET stay nested. The largest component and any component at least ``min_fraction``
    of its size are kept, so multifocal lesions of comparable size survive; 0 turns it off.
    Why: the bundled models leave small false-positive islands far from the tumour (HD95 of 40-80 mm on real scans).
    """
    check_component_fraction(min_fraction)
    out = np.array(labels, copy=True)
    if min_fraction == 0:
        return out
    from .voxels import connected_components

    comp, n = connected_components(out > 0)
    if n > 1:
        sizes = np.bincount(comp.ravel())[1:]
        small = np.flatnonzero(sizes < min_fraction * sizes.max()) + 1
        out[np.isin(comp, small)] = 0
    return out


# Default ET post-processing of the inference core (``segment``, ``benchmark``, training validation): enhancing tumour totalling fewer voxels than this (on the
# 1 mm working grid, so 0.1 mL) becomes NCR. Why: a few stray ET voxels in a tumour that does not enhance cost ET Dice 0
# (BraTS convention). On the 10 held-out phantoms (3 non-enhancing) it raised the default's ET from 0.382 to 0.421
# and changed no real validation case (all enhance: 6000+ predicted ET voxels); 50-500 voxels gave 0.407-0.421
# (docs/bench-et-threshold.md).
DEFAULT_MIN_ET_VOXELS = 100


def check_min_et_voxels(min_voxels: int) -> None:
    """One-line error for a negative ``--min-et-voxels`` (checked before any work is done)."""
    if min_voxels < 0:
        raise InputError(f"the minimum enhancing-tumour size must be >= 0 voxels (0 turns the rule off), not {min_voxels}")


def relabel_small_et(labels: np.ndarray, min_voxels: int, mode: str = "total") -> np.ndarray:
    """ET post-processing (on by default at DEFAULT_MIN_ET_VOXELS): small enhancing tumour relabelled to NCR (a copy; input untouched).

    ``mode="total"``: if the whole ET has fewer than ``min_voxels`` voxels, all ET becomes NCR — the
    usual BraTS trick, since a false-positive ET in an ET-free case costs Dice 0 and HD95 373.13 mm.
    ``mode="component"``: each 26-connected ET component below ``min_voxels`` becomes NCR.
    Relabelling to NCR (not background) keeps TC and WT unchanged.
    """
    if mode not in ("total", "component"):
        raise InputError(f"unknown ET post-processing mode '{mode}' (use total or component)")
    check_min_et_voxels(min_voxels)
    out = np.array(labels, copy=True)
    et = out == ET
    if mode == "total":
        if 0 < int(np.count_nonzero(et)) < min_voxels:
            out[et] = NCR
        return out
    from .voxels import connected_components

    comp, n = connected_components(et)
    if n:
        sizes = np.bincount(comp.ravel())
        small = np.flatnonzero(sizes < min_voxels)
        small = small[small > 0]
        out[np.isin(comp, small)] = NCR
    return out
