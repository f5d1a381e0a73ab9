"""Small-ET relabelling: how ET Dice depends on ``--min-et-voxels`` (docs/bench-et-threshold.md).

    python benchmarks/bench_et_threshold.py [--weights default] [--cases 10] [--work runs/bench-models]

Each (case, subset) is predicted once through the benchmark's own path (island removal as `segment` does, no ET
relabelling), then ET is scored after `mmtumor.metrics.relabel_small_et` at every threshold. Sets:
- the held-out phantoms of `bench_models.py` (cases 0..N-1 of seed 900000, 240x240x155 at 1 mm), all 15 subsets;
- the labelled real cases (BraTS 2013, T1c and FLAIR only): T1c, FLAIR and T1c+FLAIR. Validation only.
Why a threshold at all: BraTS scores a case without enhancing tumour as Dice 1 when no ET is predicted and 0 for any
false ET, so a few stray ET voxels in a non-enhancing tumour cost a whole case. The price is that a true ET smaller
than the threshold becomes NCR (still counted in TC and WT).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from common import header_lines, write_doc  # benchmarks/common.py (the script's own folder)

ROOT = Path(__file__).resolve().parents[1]
OUT_MD = ROOT / "docs" / "bench-et-threshold.md"
REAL = ROOT.parent / "shared" / "data" / "real" / "brats2013-flair-t1c"
THRESHOLDS = (0, 50, 100, 200, 300, 500, 1000)


def score_rows(rows: list[dict], thresholds, keep=lambda r: True) -> list[float]:
    """ET Dice per threshold: mean over subsets of the mean over cases (the benchmark's weighting)."""
    rows = [r for r in rows if keep(r)]
    if not rows:
        return [float("nan")] * len(thresholds)
    subsets = sorted({r["subset"] for r in rows})
    out = []
    for t in thresholds:
        per = [np.mean([r["et"][str(t)] for r in rows if r["subset"] == s]) for s in subsets]
        out.append(float(np.mean(per)))
    return out


def main() -> None:
    import torch

    from mmtumor.benchmark import BenchmarkOptions, default_phantoms, predict_subset
    from mmtumor.io.dataset import find_cases, load_case
    from mmtumor.labels import ET, labels_to_regions
    from mmtumor.metrics import dice, volumes_ml
    from mmtumor.postprocess import DEFAULT_MIN_ET_VOXELS, relabel_small_et
    from mmtumor.modalities import SUBSETS, parse_subsets
    from mmtumor.weights import load_model, resolve

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="default")
    ap.add_argument("--cases", type=int, default=10, help="held-out phantoms, as bench_models.py")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-models", help="phantoms are shared with bench_models.py")
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not args.real.is_dir():
        sys.exit(f"real validation cases not found: {args.real}")
    torch.set_num_threads(args.threads)
    rw = resolve(None if args.weights == "default" else args.weights)
    model, meta = load_model(rw, device="cpu")
    opts = BenchmarkOptions(device="cpu", min_et_voxels=0)  # relabelled below, at every threshold
    t0 = time.perf_counter()
    rows: list[dict] = []

    def sweep(folder: Path, subsets, tag: str) -> None:
        for case in find_cases(folder, require_label=True):
            lc = load_case(case)
            ref_et = labels_to_regions(lc.label)[2].astype(bool)
            true_et_ml = volumes_ml(lc.label, lc.affine)["ET"]
            for s in subsets:
                pred = predict_subset(model, meta, lc.image, lc.present, lc.affine, s, "cpu", opts)
                et = {str(t): dice(labels_to_regions(relabel_small_et(pred, t))[2].astype(bool), ref_et) for t in THRESHOLDS}
                rows.append({"set": tag, "case": case.case_id, "subset": s.code, "true_et_voxels": int(ref_et.sum()),
                             "true_et_ml": round(true_et_ml, 2),
                             "pred_et_voxels": int((pred == ET).sum()), "et": et})
            print(tag, case.case_id, flush=True)

    sweep(args.real, parse_subsets("0100,0001,0101"), "real")
    sweep(default_phantoms(args.work / "phantoms", n=args.cases), SUBSETS, "phantom")
    minutes = (time.perf_counter() - t0) / 60
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / f"et-threshold-{rw.name}.json").write_text(json.dumps(rows))

    ph = [r for r in rows if r["set"] == "phantom"]
    n_ph = len({r["case"] for r in ph})
    n_flat = len({r["case"] for r in ph if r["true_et_voxels"] == 0})
    n_real = len({r["case"] for r in rows if r["set"] == "real"})
    cols = {
        f"phantoms, 15 subsets ({n_ph})": score_rows(ph, THRESHOLDS),
        "phantoms, subsets with T1c": score_rows(ph, THRESHOLDS, lambda r: r["subset"][1] == "1"),
        f"phantoms without ET ({n_flat})": score_rows(ph, THRESHOLDS, lambda r: r["true_et_voxels"] == 0),
        f"phantoms with ET ({n_ph - n_flat})": score_rows(ph, THRESHOLDS, lambda r: r["true_et_voxels"] > 0),
    }
    for code, name in (("0101", "T1c+FLAIR"), ("0100", "T1c"), ("0001", "FLAIR")):
        cols[f"real {name} ({n_real})"] = score_rows(rows, THRESHOLDS, lambda r, c=code: r["set"] == "real" and r["subset"] == c)
    real_true = [r["true_et_ml"] for r in rows if r["set"] == "real" and r["subset"] == "0101"]
    real_pred = {c: [r["pred_et_voxels"] for r in rows if r["set"] == "real" and r["subset"] == c] for c in ("0101", "0100", "0001")}
    lines = header_lines("Small-ET relabelling threshold (`benchmarks/bench_et_threshold.py`)",
                         f"python benchmarks/bench_et_threshold.py --weights {args.weights} --cases {args.cases}") + [
             f"- run: {args.threads} torch threads, CPU; {minutes:.1f} min",
             f"- weights: {rw.name}; island removal {opts.min_component_fraction:g} as `segment` does; then ET relabelled "
             "to NCR when the whole ET has fewer voxels than the threshold, on the 1 mm grid",
             f"- `segment` and `benchmark` default: `--min-et-voxels {DEFAULT_MIN_ET_VOXELS}`",
             "- ET Dice, mean over subsets of the mean over cases; a case without ET scores 1 when none is predicted",
             f"- real cases (true ET {min(real_true):g}-{max(real_true):g} mL): predicted ET " + ", ".join(
                 f"{n} {min(v)}-{max(v)} voxels" for n, v in zip(("T1c+FLAIR", "T1c", "FLAIR"), real_pred.values()))
             + "; they can show a price of the threshold, not its gain", "",
             "| threshold (voxels) | " + " | ".join(cols) + " |", "|--:|" + "--:|" * len(cols)]
    for i, t in enumerate(THRESHOLDS):
        mark = " (default)" if t == DEFAULT_MIN_ET_VOXELS else (" (off)" if t == 0 else "")
        lines.append(f"| {t}{mark} | " + " | ".join(f"{v[i]:.3f}" for v in cols.values()) + " |")
    write_doc(OUT_MD, lines)
    print(f"wrote {OUT_MD}")


if __name__ == "__main__":
    main()
