"""Modalities, their canonical order and the 15 non-empty subsets, defined once for the whole project.

Canonical channel order everywhere: T1, T1c, T2, FLAIR (indices 0..3). A subset is a 4-bit code in
that order, e.g. ``0101`` = T1c+FLAIR.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from itertools import combinations

from .errors import InputError


class Modality(str, Enum):
    T1 = "T1"
    T1C = "T1c"
    T2 = "T2"
    FLAIR = "FLAIR"

    @property
    def index(self) -> int:
        return MODALITIES.index(self)

    @property
    def file_stem(self) -> str:
        """Lower-case name used for files we write (t1.nii.gz, t1c.nii.gz, ...)."""
        return self.value.lower()


MODALITIES: tuple[Modality, ...] = (Modality.T1, Modality.T1C, Modality.T2, Modality.FLAIR)

#: Names users and file conventions use for each modality (lower case).
ALIASES: dict[str, Modality] = {
    "t1": Modality.T1, "t1n": Modality.T1, "t1w": Modality.T1, "t1pre": Modality.T1, "t1native": Modality.T1,
    "t1c": Modality.T1C, "t1ce": Modality.T1C, "t1gd": Modality.T1C, "t1post": Modality.T1C,
    "t1+c": Modality.T1C, "t1contrast": Modality.T1C, "t1wce": Modality.T1C,
    "t2": Modality.T2, "t2w": Modality.T2,
    "flair": Modality.FLAIR, "t2f": Modality.FLAIR, "t2flair": Modality.FLAIR, "t2-flair": Modality.FLAIR,
}


def parse_modality(name: str) -> Modality:
    """Modality from any accepted spelling ('t1ce', 'T2w', 'flair', ...)."""
    key = name.strip().lower().replace("_", "")
    if key in ALIASES:
        return ALIASES[key]
    raise InputError(f"unknown modality '{name}' (expected one of T1, T1c, T2, FLAIR)")


@dataclass(frozen=True)
class Subset:
    """A non-empty set of present modalities, as a 4-bit mask in canonical order."""

    mask: tuple[bool, bool, bool, bool]

    @property
    def code(self) -> str:
        return "".join("1" if m else "0" for m in self.mask)

    @property
    def modalities(self) -> tuple[Modality, ...]:
        return tuple(m for m, p in zip(MODALITIES, self.mask, strict=False) if p)

    @property
    def name(self) -> str:
        return "+".join(m.value for m in self.modalities)

    @property
    def size(self) -> int:
        return sum(self.mask)

    def __str__(self) -> str:
        return self.name


def _canonical_subsets() -> tuple[Subset, ...]:
    """Singles, pairs, triples, then all four; inside each size in canonical modality order."""
    out = []
    for k in range(1, 5):
        for combo in combinations(range(4), k):
            out.append(Subset(tuple(i in combo for i in range(4))))  # type: ignore[arg-type]
    return tuple(out)


#: The 15 non-empty subsets, the one list used by training, benchmark and reports.
SUBSETS: tuple[Subset, ...] = _canonical_subsets()
FULL = SUBSETS[-1]


def subset_from_code(code: str) -> Subset:
    """'0101' -> T1c+FLAIR. Raises InputError for anything else."""
    code = code.strip()
    if len(code) != 4 or set(code) - {"0", "1"} or code == "0000":
        raise InputError(f"invalid modality subset '{code}': use 4 bits in the order T1,T1c,T2,FLAIR, e.g. 0101")
    return Subset(tuple(c == "1" for c in code))  # type: ignore[arg-type]


def subset_from_modalities(mods) -> Subset:
    """Subset from an iterable of Modality or names."""
    present = {m if isinstance(m, Modality) else parse_modality(m) for m in mods}
    if not present:
        raise InputError("at least one modality must be present")
    return Subset(tuple(m in present for m in MODALITIES))  # type: ignore[arg-type]


def parse_subsets(spec: str) -> list[Subset]:
    """'all' or a comma list of codes or names ('1111,0101' or 'T1c+FLAIR')."""
    if spec.strip().lower() == "all":
        return list(SUBSETS)
    out = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        if set(item) <= {"0", "1"}:
            out.append(subset_from_code(item))
        else:
            out.append(subset_from_modalities(item.split("+")))
    if not out:
        raise InputError("no modality subset given")
    return out
