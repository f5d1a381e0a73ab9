"""Benchmark: convert a 4-series 240x240x155 DICOM study with mmtumor vs the dcm2niix wheel (wall time).

Usage: python benchmarks/bench_convert.py [--out docs/bench-convert.md] [--repeats 3]
Both tools write gzipped NIfTI; the best of ``repeats`` runs is reported for each.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mmtumor.convert import convert_study
from mmtumor.modalities import Modality
from mmtumor.synth.dicom import write_study

from common import header_lines, write_doc  # benchmarks/common.py (the script's own folder)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/bench-convert.md")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    dcm2niix = shutil.which("dcm2niix", path=str(Path(sys.executable).parent)) or shutil.which("dcm2niix")
    if dcm2niix is None:
        sys.exit("dcm2niix not found (pip install dcm2niix)")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        vols = {m: (np.rint(rng.random((240, 240, 155)) * 1000), np.diag([1.0, 1.0, 1.0, 1.0])) for m in Modality}
        t0 = time.perf_counter()
        write_study(vols, tmp / "study", seed=0, vendor="siemens", distractors=False, vary=False)
        t_write = time.perf_counter() - t0
        n_files = sum(1 for _ in (tmp / "study").rglob("*.dcm"))
        ours, theirs = [], []
        for r in range(args.repeats):
            out = tmp / f"ours{r}"
            t0 = time.perf_counter()
            convert_study(tmp / "study", out)
            ours.append(time.perf_counter() - t0)
            out2 = tmp / f"ref{r}"
            out2.mkdir()
            t0 = time.perf_counter()
            subprocess.run([dcm2niix, "-z", "y", "-o", str(out2), str(tmp / "study")], check=True, capture_output=True)
            theirs.append(time.perf_counter() - t0)
    version = subprocess.run([dcm2niix, "-v"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    a, b = min(ours), min(theirs)
    lines = header_lines("DICOM conversion speed", f"python benchmarks/bench_convert.py --repeats {args.repeats}") + [
        f"- study: 4 MR series (T1, T1c, T2, FLAIR), 240x240x155 each, {n_files} uncompressed files, gzipped NIfTI output",
        "",
        "| tool | best wall time (s) | all runs (s) |",
        "|---|---|---|",
        f"| mmtumor convert (discovery + detection + conversion) | {a:.2f} | {', '.join(f'{x:.2f}' for x in ours)} |",
        f"| dcm2niix {version} `-z y` | {b:.2f} | {', '.join(f'{x:.2f}' for x in theirs)} |",
        "",
        f"Ratio mmtumor / dcm2niix: **{a / b:.2f}x** (target <= 2x).",
        "",
        f"Writing the study with `mmtumor.synth.dicom.write_study` (phantom DICOM writer) took {t_write:.2f} s.",
    ]
    write_doc(Path(args.out), lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
