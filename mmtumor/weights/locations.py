"""Where weights live: the bundled folder, ``$MMTUMOR_HOME`` and its Hub cache; the Hub's offline and endpoint settings
(read when a function runs, never at import time); the format's constants."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..labels import REGIONS  # noqa: F401  (the one region tuple, re-exported for the weights API)

FORMAT = "mmtumor-weights/1"


MANIFEST = "manifest.json"


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


TRUTHY = {"1", "on", "yes", "true"}


INTENDED_USE = "Research use only. Not a medical device; not for diagnosis or treatment decisions."


#: the repository's own weights/ folder (editable install or checkout)
REPO_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


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
        candidates = [REPO_WEIGHTS, Path(sys.prefix) / "share" / "mmtumor" / "weights"]
    for folder in candidates:
        if (folder / MANIFEST).is_file():
            return folder
    return None


def offline() -> bool:
    """HF_HUB_OFFLINE as set now, or as huggingface_hub read it when it was imported."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUTHY:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - hub library broken
        return False


def endpoint() -> str | None:
    value = os.environ.get("HF_ENDPOINT", "").strip()
    return value.rstrip("/") or None


#: methods of combined weights (``weights.ensemble``): their members are listed in the metadata, not trained
COMBINED = ("ensemble", "router")


def members_of(meta: dict) -> list[dict]:
    """The member records of combined weights (ensembles before the router listed them under ``ensemble``)."""
    return list(meta.get("members") or meta.get("ensemble") or [])
