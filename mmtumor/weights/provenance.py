"""Which labelled cases a model trained on, so that no benchmark scores it on them by mistake.

An exported model records a fingerprint of each training case's label file (``training_cases`` in its metadata:
case id -> the first 16 hex digits of the file's SHA-256), read from the run's ``manifest.json``. The fingerprint is
of the file's bytes, not of its name: the same file copied into another folder or renamed is still recognised, while
phantoms of another seed, which reuse the names ``Synth_00000``..., are not mistaken for training cases. A label
re-saved in another format is not recognised (decoding every label at export and benchmark time would cost minutes on
a full BraTS set).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from .manifest import sha256_file

#: hex digits kept of each label file's SHA-256 (64 bits: no accidental collision among any plausible set of cases)
FINGERPRINT_DIGITS = 16


def label_fingerprint(path: Path | str) -> str:
    return sha256_file(path)[:FINGERPRINT_DIGITS]


def training_cases_of_run(run_dir: Path | str) -> dict[str, str] | None:
    """Case id -> label fingerprint of the ``train`` split in a run folder's ``manifest.json``; None without one
    (a bare checkpoint file, or a run whose data folder is gone: provenance that cannot be checked is not invented)."""
    manifest_path = Path(run_dir) / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        root = Path(manifest["root"])
        labels = {cid: root / manifest["cases"][cid]["label"] for cid in manifest["split"]["train"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not labels or not all(p.is_file() for p in labels.values()):
        return None
    return {cid: label_fingerprint(p) for cid, p in sorted(labels.items())}


def seen_cases(meta: dict, fingerprints: dict[str, str]) -> list[str]:
    """The case ids of ``fingerprints`` (case id -> ``label_fingerprint`` of its label) that the model of ``meta``
    trained on."""
    trained = set((meta.get("training_cases") or {}).values())
    return sorted(cid for cid, fp in fingerprints.items() if fp in trained)


def check_unseen(name: str, meta: dict, fingerprints: dict[str, str], allow: bool = False) -> int:
    """How many of the cases (``fingerprints``) the model trained on; a one-line InputError if any and not ``allow``:
    its scores there would be a fit, not a validation."""
    seen = seen_cases(meta, fingerprints)
    if seen and not allow:
        more = ", ..." if len(seen) > 3 else ""
        raise InputError(f"{name} was trained on {len(seen)} of these {len(fingerprints)} cases "
                         f"({', '.join(seen[:3])}{more}): its scores would not be validation; choose cases it never "
                         "saw, or pass --allow-training-cases to measure its fit")
    return len(seen)


def case_fingerprints(cases) -> dict[str, str]:
    """Case id -> label fingerprint of every labelled case (``io.dataset.Case`` objects)."""
    return {c.case_id: label_fingerprint(c.label) for c in cases if c.label is not None}
