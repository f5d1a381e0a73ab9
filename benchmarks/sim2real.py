"""Sim-to-real loop: train a method for a fixed budget on phantoms from the current generator, then score Dice on
the real validation cases (../shared/data/real/brats2013-flair-t1c, subset T1c+FLAIR; validation only, never
trained on). Appends one attempt (what changed, the figures, command, machine, date) to docs/bench-sim2real.md.

    python benchmarks/sim2real.py --method a2fseg --note "peak normalisation" [--phantoms DIR | --cases 40]
    python benchmarks/sim2real.py --weights weights/a2fseg-cpu.safetensors --note "bundled default"   # score only
    python benchmarks/sim2real.py --weights weights/a2fseg-cpu.safetensors --tta --note "..."          # with mirroring TTA
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real" / "brats2013-flair-t1c"
OUT_MD = ROOT / "docs" / "bench-sim2real.md"


def add_row(markdown: str, row: str) -> str:
    """The attempts table (the first table) with ``row`` after its last row; notes and tables below it stay below."""
    lines = markdown.splitlines(keepends=True)
    first = next((i for i, ln in enumerate(lines) if ln.startswith("|")), None)
    if first is None:
        return markdown + row
    last = first
    while last + 1 < len(lines) and lines[last + 1].startswith("|"):
        last += 1
    return "".join(lines[: last + 1] + [row if row.endswith("\n") else row + "\n"] + lines[last + 1:])


def score_real(weights: str, report_dir: Path, subsets: str = "0101", tta: bool = False) -> dict:
    from mmtumor.api import benchmark

    res = benchmark(REAL, weights=[weights], output=report_dir, split="all", subsets=subsets, tta=tta)
    agg = {}
    for r in res.records:
        agg.setdefault(r["region"], []).append(r["dice"])
    return {k: round(sum(v) / len(v), 4) for k, v in agg.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="a2fseg")
    ap.add_argument("--weights", help="score these weights only (no training)")
    ap.add_argument("--phantoms", type=Path, help="existing phantom folder (else generated)")
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--shape", type=int, nargs=3, default=(120, 120, 78), help="phantom grid (120 120 78 = ~2 mm)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--patch", type=int, nargs=3, default=(48, 48, 48))
    ap.add_argument("--spacing", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "sim2real")
    ap.add_argument("--note", default="")
    ap.add_argument("--tta", action="store_true", help="score with mirroring test-time augmentation (8 mirrorings)")
    args = ap.parse_args()
    if not REAL.exists():
        raise SystemExit(f"real validation cases not found at {REAL}")
    t0 = time.perf_counter()
    work = args.work
    if args.weights:
        weights = args.weights
        recipe = f"scored existing weights {weights}"
    else:
        from mmtumor import api
        from mmtumor.synth import write_dataset
        from mmtumor.weights import export_run

        data = args.phantoms or work / "phantoms"
        if args.phantoms is None:
            write_dataset(data, args.cases, seed=1000, shape=tuple(args.shape), randomize=True)
        run = work / f"run-{args.method}"
        api.train(data, method=args.method, output=run, preset="tiny", epochs=args.epochs, iters_per_epoch=args.iters,
                  patch=tuple(args.patch), batch=2, lr=args.lr, device=args.device, workers=1, val_every=0,
                  target_spacing=args.spacing, quiet=True)
        weights = str(export_run(run, work / "weights", f"sim2real-{args.method}").weights_path)
        recipe = (f"{args.method} tiny, {args.epochs}x{args.iters} iters, patch {tuple(args.patch)}, {args.spacing} mm, "
                  f"lr {args.lr}, {args.cases} randomized phantoms {tuple(args.shape)}")
    dice = score_real(weights, work / "real-report", tta=args.tta)
    recipe += "; scored with mirroring TTA" if args.tta else ""
    minutes = (time.perf_counter() - t0) / 60
    line = (f"| {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} | {args.note or '-'} | {recipe} | "
            f"{dice.get('WT', float('nan')):.3f} | {dice.get('TC', float('nan')):.3f} | {dice.get('ET', float('nan')):.3f} | "
            f"{minutes:.1f} | {platform.machine()} {platform.processor() or ''} |\n")
    if not OUT_MD.exists():
        OUT_MD.write_text("# Sim-to-real attempts (`benchmarks/sim2real.py`)\n\nDice on the six real BraTS 2013 cases "
                          "(T1c+FLAIR only), mean over cases. Validation only: never trained on.\n\n"
                          "| date (UTC) | what changed | recipe | WT | TC | ET | minutes | machine |\n|---|---|---|---|---|---|---|---|\n")
    OUT_MD.write_text(add_row(OUT_MD.read_text(), line))
    print(json.dumps({"dice": dice, "weights": weights, "minutes": round(minutes, 1)}))


if __name__ == "__main__":
    main()
