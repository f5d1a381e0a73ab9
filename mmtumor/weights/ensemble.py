"""Several exported models -> one model in the weights format (one safetensors holding every member): an ensemble
(``models.ensemble``: the mean of their probabilities) or a router (``models.router``: a base model, and a
specialist for the modality subsets it was trained on).

The members are run on one sliding window, so they must agree on what ``segment`` feeds them: modalities, patch,
voxel size and normalisation. The result inherits the first member's region thresholds and ET rule unless told
otherwise, and the union of the members' recorded training cases, so ``benchmark`` still refuses to score it on
any case one of them trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from .export import _base_meta, jsonable, write_model
from .loading import load_model, resolve
from .locations import COMBINED, NAME_RE
from .manifest import ResolvedWeights, model_window, sha256_file


def _window_of(meta: dict) -> dict:
    """What a member must share with the others for one sliding window to run them all: what ``segment`` would feed it, with the fallbacks of older exports resolved (patch and voxel size
    once lived only in the training recipe), so that the ensemble stores them explicitly."""
    patch, spacing = model_window(meta)
    return {"modalities": meta.get("modalities"), "patch_size": patch, "spacing": spacing,
            "normalization": meta.get("normalization"), "label_scheme": meta.get("label_scheme")}


def _members(specs: Sequence[str], kind: str, name: str) -> list[ResolvedWeights]:
    """The resolved member weights (verified against their manifests), checked to run on one sliding window."""
    if not NAME_RE.match(name):
        raise InputError(f"invalid model name '{name}': letters, digits, '.', '_' and '-' only")
    resolved = [resolve(s) for s in specs]
    names = [rw.name for rw in resolved]
    if len(set(names)) < len(names):
        raise InputError(f"a member is listed twice ({', '.join(names)}): a {kind} of copies only costs time")
    for rw in resolved:
        if rw.method in COMBINED:
            raise InputError(f"{rw.name} is itself a combined model ({rw.method}): list its members instead")
    shared = [_window_of(rw.meta) for rw in resolved]
    for rw, own in zip(resolved[1:], shared[1:]):
        differ = [k for k in own if own[k] != shared[0][k]]
        if differ:
            key = differ[0]
            raise InputError(f"{rw.name} and {names[0]} cannot share one sliding window: their {key} differ "
                             f"({own[key]} vs {shared[0][key]})")
    return resolved


def _combined_meta(resolved: list[ResolvedWeights], description: str) -> dict:
    """Metadata every combined model carries: the shared window, the first member's thresholds and ET rule, each
    member's identity, the training data and the union of the training cases."""
    names = [rw.name for rw in resolved]
    first = resolved[0].meta
    seen: dict[str, str] = {}  # benchmark matches the fingerprints: two members' same-named cases both stay
    for rw in resolved:
        for case, fingerprint in (rw.meta.get("training_cases") or {}).items():
            seen[case if seen.get(case, fingerprint) == fingerprint else f"{case} ({rw.name})"] = fingerprint
    sources = list(dict.fromkeys(str(rw.meta.get("training_data") or "not recorded") for rw in resolved))
    extra = {k: v for k, v in _window_of(first).items() if v is not None}
    extra.update({k: first[k] for k in ("region_thresholds", "region_thresholds_source", "et_modalities")
                  if first.get(k) is not None})
    extra.update({
        "members": [{"name": rw.name, "method": rw.method, "config": rw.meta.get("config") or {},
                     "sha256": sha256_file(rw.weights_path), "created": rw.meta.get("created")} for rw in resolved],
        "training_data": sources[0] if len(sources) == 1 else " | ".join(f"{n}: {s}" for n, s in zip(names, sources)),
        "description": description,
    })
    if seen:
        extra["training_cases"] = seen
    return extra


def ensemble_weights(specs: Sequence[str], out_dir: Path | str, name: str, *, description: str = "",
                     default: bool = False, meta: dict | None = None) -> ResolvedWeights:
    """Write ``NAME`` in ``out_dir``: the mean of the region probabilities of the models ``specs`` (bundled names,
    paths or hf:// specs, each verified against its manifest). ``meta`` overrides fields (e.g. thresholds)."""
    from ..models.ensemble import Ensemble

    if len(specs) < 2:
        raise InputError("an ensemble needs at least two member models")
    resolved = _members(specs, "ensemble", name)
    names = [rw.name for rw in resolved]
    models = [load_model(rw)[0] for rw in resolved]
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in Ensemble(models).state_dict().items()}
    extra = _combined_meta(resolved, f"Ensemble: the mean of the region probabilities of {len(names)} models "
                                     f"({', '.join(names)}); each runs on every window, so inference costs the sum of "
                                     "theirs." + (f" {description}" if description else ""))
    extra["training"] = {"ensemble_of": names}
    extra.update(meta or {})
    full = _base_meta(name, "ensemble", {"members": len(names)}, jsonable(extra))
    return write_model(Path(out_dir), name, tensors, full, default=default)


def route_weights(base: str, specialist: str, subsets: str, out_dir: Path | str, name: str, *,
                  regions: Sequence[str] = ("ET",), description: str = "", default: bool = False,
                  meta: dict | None = None) -> ResolvedWeights:
    """Write ``NAME`` in ``out_dir``: ``specialist`` answers ``regions`` for exactly the modality ``subsets`` it was
    trained for (``train --subsets``), ``base`` everything else. Thresholds and ET rule are the base's."""
    from ..modalities import parse_subsets
    from ..labels import REGIONS
    from ..models.router import SubsetRouter, routes_from_config

    chosen = parse_subsets(subsets)
    codes = list(dict.fromkeys(s.code for s in chosen))
    wanted = [str(r).strip().upper() for r in regions]
    bad = [r for r in wanted if r not in REGIONS]
    if bad or not wanted:
        raise InputError(f"unknown region(s) {', '.join(bad) or '(none)'} for a route: choose from WT, TC, ET")
    resolved = _members([base, specialist], "router", name)
    index = sorted({REGIONS.index(r) for r in wanted})
    route = {"subsets": codes, "regions": [REGIONS[i] for i in index]}
    base_model, spec_model = (load_model(rw)[0] for rw in resolved)
    router = SubsetRouter(base_model, [spec_model], routes_from_config([route]))  # as load_model will build it
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in router.state_dict().items()}
    b, s = (rw.name for rw in resolved)
    inputs = ", ".join(x.name for x in chosen)
    extra = _combined_meta(resolved, f"Router: {'/'.join(route['regions'])} from {s} when exactly {inputs} "
                                     f"{'is' if len(chosen) == 1 else 'are'} given, everything else from {b}; other "
                                     "inputs cost what the base costs, routed ones at most both models' cost."
                                     + (f" {description}" if description else ""))
    extra["training"] = {"routes": [{"base": b, "specialist": s, **route}]}
    extra.update(meta or {})
    full = _base_meta(name, "router", {"routes": [route]}, jsonable(extra))
    return write_model(Path(out_dir), name, tensors, full, default=default)
