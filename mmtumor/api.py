"""The Python API that the CLI mirrors. Heavy imports (torch, SimpleITK) happen inside functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import NoCasesError, NotAvailableError, MmtumorError
from .io.dataset import Case, discover_cases, label_scheme_of, load_or_create_manifest
from .io.nifti import load_header, voxel_spacing
from .labels import LABEL_NAMES
from .modalities import MODALITIES


def _inspect_case(case: Case) -> dict:
    row: dict = {
        "case_id": case.case_id,
        "folder": str(case.folder),
        "naming": case.naming,
        "modalities": {m.value: (str(case.images[m]) if m in case.images else None) for m in MODALITIES},
        "subset": case.subset.code if case.subset else None,
        "label": str(case.label) if case.label else None,
        "shape": None, "spacing": None, "orientation": None,
        "label_values": None, "label_scheme": None,
        "problems": list(case.problems),
    }
    ref = None
    for path in case.files:
        try:
            img = load_header(path)
        except MmtumorError as exc:
            row["problems"].append(str(exc))
            continue
        if ref is None:
            ref = (path, img)
            import nibabel as nib

            row["shape"] = list(img.shape[:3])
            row["spacing"] = [round(s, 4) for s in voxel_spacing(img.affine)]
            row["orientation"] = "".join(nib.aff2axcodes(img.affine))
        else:
            rp, rimg = ref
            if tuple(img.shape[:3]) != tuple(rimg.shape[:3]):
                row["problems"].append(f"shape mismatch: {rp.name} {tuple(rimg.shape[:3])} vs {path.name} {tuple(img.shape[:3])}")
            elif not np.allclose(img.affine, rimg.affine, atol=1e-3):
                row["problems"].append(f"affine mismatch: {rp.name} vs {path.name}")
    if case.label is not None and not any(case.label.name in p for p in row["problems"]):
        try:
            data = np.asanyarray(load_header(case.label).dataobj)
            values = {int(v) for v in np.unique(np.rint(data))}
            row["label_values"] = sorted(values)
            scheme = label_scheme_of(case, values)
            row["label_scheme"] = scheme.value
            from .labels import SCHEME_VALUES

            extra = values - SCHEME_VALUES[scheme]
            if extra:
                row["problems"].append(f"label values {sorted(extra)} outside the {scheme.value} scheme")
        except Exception as exc:  # unreadable voxel data
            row["problems"].append(f"cannot read label {case.label.name}: {exc}")
    return row


def inspect(path: Path | str) -> dict:
    """Describe a NIfTI folder: cases, modalities, geometry, labels and problems (never raises for per-case issues)."""
    path = Path(path)
    cases, unknown = discover_cases(path)
    if not cases:
        hint = f"; {len(unknown)} NIfTI files have unrecognised names" if unknown else ""
        raise NoCasesError(f"no cases found in {path}{hint}")
    return {
        "root": str(path),
        "label_names": {str(k): v for k, v in LABEL_NAMES.items()},
        "cases": [_inspect_case(c) for c in cases],
        "unrecognised": [str(p) for p in unknown],
    }


def make_manifest(data_dir: Path | str, manifest_path: Path | str, seed: int = 0,
                  ratios: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> dict:
    """Seeded train/val/test manifest, written once at ``manifest_path`` and reused afterwards."""
    return load_or_create_manifest(data_dir, manifest_path, seed, ratios)


def not_available(command: str, issue: str) -> None:
    raise NotAvailableError(f"'mmtumor {command}' is not available yet ({issue})")
