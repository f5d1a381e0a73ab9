"""BraTS-layout datasets: case discovery (2018–2021 and 2023+ naming, or free names per case folder),
loading with geometry checks, and a seeded, reusable train/val/test manifest."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from .atomic import write_json_atomic

from ..errors import InputError, NoCasesError, ReadError
from ..labels import LabelScheme, guess_scheme, to_internal
from ..modalities import ALIASES, MODALITIES, Modality, Subset, subset_from_modalities
from .nifti import check_same_grid, is_nifti, read_nifti, strip_nifti_suffix

_BRATS_RE = re.compile(r"^(?P<id>.+?)(?P<sep>[_-])(?P<kind>t1ce|t1c|t1n|t1|t2w|t2f|t2|flair|seg)$", re.IGNORECASE)
_BRATS_KIND = {
    "t1": Modality.T1, "t1n": Modality.T1, "t1ce": Modality.T1C, "t1c": Modality.T1C,
    "t2": Modality.T2, "t2w": Modality.T2, "flair": Modality.FLAIR, "t2f": Modality.FLAIR,
}
_BRATS2023_KINDS = {"t1n", "t1c", "t2w", "t2f"}
#: tokens that mark a ground-truth label file in free naming
LABEL_TOKENS = {"seg", "label", "labels", "gt", "truth", "groundtruth", "otmulticlass", "segmentation"}
#: tokens that mark auxiliary files we know and skip (brain masks, probability maps)
IGNORED_TOKENS = {"brainmask", "mask", "prob", "probabilities"}


@dataclass
class Case:
    """One patient/time point: which file holds which modality, and the label if any."""

    case_id: str
    folder: Path
    images: dict[Modality, Path] = field(default_factory=dict)
    label: Path | None = None
    naming: str = "brats2020"  # brats2020 | brats2023 | free
    problems: list[str] = field(default_factory=list)

    @property
    def subset(self) -> Subset | None:
        return subset_from_modalities(self.images) if self.images else None

    @property
    def present(self) -> tuple[bool, bool, bool, bool]:
        return tuple(m in self.images for m in MODALITIES)  # type: ignore[return-value]

    @property
    def files(self) -> list[Path]:
        return [self.images[m] for m in MODALITIES if m in self.images] + ([self.label] if self.label else [])


@dataclass
class LoadedCase:
    """Voxel data of a case: image [4, D, H, W] float32 (zeros where absent), present mask, labels."""

    case_id: str
    image: np.ndarray
    present: np.ndarray
    affine: np.ndarray
    label: np.ndarray | None


def classify_file(path: Path) -> tuple[str, str, Modality | None, str]:
    """(case id, naming, modality or None, kind) for a NIfTI file; kind is 'image', 'label', 'ignored' or 'unknown'."""
    stem = strip_nifti_suffix(path.name)
    m = _BRATS_RE.match(stem)
    if m:
        kind = m.group("kind").lower()
        naming = "brats2023" if (kind in _BRATS2023_KINDS or m.group("sep") == "-") else "brats2020"
        if kind == "seg":
            return m.group("id"), naming, None, "label"
        return m.group("id"), naming, _BRATS_KIND[kind], "image"
    tokens = [t for t in re.split(r"[^a-z0-9+]+", stem.lower()) if t]
    case_id = path.parent.name
    for tok in tokens:
        if tok in IGNORED_TOKENS:
            return case_id, "free", None, "ignored"
        if tok in LABEL_TOKENS:
            return case_id, "free", None, "label"
        if tok in ALIASES:
            return case_id, "free", ALIASES[tok], "image"
    return case_id, "free", None, "unknown"


def discover_cases(root: Path | str) -> tuple[list[Case], list[Path]]:
    """All cases under ``root`` (recursively) and the NIfTI files we could not place."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"folder not found: {root}")
    if not root.is_dir():
        raise InputError(f"not a folder: {root}")
    cases: dict[tuple[Path, str], Case] = {}
    unknown: list[Path] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and is_nifti(p) and not p.name.startswith(".")):
        case_id, naming, modality, kind = classify_file(path)
        if kind == "ignored":
            continue
        if kind == "unknown":
            unknown.append(path)
            continue
        key = (path.parent, case_id)
        case = cases.setdefault(key, Case(case_id=case_id, folder=path.parent, naming=naming))
        if kind == "label":
            if case.label is not None:
                case.problems.append(f"two label files: {case.label.name}, {path.name} (using the first)")
            else:
                case.label = path
        else:
            assert modality is not None
            if modality in case.images:
                case.problems.append(f"two {modality.value} files: {case.images[modality].name}, {path.name} (using the first)")
            else:
                case.images[modality] = path
    out = sorted(cases.values(), key=lambda c: (c.case_id, str(c.folder)))
    for case in out:
        if not case.images:
            case.problems.append("label without any image")
    ids = [c.case_id for c in out]
    for case in out:
        if ids.count(case.case_id) > 1:
            case.problems.append(f"case id '{case.case_id}' appears in more than one folder")
    return out, unknown


def find_cases(root: Path | str, require_label: bool = False) -> list[Case]:
    """Cases usable for work; raises NoCasesError with a hint when there are none."""
    cases, unknown = discover_cases(root)
    cases = [c for c in cases if c.images]
    if require_label:
        cases = [c for c in cases if c.label is not None]
    if not cases:
        hint = f" ({len(unknown)} NIfTI files with unrecognised names)" if unknown else ""
        what = "labelled cases" if require_label else "cases"
        raise NoCasesError(
            f"no {what} found in {root}{hint}: expected BraTS names like <id>_t1.nii.gz/<id>_flair.nii.gz "
            f"or <id>-t1n.nii.gz/<id>-t2f.nii.gz"
        )
    return cases


def label_scheme_of(case: Case, values: set[int]) -> LabelScheme:
    return guess_scheme(values, hyphen_naming=case.naming == "brats2023")


def load_case(case: Case, with_label: bool = True) -> LoadedCase:
    """Read every file of a case after checking they share one grid (GeometryError names the files)."""
    check_same_grid(case.files)
    image = None
    affine = None
    for m in MODALITIES:
        if m not in case.images:
            continue
        vol = read_nifti(case.images[m])
        if image is None:
            image = np.zeros((4, *vol.data.shape), dtype=np.float32)
            affine = vol.affine
        image[m.index] = vol.data
    if image is None:
        raise ReadError(f"case {case.case_id} has no image")
    label = None
    if with_label and case.label is not None:
        raw = read_nifti(case.label, dtype=None).data
        raw = np.rint(raw).astype(np.int16) if raw.dtype.kind == "f" else raw.astype(np.int16)
        label = to_internal(raw, label_scheme_of(case, set(np.unique(raw).tolist())))
    return LoadedCase(case.case_id, image, np.array(case.present, dtype=bool), affine, label)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- splits

DEFAULT_RATIOS = (0.7, 0.1, 0.2)


def make_split(case_ids: list[str], seed: int = 0, ratios: tuple[float, float, float] = DEFAULT_RATIOS) -> dict[str, list[str]]:
    """Deterministic seeded split: same ids + seed -> same split, whatever the input order."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise InputError(f"split ratios must be three non-negative numbers summing to 1, got {ratios}")
    ids = sorted(set(case_ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    n = len(ids)
    n_val = int(round(n * ratios[1]))
    n_test = int(round(n * ratios[2]))
    if n >= 3:  # every split gets a case once there are enough
        n_val = max(n_val, 1 if ratios[1] > 0 else 0)
        n_test = max(n_test, 1 if ratios[2] > 0 else 0)
    shuffled = [ids[i] for i in order]
    test = sorted(shuffled[:n_test])
    val = sorted(shuffled[n_test : n_test + n_val])
    train = sorted(shuffled[n_test + n_val :])
    return {"train": train, "val": val, "test": test}


def build_manifest(root: Path | str, seed: int = 0, ratios=DEFAULT_RATIOS, require_label: bool = True) -> dict:
    root = Path(root).resolve()
    cases = find_cases(root, require_label=require_label)
    entries = {}
    for c in cases:
        entries[c.case_id] = {
            "images": {m.value: os.path.relpath(p, root) for m, p in c.images.items()},
            "label": os.path.relpath(c.label, root) if c.label else None,
            "naming": c.naming,
        }
    return {"version": 1, "root": str(root), "seed": seed, "ratios": list(ratios),
            "cases": entries, "split": make_split(list(entries), seed, tuple(ratios))}


SPLIT_NAMES = ("train", "val", "test")


def read_split_file(path: Path | str, case_ids: list[str]) -> dict[str, list[str]]:
    """A fixed split from JSON (``{"val": [...], "test": [...], "train": [...]}``, any of the three; other keys such
    as ``note`` are ignored). Cases named in no list train, so a file that lists only ``val`` keeps those cases out
    of training. Every named case must exist and sit in one list only: a typo must not silently train on a case."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"split file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read split file {path}: {exc}") from None
    if not isinstance(raw, dict) or not any(k in raw for k in SPLIT_NAMES):
        raise InputError(f"split file {path} must be a JSON object with 'train', 'val' and/or 'test' lists of case ids")
    known = set(case_ids)
    split: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for name in SPLIT_NAMES:
        ids = raw.get(name, [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InputError(f"split file {path}: '{name}' must be a list of case ids")
        missing = sorted(set(ids) - known)
        if missing:
            raise InputError(f"split file {path}: {len(missing)} '{name}' case(s) not in the data: {', '.join(missing[:5])}")
        for cid in ids:
            if cid in seen:
                raise InputError(f"split file {path}: case {cid} is in both '{seen[cid]}' and '{name}'")
            seen[cid] = name
        split[name] = sorted(set(ids))
    if "train" not in raw:
        split["train"] = sorted(known - set(seen))
    return split


def load_or_create_manifest(root: Path | str, manifest_path: Path | str, seed: int = 0, ratios=DEFAULT_RATIOS,
                            split_file: Path | str | None = None) -> dict:
    """The manifest at ``manifest_path`` if it exists (reused as is), else a new one written atomically.

    With ``split_file`` the split comes from that file (``read_split_file``) instead of the seeded draw, and the
    manifest is rewritten from it every time, so the file stays the one source of which cases validate.
    The manifest lives outside the data folder by default (run folder), so inputs are never modified.
    """
    manifest_path = Path(manifest_path)
    if split_file is not None:
        manifest = build_manifest(root, seed, ratios)
        manifest["split"] = read_split_file(split_file, list(manifest["cases"]))
        manifest["split_file"] = str(Path(split_file).resolve())
        write_json_atomic(manifest_path, manifest)
        return manifest
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise ReadError(f"manifest {manifest_path} is not valid JSON: {exc}") from None
        missing = [cid for cid, e in manifest.get("cases", {}).items()
                   if not all((Path(root) / p).exists() for p in e["images"].values())]
        if missing:
            raise InputError(f"manifest {manifest_path} lists cases whose files are gone: {', '.join(missing[:5])}")
        return manifest
    manifest = build_manifest(root, seed, ratios)
    write_json_atomic(manifest_path, manifest)
    return manifest


def cases_from_manifest(manifest: dict, split: str | None = None) -> list[Case]:
    root = Path(manifest["root"])
    ids = manifest["split"][split] if split else sorted(manifest["cases"])
    out = []
    for cid in ids:
        e = manifest["cases"][cid]
        images = {Modality(k): root / v for k, v in e["images"].items()}
        label = root / e["label"] if e.get("label") else None
        folder = next(iter(images.values())).parent
        out.append(Case(cid, folder, images, label, e.get("naming", "brats2020")))
    return out
