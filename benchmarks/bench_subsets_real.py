"""Missing modalities on real scans: what a model does when a real case loses modalities (docs/bench-subsets-real.md).

    python benchmarks/bench_subsets_real.py [--weights default] [--real ../shared/data/real]

Phantom tables cover all 15 subsets but phantoms are not patients; the labelled real cases here only have T1c and
FLAIR. Two real-scan views of the missing-modality behaviour, both through the benchmark's own per-subset path
(`mmtumor.benchmark.predict_subset`, post-processing as `segment` does by default):

1. Labelled real cases (BraTS 2013, T1c+FLAIR): Dice for T1c alone, FLAIR alone and both.
2. A real case with all four modalities and no reference (BraTS-GLI-00001-000): every one of the 15 subsets, its
   tumour volumes, and its agreement (Dice) with the model's own 4-modality prediction. Agreement is not accuracy: it
   says how much the answer changes when modalities go missing.
Validation only: nothing here is ever trained on.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from common import header_lines, write_doc  # benchmarks/common.py (the script's own folder)

ROOT = Path(__file__).resolve().parents[1]
OUT_MD = ROOT / "docs" / "bench-subsets-real.md"
REAL = ROOT.parent / "shared" / "data" / "real"


def main() -> None:
    import torch

    from mmtumor.benchmark import BenchmarkOptions, predict_subset
    from mmtumor.io.dataset import find_cases, load_case
    from mmtumor.labels import labels_to_regions
    from mmtumor.metrics import dice, volumes_ml
    from mmtumor.modalities import FULL, SUBSETS, Subset, parse_subsets
    from mmtumor.weights import load_model, resolve

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="default")
    ap.add_argument("--real", type=Path, default=REAL, help="folder with brats2013-flair-t1c/ and BraTS-GLI-00001-000/")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    labelled_dir, full_case_dir = args.real / "brats2013-flair-t1c", args.real / "BraTS-GLI-00001-000"
    if not labelled_dir.is_dir() or not full_case_dir.is_dir():
        sys.exit(f"real validation data not found under {args.real}")
    torch.set_num_threads(args.threads)
    rw = resolve(None if args.weights == "default" else args.weights)
    model, meta = load_model(rw, device="cpu")
    opts = BenchmarkOptions(device="cpu")
    t0 = time.perf_counter()

    # 1. labelled real cases: the subsets they have
    two = parse_subsets("0100,0001,0101")
    dices: dict[str, list[list[float]]] = {s.code: [] for s in two}
    for case in find_cases(labelled_dir, require_label=True):
        lc = load_case(case)
        ref = labels_to_regions(lc.label).astype(bool)
        for s in two:
            pred = labels_to_regions(predict_subset(model, meta, lc.image, lc.present, lc.affine, s, "cpu", opts)).astype(bool)
            dices[s.code].append([dice(pred[i], ref[i]) for i in range(3)])
        print(case.case_id, {c: np.round(v[-1], 3).tolist() for c, v in dices.items()}, flush=True)

    # 2. the 4-modality real case: every subset against the model's own 4-modality answer
    full_case = next(c for c in find_cases(full_case_dir.parent, require_label=False) if c.case_id == full_case_dir.name)
    lc = load_case(full_case)
    if not lc.present.all():
        sys.exit(f"{full_case_dir} does not have all four modalities")
    preds = {s.code: predict_subset(model, meta, lc.image, lc.present, lc.affine, s, "cpu", opts) for s in SUBSETS}
    ref = labels_to_regions(preds[FULL.code]).astype(bool)
    rows = []
    for s in SUBSETS:
        reg = labels_to_regions(preds[s.code]).astype(bool)
        vol = volumes_ml(preds[s.code], lc.affine)
        rows.append((s, [dice(reg[i], ref[i]) for i in range(3)], vol))
        print(s.name, np.round(rows[-1][1], 3).tolist(), vol, flush=True)
    minutes = (time.perf_counter() - t0) / 60

    def mark(s: Subset) -> str:
        return " | ".join("●" if m else "○" for m in s.mask)

    lines = header_lines("Missing modalities on real scans (`benchmarks/bench_subsets_real.py`)",
                         f"python benchmarks/bench_subsets_real.py --weights {args.weights}") + [
             f"- run: {args.threads} torch threads, CPU; {minutes:.1f} min",
             f"- weights: {rw.name}; the benchmark's per-subset path, island removal {opts.min_component_fraction:g} and "
             f"small-ET relabelling {opts.min_et_voxels} voxels as `segment` does",
             "- validation only: these cases are never trained on", "",
             f"## Labelled real cases (BraTS 2013, {len(dices['0101'])} cases): Dice by available modalities", "",
             "| modalities shown | WT | TC | ET |", "|---|--:|--:|--:|"]
    for s in two:
        m = np.mean(dices[s.code], axis=0)
        lines.append(f"| {s.name} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} |")
    lines += ["", f"## One real case with all four modalities ({full_case_dir.name}, no reference)", "",
              "Agreement = Dice between the prediction from the subset and the model's own prediction from all four "
              "modalities. It measures stability under missing modalities, not accuracy.", "",
              "| T1 | T1c | T2 | FLAIR | agree WT | agree TC | agree ET | WT mL | TC mL | ET mL |",
              "|:-:|:-:|:-:|:-:|--:|--:|--:|--:|--:|--:|"]
    for s, ag, vol in rows:
        lines.append(f"| {mark(s)} | {ag[0]:.3f} | {ag[1]:.3f} | {ag[2]:.3f} | {vol['WT']:.1f} | {vol['TC']:.1f} | {vol['ET']:.1f} |")
    mean_ag = np.mean([ag for s, ag, _ in rows if s != FULL], axis=0)
    lines += ["", f"Mean agreement over the 14 incomplete subsets: WT {mean_ag[0]:.3f}, TC {mean_ag[1]:.3f}, ET {mean_ag[2]:.3f}.", ""]
    write_doc(OUT_MD, lines)
    print(f"wrote {OUT_MD}")


if __name__ == "__main__":
    main()
