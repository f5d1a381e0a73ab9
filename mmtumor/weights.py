"""Model weights: bundled defaults, Hugging Face Hub downloads, cache, SHA-256 checks, export and model cards.

Weights are the one thing users fetch from the internet and feed to a network, so they are stored as
safetensors only (never pickle), checked against the SHA-256 sums of a ``manifest.json`` before use, and cached
in ``$MMTUMOR_HOME`` so that ``HF_HUB_OFFLINE=1`` works once a model has been pulled. The format is described in
``docs/weights.md``. Environment variables are read when a function runs, never at import time, and torch /
huggingface_hub are imported inside the functions that need them.
"""

from __future__ import annotations
from .io.atomic import default_file_mode

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, MmtumorError, ReadError

FORMAT = "mmtumor-weights/1"
MANIFEST = "manifest.json"
REGIONS = ("WT", "TC", "ET")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_TRUE = {"1", "on", "yes", "true"}
INTENDED_USE = "Research use only. Not a medical device; not for diagnosis or treatment decisions."


class WeightsError(MmtumorError):
    """Weights cannot be found, downloaded, verified or loaded."""


class ChecksumError(WeightsError):
    """A weights file does not match the SHA-256 sum its manifest promises."""


class OfflineError(WeightsError):
    """Hub weights are needed but downloads are disabled and the cache does not hold them."""


# ------------------------------------------------------------------------------------------------ data types
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


@dataclass
class _HubRef:
    repo_id: str
    name: str | None
    revision: str | None

    def spec(self, commit: str | None = None) -> str:
        rev = commit or self.revision
        return f"hf://{self.repo_id}" + (f"/{self.name}" if self.name else "") + (f"@{rev}" if rev else "")


# --------------------------------------------------------------------------------------------- locations
def mmtumor_home() -> Path:
    """``$MMTUMOR_HOME`` (read now, not at import), default ``~/.cache/mmtumor``."""
    value = os.environ.get("MMTUMOR_HOME")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "mmtumor"


def hub_cache_dir() -> Path:
    """Where Hub downloads live (huggingface_hub's cache layout: blobs, refs, snapshots)."""
    return mmtumor_home() / "hub"


def bundled_dir() -> Path | None:
    """The folder of bundled weights: ``$MMTUMOR_WEIGHTS_DIR`` if set (and only it), else the repository's
    ``weights/`` (editable install or checkout) or ``<prefix>/share/mmtumor/weights`` (wheel installed with
    data files). ``None`` when none holds a manifest."""
    import sys

    if os.environ.get("MMTUMOR_WEIGHTS_DIR"):  # an explicit choice replaces the search
        candidates = [Path(os.environ["MMTUMOR_WEIGHTS_DIR"]).expanduser()]
    else:
        here = Path(__file__).resolve()
        candidates = [here.parents[1] / "weights", Path(sys.prefix) / "share" / "mmtumor" / "weights"]
    for folder in candidates:
        if (folder / MANIFEST).is_file():
            return folder
    return None


def _offline() -> bool:
    """HF_HUB_OFFLINE as set now, or as huggingface_hub read it when it was imported."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - hub library broken
        return False


def _endpoint() -> str | None:
    value = os.environ.get("HF_ENDPOINT", "").strip()
    return value.rstrip("/") or None


# ------------------------------------------------------------------------------------------ small helpers
def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, default_file_mode())
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_json(path: Path, obj: Any) -> None:
    _atomic_write(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def _safe_rel(name: str) -> str:
    """A manifest file name must stay inside its folder (manifests may come from the internet)."""
    p = Path(name)
    if not name or p.is_absolute() or ".." in p.parts or "\\" in name:
        raise WeightsError(f"manifest lists an unsafe file name '{name}'")
    return name


def _read_json(path: Path, what: str) -> dict:
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
    data = _read_json(path, "weights manifest")
    models = data.get("models")
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise ReadError(f"{path}: 'models' must be a list of objects")
    for m in models:
        if not isinstance(m.get("name"), str) or not isinstance(m.get("files"), dict) or not m["files"]:
            raise ReadError(f"{path}: every model needs a 'name' and a non-empty 'files' map")
        for fname, info in m["files"].items():
            _safe_rel(fname)
            if not isinstance(info, dict) or not isinstance(info.get("sha256"), str):
                raise ReadError(f"{path}: file '{fname}' of model '{m['name']}' has no sha256")
    return data


def _entry_file(entry: dict, suffix: str) -> str:
    found = [f for f in entry["files"] if f.endswith(suffix)]
    if len(found) != 1:
        raise WeightsError(f"model '{entry['name']}' must list exactly one '*{suffix}' file, found {len(found)}")
    return found[0]


def _pick_entry(manifest: dict, name: str | None, where: str) -> dict:
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


def _check_entry(folder: Path, entry: dict) -> list[FileCheck]:
    out = []
    for fname, info in entry["files"].items():
        path = folder / _safe_rel(fname)
        expected = info["sha256"].lower()
        if not path.is_file():
            out.append(FileCheck(entry["name"], fname, path, expected, None, False, "missing"))
            continue
        actual = sha256_file(path)
        size_ok = info.get("size") is None or int(info["size"]) == path.stat().st_size
        problem = "" if actual == expected and size_ok else ("size differs" if actual == expected else "SHA-256 differs")
        out.append(FileCheck(entry["name"], fname, path, expected, actual, not problem, problem))
    return out


def _raise_on_bad(checks: list[FileCheck], where: str) -> None:
    bad = [c for c in checks if not c.ok]
    if bad:
        c = bad[0]
        exp = (c.expected or "")[:12]
        got = (c.actual or "none")[:12]
        raise ChecksumError(f"{c.file} of model '{c.model}' in {where}: {c.problem} (expected {exp}…, got {got}…);"
                            " the file is corrupt or was tampered with: delete it and pull/export again")


def _resolved(folder: Path, entry: dict, source: str, spec: str, commit: str | None = None) -> ResolvedWeights:
    wfile, cfile = _entry_file(entry, ".safetensors"), _entry_file(entry, ".json")
    meta = _read_json(folder / cfile, "model config")
    method = meta.get("method") or entry.get("method")
    if not method:
        raise WeightsError(f"{folder / cfile} does not say which method the weights belong to")
    return ResolvedWeights(entry["name"], method, folder / wfile, folder / cfile, meta, source, spec, True, commit,
                           {f: i["sha256"] for f, i in entry["files"].items()})


def _from_folder(folder: Path, name: str | None, source: str, spec: str, commit: str | None = None) -> ResolvedWeights:
    """A folder with a manifest (checked), or a bare NAME.safetensors + NAME.json pair (unchecked)."""
    if (folder / MANIFEST).is_file():
        entry = _pick_entry(read_manifest(folder), name, str(folder))
        _raise_on_bad(_check_entry(folder, entry), str(folder))
        return _resolved(folder, entry, source, spec, commit)
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
    meta = _read_json(cpath, "model config")
    if not meta.get("method"):
        raise WeightsError(f"{cpath} does not say which method the weights belong to")
    return ResolvedWeights(meta.get("name") or name, meta["method"], wpath, cpath, meta, source, spec, False, commit)


# ------------------------------------------------------------------------------------------------- the Hub
def parse_hub_spec(spec: str) -> _HubRef:
    """``hf://owner/repo[/NAME][@revision]`` -> parts (NAME picks one model of a multi-model repository)."""
    body = spec[len("hf://"):] if spec.startswith("hf://") else spec
    body, _, revision = body.partition("@")
    parts = [p for p in body.split("/")]
    if len(parts) not in (2, 3) or not all(parts) or not _REPO_RE.match("/".join(parts[:2])):
        raise InputError(f"invalid Hub weights '{spec}': use hf://owner/repo or hf://owner/repo/NAME, optionally with @revision")
    if "@" in spec and not revision:
        raise InputError(f"invalid Hub weights '{spec}': empty revision after '@'")
    return _HubRef("/".join(parts[:2]), parts[2] if len(parts) == 3 else None, revision or None)


def _storage(repo_id: str) -> Path:
    return hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))


def _cached_commit(storage: Path, revision: str | None) -> str | None:
    rev = revision or "main"
    if _COMMIT_RE.match(rev):
        return rev
    ref = storage / "refs" / rev
    if ref.is_file():
        value = ref.read_text().strip()
        return value if _COMMIT_RE.match(value) else None
    return None


def _purge_commit(storage: Path, commit: str) -> None:
    """Remove a snapshot, the blobs only it used and the refs pointing at it: nothing half-verified stays."""
    snaps = storage / "snapshots"
    snap = snaps / commit
    blobs: set[Path] = set()
    if snap.exists():
        blobs = {p.resolve() for p in snap.rglob("*") if p.is_symlink()}
        shutil.rmtree(snap, ignore_errors=True)
    still_used = {p.resolve() for p in snaps.rglob("*") if p.is_symlink()} if snaps.exists() else set()
    for blob in blobs - still_used:
        blob.unlink(missing_ok=True)
    refs = storage / "refs"
    if refs.exists():
        for ref in [p for p in refs.rglob("*") if p.is_file()]:
            if ref.read_text().strip() == commit:
                ref.unlink(missing_ok=True)
    if snaps.exists() and not any(snaps.iterdir()):
        shutil.rmtree(storage, ignore_errors=True)


def _hub_error(exc: Exception, ref: _HubRef) -> WeightsError:
    from huggingface_hub import errors as e

    where = _endpoint() or "the Hugging Face Hub"
    if isinstance(exc, e.RepositoryNotFoundError):
        return WeightsError(f"repository {ref.repo_id} not found on {where} (private or gated? log in or set HF_TOKEN)")
    if isinstance(exc, e.RevisionNotFoundError):
        return WeightsError(f"revision '{ref.revision}' not found in {ref.repo_id}")
    if isinstance(exc, (e.LocalEntryNotFoundError, e.OfflineModeIsEnabled)):
        return WeightsError(f"cannot reach {where} to download {ref.spec()} and it is not cached in {hub_cache_dir()}:"
                            " check the network (or HF_ENDPOINT), or use a local folder with --weights PATH")
    if isinstance(exc, e.RemoteEntryNotFoundError):
        return WeightsError(f"{ref.repo_id} lacks a file its manifest lists or has no {MANIFEST}"
                            " (not an mmtumor weights repository?)")
    return WeightsError(f"download of {ref.spec()} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")


def _offline_message(ref: _HubRef) -> str:
    return (f"{ref.spec()} is not in the cache ({hub_cache_dir()}) and HF_HUB_OFFLINE=1 forbids downloading: run"
            f" 'mmtumor weights pull {ref.spec()}' once with network access (HF_HUB_OFFLINE unset, same MMTUMOR_HOME),"
            " or pass a local folder with --weights PATH")


def _resolve_cached(ref: _HubRef) -> ResolvedWeights | None:
    storage = _storage(ref.repo_id)
    commit = _cached_commit(storage, ref.revision)
    if commit is None:
        return None
    snap = storage / "snapshots" / commit
    if not (snap / MANIFEST).is_file():
        return None
    entry = _pick_entry(read_manifest(snap), ref.name, ref.spec())
    checks = _check_entry(snap, entry)
    if any(c.problem == "missing" for c in checks):
        return None  # an earlier download stopped half-way: fetch again
    if not all(c.ok for c in checks):
        _purge_commit(storage, commit)
        if _offline():
            _raise_on_bad(checks, f"the cache of {ref.spec()}")
        return None
    return _resolved(snap, entry, "hub", ref.spec(commit), commit)


def _download(ref: _HubRef) -> ResolvedWeights:
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors as e

    storage = _storage(ref.repo_id)
    kw = {"repo_id": ref.repo_id, "cache_dir": str(hub_cache_dir()), "endpoint": _endpoint()}
    try:
        mpath = Path(hf_hub_download(filename=MANIFEST, revision=ref.revision, **kw))
        commit = mpath.parent.name
        entry = _pick_entry(read_manifest(mpath.parent), ref.name, ref.spec())
        for fname in entry["files"]:
            hf_hub_download(filename=fname, revision=commit, **kw)
        card = entry.get("card")
        if card:
            try:
                hf_hub_download(filename=_safe_rel(card), revision=commit, **kw)
            except e.RemoteEntryNotFoundError:
                pass  # a card is documentation: its absence never blocks loading
    except (e.HfHubHTTPError, e.LocalEntryNotFoundError, e.OfflineModeIsEnabled) as exc:
        raise _hub_error(exc, ref) from None
    except OSError as exc:
        raise WeightsError(f"download of {ref.spec()} failed: {exc}") from None
    snap = mpath.parent
    checks = _check_entry(snap, entry)
    if not all(c.ok for c in checks):
        _purge_commit(storage, commit)
        _raise_on_bad(checks, f"{ref.spec(commit)} (downloaded files removed)")
    return _resolved(snap, entry, "hub", ref.spec(commit), commit)


def _resolve_hub(spec: str, refresh: bool) -> ResolvedWeights:
    ref = parse_hub_spec(spec)
    if not refresh or _offline():
        cached = _resolve_cached(ref)
        if cached is not None:
            return cached
    if _offline():
        raise OfflineError(_offline_message(ref))
    return _download(ref)


# --------------------------------------------------------------------------------------------- public API
def default_model_name() -> str | None:
    folder = bundled_dir()
    if folder is None:
        return None
    manifest = read_manifest(folder)
    names = [m["name"] for m in manifest["models"]]
    return manifest.get("default") or (names[0] if names else None)


def _looks_like_path(spec: str) -> bool:
    return spec.endswith((".safetensors", ".json")) or "/" in spec or os.sep in spec or Path(spec).exists()


def resolve(spec: str | Path | None = None, *, refresh: bool = False) -> ResolvedWeights:
    """Find weights from ``NAME`` (bundled, then cached Hub models), a local path (folder or ``.safetensors``),
    or ``hf://owner/repo[/NAME][@revision]``; ``None`` or ``"default"`` is the bundled default.

    Files listed in a manifest are re-hashed every time (a few ms per MB). Hub weights come from the cache
    without any request when present; ``refresh=True`` (``mmtumor weights pull``) asks the Hub for the
    revision's current commit.
    """
    if spec is None or str(spec) == "default":
        name = default_model_name()
        if name is None:
            raise WeightsError("no bundled weights found (weights/manifest.json): pass --weights NAME|PATH|hf://owner/repo")
        return _resolve_name(name)
    spec = str(spec)
    if spec.startswith("hf://"):
        return _resolve_hub(spec, refresh)
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        if path.is_dir():
            if not list(path.glob("*.safetensors")) and (list(path.glob("*.pt")) or (path / "config.json").is_file()):
                raise InputError(f"{path} is a training run folder, not exported weights: export it first with "
                                 f"mmtumor weights export {path} -o WEIGHTS_DIR")
            return _from_folder(path, None, "local", str(path))
        if path.is_file() and path.suffix == ".pt":
            raise InputError(f"{path} is a training checkpoint, not exported weights: export it first with "
                             f"mmtumor weights export {path} -o WEIGHTS_DIR")
        if path.is_file() and path.suffix in (".safetensors", ".json"):
            return _from_folder(path.parent, path.stem, "local", str(path))
        raise InputError(f"weights path not found: {path} (expected a folder or a .safetensors file)")
    return _resolve_name(spec)


def _resolve_name(name: str) -> ResolvedWeights:
    folder = bundled_dir()
    if folder is not None:
        manifest = read_manifest(folder)
        if any(m["name"] == name for m in manifest["models"]):
            return _from_folder(folder, name, "bundled", name)
    for info in _cached_hub_models():
        if info.name == name:
            return _resolve_hub(info.spec, refresh=False)
    known = [m.name for m in list_models()]
    raise WeightsError(f"unknown weights '{name}' (available: {', '.join(known) or 'none'}; or give a path or hf://owner/repo)")


def load_model(resolved: ResolvedWeights | str | Path | None, device: str = "cpu"):
    """Build the registered method from the JSON config and load the safetensors state (never pickle).

    Returns ``(model in eval mode on device, meta dict)``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .models.registry import build_model, config_from_dict

    rw = resolved if isinstance(resolved, ResolvedWeights) else resolve(resolved)
    config = config_from_dict(rw.method, rw.meta.get("config") or {})
    model = build_model(rw.method, config=config)
    try:
        state = load_file(str(rw.weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ReadError(f"cannot read weights {rw.weights_path}: {exc}") from None
    _load_state(model, state, str(rw.weights_path))
    model.to(device).eval()
    return model, rw.meta


def _load_state(model, state: dict, where: str) -> None:
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
    from .modalities import Subset, parse_subsets

    code = subset.code if isinstance(subset, Subset) else parse_subsets(str(subset))[0].code
    table = ((meta or {}).get("metrics") or {}).get("expected_dice") or {}
    row = table.get(code)
    if not isinstance(row, dict):
        return None
    out = {r: float(row[r]) for r in REGIONS if isinstance(row.get(r), (int, float))}
    return out or None


def summary(meta: dict) -> str:
    """One line for tables: mean Dice over the subsets the card reports, and the real-scan figure if any."""
    metrics = (meta or {}).get("metrics") or {}
    table = metrics.get("expected_dice") or {}
    parts = []
    if table:
        means = []
        for r in REGIONS:
            vals = [row[r] for row in table.values() if isinstance(row, dict) and isinstance(row.get(r), (int, float))]
            means.append(f"{r} {sum(vals) / len(vals):.2f}" if vals else f"{r} –")
        parts.append(" ".join(means) + f" (mean of {len(table)} subsets, {metrics.get('expected_dice_source', 'phantoms')})")
    real = [(key, row) for key, row in (metrics.get("real") or {}).items() if isinstance(row, dict)]
    if real:  # the first real-scan figure; a table line has no room for the rest, which the card lists
        key, row = real[0]
        vals = " ".join(f"{r} {row[r]:.2f}" for r in REGIONS if isinstance(row.get(r), (int, float)))
        more = f" (+{len(real) - 1} more real-scan rows in the card)" if len(real) > 1 else ""
        parts.append(f"real {key}: {vals}{more}")
    return "; ".join(parts) or "no benchmark recorded"


def _info(rw_folder: Path, entry: dict, source: str, spec: str, default: bool) -> ModelInfo:
    meta: dict = {}
    try:
        meta = _read_json(rw_folder / _entry_file(entry, ".json"), "model config")
    except MmtumorError:
        pass
    size = sum(int(i.get("size") or 0) for i in entry["files"].values())
    return ModelInfo(entry["name"], meta.get("method") or entry.get("method", "?"), source, spec, size,
                     list(meta.get("modalities") or entry.get("modalities") or []), summary(meta), rw_folder,
                     default, meta.get("description", ""))


def _cached_hub_models() -> list[ModelInfo]:
    root = hub_cache_dir()
    out = []
    if not root.is_dir():
        return out
    for storage in sorted(root.glob("models--*--*")):
        repo_id = storage.name[len("models--"):].replace("--", "/", 1)
        refs = {}
        for ref in (storage / "refs").rglob("*") if (storage / "refs").is_dir() else []:
            if ref.is_file():
                refs.setdefault(ref.read_text().strip(), str(ref.relative_to(storage / "refs")))
        for snap in sorted((storage / "snapshots").glob("*")):
            try:
                manifest = read_manifest(snap)
            except MmtumorError:
                continue
            for entry in manifest["models"]:
                if all((snap / f).is_file() for f in entry["files"]):
                    spec = f"hf://{repo_id}/{entry['name']}@{snap.name}"
                    info = _info(snap, entry, "hub", spec, False)
                    info.description = (info.description + f" (ref {refs[snap.name]})").strip() if snap.name in refs else info.description
                    out.append(info)
    return out


def list_models() -> list[ModelInfo]:
    """Bundled models (from ``weights/manifest.json``) followed by Hub models in the cache."""
    out = []
    folder = bundled_dir()
    if folder is not None:
        manifest = read_manifest(folder)
        default = manifest.get("default")
        for entry in manifest["models"]:
            out.append(_info(folder, entry, "bundled", entry["name"], entry["name"] == default))
    return out + _cached_hub_models()


def verify(name_or_path: str | Path | None = None) -> list[FileCheck]:
    """Re-hash files against their manifest: every bundled and cached model (None), one NAME, a folder, or a
    cached ``hf://`` spec (never downloads)."""
    if name_or_path is None:
        checks = []
        folder = bundled_dir()
        if folder is not None:
            for entry in read_manifest(folder)["models"]:
                checks += _check_entry(folder, entry)
        for info in _cached_hub_models():
            entry = _pick_entry(read_manifest(info.path), info.name, info.spec)
            checks += _check_entry(info.path, entry)
        return checks
    spec = str(name_or_path)
    if spec.startswith("hf://"):
        ref = parse_hub_spec(spec)
        storage = _storage(ref.repo_id)
        commit = _cached_commit(storage, ref.revision)
        snap = storage / "snapshots" / (commit or "-")
        if commit is None or not (snap / MANIFEST).is_file():
            raise WeightsError(f"{spec} is not in the cache: run 'mmtumor weights pull {spec}' first")
        return _check_entry(snap, _pick_entry(read_manifest(snap), ref.name, spec))
    path = Path(spec).expanduser()
    if _looks_like_path(spec):
        folder = path if path.is_dir() else path.parent
        if not (folder / MANIFEST).is_file():
            raise WeightsError(f"no {MANIFEST} in {folder}: nothing to verify against")
        manifest = read_manifest(folder)
        entries = manifest["models"] if path.is_dir() else [_pick_entry(manifest, path.stem, str(folder))]
        return [c for e in entries for c in _check_entry(folder, e)]
    rw_folder = bundled_dir()
    if rw_folder is not None:
        manifest = read_manifest(rw_folder)
        if any(m["name"] == spec for m in manifest["models"]):
            return _check_entry(rw_folder, _pick_entry(manifest, spec, str(rw_folder)))
    for info in _cached_hub_models():
        if info.name == spec:
            return _check_entry(info.path, _pick_entry(read_manifest(info.path), spec, info.spec))
    raise WeightsError(f"unknown weights '{spec}' (see 'mmtumor weights list')")


# ---------------------------------------------------------------------------------------------- export
_CKPT_NAMES = ("best.pt", "model_best.pt", "checkpoint_best.pt", "last.pt", "checkpoint_last.pt", "checkpoint.pt")


def _find_checkpoint(run: Path) -> Path:
    if run.is_file():
        return run
    if not run.is_dir():
        raise InputError(f"run folder not found: {run}")
    for folder in (run, run / "checkpoints"):
        for name in _CKPT_NAMES:
            if (folder / name).is_file():
                return folder / name
    found = sorted(list(run.glob("*.pt")) + list(run.glob("checkpoints/*.pt")), key=lambda p: p.stat().st_mtime)
    if not found:
        raise InputError(f"no checkpoint (*.pt) in {run}")
    return found[-1]


def _model_config(ck: dict) -> tuple[str, dict]:
    cfg = ck.get("model_config") or ck.get("config") or {}
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        cfg = cfg["model"]
    method = ck.get("method") or (ck.get("config") or {}).get("method") or cfg.get("method")
    if not method:
        raise InputError("the checkpoint does not name its method ('method' key)")
    return str(method), {k: v for k, v in dict(cfg).items() if k != "method"}


def _clean_state(state: dict, dtype: str | None) -> dict:
    import torch

    cast = {None: None, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in cast:
        raise InputError(f"unsupported dtype '{dtype}' (float32, float16 or bfloat16)")
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(f"checkpoint entry '{key}' is not a tensor")
        for prefix in ("module.", "_orig_mod."):  # DDP / torch.compile wrappers
            while key.startswith(prefix):
                key = key[len(prefix):]
        t = value.detach().to("cpu")
        if cast[dtype] is not None and t.is_floating_point():
            t = t.to(cast[dtype])
        out[key] = t.contiguous().clone()  # clone: safetensors refuses shared storage
    return out


def _jsonable(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _base_meta(name: str, method: str, config: dict, extra: dict) -> dict:
    from . import __version__

    meta = {
        "format": FORMAT, "name": name, "version": "1", "method": method, "config": config,
        "modalities": ["T1", "T1c", "T2", "FLAIR"], "patch_size": None, "normalization": None,
        "label_regions": list(REGIONS), "output": "sigmoid", "label_scheme": "brats2021",
        "training_data": None, "training": {}, "metrics": {}, "intended_use": INTENDED_USE,
        "description": "", "mmtumor_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    for key, value in extra.items():
        if key in ("format", "name", "method", "config"):
            continue
        meta[key] = _jsonable(value)
    return meta


def export_run(run_dir: Path | str, out_dir: Path | str, name: str | None = None, *, meta: dict | None = None,
               dtype: str | None = None, default: bool = False) -> ResolvedWeights:
    """Turn a training checkpoint into the weights format: ``NAME.safetensors`` + ``NAME.json`` + ``NAME.md``
    (model card) in ``out_dir``, with the manifest updated (SHA-256, size). Returns the verified result.

    The checkpoint (``run_dir`` itself, or ``best.pt``/``last.pt``/newest ``*.pt`` in it) is our own trainer's
    ``{"model": state_dict, "method": str, "config": dict, "meta": dict?}``, read with ``weights_only=True``.
    ``meta`` (metrics, training data, patch size ...) overrides what the checkpoint carries.
    """
    import torch

    run = Path(run_dir)
    ckpt = _find_checkpoint(run)
    try:
        ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a user error here
        raise ReadError(f"cannot read checkpoint {ckpt}: {str(exc).splitlines()[0]}") from None
    if not isinstance(ck, dict):
        raise ReadError(f"{ckpt} is not a checkpoint dictionary")
    state = ck.get("model") if isinstance(ck.get("model"), dict) else ck.get("state_dict")
    if not isinstance(state, dict) or not state:
        raise ReadError(f"{ckpt} holds no model state_dict under 'model'")
    method, cfg = _model_config(ck)
    name = name or (run.stem if run.is_file() else run.name)
    if not _NAME_RE.match(name):
        raise InputError(f"invalid model name '{name}': letters, digits, '.', '_' and '-' only")
    tensors = _clean_state(state, dtype)

    from .models.registry import build_model, config_from_dict

    config = config_from_dict(method, cfg)
    model = build_model(method, config=config)
    _load_state(model, tensors, str(ckpt))  # refuse exports that could never be loaded
    extra = _meta_from_checkpoint(ck, ckpt)
    extra.update(meta or {})
    full = _base_meta(name, method, _jsonable(dataclasses.asdict(config)), extra)
    return _write_model(Path(out_dir), name, tensors, full, default=default)


_RECIPE_KEYS = ("preset", "epochs", "iters_per_epoch", "patch", "batch", "lr", "optimizer", "amp", "align",
                "dropout_schedule", "augment", "seed", "data_dir", "target_spacing", "time_limit")


def _json_field(value):
    """Checkpoint fields our trainer stores as JSON text (weights_only loading keeps them plain); None if unparsable."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _meta_from_checkpoint(ck: dict, ckpt: Path) -> dict:
    """What our trainer's checkpoint tells about the run: recipe (from ``train_config``), epoch, last validation."""
    extra = dict(ck.get("meta") or {})
    training = dict(extra.get("training") or {})
    train_cfg = _json_field(ck.get("train_config"))
    if isinstance(train_cfg, dict):
        training.update({k: _jsonable(train_cfg[k]) for k in _RECIPE_KEYS if k in train_cfg})
        if train_cfg.get("patch") and not extra.get("patch_size"):
            extra["patch_size"] = list(train_cfg["patch"])
        if train_cfg.get("target_spacing") and not extra.get("spacing"):
            extra["spacing"] = float(train_cfg["target_spacing"])
    training.setdefault("checkpoint", ckpt.name)
    if "epoch" in ck:
        training.setdefault("epoch", _jsonable(ck["epoch"]))
    history = _json_field(ck.get("history"))
    if isinstance(history, list):
        vals = [h["val"] for h in history if isinstance(h, dict) and isinstance(h.get("val"), dict)]
        if vals:
            training.setdefault("last_validation", _jsonable(vals[-1]))
    extra["training"] = training
    return extra


def _write_model(out: Path, name: str, tensors: dict, meta: dict, default: bool = False) -> ResolvedWeights:
    from safetensors.torch import save

    out.mkdir(parents=True, exist_ok=True)
    wfile, cfile, card = f"{name}.safetensors", f"{name}.json", f"{name}.md"
    _atomic_write(out / wfile, save(tensors, metadata={"format": "pt", "mmtumor_format": FORMAT,
                                                        "name": name, "method": meta["method"]}))
    _atomic_json(out / cfile, meta)
    _atomic_write(out / card, render_card(meta).encode())
    _update_manifest(out, name, meta, [wfile, cfile], card, default)
    return _from_folder(out, name, "local", str(out / wfile))


def _update_manifest(out: Path, name: str, meta: dict, files: list[str], card: str | None, default: bool) -> None:
    manifest = read_manifest(out) if (out / MANIFEST).is_file() else {"format": FORMAT, "models": []}
    bundled = out.resolve() == (Path(__file__).resolve().parents[1] / "weights").resolve()
    entry = {
        "name": name, "method": meta["method"],
        "files": {f: {"sha256": sha256_file(out / f), "size": (out / f).stat().st_size} for f in files},
        "size": sum((out / f).stat().st_size for f in files),
        "modalities": meta.get("modalities"), "source": "bundled" if bundled else "export",
        "card": card, "summary": summary(meta),
    }
    names = [m["name"] for m in manifest["models"]]
    if name in names:  # replaced in place: re-exporting or re-scoring a model keeps the listing order
        manifest["models"][names.index(name)] = entry
    else:
        manifest["models"].append(entry)
    if default or not manifest.get("default"):
        manifest["default"] = name if default or len(manifest["models"]) == 1 else manifest.get("default")
    if manifest.get("default") is None:
        manifest.pop("default", None)
    _atomic_json(out / MANIFEST, manifest)


def update_meta(folder: Path | str, name: str, **fields) -> ResolvedWeights:
    """Change a model's JSON (e.g. ``metrics=...`` after a benchmark), regenerate its card and the manifest sums."""
    folder = Path(folder)
    rw = _from_folder(folder, name, "local", str(folder))
    meta = dict(rw.meta)
    for key, value in fields.items():
        if key in ("format", "name", "method", "config"):
            raise InputError(f"'{key}' cannot be changed after export")
        meta[key] = _jsonable(value)
    _atomic_json(rw.config_path, meta)
    card = f"{name}.md"
    _atomic_write(folder / card, render_card(meta).encode())
    manifest = read_manifest(folder)
    entry = _pick_entry(manifest, name, str(folder))
    _update_manifest(folder, name, meta, list(entry["files"]), entry.get("card") or card, manifest.get("default") == name)
    return _from_folder(folder, name, "local", str(folder))


# ------------------------------------------------------------------------------------------- model cards
def render_card(meta: dict) -> str:
    """Human-readable model card (Markdown) generated from the JSON, so the two never disagree."""
    from .modalities import SUBSETS

    lines = [f"# {meta.get('name')} ({meta.get('method')})", "", f"**Intended use:** {meta.get('intended_use') or INTENDED_USE}", ""]
    if meta.get("description"):
        lines += [meta["description"], ""]
    rows = [("Method", meta.get("method")), ("Weights format", meta.get("format")), ("Version", meta.get("version")),
            ("Modalities trained", ", ".join(meta.get("modalities") or [])), ("Patch size", meta.get("patch_size")),
            ("Normalisation", meta.get("normalization")), ("Outputs", f"{', '.join(meta.get('label_regions') or [])} ({meta.get('output')})"),
            ("Label scheme written", meta.get("label_scheme")), ("Training data", meta.get("training_data")),
            ("mmtumor version", meta.get("mmtumor_version")), ("Created", meta.get("created"))]
    lines += ["| Field | Value |", "|---|---|"] + [f"| {k} | {v if v not in (None, '') else '–'} |" for k, v in rows] + [""]
    training = meta.get("training") or {}
    if training:
        lines += ["## Training recipe", ""] + [f"- **{k}**: {v}" for k, v in training.items()] + [""]
    metrics = meta.get("metrics") or {}
    table = metrics.get("expected_dice") or {}
    if table:
        lines += [f"## Dice per modality subset ({metrics.get('expected_dice_source', 'held-out phantoms')})", "",
                  "| T1 | T1c | T2 | FLAIR | WT | TC | ET |", "|:-:|:-:|:-:|:-:|--:|--:|--:|"]
        for s in SUBSETS:
            row = table.get(s.code)
            if not isinstance(row, dict):
                continue
            dots = " | ".join("●" if p else "○" for p in s.mask)
            vals = " | ".join(f"{row[r]:.3f}" if isinstance(row.get(r), (int, float)) else "–" for r in REGIONS)
            lines.append(f"| {dots} | {vals} |")
        lines.append("")
    real = metrics.get("real") or {}
    if real:
        lines += ["## Real scans (validation only, never trained on)", ""]
        for key, row in real.items():
            lines.append(f"- **{key}**: " + (", ".join(f"{k} {v}" for k, v in row.items()) if isinstance(row, dict) else str(row)))
        lines.append("")
    if not table and not real:
        lines += ["## Performance", "", "No benchmark recorded for these weights yet.", ""]
    lines += ["## Limitations", "", "Trained on synthetic phantoms unless stated above; accuracy on real scans can be much",
              "lower than on phantoms. Always review the segmentation.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ push
def _hub_readme(folder: Path, manifest: dict) -> str:
    cards = []
    for entry in manifest["models"]:
        card = entry.get("card")
        if card and (folder / _safe_rel(card)).is_file():
            cards.append((folder / card).read_text(encoding="utf-8"))
    head = "---\nlibrary_name: mmtumor\ntags:\n- medical-imaging\n- brain-tumor-segmentation\n- mri\nlicense: other\n---\n\n"
    usage = ("Weights for [mmtumor](https://pypi.org/project/mmtumor/) (safetensors + JSON config, SHA-256 in"
             " `manifest.json`). Use with `mmtumor segment --weights hf://OWNER/REPO ...`.\n\n")
    return head + usage + "\n\n".join(cards)


def push(folder: Path | str, repo_id: str, *, revision: str | None = None, commit_message: str | None = None,
         private: bool = False, token: str | None = None) -> str:
    """Upload an exported folder (manifest, weights, configs, cards, a generated README.md if it has none) to a
    Hub model repository with ``HfApi.upload_folder``. Checksums are verified first. Returns the commit URL."""
    folder = Path(folder)
    if not _REPO_RE.match(repo_id or ""):
        raise InputError(f"invalid repository id '{repo_id}': use owner/name")
    if not folder.is_dir():
        raise InputError(f"folder not found: {folder}")
    if not (folder / MANIFEST).is_file():
        raise InputError(f"{folder} has no {MANIFEST}: export a run first ('mmtumor weights export')")
    manifest = read_manifest(folder)
    checks = [c for e in manifest["models"] for c in _check_entry(folder, e)]
    _raise_on_bad(checks, str(folder))
    if _offline():
        raise OfflineError("cannot push while HF_HUB_OFFLINE=1 is set: unset it and try again")
    from huggingface_hub import HfApi
    from huggingface_hub import errors as e

    files = {MANIFEST} | {f for m in manifest["models"] for f in m["files"]}
    files |= {m["card"] for m in manifest["models"] if m.get("card") and (folder / m["card"]).is_file()}
    with tempfile.TemporaryDirectory(prefix="mmtumor-push-") as tmp:
        stage = Path(tmp)
        for f in sorted(files | ({"README.md"} if (folder / "README.md").is_file() else set())):
            (stage / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / f, stage / f)
        if not (stage / "README.md").exists():
            (stage / "README.md").write_text(_hub_readme(folder, manifest), encoding="utf-8")
        api = HfApi(endpoint=_endpoint(), token=token)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            info = api.upload_folder(repo_id=repo_id, folder_path=str(stage), revision=revision,
                                     commit_message=commit_message or f"mmtumor weights: {', '.join(m['name'] for m in manifest['models'])}")
        except (e.HfHubHTTPError, OSError, ValueError) as exc:
            raise WeightsError(f"push to {repo_id} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return str(getattr(info, "commit_url", info))
