"""Tumour volume on phantoms: does a model mark far more tumour than there is? (docs/bench-small-tumours.md)

    python benchmarks/bench_small_tumours.py [--weights a2fseg-cpu a2fseg-phantom-cpu ...] [--seeds 31337 ...]

Every real training case holds a large tumour (15-232 mL), so a real-trained model may learn to expect one. Phantoms
(the standard generator, 1 mm, all four modalities) have known tumours of every size; each model segments them
through `segment`'s own path (`mmtumor.segment_images`, default post-processing, `--fast`) with T1c + FLAIR and with
all four, and the table gives the true and predicted whole-tumour volume and Dice. Phantoms are not patients: a
model trained on real scans may also over-call phantom tissue that looks unlike any patient's, so read this as a
warning sign to check on real scans with small tumours, not as a measure of real accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np

from common import header_lines, write_doc  # benchmarks/common.py (the script's own folder)

ROOT = Path(__file__).resolve().parents[1]

OUT_MD = ROOT / "docs" / "bench-small-tumours.md"
SUBSETS = {"T1c + FLAIR": ("T1c", "FLAIR"), "all four": ("T1", "T1c", "T2", "FLAIR")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", nargs="+", default=["a2fseg-cpu", "a2fseg-phantom-cpu"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[31337, 31338, 31339, 31340, 31341, 31342])
    ap.add_argument("--shape", type=int, nargs=3, default=None, help="phantom grid (default 240 240 155, 1 mm)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT_MD)
    args = ap.parse_args()

    import mmtumor
    from mmtumor.metrics import dice, volumes_ml
    from mmtumor.synth import generate_case

    rows = []
    for seed in args.seeds:
        case = generate_case(seed, **({"shape": tuple(args.shape)} if args.shape else {}))
        true_ml = volumes_ml(case.label, case.affine)["WT"]
        truth = case.label > 0
        images = {m.value: nib.Nifti1Image(img.astype(np.float32), case.affine) for m, img in case.images.items()}
        for subset, names in SUBSETS.items():
            for weights in args.weights:
                result = mmtumor.segment_images(**{n.lower(): images[n] for n in names}, weights=weights,
                                                device="cpu", fast=True, preview=False, threads=args.threads)
                pred = np.asarray(result.labels.dataobj) > 0
                rows.append((seed, true_ml, subset, weights, result.volumes_ml["WT"], dice(pred, truth)))
                print(f"seed {seed} {subset:12s} {weights:24s} true {rows[-1][1]:6.1f} mL  "
                      f"predicted {rows[-1][4]:6.1f} mL  Dice {rows[-1][5]:.3f}", flush=True)

    command = "python benchmarks/bench_small_tumours.py --weights " + " ".join(args.weights) + " --seeds " + " ".join(
        map(str, args.seeds)) + (" --shape " + " ".join(map(str, args.shape)) if args.shape else "")
    lines = header_lines("Tumour volume on phantoms: over-segmentation check", command) + [
        f"- data: phantoms of the standard generator (`mmtumor.synth.generate_case(seed)`, "
        f"{' x '.join(map(str, args.shape or (240, 240, 155)))}), "
        "never trained on; none of them chose anything about any model. Phantoms are not patients (see the script's "
        "docstring).",
        "- path: `mmtumor.segment_images` (= `segment`, `--fast`, default post-processing); WT = every tumour label.",
        "",
        "| seed | true WT (mL) | available | " + " | ".join(f"{w} WT mL (Dice)" for w in args.weights) + " |",
        "|---|---|---|" + "---|" * len(args.weights),
    ]
    for seed in args.seeds:
        for subset in SUBSETS:
            cells = {r[3]: r for r in rows if r[0] == seed and r[2] == subset}
            true_ml = next(iter(cells.values()))[1]
            lines.append(f"| {seed} | {true_ml:.1f} | {subset} | " + " | ".join(
                f"{cells[w][4]:.1f} ({cells[w][5]:.2f})" for w in args.weights) + " |")
    write_doc(args.out, lines + [""])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
