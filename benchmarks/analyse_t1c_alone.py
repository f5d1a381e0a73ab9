"""Where the default's false whole tumour lies on real scans given T1c alone (docs/bench-t1c-alone.md, docs/img/).

    python benchmarks/analyse_t1c_alone.py [--weights default] [--real ../shared/data/real]

Why: T1c alone is the default's weakest real-scan subset with any T1c (docs/bench-subsets-real.md), and a single
Dice hides what goes wrong. For each labelled real case (BraTS 2013, validation only) this runs the benchmark's
per-subset path on T1c alone, post-processed as `segment` does, and splits the false-positive whole tumour by where
it lies (far from the true tumour, at the brain's edge) and by how it looks on the T1c (dark like CSF, bright like
enhancement or vessels). It writes a table and a figure of the three slices with the most false tumour.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT_MD = ROOT / "docs" / "bench-t1c-alone.md"
OUT_PNG = ROOT / "docs" / "img" / "t1c-alone-false-tumour.png"
REAL = ROOT.parent / "shared" / "data" / "real"


def split_false_positives(pred_wt: np.ndarray, ref_wt: np.ndarray, brain: np.ndarray, t1c: np.ndarray,
                          voxel_ml: float) -> dict[str, float]:
    """mL of false whole tumour: in all, > 20 mm from the true tumour, < 5 mm from the brain's edge, dark on the T1c
    (below the brain's 15th percentile: CSF, ventricles, necrosis-like) and bright (above its 95th: enhancement,
    vessels, sinuses). Distances assume about 1 mm voxels (BraTS)."""
    from scipy import ndimage

    fp = pred_wt & ~ref_wt
    far = ndimage.distance_transform_edt(~ref_wt) > 20 if ref_wt.any() else np.ones_like(fp)
    edge = ndimage.distance_transform_edt(brain) < 5
    lo, hi = np.percentile(t1c[brain], [15, 95])
    return {"false": fp.sum() * voxel_ml, "far": (fp & far).sum() * voxel_ml, "edge": (fp & edge).sum() * voxel_ml,
            "dark": (fp & (t1c < lo)).sum() * voxel_ml, "bright": (fp & (t1c > hi)).sum() * voxel_ml}


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from mmtumor.benchmark import BenchmarkOptions, predict_subset
    from mmtumor.io.dataset import find_cases, load_case
    from mmtumor.labels import labels_to_regions
    from mmtumor.metrics import dice
    from mmtumor.modalities import Modality, parse_subsets
    from mmtumor.preprocess import brain_mask_from_image
    from mmtumor.weights import load_model, resolve

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="default")
    ap.add_argument("--real", type=Path, default=REAL)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    labelled = args.real / "brats2013-flair-t1c"
    if not labelled.is_dir():
        sys.exit(f"real validation data not found under {args.real}")
    torch.set_num_threads(args.threads)
    rw = resolve(None if args.weights == "default" else args.weights)
    model, meta = load_model(rw, device="cpu")
    t1c_alone = parse_subsets("0100")[0]
    rows, worst = [], []
    for case in find_cases(labelled, require_label=True):
        lc = load_case(case)
        ref = labels_to_regions(lc.label).astype(bool)
        pred = labels_to_regions(predict_subset(model, meta, lc.image, lc.present, lc.affine, t1c_alone, "cpu",
                                                BenchmarkOptions(device="cpu"))).astype(bool)
        t1c = lc.image[Modality.T1C.index]
        brain = brain_mask_from_image([t1c])  # the mask the pipeline itself uses (the background is not 0 here)
        voxel_ml = float(abs(np.linalg.det(lc.affine[:3, :3]))) / 1000.0
        split = split_false_positives(pred[0], ref[0], brain, t1c, voxel_ml)
        rows.append((case.case_id, dice(pred[0], ref[0]), ref[0].sum() * voxel_ml, pred[0].sum() * voxel_ml, split))
        fp = pred[0] & ~ref[0]
        z = int(np.argmax(fp.sum((0, 1))))
        worst.append((split["false"], case.case_id, t1c[:, :, z], fp[:, :, z], (pred[0] & ref[0])[:, :, z],
                      (ref[0] & ~pred[0])[:, :, z], z))
        print(case.case_id, f"WT Dice {rows[-1][1]:.3f}", {k: round(v, 1) for k, v in split.items()}, flush=True)

    worst.sort(key=lambda w: -w[0])
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, (_ml, cid, img, fp, tp, fn, z) in zip(axes, worst[:3]):
        ax.imshow(np.rot90(img), cmap="gray")
        ov = np.zeros((*img.shape, 4))
        ov[fp] = [1, 0, 0, 0.45]
        ov[tp] = [0, 1, 0, 0.35]
        ov[fn] = [0, 0.3, 1, 0.45]
        ax.imshow(np.rot90(ov))
        ax.set_title(f"{cid}, slice {z}", fontsize=9)
        ax.axis("off")
    fig.suptitle("T1c alone: false whole tumour (red), found (green), missed (blue)", fontsize=10)
    fig.tight_layout()
    OUT_PNG.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT_PNG, dpi=55)

    tot = {k: sum(r[4][k] for r in rows) for k in rows[0][4]}
    lines = ["# Where the false tumour lies given T1c alone (`benchmarks/analyse_t1c_alone.py`)", "",
             f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, CPU",
             f"- command: `python benchmarks/analyse_t1c_alone.py --weights {args.weights}` (weights: {rw.name}; the "
             "benchmark's per-subset path, post-processed as `segment` does)",
             "- cases: the labelled real BraTS 2013 cases, T1c shown alone; validation only, never trained on",
             "- false = predicted whole tumour outside the reference; far = more than 20 mm from the reference tumour; "
             "edge = within 5 mm of the brain's edge; dark / bright = below the brain's 15th / above its 95th T1c "
             "percentile (the columns overlap)", "",
             "| case | WT Dice | reference WT mL | predicted WT mL | false mL | far | edge | dark | bright |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for cid, d, ref_ml, pred_ml, s in rows:
        lines.append(f"| {cid} | {d:.3f} | {ref_ml:.0f} | {pred_ml:.0f} | {s['false']:.0f} | {s['far']:.0f} | "
                     f"{s['edge']:.0f} | {s['dark']:.0f} | {s['bright']:.0f} |")
    lines += [f"| all | | | | {tot['false']:.0f} | {tot['far']:.0f} | {tot['edge']:.0f} | {tot['dark']:.0f} | "
              f"{tot['bright']:.0f} |", "", f"![false tumour given T1c alone](img/{OUT_PNG.name})", ""]
    OUT_MD.write_text("\n".join(lines))
    print(f"wrote {OUT_MD} and {OUT_PNG}")


if __name__ == "__main__":
    main()
