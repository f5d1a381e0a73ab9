"""Several exported models -> one ensemble in the weights format (one safetensors holding every member).

The members are run on one sliding window (``models.ensemble``), so they must agree on what ``segment`` feeds them:
modalities, patch, voxel size and normalisation. The ensemble inherits the first member's region thresholds and
ET rule unless told otherwise, and the union of the members' recorded training cases, so ``benchmark`` still
refuses to score it on any case one of them trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from .export import _base_meta, jsonable, write_model
from .loading import load_model, resolve
from .locations import NAME_RE
from .manifest import ResolvedWeights, model_window, sha256_file

def _window_of(meta: dict) -> dict:
    """What a member must share with the others for one sliding window to run them all: what ``segment`` would feed it, with the fallbacks of older exports resolved (patch and voxel size
    once lived only in the training recipe), so that the ensemble stores them explicitly."""
    patch, spacing = model_window(meta)
    return {"modalities": meta.get("modalities"), "patch_size": patch, "spacing": spacing,
            "normalization": meta.get("normalization"), "label_scheme": meta.get("label_scheme")}


def ensemble_weights(specs: Sequence[str], out_dir: Path | str, name: str, *, description: str = "",
                     default: bool = False, meta: dict | None = None) -> ResolvedWeights:
    """Write ``NAME`` in ``out_dir``: the mean of the region probabilities of the models ``specs`` (bundled names,
    paths or hf:// specs, each verified against its manifest). ``meta`` overrides fields (e.g. thresholds)."""
    from ..models.ensemble import Ensemble

    if not NAME_RE.match(name):
        raise InputError(f"invalid model name '{name}': letters, digits, '.', '_' and '-' only")
    if len(specs) < 2:
        raise InputError("an ensemble needs at least two member models")
    resolved = [resolve(s) for s in specs]
    names = [rw.name for rw in resolved]
    if len(set(names)) < len(names):
        raise InputError(f"a member is listed twice ({', '.join(names)}): an ensemble of copies only costs time")
    for rw in resolved:
        if rw.method == "ensemble":
            raise InputError(f"{rw.name} is itself an ensemble: list its members instead")
    shared = [_window_of(rw.meta) for rw in resolved]
    for rw, own in zip(resolved[1:], shared[1:]):
        differ = [k for k in own if own[k] != shared[0][k]]
        if differ:
            key = differ[0]
            raise InputError(f"{rw.name} and {names[0]} cannot share one sliding window: their {key} differ "
                             f"({own[key]} vs {shared[0][key]})")
    first = resolved[0].meta
    models = [load_model(rw)[0] for rw in resolved]
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in Ensemble(models).state_dict().items()}
    seen: dict[str, str] = {}  # benchmark matches the fingerprints: two members' same-named cases both stay
    for rw in resolved:
        for case, fingerprint in (rw.meta.get("training_cases") or {}).items():
            seen[case if seen.get(case, fingerprint) == fingerprint else f"{case} ({rw.name})"] = fingerprint
    sources = list(dict.fromkeys(str(rw.meta.get("training_data") or "not recorded") for rw in resolved))
    extra = {k: v for k, v in shared[0].items() if v is not None}
    extra.update({k: first[k] for k in ("region_thresholds", "region_thresholds_source", "et_modalities")
                  if first.get(k) is not None})
    extra.update({
        "ensemble": [{"name": rw.name, "method": rw.method, "config": rw.meta.get("config") or {},
                      "sha256": sha256_file(rw.weights_path), "created": rw.meta.get("created")} for rw in resolved],
        "training_data": sources[0] if len(sources) == 1 else " | ".join(f"{n}: {s}" for n, s in zip(names, sources)),
        "training": {"ensemble_of": names},
        "description": (f"Ensemble: the mean of the region probabilities of {len(names)} models "
                        f"({', '.join(names)}); each runs on every window, so inference costs the sum of theirs."
                        + (f" {description}" if description else "")),
    })
    if seen:
        extra["training_cases"] = seen
    extra.update(meta or {})
    full = _base_meta(name, "ensemble", {"members": len(names)}, jsonable(extra))
    return write_model(Path(out_dir), name, tensors, full, default=default)
