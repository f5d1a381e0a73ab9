"""Typed results that the API returns and the CLI reads (torch-free). Each keeps the JSON document that
``--json`` prints and that reports are written from (``to_json``); the fields a caller needs are typed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class InspectResult:
    """``inspect``: a NIfTI folder (``kind == "nifti"``, one row per case) or a DICOM study (``kind == "dicom"``, one
    row per series with its detected modality, confidence, reasons and problems)."""

    kind: str
    root: Path
    cases: list[dict] = field(default_factory=list)  # nifti: case id, modalities, geometry, labels, problems
    unrecognised: list[Path] = field(default_factory=list)  # nifti files whose names say no modality
    series: list[dict] = field(default_factory=list)  # dicom
    document: dict = field(default_factory=dict, repr=False)

    @property
    def problems(self) -> list[str]:
        """Every per-case or per-series problem, prefixed with its case or series."""
        rows = self.cases if self.kind == "nifti" else self.series
        key = "case_id" if self.kind == "nifti" else "series_id"
        return [f"{r[key]}: {p}" for r in rows for p in r.get("problems", [])]

    def to_json(self) -> dict:
        return self.document


@dataclass(frozen=True)
class ConvertResult:
    """``convert``: the NIfTI written per modality, what was not found, and why anything was left out."""

    out_dir: Path
    written: dict[str, Path]  # modality ("T1", "T1c", "T2", "FLAIR") -> file
    written_all: list[Path]  # further series (``all_series``)
    missing: list[str]
    warnings: list[str]
    errors: list[str]
    series: list[dict]  # the study's series, as ``inspect`` describes them, with ``selected`` filled in
    document: dict = field(repr=False)

    def to_json(self) -> dict:
        return self.document


@dataclass(frozen=True)
class TrainResult:
    """``train``: where the checkpoints are and how validation went, epoch by epoch."""

    run_dir: Path
    epochs: int
    best_score: float
    best: Path  # best.pt (chosen by the validation score)
    last: Path  # last.pt (what --resume continues)
    history: list[dict]  # one row per epoch: epoch, lr, loss, seconds, and val when validated
    rank: int = 0  # torchrun: only rank 0 reports


@dataclass(frozen=True)
class BenchmarkResult:
    """``benchmark``: one record per model x case x subset x region (Dice, HD95, volumes), the failures, latencies,
    the report files written and the sweep's description."""

    records: list[dict]
    failures: list[dict]
    speed: list[dict]
    files: dict[str, Path]
    meta: dict
    reference: dict | None = None
    rank: int = 0

    def dice_table(self) -> dict:
        """Mean Dice per model and subset, as the report's first table (``report.build_table``'s form)."""
        from .report import build_context

        return build_context(self.records, self.speed or None, self.meta, reference=self.reference)["tables"]["dice"]


@dataclass(frozen=True)
class CompareResult:
    """``compare``: volume and SPD changes, matched/new/resolved lesions and the RANO 2.0 imaging categories of two
    time points; ``to_json()`` is ``compare.json``."""

    volumes: dict  # region -> baseline_ml, followup_ml, change_ml, change_percent
    spd: dict  # baseline_mm2, followup_mm2, change_mm2, change_percent
    lesions: dict  # "tumour" / "enhancing": matched, new, resolved (enhancing: new_measurable too)
    response: dict  # "bidimensional" / "volumetric": category and why; "caveat"
    notes: list[str]
    outputs: dict[str, Path]  # compare.json, comparison.png, lesion_changes.csv, report.html
    document: dict = field(repr=False)

    @classmethod
    def from_json(cls, document: dict) -> CompareResult:
        return cls(document["volumes"], document["spd"], document["lesions"], document["response"],
                   list(document.get("notes", [])), {k: Path(v) for k, v in document.get("outputs", {}).items()},
                   document)

    def to_json(self) -> dict:
        return self.document
