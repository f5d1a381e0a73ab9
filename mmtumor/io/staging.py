"""All-or-nothing output folders: a run writes into a private staging folder beside its output folder and, only when
everything succeeded, swaps it in with renames; the previous results stay intact until then.

Layout beside ``OUT`` (same parent, so every rename stays on one file system):
``.OUT.staging-<pid>-<token>`` while a run writes, ``.OUT.previous-<token>`` for the moment of the swap. A run
killed at any point leaves either the old ``OUT`` whole or the new one whole; the next run removes staging folders
of processes that are gone and puts back a ``previous`` folder whose swap never finished.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError

#: a file that marks a folder as one mmtumor wrote (so that replacing it as a whole can lose nothing of the user's)
OWNER_FILES = ("report.json",)
#: kept free on the output's file system beyond the expected outputs
FREE_SPACE_MARGIN = 50 * 2**20


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(final: Path) -> list[str]:
    """Clean what killed runs left beside ``final``; returns what was done (for the report)."""
    notes: list[str] = []
    parent = final.parent
    if not parent.is_dir():
        return notes
    for p in parent.glob(f".{final.name}.staging-*"):
        try:
            pid = int(p.name.rsplit(".staging-", 1)[1].split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)
            notes.append(f"removed the staging folder of an interrupted run ({p.name})")
    previous = sorted(parent.glob(f".{final.name}.previous-*"), key=lambda p: p.stat().st_mtime)
    if previous and not final.exists():
        os.rename(previous.pop(), final)  # a swap that was killed between its two renames: the old results come back
        notes.append(f"restored the previous results in {final} (an earlier run was interrupted while replacing them)")
    for p in previous:
        shutil.rmtree(p, ignore_errors=True)
    return notes


def check_output_folder(final: Path, expected_bytes: int = 0) -> None:
    """Fail in well under a second, before any computation, when ``final`` cannot receive the outputs: it is a file,
    lies under a file, is not writable, holds files mmtumor did not write, or the disk is nearly full."""
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise InputError(f"output {final} exists and is a file, not a folder")
    parent = final.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"output {final} cannot be created: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"output {final} cannot be written: no write permission in {probe}")
    if final.is_dir():
        if not os.access(final, os.R_OK | os.W_OK | os.X_OK):
            raise InputError(f"output folder {final} is not writable")
        entries = [p for p in final.iterdir() if not p.name.startswith(".")]
        if entries and not any((final / f).is_file() for f in OWNER_FILES):
            names = ", ".join(sorted(p.name for p in entries)[:3])
            raise InputError(f"output folder {final} already holds files that mmtumor did not write ({names}"
                             f"{', ...' if len(entries) > 3 else ''}); choose a new or empty folder")
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if free < expected_bytes + FREE_SPACE_MARGIN:
        raise InputError(f"not enough free space for the outputs in {probe}: {free / 2**20:.0f} MB free, about "
                         f"{(expected_bytes + FREE_SPACE_MARGIN) / 2**20:.0f} MB needed")


@contextmanager
def staged_folder(final: Path | str) -> Iterator[Path]:
    """Yield a fresh staging folder; on success it replaces ``final`` as a whole, on any error (Ctrl-C and SIGTERM
    included) it is removed and ``final`` is left as it was."""
    final = Path(final)
    recover(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    staging = final.parent / f".{final.name}.staging-{os.getpid()}-{token}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    commit(staging, final, token)


def commit(staging: Path, final: Path, token: str | None = None) -> None:
    """Swap ``staging`` in as ``final``: old results aside, new ones in, old ones removed (``recover`` finishes a swap
    killed half-way)."""
    previous = final.parent / f".{final.name}.previous-{token or secrets.token_hex(4)}"
    if final.exists():
        os.rename(final, previous)
    os.rename(staging, final)
    shutil.rmtree(previous, ignore_errors=True)


def staging_leftovers(folder: Path) -> list[Path]:
    """Staging or half-swapped folders in ``folder`` (what a test or a user checks after an interruption)."""
    return sorted(p for p in Path(folder).iterdir() if p.name.startswith(".") and (".staging-" in p.name or ".previous-" in p.name))
