"""Training-step time of a method/preset on this machine, data loading included (writes docs/bench-train.md).

    python benchmarks/bench_train.py --method a2fseg --preset tiny --patch 48 48 48 --batch 2 --iters 20

Runs the real trainer on generated phantoms and reports seconds per step, the share of time spent waiting for data
and peak memory. The issue-6 GPU target (A2FSeg paper preset, 128^3, batch 1, bf16, <= 0.25 s/step on an H100) needs
a lent GPU: run the same command with --device cuda --preset paper --patch 128 128 128 --batch 1 there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import tempfile
from pathlib import Path

from common import header_lines, write_doc  # benchmarks/common.py (the script's own folder)

ROOT = Path(__file__).resolve().parents[1]
OUT_MD = ROOT / "docs" / "bench-train.md"
TABLE_HEAD = "| method | preset | patch | batch | device | s/step | waiting for data | peak RSS MB | when | command |"


def table_so_far(previous: str) -> list[str]:
    """The measurements table of the previous page (header, rows and anything after it); a fresh table if none."""
    start = previous.find(TABLE_HEAD)
    if start < 0:
        return [TABLE_HEAD, "|---|---|---|---|---|---|---|---|---|---|"]
    return previous[start:].rstrip("\n").split("\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="a2fseg")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--patch", type=int, nargs=3, default=(48, 48, 48))
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    import torch

    from mmtumor.synth import write_dataset
    from mmtumor.train.config import resolve_config
    from mmtumor.train.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_dataset(data, 6, seed=5, shape=(120, 120, 78))
        cfg = resolve_config(args.method, data, Path(tmp) / "run", None, preset=args.preset, epochs=2, iters_per_epoch=args.iters,
                             patch=tuple(args.patch), batch=args.batch, device=args.device, workers=1, val_every=0,
                             cache_dir=str(Path(tmp) / "cache"))
        hist = Trainer(cfg, quiet=True).fit().history
    rec = hist[-1]  # second epoch: warm
    sec = rec["seconds"] / args.iters
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    command = (f"python benchmarks/bench_train.py --method {args.method} --preset {args.preset} --patch "
               f"{' '.join(map(str, args.patch))} --batch {args.batch} --iters {args.iters}")
    row = (f"| {args.method} | {args.preset} | {'x'.join(map(str, args.patch))} | {args.batch} | {args.device} "
           f"({torch.get_num_threads()} threads) | {sec:.2f} | {rec['data_fraction']:.0%} | {peak:.0f} | "
           f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M}, load {os.getloadavg()[0]:.1f} | `{command}` |")
    print(row)
    lines = header_lines("Training step time (`benchmarks/bench_train.py`)", command) + [
        "",
        "Seconds per optimiser step of the real trainer (augmentation on the device, one DataLoader worker), second epoch. "
        "The header gives the latest run; every row carries its own date, load and command. GPU: this script has not "
        "been run on one; the GPU stages of the bundled weights (one H100, 2026-11-23) logged 2-5 steps/s per training "
        "for the tiny models at batch 8 (docs/training.md), far below the GPU's capacity.",
        "",
    ]
    previous = OUT_MD.read_text() if OUT_MD.exists() else ""
    write_doc(OUT_MD, lines + table_so_far(previous) + [row])


if __name__ == "__main__":
    main()
