"""The Hugging Face Hub: ``hf://owner/repo[/NAME][@revision]`` specs, the verified download cache (offline once
pulled), and publishing an exported folder. huggingface_hub is imported only inside the functions that use it."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, MmtumorError, OfflineError, WeightsError
from .locations import COMMIT_RE, MANIFEST, REPO_RE, endpoint, hub_cache_dir, offline
from .manifest import (ModelInfo, ResolvedWeights, check_entry, model_info, pick_entry, raise_on_bad, read_manifest,
                       resolved_from_entry, safe_rel)


@dataclass
class HubRef:
    repo_id: str
    name: str | None
    revision: str | None

    def spec(self, commit: str | None = None) -> str:
        rev = commit or self.revision
        return f"hf://{self.repo_id}" + (f"/{self.name}" if self.name else "") + (f"@{rev}" if rev else "")


def parse_hub_spec(spec: str) -> HubRef:
    """``hf://owner/repo[/NAME][@revision]`` -> parts (NAME picks one model of a multi-model repository)."""
    body = spec[len("hf://"):] if spec.startswith("hf://") else spec
    body, _, revision = body.partition("@")
    parts = [p for p in body.split("/")]
    if len(parts) not in (2, 3) or not all(parts) or not REPO_RE.match("/".join(parts[:2])):
        raise InputError(f"invalid Hub weights '{spec}': use hf://owner/repo or hf://owner/repo/NAME, optionally with @revision")
    if "@" in spec and not revision:
        raise InputError(f"invalid Hub weights '{spec}': empty revision after '@'")
    return HubRef("/".join(parts[:2]), parts[2] if len(parts) == 3 else None, revision or None)


def hub_storage(repo_id: str) -> Path:
    return hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))


def cached_commit(storage: Path, revision: str | None) -> str | None:
    rev = revision or "main"
    if COMMIT_RE.match(rev):
        return rev
    ref = storage / "refs" / rev
    if ref.is_file():
        value = ref.read_text().strip()
        return value if COMMIT_RE.match(value) else None
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


def _hub_error(exc: Exception, ref: HubRef) -> WeightsError:
    from huggingface_hub import errors as e

    where = endpoint() or "the Hugging Face Hub"
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


def _offline_message(ref: HubRef) -> str:
    return (f"{ref.spec()} is not in the cache ({hub_cache_dir()}) and HF_HUB_OFFLINE=1 forbids downloading: run"
            f" 'mmtumor weights pull {ref.spec()}' once with network access (HF_HUB_OFFLINE unset, same MMTUMOR_HOME),"
            " or pass a local folder with --weights PATH")


def _resolve_cached(ref: HubRef) -> ResolvedWeights | None:
    storage = hub_storage(ref.repo_id)
    commit = cached_commit(storage, ref.revision)
    if commit is None:
        return None
    snap = storage / "snapshots" / commit
    if not (snap / MANIFEST).is_file():
        return None
    entry = pick_entry(read_manifest(snap), ref.name, ref.spec())
    checks = check_entry(snap, entry)
    if any(c.problem == "missing" for c in checks):
        return None  # an earlier download stopped half-way: fetch again
    if not all(c.ok for c in checks):
        _purge_commit(storage, commit)
        if offline():
            raise_on_bad(checks, f"the cache of {ref.spec()}")
        return None
    return resolved_from_entry(snap, entry, "hub", ref.spec(commit), commit)


@contextmanager
def quiet_hub():
    """huggingface_hub logs every HTTP retry as a warning line; the user gets our one line at the end instead."""
    from huggingface_hub.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def check_reachable(url: str | None, timeout: float = 3.0) -> None:
    """Fail in seconds, not after half a minute of retries, when the Hub's host cannot be reached at all (no
    network, a wrong HF_ENDPOINT). Skipped behind a proxy, where a direct connection proves nothing."""
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return
    parsed = urlparse(url or "https://huggingface.co")
    host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    if not host:
        return
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise WeightsError(f"cannot reach {url or 'the Hugging Face Hub'} ({exc.strerror or type(exc).__name__}): check "
                           "the network or HF_ENDPOINT, or use a local folder with --weights PATH") from None


def _download(ref: HubRef) -> ResolvedWeights:
    with quiet_hub():
        check_reachable(endpoint())
        return _download_quietly(ref)


def _download_quietly(ref: HubRef) -> ResolvedWeights:
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors as e

    storage = hub_storage(ref.repo_id)
    kw = {"repo_id": ref.repo_id, "cache_dir": str(hub_cache_dir()), "endpoint": endpoint()}
    try:
        mpath = Path(hf_hub_download(filename=MANIFEST, revision=ref.revision, **kw))
        commit = mpath.parent.name
        entry = pick_entry(read_manifest(mpath.parent), ref.name, ref.spec())
        for fname in entry["files"]:
            hf_hub_download(filename=fname, revision=commit, **kw)
        card = entry.get("card")
        if card:
            try:
                hf_hub_download(filename=safe_rel(card), revision=commit, **kw)
            except e.RemoteEntryNotFoundError:
                pass  # a card is documentation: its absence never blocks loading
    except (e.HfHubHTTPError, e.LocalEntryNotFoundError, e.OfflineModeIsEnabled) as exc:
        raise _hub_error(exc, ref) from None
    except OSError as exc:
        raise WeightsError(f"download of {ref.spec()} failed: {exc}") from None
    snap = mpath.parent
    checks = check_entry(snap, entry)
    if not all(c.ok for c in checks):
        _purge_commit(storage, commit)
        raise_on_bad(checks, f"{ref.spec(commit)} (downloaded files removed)")
    return resolved_from_entry(snap, entry, "hub", ref.spec(commit), commit)


def resolve_hub(spec: str, refresh: bool) -> ResolvedWeights:
    ref = parse_hub_spec(spec)
    if not refresh or offline():
        cached = _resolve_cached(ref)
        if cached is not None:
            return cached
    if offline():
        raise OfflineError(_offline_message(ref))
    return _download(ref)


def cached_hub_models() -> list[ModelInfo]:
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
                    info = model_info(snap, entry, "hub", spec, False)
                    info.description = (info.description + f" (ref {refs[snap.name]})").strip() if snap.name in refs else info.description
                    out.append(info)
    return out


def _hub_readme(folder: Path, manifest: dict) -> str:
    cards = []
    for entry in manifest["models"]:
        card = entry.get("card")
        if card and (folder / safe_rel(card)).is_file():
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
    if not REPO_RE.match(repo_id or ""):
        raise InputError(f"invalid repository id '{repo_id}': use owner/name")
    if not folder.is_dir():
        raise InputError(f"folder not found: {folder}")
    if not (folder / MANIFEST).is_file():
        raise InputError(f"{folder} has no {MANIFEST}: export a run first ('mmtumor weights export')")
    manifest = read_manifest(folder)
    checks = [c for e in manifest["models"] for c in check_entry(folder, e)]
    raise_on_bad(checks, str(folder))
    if offline():
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
        api = HfApi(endpoint=endpoint(), token=token)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            info = api.upload_folder(repo_id=repo_id, folder_path=str(stage), revision=revision,
                                     commit_message=commit_message or f"mmtumor weights: {', '.join(m['name'] for m in manifest['models'])}")
        except (e.HfHubHTTPError, OSError, ValueError) as exc:
            raise WeightsError(f"push to {repo_id} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return str(getattr(info, "commit_url", info))
