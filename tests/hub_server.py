"""A tiny stand-in for the Hugging Face Hub on 127.0.0.1, for tests of the real ``huggingface_hub`` download path.

It answers the endpoints ``hf_hub_download`` / ``snapshot_download`` / ``HfApi.upload_folder`` use, with the
headers they rely on (from reading huggingface_hub's ``file_download.py``, ``utils/_http.py`` and
``_commit_api.py``):

- ``HEAD|GET /{repo}/resolve/{revision}/{path}``: ``X-Repo-Commit`` (commit hash), ``ETag`` (git blob SHA-1 for
  small files), ``Content-Length``; for LFS-like files (``*.safetensors``) a ``302`` whose ``Location`` is a
  second server (the "CDN", another origin, so the client does not follow it on HEAD) with ``X-Linked-Etag``
  (SHA-256) and ``X-Linked-Size``. Errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound).
- ``GET /api/models/{repo}[/revision/{rev}]`` and ``/api/models/{repo}/tree/{rev}`` for snapshot_download.
- ``POST /api/repos/create``, ``/api/models/{repo}/preupload/{rev}``, ``/api/models/{repo}/commit/{rev}``,
  ``/api/models/{repo}/branch/{branch}`` for uploads (every file as a "regular" base64 upload).

Every request is logged in ``hub.requests`` so tests can prove that a cached resolve makes none.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> {path: bytes}
    refs: dict[str, str] = field(default_factory=dict)  # branch/tag -> commit
    served: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (commit, path) -> tampered content


class FakeHub:
    """Start with ``with FakeHub() as hub:``; ``hub.endpoint`` is the value for ``HF_ENDPOINT``."""

    lfs_suffixes = (".safetensors", ".bin", ".pt")

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._blobs: dict[str, bytes] = {}  # sha256 -> content, served by the CDN
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ repository content
    def add_commit(self, repo_id: str, files: dict[str, bytes], branch: str = "main", tags: tuple[str, ...] = (),
                   keep_parent: bool = True) -> str:
        """New commit on ``branch`` (files added to the parent's); returns its 40-hex hash."""
        with self._lock:
            repo = self.repos.setdefault(repo_id, Repo())
            parent = repo.refs.get(branch)
            content = dict(repo.commits[parent]) if (parent and keep_parent) else {}
            content.update(files)
            digest = hashlib.sha1(json.dumps([parent, sorted((k, git_blob_sha1(v)) for k, v in content.items())]).encode())
            commit = digest.hexdigest()
            repo.commits[commit] = content
            repo.refs[branch] = commit
            for tag in tags:
                repo.refs[tag] = commit
            return commit

    def tamper(self, repo_id: str, path: str, data: bytes, revision: str = "main") -> None:
        """Serve ``data`` for ``path`` (with self-consistent ETag/size) while the repo's manifest says otherwise."""
        repo = self.repos[repo_id]
        commit = repo.refs.get(revision, revision)
        repo.served[(commit, path)] = data

    def count(self, prefix: str = "") -> int:
        return sum(1 for _m, p in self.requests if p.startswith(prefix))

    # ------------------------------------------------------------------ server lifecycle
    def __enter__(self) -> FakeHub:
        hub_handler = type("HubHandler", (_Handler,), {"hub": self, "role": "hub"})
        cdn_handler = type("CdnHandler", (_Handler,), {"hub": self, "role": "cdn"})
        for handler in (hub_handler, cdn_handler):
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    # ------------------------------------------------------------------ lookups used by the handler
    def _commit(self, repo_id: str, revision: str) -> tuple[Repo | None, str | None]:
        repo = self.repos.get(repo_id)
        if repo is None:
            return None, None
        commit = repo.refs.get(revision) or (revision if revision in repo.commits else None)
        return repo, commit

    def _content(self, repo: Repo, commit: str, path: str) -> bytes | None:
        if (commit, path) in repo.served:
            return repo.served[(commit, path)]
        return repo.commits[commit].get(path)


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    role: str
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    # ------------------------------------------------------------------ plumbing
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
        self._json({"error": message}, status, {"X-Error-Code": code, "X-Error-Message": message, **(extra or {})})

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _record(self) -> None:
        with self.hub._lock:
            self.hub.requests.append((self.command, ("/cdn" if self.role == "cdn" else "") + self.path))

    # ------------------------------------------------------------------ verbs
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self._record()
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if self.role == "cdn":
            return self._cdn(parts)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]))
        if len(parts) >= 4 and parts[:2] == ["api", "models"]:
            repo_id = "/".join(parts[2:4])
            rest = parts[4:]
            if not rest or rest[0] == "revision":
                return self._info(repo_id, rest[1] if len(rest) > 1 else "main")
            if rest[0] == "tree" and len(rest) >= 2:
                return self._tree(repo_id, rest[1], "/".join(rest[2:]))
        self._error(404, "NotFound", f"no route for {url.path}")

    def do_POST(self) -> None:
        self._record()
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
        body = self._body()
        if parts == ["api", "validate-yaml"]:
            return self._json({"errors": [], "warnings": []})
        if parts == ["api", "repos", "create"]:
            req = json.loads(body or b"{}")
            repo_id = f"{req.get('organization') or 'user'}/{req['name']}" if "/" not in req["name"] else req["name"]
            with self.hub._lock:
                exists = repo_id in self.hub.repos
                self.hub.repos.setdefault(repo_id, Repo())
            body = {"url": f"{self.hub.endpoint}/{repo_id}", "name": repo_id, "id": repo_id}
            if exists:  # like the Hub: 409 whose body still carries the url
                return self._json({**body, "error": "You already created this model repo"}, 409)
            return self._json(body)
        if len(parts) >= 6 and parts[:2] == ["api", "models"]:
            repo_id, action, rev = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
            if action == "preupload":
                files = json.loads(body)["files"]
                return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
            if action == "commit":
                return self._commit(repo_id, rev, body)
            if action == "branch":
                repo = self.hub.repos.get(repo_id)
                if repo is None:
                    return self._error(404, "RepoNotFound", "Repository not found")
                repo.refs.setdefault(rev, repo.refs.get("main", ""))
                return self._json({})
        self._error(404, "NotFound", f"no route for {self.path}")

    # ------------------------------------------------------------------ endpoints
    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        repo, commit = self.hub._commit(repo_id, revision)
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found")
        if commit is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        data = self.hub._content(repo, commit, path)
        if data is None:
            return self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit})
        if path.endswith(FakeHub.lfs_suffixes):
            sha = hashlib.sha256(data).hexdigest()
            with self.hub._lock:
                self.hub._blobs[sha] = data
            location = f"{self.hub.cdn}/lfs/{sha}?name={quote(path)}"
            return self._send(302, b"", {"Location": location, "X-Repo-Commit": commit, "X-Linked-Etag": f'"{sha}"',
                                         "X-Linked-Size": str(len(data)), "ETag": f'"{git_blob_sha1(data)}"'})
        self._send(200, data, {"ETag": f'"{git_blob_sha1(data)}"', "X-Repo-Commit": commit,
                               "Content-Type": "application/octet-stream"})

    def _cdn(self, parts: list[str]) -> None:
        if len(parts) != 2 or parts[0] != "lfs" or parts[1] not in self.hub._blobs:
            return self._send(404, b"NoSuchKey")
        data = self.hub._blobs[parts[1]]
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng[6:].split("-")[0].isdigit():
            start = int(rng[6:].split("-")[0])
            return self._send(206, data[start:], {"ETag": f'"{parts[1]}"', "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        self._send(200, data, {"ETag": f'"{parts[1]}"', "Content-Type": "application/octet-stream"})

    def _info(self, repo_id: str, revision: str) -> None:
        repo, commit = self.hub._commit(repo_id, revision)
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found")
        if commit is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        files = sorted(repo.commits[commit])
        self._json({"id": repo_id, "modelId": repo_id, "sha": commit, "private": False, "disabled": False,
                    "siblings": [{"rfilename": f} for f in files], "tags": [], "downloads": 0, "likes": 0})

    def _tree(self, repo_id: str, revision: str, prefix: str) -> None:
        repo, commit = self.hub._commit(repo_id, revision)
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found")
        if commit is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        out = []
        for path in sorted(repo.commits[commit]):
            if prefix and not path.startswith(prefix.rstrip("/") + "/"):
                continue
            data = self.hub._content(repo, commit, path)
            item = {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path}
            if path.endswith(FakeHub.lfs_suffixes):
                item["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            out.append(item)
        self._json(out)

    def _commit(self, repo_id: str, revision: str, body: bytes) -> None:
        if repo_id not in self.hub.repos:
            return self._error(404, "RepoNotFound", "Repository not found")
        files: dict[str, bytes] = {}
        for line in body.splitlines():
            item = json.loads(line)
            if item.get("key") == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item.get("key") in ("lfsFile", "deletedFile", "deletedFolder"):
                return self._error(400, "BadRequest", f"fake hub does not support {item['key']}")
        commit = self.hub.add_commit(repo_id, files, branch=revision or "main")
        self._json({"commitUrl": f"{self.hub.endpoint}/{repo_id}/commit/{commit}", "commitOid": commit,
                    "pullRequestUrl": None})


__all__ = ["FakeHub", "git_blob_sha1"]
