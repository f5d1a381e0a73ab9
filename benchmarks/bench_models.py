"""Accuracy of every bundled model: the 15-subset table on held-out phantoms and the Dice on the real FLAIR+T1c
validation cases; writes docs/bench-models.md and (with --update-cards) the figures into the model cards, which is
where `mmtumor segment` reads the expected Dice for the user's modality subset from.

    python benchmarks/bench_models.py --update-cards            # all bundled models
    python benchmarks/bench_models.py --cases 10 --weights weights/a2fseg-cpu.safetensors
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import header_lines, write_doc  # benchmarks/common.py (the script's own folder)

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real" / "brats2013-flair-t1c"
OUT_MD = ROOT / "docs" / "bench-models.md"


def group_means(records: list[dict], model: str, key: str) -> dict[str, dict[str, float]]:
    """One model's mean Dice per region, grouped by ``key`` ("subset_code": over cases; "case_id": over subsets)."""
    acc: dict[str, dict[str, list[float]]] = {}
    for r in records:
        if r["method"] == model:
            acc.setdefault(r[key], {}).setdefault(r["region"], []).append(r["dice"])
    return {k: {reg: sum(v) / len(v) for reg, v in regs.items()} for k, regs in acc.items()}


def per_subset_means(records: list[dict], model: str) -> dict[str, dict[str, float]]:
    return {code: {reg: round(d, 4) for reg, d in regs.items()} for code, regs in group_means(records, model, "subset_code").items()}


def per_case_table(phantom: list[dict], folder: Path, model: str) -> list[str]:
    """The held-out cases' tumour sizes beside one model's per-case Dice (mean over the 15 subsets), so the
    reader sees how much the mean depends on small lesions (Dice of a 1 mL lesion is unforgiving)."""
    per_case = group_means(phantom, model, "case_id")
    out = [f"## Held-out phantom cases: tumour size and {model} Dice per case", "",
           "Volumes from each case's metadata.json; Dice: mean over the 15 subsets for that case. ET Dice is 1 for a "
           "non-enhancing case only when the model predicts no ET at all.", "",
           "| case | WT mL | TC mL | ET mL | WT | TC | ET |", "|---|--:|--:|--:|--:|--:|--:|"]
    for cid, d in sorted(per_case.items()):
        meta = folder / cid / "metadata.json"
        vol = json.loads(meta.read_text()).get("volumes_ml", {}) if meta.exists() else {}
        out.append(f"| {cid} | " + " | ".join(f"{vol.get(r, float('nan')):.1f}" for r in ("WT", "TC", "ET")) + " | "
                   + " | ".join(f"{d.get(r, float('nan')):.3f}" for r in ("WT", "TC", "ET")) + " |")
    return out + [""]


def summary_table(phantom: list[dict], real: list[dict] | None, specs: list[str]) -> list[str]:
    """One row per model: mean over the 15 subsets on phantoms, T1c+FLAIR on the real cases, file size."""
    from mmtumor.weights import resolve

    out = ["## Summary", "", "Dice, mean over cases. Phantoms: unweighted mean over the 15 subsets. Real: BraTS 2013, T1c+FLAIR.", "",
           "| model | method | MB | phantoms WT | TC | ET | real WT | TC | ET |", "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for spec in specs:
        rw = resolve(spec)
        subs = per_subset_means(phantom, rw.name)
        mean = {r: sum(v[r] for v in subs.values()) / len(subs) for r in ("WT", "TC", "ET")} if subs else {}
        rl = per_subset_means(real, rw.name).get("0101", {}) if real else {}
        mb = rw.weights_path.stat().st_size / 1e6
        cells = [f"{mean.get(r, float('nan')):.3f}" for r in ("WT", "TC", "ET")] + \
                [f"{rl[r]:.3f}" if r in rl else "–" for r in ("WT", "TC", "ET")]
        out.append(f"| {rw.name} | {rw.meta.get('method')} | {mb:.1f} | " + " | ".join(cells) + " |")
    return out + [""]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", nargs="*", default=None, help="default: every bundled model")
    ap.add_argument("--cases", type=int, default=10, help="held-out phantoms (240x240x155); cases 0..N-1 of seed 900000")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-models")
    ap.add_argument("--update-cards", action="store_true")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from mmtumor.api import benchmark
    from mmtumor.benchmark import BenchmarkOptions, default_phantoms
    from mmtumor.weights import bundled_dir, default_model_name, list_models, resolve, update_meta

    specs = args.weights or [m.spec for m in list_models() if m.source == "bundled"]
    t0 = time.perf_counter()
    phantoms = default_phantoms(args.work / "phantoms", n=args.cases)
    ph = benchmark(phantoms, weights=specs, output=args.work / "phantom-report", split="all", device=args.device)
    real = None
    if REAL.exists():
        real = benchmark(REAL, weights=specs, output=args.work / "real-report", split="all", subsets="0101",
                         device=args.device)
    minutes = (time.perf_counter() - t0) / 60
    n_cases = len({r["case_id"] for r in ph.records})
    lines = header_lines("Bundled models: accuracy (`benchmarks/bench_models.py`)",
                         f"python benchmarks/bench_models.py{' --update-cards' if args.update_cards else ''}") + [
             f"- run: {args.device}; total {minutes:.1f} min (results cached in --work by weights SHA-256 are reused)",
             f"- held-out phantoms: {n_cases} cases, 240x240x155 at 1 mm, seeds 900000+ (never used for training), "
             "mean over cases; Dice 1 when prediction and truth are both empty (BraTS convention)",
             f"- post-processing as `segment` does by default: tumour islands under {BenchmarkOptions.min_component_fraction:g} "
             f"of the largest removed, ET totalling under {BenchmarkOptions.min_et_voxels} voxels relabelled NCR", ""]
    lines += summary_table(ph.records, real.records if real else None, specs)
    names, default = [resolve(s).name for s in specs], default_model_name()
    lines += per_case_table(ph.records, phantoms, default if default in names else names[0])
    lines += ["## Held-out phantoms, all 15 subsets", ""]
    rep = (args.work / "phantom-report" / "report.md").read_text()
    lines += [rep.replace("# ", "### ", 1), ""]
    if real:
        lines += ["## Real BraTS 2013 validation cases (T1c+FLAIR only; validation only, never trained on)", "",
                  (args.work / "real-report" / "report.md").read_text().replace("# ", "### ", 1), ""]
    else:
        lines += ["Real validation cases not available on this machine (../shared/data/real).", ""]
    write_doc(OUT_MD, lines)
    print(f"wrote {OUT_MD}")
    if args.update_cards:
        for spec in specs:
            rw = resolve(spec)
            metrics = dict(rw.meta.get("metrics") or {})
            if not str(rw.meta.get("training_data", "")).startswith("real:"):
                # a real-trained card's subset table is its real val Dice (benchmarks/real_weights.py ship): keep it
                metrics["expected_dice"] = per_subset_means(ph.records, rw.name)
                metrics["expected_dice_source"] = f"{n_cases} held-out phantoms, mean over cases, post-processed as segment does"
            if real:
                m = per_subset_means(real.records, rw.name).get("0101")
                if m:
                    # other scripts (bench_clinical_real.py) add their own rows: keep them
                    metrics["real"] = {**(metrics.get("real") or {}), "BraTS2013 T1c+FLAIR (6 cases)": m}
            update_meta(rw.folder if rw.source != "bundled" else bundled_dir(), rw.name, metrics=metrics)
            print(json.dumps({rw.name: metrics.get("real")}))


if __name__ == "__main__":
    main()
