"""The headline table: every shipped model on the real validation cases, 15 modality subsets, beside the papers.

    python benchmarks/bench_real.py [--weights NAME ...] [--data ../shared/data/real-train] [--max-cases N]

Runs ``mmtumor benchmark`` (the inference core ``segment`` runs, its default post-processing) on the ``val`` cases of
``splits.json`` of the real labelled training set, writes the sweep's own report to ``runs/bench-real/`` and the
tables to ``docs/bench-real.md``: Dice per subset for every model side by side, the phantom-only default as the
before column, then A2FSeg's published Table 1 (BraTS 2020, other patients: a reference, not a like-for-like
comparison), and HD95. Models are trained on the ``train`` cases only; the ``val`` cases chose each model's
checkpoint (``best.pt``), nothing else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import header_lines, models_table, write_doc  # benchmarks/common.py (the script's own folder)

ROOT = Path(__file__).resolve().parents[1]
OUT_MD = ROOT / "docs" / "bench-real.md"
DATA = ROOT.parent / "shared" / "data" / "real-train"
PAPER = ROOT.parent / "shared" / "papers" / "a2fseg-table1.csv"
#: the published columns shown beside ours (the CSV holds five methods)
PAPER_COLUMNS = ("A2FSeg (paper BraTS2020)", "mmFormer (paper BraTS2020)", "HeMIS (paper BraTS2020)")


def summary_table(dice: dict) -> list[str]:
    """One line per model and paper column: mean of the 15 subsets, all four modalities, T1c+FLAIR (WT / TC / ET)."""
    rows = {r["subset_code"]: r for r in dice["rows"]}

    def cells(block: str, kind: str, name: str) -> str:
        """WT / TC / ET of one model (kind "values") or paper column ("reference"); block "mean" or a subset code."""
        source = dice["mean"] if block == "mean" else rows.get(block)
        vals = [source[kind][region].get(name) if source else None for region in ("WT", "TC", "ET")]
        return " / ".join(f"{v:.3f}" if v is not None else "–" for v in vals)

    lines = ["**Summary** (Dice, WT / TC / ET)", "", "| model | mean of 15 subsets | all four | T1c + FLAIR |", "|---|---|---|---|"]
    for kind, names, label in (("values", dice["methods"], "{}"), ("reference", dice["reference_labels"], "_{} (paper)_")):
        for name in names:
            lines.append(f"| {label.format(name)} | " + " | ".join(cells(b, kind, name) for b in ("mean", "1111", "0101")) + " |")
    return lines


def threshold_line(thresholds: dict[str, list[float]], names: dict[str, str]) -> str:
    """Which region probability thresholds each model ran with: a model tuned on these cases is not like for like."""
    from mmtumor.postprocess import NEUTRAL_THRESHOLDS

    def trio(t) -> str:
        return " / ".join(f"{x:g}" for x in t)

    own = {names.get(k, k): v for k, v in thresholds.items() if tuple(v) != NEUTRAL_THRESHOLDS}
    listed = "; ".join(f"{k} {trio(v)} (its own)" for k, v in own.items())
    return ("- region thresholds (WT / TC / ET): " + (f"{listed}; every other model " if own else "every model ")
            + trio(NEUTRAL_THRESHOLDS))


def et_line(et_modalities: dict[str, list[str]], names: dict[str, str]) -> str:
    """Which models predict enhancing tumour from fewer of the given scans (their ``et_modalities``) when T1c is given."""
    own = "; ".join(f"{names.get(k, k)} from {'+'.join(v)}" for k, v in et_modalities.items())
    return ("- enhancing tumour, when T1c is given: " + (f"{own}; every other model" if own else "every model")
            + " from every given scan (docs/segment.md, step 3)")


def trained_here(names: list[str], data: Path, split: str, out: Path) -> list[tuple[str, dict, int]]:
    """The models among ``names`` that trained on some of the split's cases (a refit on every case), with their
    metadata: benchmark would refuse them, and their figures here would not be validation."""
    from mmtumor.benchmark import select_cases
    from mmtumor.weights import resolve
    from mmtumor.weights.provenance import case_fingerprints, seen_cases

    fingerprints = case_fingerprints(select_cases(data, split, out, str(data / "splits.json")))
    metas = {name: resolve(name).meta for name in names}
    seen = {name: len(seen_cases(meta, fingerprints)) for name, meta in metas.items()}
    return [(name, metas[name], n) for name, n in seen.items() if n]


def left_out_line(name: str, n_seen: int, n_cases: int) -> str:
    return (f"- not scored here: {name}, trained on {n_seen} of these {n_cases} cases (`benchmark` refuses it: its "
            "figures would be a fit, not a validation)")


def main() -> None:
    import torch

    from mmtumor import api
    from mmtumor.metrics import aggregate
    from mmtumor.report import build_table, load_reference_csv, to_markdown
    from mmtumor.weights import list_models

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", nargs="*", default=None, help="default: every bundled model")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--split", default="val")
    ap.add_argument("--max-cases", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-real")
    ap.add_argument("--rename", nargs="*", default=[], metavar="OLD=NEW",
                    help="show a measured model under another name (e.g. an export measured before it was shipped)")
    args = ap.parse_args()
    if not (args.data / "splits.json").is_file():
        sys.exit(f"real training data not found: {args.data}")
    torch.set_num_threads(args.threads)
    weights = args.weights or [m.name for m in list_models() if m.source == "bundled"]
    left_out = [] if args.weights else trained_here(weights, args.data, args.split, args.out)
    weights = [w for w in weights if w not in {name for name, _, _ in left_out}]
    result = api.benchmark(args.data, weights=weights, split=args.split, split_file=args.data / "splits.json",
                           device="cpu", max_cases=args.max_cases, reference=PAPER if PAPER.is_file() else None,
                           output=args.out,
                           progress=lambda desc, n, total: print(f"\r{n}/{total} {desc[:70]:70s}", end="", flush=True))
    print()
    names = dict(r.split("=", 1) for r in args.rename)
    records = [dict(r, method=names.get(r["method"], r["method"])) for r in result.records]
    agg = aggregate(records)
    shown = [names.get(n, n) for n in dict.fromkeys(r["method"] for r in result.records)]
    paper = load_reference_csv(PAPER) if PAPER.is_file() else {}
    # the table marks published columns "(paper)" itself
    paper = {k.replace(" (paper BraTS2020)", " BraTS2020"): v for k, v in paper.items() if k in PAPER_COLUMNS}
    dice = build_table(agg, "dice", shown, reference=paper)
    hd95 = build_table(agg, "hd95", shown)
    n_cases = result.meta["cases"]
    command = "python benchmarks/bench_real.py" + (f" --weights {' '.join(args.weights)}" if args.weights else "") + (
        f" --rename {' '.join(args.rename)}" if args.rename else "")
    lines = header_lines("Real validation cases: every model over the 15 modality subsets", command) + [
        f"- data: the `{args.split}` cases of `splits.json` in `../shared/data/real-train/` ({n_cases} real BraTS "
        "2018-2021 patients, expert labels, skull-stripped, 1 mm); never trained on. They chose each real-trained "
        "model's checkpoint (best.pt), the post-processing thresholds (docs/bench-postprocess-real.md) and, for a "
        "model that carries its own region probability thresholds, those (docs/bench-thresholds-real.md), so its "
        "figures are somewhat optimistic. The team's own held-out cases are the unbiased check.",
        "- path: `mmtumor benchmark` = the inference core `segment` runs (docs/segment.md), its default "
        "post-processing; mean over cases per subset, then over the 15 subsets (BraTS conventions: Dice 1 when both "
        "are empty, HD95 373.13 mm when exactly one is).",
        "- paper columns: published Table 1 of A2FSeg (Wang & Hong, MICCAI 2023), on the BraTS 2020 test split "
        "(other patients, 3D nnU-Net-size models trained on 219 cases): a reference, not a like-for-like comparison.",
        threshold_line(result.meta.get("region_thresholds") or {}, names),
        et_line(result.meta.get("et_modalities") or {}, names),
        *[left_out_line(name, n_seen, n_cases) for name, _, n_seen in left_out],
        "",
        models_table(shown),
        "",
        *summary_table(dice),
        "",
        # one table per region: with every bundled model and the paper's columns side by side, a single table is too wide
        *[line for region in dice["regions"]
          for line in (to_markdown(dict(dice, regions=[region]), f"{region} Dice (mean over cases)"), "")],
        to_markdown(hd95, "HD95 in mm (mean over cases)"),
        "",
    ]
    write_doc(OUT_MD, lines)
    print(f"wrote {OUT_MD}")


if __name__ == "__main__":
    main()
