"""Wall time of the no-argument `mmtumor benchmark` (held-out phantoms + bundled weights) on this machine.
Writes docs/bench-benchmark.md. Target (issue 8): under 15 minutes on this CPU.

    python benchmarks/bench_default_benchmark.py
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import header_lines, write_doc  # benchmarks/common.py (the script's own folder)

OUT_MD = Path(__file__).resolve().parents[1] / "docs" / "bench-benchmark.md"


def keep_history(previous: str, entry: str) -> str:
    """The hand-annotated 'History on this machine' section of the previous page, with ``entry`` added to its list
    (runs are compared over time, so a new run must not erase the old ones)."""
    start = previous.find("History on this machine")
    if start < 0:
        return f"\nHistory on this machine:\n{entry}\n"
    lines = previous[start:].rstrip("\n").splitlines()
    last = max((i for i, ln in enumerate(lines) if ln.startswith(("- ", "  "))), default=0)  # end of the list
    return "\n" + "\n".join(lines[: last + 1] + [entry] + lines[last + 1:]) + "\n"


def main() -> None:
    old_text = OUT_MD.read_text() if OUT_MD.exists() else ""
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
    when = dt.datetime.now(dt.timezone.utc)
    lines = header_lines("Default `mmtumor benchmark` (`benchmarks/bench_default_benchmark.py`)",
                         "mmtumor benchmark -o DIR --device cpu") + [
        f"- what it runs: generates {DEFAULT_PHANTOM_CASES} held-out 240x240x155 phantoms, all 15 subsets, every bundled "
        f"model: {len(models)}, {', '.join(models)}; CPU only",
        "",
        f"Wall time: **{minutes:.1f} min** (target < 15 min), phantom generation included. Files written: {', '.join(files)}.",
    ]
    history = keep_history(old_text, f"- {when:%Y-%m-%d %H:%M} UTC: **{minutes:.1f} min**, {len(models)} bundled models.")
    write_doc(OUT_MD, lines + history.split("\n"))
    print(f"{minutes:.1f} min")


if __name__ == "__main__":
    main()
