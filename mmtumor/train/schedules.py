"""Missing-modality schedules: which modalities a training sample shows, passed to the model as ``present``.

- ``a2fseg``: all modalities on odd epochs (1-based); on even epochs a subset size k ~ U{1,2,3}, then a uniform
  subset of that size (Wang & Hong 2023).
- ``uniform``: uniform over the 15 non-empty subsets (mmFormer, HeMIS).
- ``bernoulli``: each modality kept independently with p = 0.5, at least one kept (RobustSeg).
- ``none``: every available modality.
Modalities a case does not have are never shown; the draw is restricted to what is available.
``subsets`` (``train --subsets``) replaces the schedule by a uniform draw over the listed subsets: a model for a fixed
protocol (e.g. T1c + FLAIR, or T1c alone when FLAIR fails) spends every step on the inputs it will be given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..modalities import SUBSETS, Subset

SCHEDULES = ("a2fseg", "uniform", "bernoulli", "none")


def draw_present(schedule: str, epoch: int, available: np.ndarray, rng: np.random.Generator,
                 subsets: Sequence[Subset] | None = None) -> np.ndarray:
    """A bool [4] mask of modalities to show, a subset of ``available`` (never empty)."""
    available = np.asarray(available, dtype=bool)
    avail_idx = np.flatnonzero(available)
    if len(avail_idx) == 0:
        raise InputError("a training case has no modality")
    if subsets:
        options = subsets_within(subsets, available)
        if not options:
            raise InputError("a training case has none of the --subsets' modality sets")
        return np.array(options[int(rng.integers(len(options)))].mask, dtype=bool)
    if schedule == "none":
        return available.copy()
    if schedule == "a2fseg":
        if epoch % 2 == 1 or len(avail_idx) == 1:
            return available.copy()
        k = int(rng.integers(1, min(3, len(avail_idx)) + 1))
        chosen = rng.choice(avail_idx, size=k, replace=False)
    elif schedule == "uniform":
        options = [s.mask for s in SUBSETS if not (np.array(s.mask) & ~available).any()]
        chosen = np.flatnonzero(options[int(rng.integers(len(options)))])
    elif schedule == "bernoulli":
        keep = rng.random(len(avail_idx)) < 0.5
        if not keep.any():
            keep[int(rng.integers(len(avail_idx)))] = True
        chosen = avail_idx[keep]
    else:
        raise InputError(f"unknown dropout schedule '{schedule}' (choose from {', '.join(SCHEDULES)})")
    out = np.zeros(4, dtype=bool)
    out[chosen] = True
    return out


def subsets_within(subsets: Sequence[Subset], available) -> list[Subset]:
    """The listed subsets a case can show (all their modalities available)."""
    available = np.asarray(available, dtype=bool)
    return [s for s in subsets if not (np.array(s.mask) & ~available).any()]
