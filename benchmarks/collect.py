"""Assemble docs/benchmarks.md from the per-topic result files the benchmark scripts write (docs/bench-*.md).

    python benchmarks/collect.py

Regenerate every table that depends on the weights (model tables and cards, real-scan score, segment and benchmark
timings), then this page: ``make bench``. Everything, also the weight-independent tables (long; the figures carry
their own machine/command/date lines):
    python benchmarks/bench_synth.py && python benchmarks/bench_convert.py && python benchmarks/bench_preprocess.py \
      && python benchmarks/bench_models.py && python benchmarks/bench_et_threshold.py \
      && python benchmarks/sim2real.py --weights default --note "bundled default" \
      && python benchmarks/bench_subsets_real.py \
      && python benchmarks/collect.py
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
ORDER = ["bench-real.md", "bench-postprocess-real.md", "bench-thresholds-real.md", "bench-models.md", "bench-sim2real.md", "bench-et-threshold.md", "bench-subsets-real.md", "bench-clinical-real.md",
         "bench-synth.md", "bench-convert.md", "bench-preprocess.md", "bench-train.md", "bench-segment.md"]


def main() -> None:
    parts = ["# Benchmarks\n",
             "Every figure here is written by a script in `benchmarks/` with the machine, command and date it ran on. "
             "This page is assembled by `python benchmarks/collect.py`; see that script for the one command that "
             "regenerates everything. No timing here comes from a unit test.\n"]
    names = ORDER + sorted(p.name for p in DOCS.glob("bench-*.md") if p.name not in ORDER)
    for name in names:
        path = DOCS / name
        if path.exists():
            text = path.read_text().strip()
            text = "\n".join(("#" + line) if line.startswith("#") else line for line in text.splitlines())
            parts.append(f"\n{text}\n\n(source: `docs/{name}`)\n")
    (DOCS / "benchmarks.md").write_text("\n".join(parts))
    print(f"wrote {DOCS / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
