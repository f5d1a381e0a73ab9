"""What every benchmark page shares: the header (date, machine, load, versions, command), a table of the models
measured, and an atomic write of the page. Benchmark scripts use only mmtumor's public API."""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Sequence
from pathlib import Path


def header_lines(title: str, command: str) -> list[str]:
    """``# title`` and the provenance lines every figure needs: when, on what, with which command."""
    import torch

    from mmtumor import __version__

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return [
        f"# {title}",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, mmtumor {__version__}; "
        f"load average at the end {load:.1f}",
        f"- command: `{command}`",
    ]


def models_table(names: Sequence[str] | None = None) -> str:
    """Name, method, size, voxel size and training data of the bundled models (or of ``names`` among them)."""
    from mmtumor.weights import list_models, resolve

    rows = ["| model | method | size (MB) | grid (mm) | trained on |", "|---|---|---|---|---|"]
    for info in list_models():
        if info.source != "bundled" or (names is not None and info.name not in names):
            continue
        meta = resolve(info.name).meta
        data = str(meta.get("training_data") or "?")
        rows.append(f"| {info.name} | {info.method} | {info.size_bytes / 1e6:.2f} | {meta.get('spacing') or 1:g} | "
                    f"{data[:160]}{'…' if len(data) > 160 else ''} |")
    return "\n".join(rows)


def write_doc(path: Path, lines: Sequence[str]) -> Path:
    from mmtumor.io.atomic import write_text_atomic

    return write_text_atomic(path, "\n".join(lines).rstrip() + "\n")
