"""Helpers for atomic writes: temp files get the permissions a normal ``open()`` would give (mkstemp makes 0600)."""

from __future__ import annotations

import os


def default_file_mode() -> int:
    """0o666 minus the process umask (read without changing it where the platform allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
