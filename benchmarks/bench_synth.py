"""Speed of the phantom generator: one 240x240x155 case on one core (target <= 5 s).

Usage: python benchmarks/bench_synth.py [--cases 5] [--shape 240 240 155] [--out docs/bench-synth.md]

Reports per case the CPU time of this process (``time.process_time``: what one core spends, robust to other
jobs on a shared machine) and the wall-clock time, after a warm-up case that pays the one-time template
preparation (also reported). BLAS is limited to one thread by the generator itself. Writing NIfTI files
(gzip) is timed separately.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from common import header_lines, write_doc  # benchmarks/common.py (the script's own folder)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=5)
    ap.add_argument("--shape", type=int, nargs=3, default=[240, 240, 155])
    ap.add_argument("--randomize", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("docs/bench-synth.md"))
    args = ap.parse_args()
    shape = tuple(args.shape)

    from mmtumor.synth import anatomy
    from mmtumor.synth.generate import generate_case, write_case
    from mmtumor.synth.tumour import load_real_shapes

    t0, w0 = time.process_time(), time.perf_counter()
    anatomy.load_templates()
    load_real_shapes()
    prep = (time.process_time() - t0, time.perf_counter() - w0)
    generate_case(1000, shape, args.randomize)  # warm-up
    cpu, wall, write_cpu = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.cases):
            t, w = time.process_time(), time.perf_counter()
            case = generate_case(i, shape, args.randomize)
            cpu.append(time.process_time() - t)
            wall.append(time.perf_counter() - w)
            t = time.process_time()
            write_case(case, Path(tmp), f"bench_{i}", "brats2020")
            write_cpu.append(time.process_time() - t)
    command = (f"python benchmarks/bench_synth.py --cases {args.cases} --shape {' '.join(map(str, shape))}"
               f"{' --randomize' if args.randomize else ''}")
    lines = header_lines("Phantom generator speed (`benchmarks/bench_synth.py`)", command) + [
        f"- numpy {np.__version__}; one process, BLAS limited to 1 thread; times after one warm-up case",
        "",
        "| what | CPU s (one core) | wall s |",
        "|---|---|---|",
        f"| one-time template preparation (MNI maps, sulci, real shapes) | {prep[0]:.2f} | {prep[1]:.2f} |",
        f"| generate one {'x'.join(map(str, shape))} case, median of {args.cases} | {statistics.median(cpu):.2f} "
        f"| {statistics.median(wall):.2f} |",
        f"| generate, min / max | {min(cpu):.2f} / {max(cpu):.2f} | {min(wall):.2f} / {max(wall):.2f} |",
        f"| write 4 modalities + label as .nii.gz (gzip), median | {statistics.median(write_cpu):.2f} | |",
        "",
        f"Target: <= 5 s per 240x240x155 case on one core -> {'met' if statistics.median(cpu) <= 5 else 'NOT met'} "
        "(CPU time; wall time is higher when other jobs share the cores).",
        "",
    ]
    write_doc(args.out, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
