"""Finding weights (bundled NAME, local path, cached or downloaded Hub model), listing and verifying them, and loading
them into the registered network (safetensors only, never pickle)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError, ReadError, WeightsError
from .hub import cached_commit, cached_hub_models, hub_storage, parse_hub_spec, resolve_hub
from .locations import COMBINED, MANIFEST, REGIONS, bundled_dir, members_of
from .manifest import FileCheck, ModelInfo, ResolvedWeights, check_entry, from_folder, model_info, pick_entry, read_manifest


def default_model_name() -> str | None:
    folder = bundled_dir()
    if folder is None:
        return None
    manifest = read_manifest(folder)
    names = [m["name"] for m in manifest["models"]]
    return manifest.get("default") or (names[0] if names else None)


def looks_like_path(spec: str) -> bool:
    return spec.endswith((".safetensors", ".json")) or "/" in spec or os.sep in spec or Path(spec).exists()


def resolve(spec: str | Path | None = None, *, refresh: bool = False) -> ResolvedWeights:
    """Find weights from ``NAME`` (bundled, then cached Hub models), a local path (folder or ``.safetensors``),
    or ``hf://owner/repo[/NAME][@revision]``; ``None`` or ``"default"`` is the bundled default.

    Files listed in a manifest are re-hashed every time (a few ms per MB). Hub weights come from the cache
    without any request when present; ``refresh=True`` (``mmtumor weights pull``) asks the Hub for the
    revision's current commit.
    """
    if spec is not None and not str(spec).strip():
        raise InputError("--weights is empty: give a bundled NAME, a PATH or hf://owner/repo (or leave it out for the default)")
    if spec is None or str(spec) == "default":
        name = default_model_name()
        if name is None:
            raise WeightsError("no bundled weights found (weights/manifest.json): pass --weights NAME|PATH|hf://owner/repo")
        return _resolve_name(name)
    spec = str(spec)
    if spec.startswith("hf://"):
        return resolve_hub(spec, refresh)
    if looks_like_path(spec):
        path = Path(spec).expanduser()
        if path.is_dir():
            if not list(path.glob("*.safetensors")) and (list(path.glob("*.pt")) or (path / "config.json").is_file()):
                raise InputError(f"{path} is a training run folder, not exported weights: export it first with "
                                 f"mmtumor weights export {path} -o WEIGHTS_DIR")
            return from_folder(path, None, "local", str(path))
        if path.is_file() and path.suffix == ".pt":
            raise InputError(f"{path} is a training checkpoint, not exported weights: export it first with "
                             f"mmtumor weights export {path} -o WEIGHTS_DIR")
        if path.is_file() and path.suffix in (".safetensors", ".json"):
            return from_folder(path.parent, path.stem, "local", str(path))
        raise InputError(f"weights path not found: {path} (expected a folder or a .safetensors file)")
    return _resolve_name(spec)


def _resolve_name(name: str) -> ResolvedWeights:
    folder = bundled_dir()
    if folder is not None:
        manifest = read_manifest(folder)
        if any(m["name"] == name for m in manifest["models"]):
            return from_folder(folder, name, "bundled", name)
    for info in cached_hub_models():
        if info.name == name:
            return resolve_hub(info.spec, refresh=False)
    known = [m.name for m in list_models()]
    raise WeightsError(f"unknown weights '{name}' (available: {', '.join(known) or 'none'}; or give a path or hf://owner/repo)")


def load_model(resolved: ResolvedWeights | str | Path | None, device: str = "cpu"):
    """Build the registered method from the JSON config and load the safetensors state (never pickle).

    Returns ``(model in eval mode on device, meta dict)``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    rw = resolved if isinstance(resolved, ResolvedWeights) else resolve(resolved)
    model = build_network(rw.method, rw.meta)
    try:
        state = load_file(str(rw.weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ReadError(f"cannot read weights {rw.weights_path}: {exc}") from None
    load_state(model, state, str(rw.weights_path))
    model.to(device).eval()
    return model, rw.meta


def build_network(method: str, meta: dict):
    """The untrained network a weights JSON describes: its registered method, or for combined weights (``method``
    "ensemble" or "router", ``members`` listing each member's method and config) the members inside one
    ``Ensemble`` or ``SubsetRouter`` (the router's first member is its base, ``config.routes`` its routes)."""
    from ..models.registry import build_model, config_from_dict

    if method not in COMBINED:
        return build_model(method, config=config_from_dict(method, meta.get("config") or {}))
    members = members_of(meta)
    if len(members) < 2 or not all(isinstance(m, dict) and m.get("method") for m in members):
        raise WeightsError(f"{method} weights {meta.get('name')} do not list two or more members with their methods")
    nets = [build_model(m["method"], config=config_from_dict(m["method"], m.get("config") or {})) for m in members]
    if method == "ensemble":
        from ..models.ensemble import Ensemble

        return Ensemble(nets)
    from ..models.router import SubsetRouter, routes_from_config

    try:
        return SubsetRouter(nets[0], nets[1:], routes_from_config((meta.get("config") or {}).get("routes") or []))
    except (KeyError, TypeError, ValueError, InputError) as exc:
        raise WeightsError(f"router weights {meta.get('name')} have unreadable routes ({exc})") from None


def load_state(model, state: dict, where: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        first = (missing or unexpected or shapes)[0]
        raise WeightsError(f"weights {where} do not fit the model built from its config: {len(missing)} missing,"
                           f" {len(unexpected)} unexpected, {len(shapes)} mis-shaped tensors (first: {first})")
    model.load_state_dict(state, strict=True)


def expected_dice(meta: dict, subset) -> dict[str, float] | None:
    """The model card's expected Dice {WT, TC, ET} for a modality subset (code ``0101``, name or Subset)."""
    from ..modalities import Subset, parse_subsets

    code = subset.code if isinstance(subset, Subset) else parse_subsets(str(subset))[0].code
    table = ((meta or {}).get("metrics") or {}).get("expected_dice") or {}
    row = table.get(code)
    if not isinstance(row, dict):
        return None
    out = {r: float(row[r]) for r in REGIONS if isinstance(row.get(r), (int, float))}
    return out or None


def list_models() -> list[ModelInfo]:
    """Bundled models (from ``weights/manifest.json``) followed by Hub models in the cache."""
    out = []
    folder = bundled_dir()
    if folder is not None:
        manifest = read_manifest(folder)
        default = manifest.get("default")
        for entry in manifest["models"]:
            out.append(model_info(folder, entry, "bundled", entry["name"], entry["name"] == default))
    return out + cached_hub_models()


def verify(name_or_path: str | Path | None = None) -> list[FileCheck]:
    """Re-hash files against their manifest: every bundled and cached model (None), one NAME, a folder, or a
    cached ``hf://`` spec (never downloads)."""
    if name_or_path is None:
        checks = []
        folder = bundled_dir()
        if folder is not None:
            for entry in read_manifest(folder)["models"]:
                checks += check_entry(folder, entry)
        for info in cached_hub_models():
            entry = pick_entry(read_manifest(info.path), info.name, info.spec)
            checks += check_entry(info.path, entry)
        return checks
    spec = str(name_or_path)
    if spec.startswith("hf://"):
        ref = parse_hub_spec(spec)
        storage = hub_storage(ref.repo_id)
        commit = cached_commit(storage, ref.revision)
        snap = storage / "snapshots" / (commit or "-")
        if commit is None or not (snap / MANIFEST).is_file():
            raise WeightsError(f"{spec} is not in the cache: run 'mmtumor weights pull {spec}' first")
        return check_entry(snap, pick_entry(read_manifest(snap), ref.name, spec))
    path = Path(spec).expanduser()
    if looks_like_path(spec):
        folder = path if path.is_dir() else path.parent
        if not (folder / MANIFEST).is_file():
            raise WeightsError(f"no {MANIFEST} in {folder}: nothing to verify against")
        manifest = read_manifest(folder)
        entries = manifest["models"] if path.is_dir() else [pick_entry(manifest, path.stem, str(folder))]
        return [c for e in entries for c in check_entry(folder, e)]
    rw_folder = bundled_dir()
    if rw_folder is not None:
        manifest = read_manifest(rw_folder)
        if any(m["name"] == spec for m in manifest["models"]):
            return check_entry(rw_folder, pick_entry(manifest, spec, str(rw_folder)))
    for info in cached_hub_models():
        if info.name == spec:
            return check_entry(info.path, pick_entry(read_manifest(info.path), spec, info.spec))
    raise WeightsError(f"unknown weights '{spec}' (see 'mmtumor weights list')")
