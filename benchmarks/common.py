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


def real_val_parser(description: str, data: Path, work: Path):
    """The options every sweep over the real validation cases shares (weights, data, split, threads, smoke size,
    work folder)."""
    import argparse

    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="default: the bundled default")
    ap.add_argument("--data", type=Path, default=data)
    ap.add_argument("--split", default="val")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-cases", type=int, default=None, help="a smoke run on the first N cases")
    ap.add_argument("--work", type=Path, default=work)
    return ap


def predict_val_cases(args, rw, model, settings, on_prediction) -> list[str]:
    """Predict every (case, modality subset) of ``args.split`` once through the benchmark's path (``segment``'s
    preprocessing and inference core with ``settings``) and hand each to ``on_prediction(case_id, subset_code,
    prediction, preprocessed, truth)``; returns the case ids. The sweep both post-processing pages share. Like
    ``benchmark``, it refuses weights ``rw`` that trained on these cases: they cannot choose its settings."""
    from mmtumor.benchmark import prepare_subset, select_cases
    from mmtumor.infer.core import predict_case
    from mmtumor.io.dataset import load_case
    from mmtumor.modalities import SUBSETS
    from mmtumor.weights.provenance import case_fingerprints, check_unseen

    cases = select_cases(args.data, args.split, args.work, str(args.data / "splits.json"))[: args.max_cases]
    check_unseen(rw.name, rw.meta, case_fingerprints(cases))
    for ci, case in enumerate(cases):
        loaded = load_case(case)
        for subset in SUBSETS:
            prep = prepare_subset(loaded.image, loaded.present, loaded.affine, subset)
            on_prediction(case.case_id, subset.code, predict_case(model, prep.pre, settings, "cpu"), prep.pre,
                          loaded.label)
            print(f"\r{ci + 1}/{len(cases)} {case.case_id} {subset.name:22s}", end="", flush=True)
    print()
    return [c.case_id for c in cases]
