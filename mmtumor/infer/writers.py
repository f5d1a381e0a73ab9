"""Writers of ``segment``'s outputs, each atomic (``io.atomic``): a reader never sees a half-written file."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..io.atomic import write_json_atomic, write_text_atomic
from ..io.nifti import write_nifti
from ..labels import from_internal

#: what each written label value means, per output scheme (stated in report.json)
LABEL_NAMES = {"brats2021": {"1": "NCR/NET", "2": "ED", "4": "ET"}, "brats2023": {"1": "NETC", "2": "SNFH", "3": "ET"}}


def write_segmentation(out_dir: Path, labels: np.ndarray, affine: np.ndarray, scheme: str) -> Path:
    """Internal labels on the reference's native grid -> ``segmentation.nii.gz`` in the requested label scheme."""
    return write_nifti(out_dir / "segmentation.nii.gz", from_internal(labels, scheme), affine)


def write_probabilities(out_dir: Path, probabilities: np.ndarray, affine: np.ndarray) -> Path:
    """[D, H, W, 3] WT/TC/ET probabilities on the native grid -> ``probabilities.nii.gz``."""
    return write_nifti(out_dir / "probabilities.nii.gz", probabilities.astype(np.float32), affine)


def write_volumes(out_dir: Path, volumes: Mapping[str, float]) -> Path:
    """``volumes.json`` and ``volumes.csv`` (mL per compartment and region); returns the JSON's path."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["region", "volume_ml"])
    for k, v in volumes.items():
        w.writerow([k, f"{v:.3f}"])
    write_text_atomic(out_dir / "volumes.csv", buf.getvalue())
    return write_json_atomic(out_dir / "volumes.json", dict(volumes))


def write_run_report(out_dir: Path, report: Mapping) -> Path:
    return write_json_atomic(out_dir / "report.json", report, default=str)


def write_report_page(out_dir: Path, report: Mapping) -> Path:
    """``report.html`` from the run report and the PNGs already in ``out_dir`` (embedded: one self-contained file)."""
    from .page import segment_page

    def png(name: str) -> bytes | None:
        p = out_dir / name
        return p.read_bytes() if p.exists() else None

    page = segment_page(report, {"preview": png("preview.png"), "measurements": png("measurements.png")})
    return write_text_atomic(out_dir / "report.html", page)
