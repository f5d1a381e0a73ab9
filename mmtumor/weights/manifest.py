"""A weights folder's ``manifest.json``: SHA-256 sums checked before any file is used, and the records that describe
a located model."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ChecksumError, MmtumorError, ReadError, WeightsError
from .cards import summary
from .locations import MANIFEST


@dataclass
class FileCheck:
    """Result of re-hashing one file against its manifest entry."""

    model: str
    file: str
    path: Path
    expected: str | None
    actual: str | None
    ok: bool
    problem: str = ""


@dataclass
class ModelInfo:
    """One model as `mmtumor weights list` shows it."""

    name: str
    method: str
    source: str  # bundled | hub | local
    spec: str  # what to pass to --weights to use exactly this model
    size_bytes: int
    modalities: list[str]
    summary: str
    path: Path
    default: bool = False
    description: str = ""


def model_window(meta: dict) -> tuple[list[int] | None, float | None]:
    """The patch and voxel size (mm) a weights JSON asks inference for, ``None`` where it names none. Older exports
    kept them only in the training recipe (``patch``, ``training.target_spacing``): one place for those fallbacks."""
    patch = meta.get("patch_size") or meta.get("patch")
    spacing = meta.get("spacing") or (meta.get("training") or {}).get("target_spacing")
    return ([int(p) for p in patch] if patch else None), (float(spacing) if spacing else None)


@dataclass
class ResolvedWeights:
    """A model located on disk and (when a manifest exists) checked against its SHA-256 sums."""

    name: str
    method: str
    weights_path: Path
    config_path: Path
    meta: dict
    source: str
    spec: str
    verified: bool
    commit: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # file -> sha256

    @property
    def folder(self) -> Path:
        return self.weights_path.parent


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_rel(name: str) -> str:
    """A manifest file name must stay inside its folder (manifests may come from the internet)."""
    p = Path(name)
    if not name or p.is_absolute() or ".." in p.parts or "\\" in name:
        raise WeightsError(f"manifest lists an unsafe file name '{name}'")
    return name


def read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(f"{what} not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ReadError(f"cannot read {what} {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ReadError(f"{what} {path} is not a JSON object")
    return data


def read_manifest(folder: Path | str) -> dict:
    """Parse and sanity-check ``folder/manifest.json``."""
    path = Path(folder) / MANIFEST
    data = read_json(path, "weights manifest")
    models = data.get("models")
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise ReadError(f"{path}: 'models' must be a list of objects")
    for m in models:
        if not isinstance(m.get("name"), str) or not isinstance(m.get("files"), dict) or not m["files"]:
            raise ReadError(f"{path}: every model needs a 'name' and a non-empty 'files' map")
        for fname, info in m["files"].items():
            safe_rel(fname)
            if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
                raise ReadError(f"{path}: file '{fname}' of model '{m['name']}' has no sha256")
    return data


def entry_file(entry: dict, suffix: str) -> str:
    found = [f for f in entry["files"] if f.endswith(suffix)]
    if len(found) != 1:
        raise WeightsError(f"model '{entry['name']}' must list exactly one '*{suffix}' file, found {len(found)}")
    return found[0]


def pick_entry(manifest: dict, name: str | None, where: str) -> dict:
    models = manifest["models"]
    names = [m["name"] for m in models]
    if name is None:
        name = manifest.get("default") or (names[0] if len(names) == 1 else None)
        if name is None:
            raise WeightsError(f"{where} holds several models ({', '.join(names)}): name one of them")
    for m in models:
        if m["name"] == name:
            return m
    raise WeightsError(f"no model '{name}' in {where} (available: {', '.join(names) or 'none'})")


def check_entry(folder: Path, entry: dict) -> list[FileCheck]:
    out = []
    for fname, info in entry["files"].items():
        path = folder / safe_rel(fname)
        expected = info["sha256"].lower()
        if not path.is_file():
            out.append(FileCheck(entry["name"], fname, path, expected, None, False, "missing"))
            continue
        actual = sha256_file(path)
        size_ok = info.get("size") is None or int(info["size"]) == path.stat().st_size
        problem = "" if actual == expected and size_ok else ("size differs" if actual == expected else "SHA-256 differs")
        out.append(FileCheck(entry["name"], fname, path, expected, actual, not problem, problem))
    return out


def raise_on_bad(checks: list[FileCheck], where: str) -> None:
    bad = [c for c in checks if not c.ok]
    if bad:
        c = bad[0]
        exp = (c.expected or "")[:12]
        got = (c.actual or "none")[:12]
        raise ChecksumError(f"{c.file} of model '{c.model}' in {where}: {c.problem} (expected {exp}…, got {got}…);"
                            " the file is corrupt or was tampered with: delete it and pull/export again")


def resolved_from_entry(folder: Path, entry: dict, source: str, spec: str, commit: str | None = None) -> ResolvedWeights:
    wfile, cfile = entry_file(entry, ".safetensors"), entry_file(entry, ".json")
    meta = read_json(folder / cfile, "model config")
    method = meta.get("method") or entry.get("method")
    if not method:
        raise WeightsError(f"{folder / cfile} does not say which method the weights belong to")
    return ResolvedWeights(entry["name"], method, folder / wfile, folder / cfile, meta, source, spec, True, commit,
                           {f: i["sha256"] for f, i in entry["files"].items()})


def from_folder(folder: Path, name: str | None, source: str, spec: str, commit: str | None = None) -> ResolvedWeights:
    """A folder with a manifest (checked), or a bare NAME.safetensors + NAME.json pair (unchecked)."""
    if (folder / MANIFEST).is_file():
        entry = pick_entry(read_manifest(folder), name, str(folder))
        raise_on_bad(check_entry(folder, entry), str(folder))
        return resolved_from_entry(folder, entry, source, spec, commit)
    stems = sorted(p.stem for p in folder.glob("*.safetensors"))
    if name is None:
        if len(stems) != 1:
            raise WeightsError(f"{folder} holds {len(stems)} .safetensors files and no manifest.json: name one file")
        name = stems[0]
    wpath, cpath = folder / f"{name}.safetensors", folder / f"{name}.json"
    if not wpath.is_file():
        raise WeightsError(f"no {name}.safetensors in {folder}")
    if not cpath.is_file():
        raise WeightsError(f"{wpath} has no {cpath.name} beside it (the JSON config that says how to build the model)")
    meta = read_json(cpath, "model config")
    if not meta.get("method"):
        raise WeightsError(f"{cpath} does not say which method the weights belong to")
    return ResolvedWeights(meta.get("name") or name, meta["method"], wpath, cpath, meta, source, spec, False, commit)


def model_info(rw_folder: Path, entry: dict, source: str, spec: str, default: bool) -> ModelInfo:
    meta: dict = {}
    try:
        meta = read_json(rw_folder / entry_file(entry, ".json"), "model config")
    except MmtumorError:
        pass
    size = sum(int(i.get("size") or 0) for i in entry["files"].values())
    return ModelInfo(entry["name"], meta.get("method") or entry.get("method", "?"), source, spec, size,
                     list(meta.get("modalities") or entry.get("modalities") or []), summary(meta), rw_folder,
                     default, meta.get("description", ""))
