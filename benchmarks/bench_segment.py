"""End-to-end `mmtumor segment` time and peak memory on this machine (writes docs/bench-segment.md).

    python benchmarks/bench_segment.py [--case ../shared/data/real/BraTS-GLI-00001-000] [--weights default]

Each configuration runs in a fresh process (`/usr/bin/time`-style peak RSS from resource.getrusage of the child).
Targets: the default <= 60 s per case end to end on this 2-core CPU (issue 27; issue 7 had asked <= 3 min), --fast
<= 60 s, peak RAM <= 8 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import header_lines, write_doc  # benchmarks/common.py (the script's own folder)

ROOT = Path(__file__).resolve().parents[1]
OUT_MD = ROOT / "docs" / "bench-segment.md"


def run(args: list[str]) -> tuple[float, float, dict]:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        proc = subprocess.run([sys.executable, "-m", "mmtumor", "segment", *args, "-o", out, "-q"], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
        if proc.returncode != 0:
            raise SystemExit(f"segment failed: {proc.stderr.strip()}")
        report = json.loads((Path(out) / "report.json").read_text())
    return wall, peak, report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", type=Path, default=ROOT.parent / "shared" / "data" / "real" / "BraTS-GLI-00001-000")
    ap.add_argument("--weights", default=None)
    args = ap.parse_args()
    if not args.case.exists():
        raise SystemExit(f"case not found: {args.case}")
    base = [str(args.case), "--device", "cpu"] + (["--weights", args.weights] if args.weights else [])
    rows = []
    for label, extra in (("default", []),
                         ("--et-modalities all (no second window for enhancing tumour)", ["--et-modalities", "all"]),
                         ("--tta (8 mirrorings)", ["--tta"]), ("--fast", ["--fast"]),
                         ("--fast --no-preview", ["--fast", "--no-preview"])):
        wall, peak, rep = run(base + extra)
        t = rep["timings_s"]
        rows.append(f"| `{label}` | {wall:.1f} | {t.get('preprocess', 0):.1f} | {t.get('inference', 0):.1f} | {peak:.0f} |")
        print(rows[-1], flush=True)
    lines = header_lines("`mmtumor segment` on this machine's CPU (`benchmarks/bench_segment.py`)",
                         f"python benchmarks/bench_segment.py --case {args.case.name}"
                         + (f" --weights {args.weights}" if args.weights else "")) + [
        f"- weights: {rep['weights']['name']}; input: {len(rep['input']['images'])} modalities, BraTS-preprocessed = "
        f"{rep['preprocessing']['brats_preprocessed']}",
        "- wall = whole CLI process (Python start, model load, preprocessing, inference, writing); peak RSS of that process",
        "",
        "| options | wall s | preprocess s | inference s | peak RSS MB |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "Targets: the default <= 60 s per case (issue 27), `--fast` <= 60 s, peak RAM <= 8 GB. GPU figures: not "
        "measured (the only GPU lease, 30 minutes on 2026-11-23, went to training the bundled weights).",
    ]
    write_doc(OUT_MD, lines)
    print(f"wrote {OUT_MD}")


if __name__ == "__main__":
    main()
