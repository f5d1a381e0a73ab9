"""Real-data weights: the recipe, and the one command that ships a real-trained run as a bundled model.

    python benchmarks/real_weights.py train NAME... [--minutes 95]     # the recipes' training runs (runs/real/NAME), in turn
    python benchmarks/real_weights.py keep-phantom                     # a2fseg-cpu -> a2fseg-phantom-cpu (kept, unchanged)
    python benchmarks/real_weights.py keep-phantom-figures NAME SOURCE # NAME's card keeps SOURCE's phantom figures
    python benchmarks/real_weights.py ship RUN NAME --report DIR [--default]
        # RUN's best.pt -> weights/NAME, with the training data and its citations, the val Dice per subset from
        # DIR/per_case.csv (a `benchmarks/bench_real.py` sweep of RUN's export) as the card's expected Dice
    python benchmarks/real_weights.py thresholds NAME WT TC ET --report DIR
        # region thresholds chosen by benchmarks/bench_thresholds_real.py into weights/NAME's metadata, and the
        # card's expected Dice from DIR (a bench_real sweep that used them: checked)

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


def training_data(init_from: str, start: str | None = None) -> str:
    """The card's training-data line of a real-trained model started from ``init_from``'s phantom-trained weights,
    or from ``start`` (words naming other weights) where the chain did not begin at this model's phantom weights."""
    start = start or f"the phantom-trained {init_from} (figures under 'Before real data')"
    return ("real: the 28 'train' cases of ../shared/data/real-train (BraTS 2018/2019/2021 training cases with expert "
            f"labels, splits.json), initialised from {start}; the 8 'val' cases chose the checkpoint and were never "
            "trained on. Cite: " + CITATION)


def phantom_figures(previous: dict) -> dict:
    """What a real-trained card keeps of the phantom-trained weights it replaces: their training data and figures.

    A later real stage carries the block of the stage before; a phantom model's own metrics become the block."""
    metrics = previous.get("metrics") or {}
    if str(previous.get("training_data", "")).startswith("real:"):
        return dict(metrics.get("phantom") or {})
    return {"training_data": previous.get("training_data"), "expected_dice": metrics.get("expected_dice") or {},
            "expected_dice_source": metrics.get("expected_dice_source", "held-out phantoms"),
            "real": metrics.get("real") or {}}

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

# stage 1 of every other bundled method (session of 2026-12-03, second half): the default's stage-1 recipe from the
# method's own phantom-trained weights; the uniform schedule over the 15 subsets for all, so that the table compares
# methods rather than schedules
_STAGE1 = ["--preset", "tiny", "--epochs", "1000", "--iters-per-epoch", "25", "--patch", "64", "64", "64", "--batch",
           "2", "--lr", "1e-3", "--device", "cpu", "--workers", "1", "--val-every", "8", "--target-spacing", "2",
           "--dropout-schedule", "uniform"]
for _name, _method, _extra in [("a2fseg-avg-cpu", "a2fseg-avg", []), ("a2fseg-medmap-cpu", "a2fseg", ["--align", "medmap"]),
                               ("robustseg-cpu", "robustseg", []), ("hemis-cpu", "hemis", []),
                               ("mmformer-cpu", "mmformer", []), ("unet-cpu", "unet", []),
                               ("master-assistant-cpu", "master-assistant", [])]:
    RECIPES[_name] = (_method, [*_STAGE1, "--init-from", _name, *_extra])


def _with(args: list[str], flag: str, *values: str) -> list[str]:
    """``args`` with ``flag``'s values replaced by ``values`` (as many as it had): one recipe changing one thing."""
    i = args.index(flag)
    return [*args[:i + 1], *values, *args[i + 1 + len(values):]]


# session of 2026-12-05 (second): stage 2 of master-assistant continues its stage-1 run at half the rate; MedMAP is
# an alignment add-on to A2FSeg with the same weights, so it starts from the real-trained default instead of from
# its own phantom weights (1 CPU budget buys one short stage, and the default has had three)
_STAGE2 = _with(_STAGE1, "--lr", "5e-4")
# Stages that started from "the default" before 2026-12-06 started from its real stage 1 (shipped 2026-12-03 to
# 2026-12-06, then replaced by the phantom-mix stage 2); stage1_default() restores it from git, so that every recipe
# comparison below starts from the same weights as its control whatever is bundled now.
STAGE1_COMMIT = "c2050ba^"  # the commit before the phantom-mix default was shipped
STAGE1_DEFAULT = ROOT / "runs" / "prev" / "a2fseg-cpu-dec03.safetensors"
_S1 = str(STAGE1_DEFAULT)
RECIPES["master-assistant-cpu-2"] = ("master-assistant", [*_STAGE2, "--init-from",
                                                          str(ROOT / "runs" / "real" / "master-assistant-cpu")])
RECIPES["a2fseg-medmap-cpu"] = ("a2fseg", [*_STAGE2, "--init-from", _S1, "--align", "medmap"])
# recipe comparisons for the default, each a stage 2 from real stage 1 like a2fseg-cpu-2 (750 steps, standard
# augmentation, no phantoms: val mean 0.852 / 0.707 / 0.497), changing one thing against the control a2fseg-cpu-std
PHANTOMS_MIX = ROOT / "runs" / "phantoms-mix"  # mmtumor synth runs/phantoms-mix --cases 80 --randomize --shape 120 120 78 --seed 7000
RECIPES["a2fseg-cpu-std"] = ("a2fseg", [*_STAGE2, "--init-from", _S1])  # the same-budget control of both
RECIPES["a2fseg-cpu-clinical"] = ("a2fseg", [*_STAGE2, "--init-from", _S1, "--augment", "clinical"])
RECIPES["a2fseg-cpu-mix"] = ("a2fseg", [*_STAGE2, "--init-from", _S1, "--mix-data", str(PHANTOMS_MIX),
                                        "--mix-fraction", "0.25"])
# the 1.5 mm working grid (session of 2026-12-06): the same stage 2 with 64³ patches on a 1.5 mm grid (each patch
# covers 96 mm instead of 128 mm; inference runs on 2.4x the voxels)
RECIPES["a2fseg-cpu-15"] = ("a2fseg", [*_with(_STAGE2, "--target-spacing", "1.5"), "--init-from", _S1])
# the paper's modality-dropout schedule (all four on odd epochs, a random subset of 1-3 on even ones) instead of the
# uniform draw over the 15 subsets; and 80³ patches (160 mm of context at 2 mm, about twice the cost of a step)
RECIPES["a2fseg-cpu-sched"] = ("a2fseg", [*_with(_STAGE2, "--dropout-schedule", "a2fseg"), "--init-from",
                                          _S1])
RECIPES["a2fseg-cpu-p80"] = ("a2fseg", [*_with(_STAGE2, "--patch", "80", "80", "80"), "--init-from",
                                        _S1])

# model width (session of 2026-12-06, second): 12 base features and 48 at most instead of 8 and 32 (2.2x the
# parameters), grown from the stage-1 weights so that it starts from their function (models/grow.py)
RECIPES["a2fseg-cpu-wide"] = ("a2fseg", [*_STAGE2, "--init-from", _S1, "--config",
                                         str(ROOT / "benchmarks" / "recipes" / "a2fseg-wide12.json")])
# a smaller phantom share than the shipped mix: does it keep the tumour-core gain and give back enhancing tumour?
RECIPES["a2fseg-cpu-mix10"] = ("a2fseg", [*_STAGE2, "--init-from", _S1, "--mix-data", str(PHANTOMS_MIX),
                                          "--mix-fraction", "0.1"])
# the two that won, together: the paper's dropout schedule with a quarter of the patches from phantoms
RECIPES["a2fseg-cpu-sched-mix"] = ("a2fseg", [*_with(_STAGE2, "--dropout-schedule", "a2fseg"), "--init-from", _S1,
                                              "--mix-data", str(PHANTOMS_MIX), "--mix-fraction", "0.25"])
# a longer schedule (session of 2026-12-07): stage 3 continues the shipped default (real stage 1, then 40 minutes of
# the 25 % phantom mix) with the same recipe for 85 minutes at 3e-4: do more steps of the recipe that won still help?
RECIPES["a2fseg-cpu-3"] = ("a2fseg", [*_with(_STAGE2, "--lr", "3e-4"), "--init-from", "a2fseg-cpu", "--mix-data",
                                      str(PHANTOMS_MIX), "--mix-fraction", "0.25"])
# stage 2 of mmFormer and HeMIS (session of 2026-12-07, second): their real stage 1 was still improving when it ended
RECIPES["mmformer-cpu-2"] = ("mmformer", [*_STAGE2, "--init-from", "mmformer-cpu"])
RECIPES["hemis-cpu-2"] = ("hemis", [*_STAGE2, "--init-from", "hemis-cpu"])  # the same for HeMIS, the best baseline
RECIPES["robustseg-cpu-2"] = ("robustseg", [*_STAGE2, "--init-from", "robustseg-cpu"])  # and RobustSeg, also still rising
# stage 2 of the average-fusion A2FSeg and the early-fusion U-Net (session of 2026-12-07, third): the same stage 2
RECIPES["a2fseg-avg-cpu-2"] = ("a2fseg-avg", [*_STAGE2, "--init-from", "a2fseg-avg-cpu"])
RECIPES["unet-cpu-2"] = ("unet", [*_STAGE2, "--init-from", "unet-cpu"])
RECIPES["robustseg-cpu-3"] = ("robustseg", [*_STAGE2, "--init-from", "robustseg-cpu"])  # stage 2 got 250 steps only
# MedMAP's own second stage, the default's (25 % phantom patches): medmap and the default then differ only by the
# alignment loss over the same two stages
RECIPES["a2fseg-medmap-cpu-2"] = ("a2fseg", [*_STAGE2, "--init-from", "a2fseg-medmap-cpu", "--align", "medmap",
                                             "--mix-data", str(PHANTOMS_MIX), "--mix-fraction", "0.25"])
# the same with a learned leak in the fusion softmax (one map per modality as shipped): the shipped default's maps
# saturate near 0 inside enhancing tumour (sigmoid 0.000-0.06 for T1, T1c, FLAIR), so its weights there are uniform
# (T1c 0.244 of four on the 8 val cases) and no gradient reaches them; the leak gives them one (models/a2fseg.py)
RECIPES["a2fseg-cpu-leak"] = ("a2fseg", [*_STAGE2, "--init-from", _S1, "--mix-data", str(PHANTOMS_MIX),
                                         "--mix-fraction", "0.25", "--config",
                                         str(ROOT / "benchmarks" / "recipes" / "a2fseg-leaky-attention.json")])

# the 1 mm working grid (session of 2026-12-07, fourth): the same stage 2 as the 1.5 mm run on the data's own grid
# (64³ patches cover 64 mm; inference runs on 8x the voxels of the 2 mm grid), given 60 minutes instead of 40
# because the 1.5 mm run was still re-learning its receptive fields when its 40 minutes ended
RECIPES["a2fseg-cpu-1mm"] = ("a2fseg", [*_with(_STAGE2, "--target-spacing", "1"), "--init-from", _S1])


# the refit on all 36 cases (session of 2026-12-07, fifth): the shipped default's two stages replayed with no case
# held out, by epochs instead of minutes so that the schedule is the one the split model had: stage 1 as the split's
# real stage 1 (23 epochs of lr 1e-3 from the phantom weights, the last one kept), then stage 2 as the split's phantom
# mix (lr 5e-4, poly over 23 epochs) stopped after epoch 16, where `val` chose the split model's checkpoint
ALL36_SPLIT = ROOT / "benchmarks" / "recipes" / "all36-split.json"
ALL36_STAGE1 = ROOT / "runs" / "wexp" / "a2fseg-cpu-all36-s1" / "a2fseg-cpu-all36-s1.safetensors"
RECIPES["a2fseg-cpu-all36-s1"] = ("a2fseg", [*_with(RECIPES["a2fseg-cpu"][1], "--epochs", "23"),
                                             "--split-file", str(ALL36_SPLIT)])
RECIPES["a2fseg-cpu-all36"] = ("a2fseg", [*_with(_STAGE2, "--epochs", "23"), "--init-from", str(ALL36_STAGE1),
                                          "--mix-data", str(PHANTOMS_MIX), "--mix-fraction", "0.25",
                                          "--stop-after", "16", "--split-file", str(ALL36_SPLIT)])

# an enhancing-tumour specialist (session of 2026-12-07, seventh): the shipped default continued on the two inputs
# its ET pass is given (T1c + FLAIR, or T1c alone: docs/segment.md, step 3) instead of all 15 subsets, which gave
# each of them 1/15 of the steps; once with the default's 25 % phantom patches, once on real cases only (the
# phantoms' thin rims cost ET in the mix comparison above). Eighth session: 62 epochs each, routed for ET into the
# default: val ET over 15 subsets 0.541 / 0.534 against 0.542, not shipped (docs/training.md)
RECIPES["a2fseg-et-cpu"] = ("a2fseg", [*_STAGE2, "--init-from", "a2fseg-cpu", "--subsets", "T1c+FLAIR,T1c",
                                       "--mix-data", str(PHANTOMS_MIX), "--mix-fraction", "0.25"])
RECIPES["a2fseg-et-cpu-real"] = ("a2fseg", [*_STAGE2, "--init-from", "a2fseg-cpu", "--subsets", "T1c+FLAIR,T1c"])


def stage1_default() -> Path:
    """Real stage 1 of the default as exported weights (``.safetensors`` + ``.json``), taken from git when absent."""
    if not STAGE1_DEFAULT.exists():
        STAGE1_DEFAULT.parent.mkdir(parents=True, exist_ok=True)
        for suffix in (".safetensors", ".json"):
            blob = subprocess.run(["git", "show", f"{STAGE1_COMMIT}:weights/a2fseg-cpu{suffix}"], cwd=ROOT,
                                  check=True, capture_output=True).stdout
            tmp = STAGE1_DEFAULT.with_suffix(suffix + ".part")
            tmp.write_bytes(blob)
            tmp.replace(STAGE1_DEFAULT.with_suffix(suffix))
    return STAGE1_DEFAULT


def train(args) -> None:
    for name in args.name:
        _train_one(name, args.minutes)


def _train_one(name: str, minutes: float) -> None:
    method, extra = RECIPES[name]
    if str(STAGE1_DEFAULT) in extra:
        stage1_default()
    run = ROOT / "runs" / "real" / name
    split = [] if "--split-file" in extra else ["--split-file", str(DATA / "splits.json")]
    cmd = [sys.executable, "-m", "mmtumor", "train", str(DATA), *split, "--method", method, "-o", str(run),
           "--time-limit", str(minutes), *extra, "-q"]
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


def keep_phantom_figures(args) -> None:
    """Give a real-trained model's card the figures of the phantom model it started from (kept under another name)."""
    from mmtumor.weights import resolve, update_meta

    rw = resolve(args.name)
    metrics = dict(rw.meta.get("metrics") or {}, phantom=phantom_figures(resolve(args.source).meta))
    update_meta(WEIGHTS, args.name, metrics=metrics)
    print(f"weights/{args.name}: phantom figures from {args.source}")


def val_source(cases: int, chosen: str) -> str:
    """The card's words for where its `val` table comes from."""
    return (f"{cases} real validation cases (splits.json 'val'), mean over cases, post-processed as segment does; "
            f"these cases chose {chosen}")


def ship(args) -> None:
    from mmtumor.weights import export_run, resolve

    bench_name = args.bench_name or args.name
    table = val_dice(Path(args.report), bench_name)
    if len(table) != 15:
        sys.exit(f"{args.report} holds {len(table)} subsets for {bench_name}, not 15")
    cases = json.loads((Path(args.report) / "report.json").read_text())["meta"]["cases"]
    meta = {
        "training_data": training_data(args.name, args.start),
        "description": args.description,
        "metrics": {"expected_dice": table,
                    "expected_dice_source": val_source(cases, "the checkpoint"),
                    "real": {}},
    }
    previous = resolve(args.name).meta if (WEIGHTS / f"{args.name}.json").exists() else {}
    same_kind = str(previous.get("training_data", "")).startswith("real:")  # a phantom model's rows are not ours
    meta["metrics"]["real"] = dict((previous.get("metrics") or {}).get("real") or {}) if same_kind else {}
    meta["metrics"]["phantom"] = phantom_figures(previous)
    if same_kind:  # a later stage: the card names the start of the whole chain, not the stage before
        meta["training_data"] = previous["training_data"]
    if args.data_note:  # data a stage added beside the real cases (e.g. phantoms mixed into the batches)
        meta["training_data"] = f"{meta['training_data']}; {args.data_note}"
    for key, wt, tc, et in args.real_row or []:
        meta["metrics"]["real"][key] = {"WT": float(wt), "TC": float(tc), "ET": float(et)}
    rw = export_run(Path(args.run), WEIGHTS, args.name, meta=meta, default=args.default)
    print(f"shipped {rw.name}: {rw.weights_path} ({rw.weights_path.stat().st_size / 1e6:.2f} MB)")


def set_thresholds(args) -> None:
    """Region thresholds (and the modalities enhancing tumour comes from) into a bundled model's metadata; its card's
    val Dice from a sweep that applied them."""
    from mmtumor.postprocess import NEUTRAL_THRESHOLDS
    from mmtumor.weights import resolve, update_meta

    chosen = [float(args.wt), float(args.tc), float(args.et)]
    et_from = [m.strip() for m in args.et_modalities.split(",")] if args.et_modalities else None
    report = json.loads((Path(args.report) / "report.json").read_text())["meta"]
    bench_name = args.bench_name or args.name
    used = (report.get("region_thresholds") or {}).get(bench_name)
    if used != chosen:
        sys.exit(f"{args.report} was swept with thresholds {used} for {bench_name}, not {chosen}")
    used_et = (report.get("et_modalities") or {}).get(bench_name)
    if used_et != et_from:
        sys.exit(f"{args.report} predicted enhancing tumour from {used_et or 'all given scans'} for {bench_name}, "
                 f"not {et_from or 'all given scans'}")
    table = val_dice(Path(args.report), bench_name)
    if len(table) != 15:
        sys.exit(f"{args.report} holds {len(table)} subsets for {bench_name}, not 15")
    metrics = dict(resolve(args.name).meta.get("metrics") or {}, expected_dice=table)
    neutral = tuple(chosen) == NEUTRAL_THRESHOLDS  # 0.5 each: the model carries none (only its ET modalities)
    chose = ["the checkpoint", *([] if neutral else ["the region thresholds"]),
             *(["the enhancing-tumour modalities"] if et_from else [])]
    metrics["expected_dice_source"] = val_source(report["cases"], " and ".join(chose))
    update_meta(WEIGHTS, args.name, region_thresholds=None if neutral else chosen, metrics=metrics,
                region_thresholds_source=None if neutral else args.source, et_modalities=et_from)
    print(f"weights/{args.name}: region thresholds {chosen}, ET from {et_from or 'all given scans'}; "
          f"expected Dice from {args.report}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("name", nargs="+", choices=sorted(RECIPES), help="one or more recipes, trained one after another")
    t.add_argument("--minutes", type=float, default=95, help="time limit of each run")
    sub.add_parser("keep-phantom")
    k = sub.add_parser("keep-phantom-figures")
    k.add_argument("name")
    k.add_argument("source")
    s = sub.add_parser("ship")
    s.add_argument("run")
    s.add_argument("name")
    s.add_argument("--report", required=True)
    s.add_argument("--bench-name", default=None, help="the model's name in the sweep (default NAME)")
    s.add_argument("--description", default="")
    s.add_argument("--default", action="store_true")
    s.add_argument("--start", default=None,
                   help="what the run was initialised from, where not NAME's own phantom weights (card wording)")
    s.add_argument("--data-note", default=None,
                   help="appended to the card's training-data line: what else this stage trained on")
    s.add_argument("--real-row", nargs=4, action="append", metavar=("NAME", "WT", "TC", "ET"),
                   help="a real-scan figure measured for this model (e.g. the six BraTS 2013 cases)")
    th = sub.add_parser("thresholds")
    th.add_argument("name")
    for region in ("wt", "tc", "et"):
        th.add_argument(region)
    th.add_argument("--report", required=True)
    th.add_argument("--bench-name", default=None, help="the model's name in the sweep (default NAME)")
    th.add_argument("--et-modalities", default=None, help="e.g. T1c,FLAIR: enhancing tumour from these when T1c is "
                                                          "given (metadata et_modalities; default: all given scans)")
    th.add_argument("--source", default="chosen on the 8 real val cases, checked on BraTS 2013 and held-out phantoms: "
                                        "docs/bench-thresholds-real.md", help="how they were chosen (the card's words)")
    args = ap.parse_args()
    {"thresholds": set_thresholds, "train": train, "keep-phantom": keep_phantom, "keep-phantom-figures": keep_phantom_figures,
     "ship": ship}[args.cmd](args)


if __name__ == "__main__":
    main()
