"""Real-data weights: the recipe, and the one command that ships a real-trained run as a bundled model.

    python benchmarks/real_weights.py train NAME [--minutes 95]        # the recipe's training run (runs/real/NAME)
    python benchmarks/real_weights.py keep-phantom                     # a2fseg-cpu -> a2fseg-phantom-cpu (kept, unchanged)
    python benchmarks/real_weights.py ship RUN NAME --report DIR [--default]
        # RUN's best.pt -> weights/NAME, with the training data and its citations, the val Dice per subset from
        # DIR/per_case.csv (a `benchmarks/bench_real.py` sweep of RUN's export) as the card's expected Dice

The training data is ../shared/data/real-train (36 real BraTS 2018-2021 cases, fixed split in splits.json): models
train on the 28 `train` cases only; the 8 `val` cases choose the checkpoint (best.pt) and give the card's figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "real-train"
WEIGHTS = ROOT / "weights"
CITATION = ("Menze et al., IEEE TMI 34(10) 2015; Bakas et al., Scientific Data 4:170117, 2017; Bakas et al., "
            "arXiv:1811.02629, 2018; TCGA-derived cases (TCIA names) under The Cancer Imaging Archive's data usage "
            "policy (TCGA-GBM / TCGA-LGG, CC BY 3.0)")
TRAINING_DATA = ("real: the 28 'train' cases of ../shared/data/real-train (BraTS 2018/2019/2021 training cases with "
                 "expert labels, splits.json), initialised from the phantom-trained a2fseg-cpu (its card: phantoms "
                 "only); the 8 'val' cases chose the checkpoint and were never trained on. Cite: " + CITATION)

# name -> (method, train args); stage 1 of a method starts from its phantom-trained weights, a later stage (NAME-K)
# from the shipped weights of the stage before
RECIPES: dict[str, tuple[str, list[str]]] = {
    "a2fseg-cpu": ("a2fseg", ["--preset", "tiny", "--init-from", "a2fseg-phantom-cpu", "--epochs", "1000",
                              "--iters-per-epoch", "25", "--patch", "64", "64", "64", "--batch", "2", "--lr", "1e-3",
                              "--device", "cpu", "--workers", "1", "--val-every", "8", "--target-spacing", "2",
                              "--dropout-schedule", "uniform"]),
    # stage 2 (session of 2026-12-03): the shipped stage-1 weights continued, lr halved, validated every 6 epochs
    "a2fseg-cpu-2": ("a2fseg", ["--preset", "tiny", "--init-from", "a2fseg-cpu", "--epochs", "1000",
                                "--iters-per-epoch", "25", "--patch", "64", "64", "64", "--batch", "2", "--lr", "5e-4",
                                "--device", "cpu", "--workers", "1", "--val-every", "6", "--target-spacing", "2",
                                "--dropout-schedule", "uniform"]),
}


def train(args) -> None:
    method, extra = RECIPES[args.name]
    run = ROOT / "runs" / "real" / args.name
    cmd = [sys.executable, "-m", "mmtumor", "train", str(DATA), "--split-file", str(DATA / "splits.json"), "--method",
           method, "-o", str(run), "--time-limit", str(args.minutes), *extra, "-q"]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def keep_phantom(args) -> None:
    """The phantom-only default stays bundled under its own name: the before column of every real-data table."""
    from safetensors.torch import load_file

    from mmtumor.weights import resolve
    from mmtumor.weights.export import write_model

    rw = resolve("a2fseg-cpu")
    if "phantoms only" not in str(rw.meta.get("training_data")):
        sys.exit("weights/a2fseg-cpu is not the phantom-only model any more; nothing to keep")
    meta = dict(rw.meta, name="a2fseg-phantom-cpu",
                description="The phantom-only default before real-data training, kept unchanged as the 'before' "
                            "column of the real-data tables. " + rw.meta.get("description", ""))
    write_model(WEIGHTS, "a2fseg-phantom-cpu", load_file(str(rw.weights_path)), meta)
    print("kept weights/a2fseg-phantom-cpu")


def val_dice(report_dir: Path, model: str) -> dict[str, dict[str, float]]:
    """Mean Dice over cases per subset and region, from a benchmark sweep's per_case.csv."""
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    with open(report_dir / "per_case.csv") as f:
        for row in csv.DictReader(f):
            if row["method"] == model:
                acc[(row["subset_code"], row["region"])].append(float(row["dice"]))
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (code, region), values in acc.items():
        out[code][region] = round(sum(values) / len(values), 4)
    return dict(out)


def ship(args) -> None:
    from mmtumor.weights import export_run, resolve

    table = val_dice(Path(args.report), args.bench_name or args.name)
    if len(table) != 15:
        sys.exit(f"{args.report} holds {len(table)} subsets for {args.bench_name or args.name}, not 15")
    cases = json.loads((Path(args.report) / "report.json").read_text())["meta"]["cases"]
    meta = {
        "training_data": TRAINING_DATA,
        "description": args.description,
        "metrics": {"expected_dice": table,
                    "expected_dice_source": f"{cases} real validation cases (splits.json 'val'), mean over cases, "
                                            "post-processed as segment does; these cases chose the checkpoint",
                    "real": {}},
    }
    previous = resolve(args.name).meta if (WEIGHTS / f"{args.name}.json").exists() else {}
    same_kind = str(previous.get("training_data", "")).startswith("real:")  # a phantom model's rows are not ours
    meta["metrics"]["real"] = dict((previous.get("metrics") or {}).get("real") or {}) if same_kind else {}
    for key, wt, tc, et in args.real_row or []:
        meta["metrics"]["real"][key] = {"WT": float(wt), "TC": float(tc), "ET": float(et)}
    rw = export_run(Path(args.run), WEIGHTS, args.name, meta=meta, default=args.default)
    print(f"shipped {rw.name}: {rw.weights_path} ({rw.weights_path.stat().st_size / 1e6:.2f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("name", choices=sorted(RECIPES))
    t.add_argument("--minutes", type=float, default=95)
    sub.add_parser("keep-phantom")
    s = sub.add_parser("ship")
    s.add_argument("run")
    s.add_argument("name")
    s.add_argument("--report", required=True)
    s.add_argument("--bench-name", default=None, help="the model's name in the sweep (default NAME)")
    s.add_argument("--description", default="")
    s.add_argument("--default", action="store_true")
    s.add_argument("--real-row", nargs=4, action="append", metavar=("NAME", "WT", "TC", "ET"),
                   help="a real-scan figure measured for this model (e.g. the six BraTS 2013 cases)")
    args = ap.parse_args()
    {"train": train, "keep-phantom": keep_phantom, "ship": ship}[args.cmd](args)


if __name__ == "__main__":
    main()
