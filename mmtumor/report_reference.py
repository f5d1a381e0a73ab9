"""Published reference tables (e.g. A2FSeg's Table 1 as ``../shared/papers/a2fseg-table1.csv``) read into the
benchmark's {method: {subset_code: {region: Dice %}}} form, and which layout a report shows them in."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

from .errors import InputError
from .labels import REGIONS

#: Published A2FSeg Table 1 (BraTS 2020, Dice in %), as {method: {subset_code: {"WT","TC","ET"}}}.
#: Deliberately EMPTY: the exact published per-subset numbers were not available to us when this was
#: written, and invented or remembered-approximately numbers must never appear as "published". Fill it
#: from the paper (Wang et al., MICCAI 2023, Table 1) with codes in our T1,T1c,T2,FLAIR bit order.
A2FSEG_PAPER_TABLE1: dict[str, dict[str, dict[str, float]]] = {}


def load_reference_csv(path: str | os.PathLike) -> dict[str, dict[str, dict[str, float]]]:
    """Published per-subset Dice from a CSV (header ``method,subset,region,dice``; Dice in %, e.g. 89.5).

    ``subset`` is a 4-bit code (T1,T1c,T2,FLAIR) or a name like ``T1c+FLAIR``; ``region`` is WT, TC or ET.
    This is how a user puts a paper's Table 1 (e.g. A2FSeg's, which we do not bundle) beside our numbers.
    """
    from .modalities import parse_subsets

    p = Path(path)
    if not p.is_file():
        raise InputError(f"reference table not found: {p}")
    try:
        rows = list(csv.DictReader(p.read_text(encoding="utf-8-sig").splitlines()))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"reference table {p.name} is not a readable CSV: {exc}") from None
    need = {"method", "subset", "region", "dice"}
    header = {h.strip().lower() for h in (rows[0].keys() if rows else [])}
    if not rows or not need <= header:
        raise InputError(f"reference table {p.name} needs a header with columns method,subset,region,dice and at least one row")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for line, raw in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        where = f"reference table {p.name}, line {line}"
        if not row["method"]:
            raise InputError(f"{where}: empty method")
        subsets = parse_subsets(row["subset"]) if row["subset"] else []
        if len(subsets) != 1:
            raise InputError(f"{where}: subset must be one 4-bit code or name, got '{row['subset']}'")
        region = row["region"].upper()
        if region not in REGIONS:
            raise InputError(f"{where}: region must be one of {', '.join(REGIONS)}, got '{row['region']}'")
        try:
            value = float(row["dice"])
        except ValueError:
            raise InputError(f"{where}: Dice '{row['dice']}' is not a number") from None
        if not 0.0 <= value <= 100.0 or math.isnan(value):
            raise InputError(f"{where}: Dice {value} is outside 0-100 (give it in %)")
        cell = out.setdefault(row["method"], {}).setdefault(subsets[0].code, {})
        if region in cell:
            raise InputError(f"{where}: duplicate entry for {row['method']} {subsets[0].code} {region}")
        cell[region] = value
    return out


def paper_reference(dataset: str | None, table: Mapping | None = None) -> tuple[str, dict]:
    """Where the published A2FSeg numbers go: ('columns', data) on BraTS 2020, ('separate', data) otherwise,
    ('none', {}) when the structure is empty (see :data:`A2FSEG_PAPER_TABLE1`)."""
    data = dict(A2FSEG_PAPER_TABLE1 if table is None else table)
    if not data:
        return "none", {}
    ds = (dataset or "").lower().replace(" ", "").replace("_", "")
    return ("columns" if ds in ("brats2020", "brats20") else "separate"), data
