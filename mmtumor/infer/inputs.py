"""What a patient folder holds: DICOM (convert + detect) or NIfTI (names, then image evidence), or explicit paths.

The result says, for every modality used, where it came from and why, so the table shown before work starts and
the run report can explain each choice. Low-confidence guesses are never used silently.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, NoCasesError
from ..io.nifti import is_nifti
from ..modalities import MODALITIES, Modality


@dataclass
class PatientInput:
    name: str
    source: str  # dicom | nifti | explicit
    images: dict[Modality, Path]
    detections: list[dict] = field(default_factory=list)  # rows: modality, file, confidence, reasons, used
    warnings: list[str] = field(default_factory=list)
    dicom: dict | None = None  # the conversion report when the input was DICOM
    dicom_series_uids: dict[str, str] = field(default_factory=dict)  # modality -> SeriesInstanceUID of the source


def _explicit_rows(explicit: dict[Modality, Path]) -> list[dict]:
    return [{"modality": m.value, "file": str(p), "confidence": 1.0, "reasons": [f"given with --{m.value.lower()}"], "used": True}
            for m, p in explicit.items()]


def _check_explicit(explicit: dict[Modality, Path]) -> None:
    for m, p in explicit.items():
        if not Path(p).exists():
            raise InputError(f"--{m.value.lower()}: file not found: {p}")
        if not is_nifti(p):
            raise InputError(f"--{m.value.lower()}: {p} is not a NIfTI file (.nii, .nii.gz or .nii.bz2)")


def _from_dicom(folder: Path, explicit: dict[Modality, Path], workdir: Path, progress=None) -> PatientInput:
    from ..convert import convert_study

    converted = convert_study(folder, workdir / "nifti", progress=progress)
    images = {Modality(k): v for k, v in converted.written.items()}
    rows = []
    for s in converted.series:
        rows.append({"modality": s.get("detected", "OTHER"), "file": f"series {s.get('series_id', '?')}: {s.get('description', '')}",
                     "confidence": s.get("confidence", 0.0), "reasons": list(s.get("reasons", [])) + list(s.get("problems", [])),
                     "used": s.get("selected") is not None and s["selected"] in converted.written})
    warnings = converted.warnings + converted.errors
    images.update(explicit)
    rows += _explicit_rows(explicit)
    files = {s["selected"]: s["uid"] for s in converted.series if s.get("selected")}
    return PatientInput(folder.name, "dicom", images, rows, warnings, converted.to_json(), files)


def _from_nifti(folder: Path, explicit: dict[Modality, Path]) -> PatientInput:
    from ..detect import detect_files
    from ..io.dataset import discover_cases

    cases, unknown = discover_cases(folder)
    cases = [c for c in cases if c.images]
    if len(cases) > 1:
        raise InputError(f"{folder} holds {len(cases)} cases; give one patient folder each, or use --batch {folder}")
    images: dict[Modality, Path] = {}
    rows: list[dict] = []
    warnings: list[str] = []
    if cases:
        for m, p in cases[0].images.items():
            images[m] = p
            rows.append({"modality": m.value, "file": str(p), "confidence": 0.95, "reasons": [f"file name ({cases[0].naming} naming)"], "used": True})
    if unknown:
        dets = detect_files(unknown)
        for p, d in zip(unknown, dets):
            use = d.modality is not None and d.confident and d.modality not in images
            if use:
                images[d.modality] = p
            elif d.modality is not None and d.modality not in images:
                warnings.append(f"{p.name} looks like {d.label} with low confidence ({d.confidence:.2f}); not used — "
                                f"pass --{d.label.lower()} {p} to use it")
            rows.append({"modality": d.label, "file": str(p), "confidence": d.confidence, "reasons": d.reasons, "used": use})
    images.update(explicit)
    rows += _explicit_rows(explicit)
    return PatientInput(folder.name, "nifti", images, rows, warnings)


def resolve_patient(path: Path | None, explicit: dict[Modality, Path], workdir: Path | None = None, progress=None) -> PatientInput:
    """Find the T1/T1c/T2/FLAIR images of one patient. ``explicit`` paths always win."""
    _check_explicit(explicit)
    if path is None:
        if not explicit:
            raise InputError("nothing to segment: give a patient folder or --t1/--t1c/--t2/--flair files")
        first = next(iter(explicit.values()))
        return PatientInput(Path(first).parent.name or "patient", "explicit", dict(explicit), _explicit_rows(explicit))
    path = Path(path)
    if not path.exists():
        raise InputError(f"not found: {path}")
    if path.is_file():
        raise InputError(f"{path} is a file: give the patient folder, or name the file with --t1/--t1c/--t2/--flair")
    from ..io.dicom import looks_like_dicom

    if looks_like_dicom(path):
        work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="mmtumor-"))
        pin = _from_dicom(path, explicit, work, progress)
    else:
        try:
            pin = _from_nifti(path, explicit)
        except NoCasesError:
            pin = PatientInput(path.name, "nifti", dict(explicit), _explicit_rows(explicit))
    if not pin.images:
        hint = ("; " + pin.warnings[0]) if pin.warnings else ""
        raise NoCasesError(f"no T1, T1c, T2 or FLAIR image found in {path}{hint}")
    pin.images = {m: pin.images[m] for m in MODALITIES if m in pin.images}
    return pin


class explicit_images:
    """``{modality name: path or nibabel image}`` -> ``{Modality: path}``; in-memory images are written to a temporary
    folder that lives as long as the ``with`` block (the inputs themselves are never modified)."""

    def __init__(self, given: dict) -> None:
        self.given = {k: v for k, v in given.items() if v is not None}
        self.work: Path | None = None

    def __enter__(self) -> dict:
        import nibabel as nib

        from ..modalities import parse_modality

        explicit: dict[Modality, Path] = {}
        for name, value in self.given.items():
            if isinstance(value, (str, Path)):
                explicit[parse_modality(name)] = Path(value)
            elif isinstance(value, nib.spatialimages.SpatialImage):
                if self.work is None:
                    self.work = Path(tempfile.mkdtemp(prefix="mmtumor-api-"))
                path = self.work / f"{name.lower()}.nii.gz"
                nib.save(nib.Nifti1Image(np.asanyarray(value.dataobj), value.affine), str(path))
                explicit[parse_modality(name)] = path
            else:
                raise InputError(f"{name}: expected a path or a nibabel image, not {type(value).__name__}")
        return explicit

    def __exit__(self, *exc) -> None:
        import shutil

        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
