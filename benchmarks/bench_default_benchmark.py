"""Wall time of the no-argument `mmtumor benchmark` (held-out phantoms + bundled weights) on this machine.
Writes docs/bench-benchmark.md. Target (issue 8): under 15 minutes on this CPU.

    python benchmarks/bench_default_benchmark.py
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT_MD = Path(__file__).resolve().parents[1] / "docs" / "bench-benchmark.md"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "mmtumor", "benchmark", "-o", tmp, "-q", "--device", "cpu"],
                              capture_output=True, text=True)
        minutes = (time.perf_counter() - t0) / 60
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        files = sorted(p.name for p in Path(tmp).iterdir() if p.is_file())
    from mmtumor.benchmark import DEFAULT_PHANTOM_CASES
    from mmtumor.weights import list_models

    models = [m.name for m in list_models() if m.source == "bundled"]
    OUT_MD.write_text(
        "# Default `mmtumor benchmark` (`benchmarks/bench_default_benchmark.py`)\n\n"
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"CPU only; load average at the end {os.getloadavg()[0]:.1f}\n"
        f"- command: `mmtumor benchmark -o DIR --device cpu` (generates {DEFAULT_PHANTOM_CASES} held-out 240x240x155 phantoms, "
        f"all 15 subsets, every bundled model: {len(models)}, {', '.join(models)})\n\n"
        f"Wall time: **{minutes:.1f} min** (target < 15 min), phantom generation included. Files written: {', '.join(files)}.\n")
    print(f"{minutes:.1f} min")


if __name__ == "__main__":
    main()
