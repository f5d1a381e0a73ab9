"""Figure for docs/synth.md: phantoms' four modalities with the label overlay beside real BraTS scans.

Usage: python benchmarks/figure_synth.py [--seeds 13 1] [--out docs/img/synth-vs-real.png]
Real cases are read from ../shared/data/real when present (panels are left out otherwise).
Display: axial slices through the tumour, RAS-canonical, anterior up, patient's right on the right.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from mmtumor.modalities import MODALITIES  # noqa: E402
from mmtumor.synth.generate import generate_case  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
CMAP = ListedColormap([(0, 0, 0, 0), (1.0, 0.2, 0.2, 0.6), (0.2, 1.0, 0.2, 0.45), (1, 1, 1, 0), (1.0, 1.0, 0.2, 0.7)])


def _canon(path: Path) -> np.ndarray:
    return np.asanyarray(nib.as_closest_canonical(nib.load(str(path))).dataobj).astype(np.float32)


def _slice_through(label: np.ndarray | None, fallback: np.ndarray) -> int:
    if label is not None and (label > 0).any():
        return int(np.argmax((label > 0).sum(axis=(0, 1))))
    return int(np.argmax((fallback > np.percentile(fallback, 99.5)).sum(axis=(0, 1))))


def _show(ax, img: np.ndarray, lab: np.ndarray | None, z: int, title: str) -> None:
    sl = img[:, :, z].T
    brain = sl[sl != 0] if (sl != 0).any() else sl.ravel()
    lo, hi = np.percentile(brain, [0.5, 99.5])
    ax.imshow(sl, cmap="gray", origin="lower", vmin=lo, vmax=hi)
    if lab is not None:
        ax.imshow(np.ma.masked_equal(lab[:, :, z].T, 0), cmap=CMAP, vmin=0, vmax=4, origin="lower",
                  interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def rows(seeds: list[int]) -> list[tuple[str, list[tuple[str, np.ndarray]], np.ndarray | None]]:
    out = []
    for s in seeds:
        case = generate_case(s)
        out.append((f"phantom seed {s}", [(m.value, case.images[m]) for m in MODALITIES], case.label))
    gli = REAL / "BraTS-GLI-00001-000"
    if gli.is_dir():
        mods = [(m, _canon(gli / f"BraTS-GLI-00001-000-{k}.nii.gz")) for m, k in
                (("T1", "t1n"), ("T1c", "t1c"), ("T2", "t2w"), ("FLAIR", "t2f"))]
        out.append(("real BraTS-GLI-00001-000 (no label)", mods, None))
    old = REAL / "brats2013-flair-t1c" / "brats_2013_pat0001_1"
    if old.is_dir():
        lab = _canon(old / "OTMultiClass.nii.gz").astype(np.uint8)
        lab = np.where(lab == 3, 1, lab)  # 2013: 3 = non-enhancing core -> internal 1
        mask = _canon(old / "brainmask.nii.gz") > 0
        mods = [(m, np.where(mask, _canon(old / f"{m}_subtrMeanDivStd.nii.gz"), 0)) for m in ("T1c", "Flair")]
        out.append(("real BraTS 2013 pat0001 (manual label)", mods, lab))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[13, 1])
    ap.add_argument("--out", type=Path, default=Path("docs/img/synth-vs-real.png"))
    args = ap.parse_args()
    data = rows(args.seeds)
    fig, axes = plt.subplots(len(data), 5, figsize=(12.5, 2.7 * len(data)), squeeze=False)
    for r, (name, mods, lab) in enumerate(data):
        z = _slice_through(lab, mods[-1][1])
        for c in range(5):
            ax = axes[r, c]
            if c < len(mods):
                _show(ax, mods[c][1], None, z, f"{name}\n{mods[c][0]}" if c == 0 else mods[c][0])
            elif c == 4 and lab is not None:
                _show(ax, mods[-1][1], lab, z, f"{mods[-1][0]} + label (red NCR, green ED, yellow ET)")
            else:
                ax.axis("off")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
