"""How much Dice a coarse working grid costs before any model is involved: the reference labels are taken to the
model's voxel size and back to the reference grid exactly as inference does (trilinear region fractions down,
trilinear probabilities up, 0.5 threshold), and scored against themselves. A perfect model at that voxel size cannot
do better, so this is the ceiling of every bundled 2 mm model, and it shows what soft (partial-volume) training
targets and a finer grid would buy.

    python benchmarks/bench_grid_ceiling.py                      # held-out phantoms, real BraTS 2013, tumour shapes
    python benchmarks/bench_grid_ceiling.py --spacings 1.5 2 3

"hard" = the model learnt 0.5-thresholded targets at that grid (what `train --target-spacing` does by default);
"soft" = it learnt each voxel's region fraction (`train --soft-labels`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import header_lines, write_doc  # benchmarks/common.py (the script's own folder)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT_MD = ROOT / "docs" / "bench-grid-ceiling.md"
REGIONS = ("WT", "TC", "ET")


def grid_ceiling(labels: np.ndarray, spacing, target: float) -> dict[str, list[float]]:
    """Dice WT/TC/ET of internal ``labels`` after a round trip through a ``target`` mm grid, for hard and soft
    targets at that grid (BraTS convention: 1 when a region is empty in both)."""
    from mmtumor.labels import labels_to_regions
    from mmtumor.metrics import dice
    from mmtumor.voxels import resample_to_spacing, resize

    regions = labels_to_regions(labels).astype(np.float32)
    coarse = resample_to_spacing(regions, spacing, target, order=1)
    out = {}
    for kind, targets in (("hard", (coarse > 0.5).astype(np.float32)), ("soft", coarse)):
        back = resize(targets, regions.shape[1:], order=1) > 0.5
        out[kind] = [float(dice(back[i], regions[i] > 0.5)) for i in range(3)]
    return out


def _label_sets(work: Path, n_phantoms: int) -> dict[str, list[tuple[str, np.ndarray, tuple]]]:
    """Reference label maps (internal labels) grouped by source; absent sources are skipped."""
    import nibabel as nib

    from mmtumor.benchmark import default_phantoms

    def load(path: Path, remap: dict[int, int] | None = None):
        img = nib.load(str(path))
        lab = np.asarray(img.dataobj).astype(np.int16)
        for src, dst in (remap or {}).items():
            lab[lab == src] = dst
        return path.name, lab, img.header.get_zooms()[:3]

    sets: dict[str, list] = {}
    folder = default_phantoms(work / "phantoms", n=n_phantoms)
    sets["held-out phantoms (seeds 900000+)"] = [load(p) for p in sorted(folder.glob("*/*_seg.nii.gz"))]
    real = sorted((SHARED / "real" / "brats2013-flair-t1c").glob("*/OTMultiClass.nii.gz"))
    if real:  # BraTS 2013: 1 necrosis, 2 edema, 3 non-enhancing, 4 enhancing -> core label 1 for 3
        sets["real BraTS 2013 (6)"] = [load(p, {3: 1}) for p in real]
    shapes = sorted((SHARED / "tumour-shapes").glob("BraTS2021_*_seg.nii.gz"))
    if shapes:
        sets["real BraTS 2021 label maps (4)"] = [load(p) for p in shapes]
    return sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spacings", type=float, nargs="+", default=[1.5, 2.0])
    ap.add_argument("--cases", type=int, default=10, help="held-out phantoms (cases 0..N-1 of seed 900000)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-models")
    args = ap.parse_args()
    t0 = time.perf_counter()
    sets = _label_sets(args.work, args.cases)
    rows = []
    for name, cases in sets.items():
        for sp in args.spacings:
            scores = {"hard": [], "soft": []}
            for _, lab, zooms in cases:
                for kind, d in grid_ceiling(lab, zooms, sp).items():
                    scores[kind].append(d)
            for kind in ("hard", "soft"):
                arr = np.array(scores[kind])
                with_et = [s for s, (_, lab, _) in zip(scores[kind], cases, strict=True) if (lab == 4).any()]
                rows.append((name, sp, kind, arr.mean(0), np.mean([s[2] for s in with_et]) if with_et else float("nan")))
            print(f"{name}, {sp:g} mm: done", flush=True)
    minutes = (time.perf_counter() - t0) / 60
    lines = header_lines("What the working grid costs: Dice ceiling of a perfect model (`benchmarks/bench_grid_ceiling.py`)",
                         f"python benchmarks/bench_grid_ceiling.py --spacings {' '.join(f'{s:g}' for s in args.spacings)}") + [
             f"- run: CPU; {minutes:.1f} min",
             "- each reference label map goes to the grid and back as inference does (trilinear region fractions down, "
             "trilinear up, > 0.5) and is scored against itself; mean over cases; Dice 1 when a region is empty in both",
             "- hard: the model learnt 0.5-thresholded targets at that grid (`train --target-spacing`); soft: it learnt "
             "the region fraction of each voxel (`train --soft-labels`)",
             "- every bundled model works at 2 mm, so no bundled model can score above the 2 mm hard row on these cases",
             "", "| labels | grid mm | targets | WT | TC | ET | ET, cases with ET |", "|---|--:|---|--:|--:|--:|--:|"]
    for name, sp, kind, mean, et_only in rows:
        lines.append(f"| {name} | {sp:g} | {kind} | " + " | ".join(f"{v:.3f}" for v in mean) + f" | {et_only:.3f} |")
    write_doc(OUT_MD, lines)
    print(f"wrote {OUT_MD}")


if __name__ == "__main__":
    main()
