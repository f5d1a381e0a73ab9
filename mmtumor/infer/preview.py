"""PNG preview: axial, coronal and sagittal slices through the tumour centroid for every present modality,
with the segmentation overlaid and a legend. Drawn in voxel space of the native grid, oriented for display
(radiological convention: the patient's right on the image's left, side letters on every view)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.atomic import atomic_target
from ..labels import ED, ET, NCR

COLOURS = {NCR: (1.0, 0.2, 0.2), ED: (0.2, 0.9, 0.2), ET: (1.0, 0.9, 0.1)}
NAMES = {NCR: "NCR/NET (1)", ED: "edema (2)", ET: "enhancing (4)"}


def _centre(labels: np.ndarray, image: np.ndarray) -> tuple[int, int, int]:
    idx = np.argwhere(labels > 0)
    if len(idx) == 0:
        idx = np.argwhere(image != 0)
    if len(idx) == 0:
        return tuple(s // 2 for s in labels.shape)  # type: ignore[return-value]
    return tuple(int(v) for v in np.round(idx.mean(axis=0)))  # type: ignore[return-value]


def _views(vol: np.ndarray, c: tuple[int, int, int]) -> list[np.ndarray]:
    """Slices of a RAS-canonical volume, turned so that anterior/superior are up, in radiological display (the
    patient's right on the left of the axial and coronal views, as ``measurements.png`` and PACS viewers show it)."""
    return [np.fliplr(np.rot90(vol[:, :, c[2]])), np.fliplr(np.rot90(vol[:, c[1], :])), np.rot90(vol[c[0], :, :])]


#: side letters per view (left edge, right edge): radiological axial/coronal, sagittal with anterior on the right
SIDES = (("R", "L"), ("R", "L"), ("P", "A"))


def write_preview(path: Path | str, images: dict[str, np.ndarray], labels: np.ndarray, affine: np.ndarray,
                  title: str = "") -> Path:
    """``images``: modality name -> array in the same grid as ``labels`` (the native reference grid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nibabel as nib
    from matplotlib.patches import Patch

    # display in RAS canonical orientation (only axis flips/permutations: no resampling)
    ornt = nib.orientations.io_orientation(affine)
    def canon(a):
        return nib.orientations.apply_orientation(a, ornt)

    lab = canon(labels)
    first = next(iter(images.values()))
    c = _centre(lab, canon(first))
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False, facecolor="black")
    for row, (name, img) in enumerate(images.items()):
        img_c = canon(img)
        vals = img_c[img_c != 0]
        lo, hi = (np.percentile(vals, [1, 99.5]) if vals.size else (0, 1))
        for col, (sl, ls) in enumerate(zip(_views(img_c, c), _views(lab, c))):
            ax = axes[row][col]
            ax.imshow(sl, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            rgba = np.zeros((*ls.shape, 4))
            for v, colour in COLOURS.items():
                rgba[ls == v] = (*colour, 0.45)
            ax.imshow(rgba, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for x, letter in zip((0.02, 0.9), SIDES[col]):
                ax.text(x, 0.5, letter, color="white", fontsize=8, transform=ax.transAxes)
            if col == 0:
                ax.set_ylabel(name, color="white")
            if row == 0:
                ax.set_title(("axial", "coronal", "sagittal")[col], color="white")
    handles = [Patch(color=COLOURS[v], label=NAMES[v]) for v in (NCR, ED, ET)]
    fig.legend(handles=handles, loc="lower center", ncol=3, facecolor="black", labelcolor="white", frameon=False)
    if title:
        fig.suptitle(title, color="white")
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return save_png(fig, path, dpi=90)


def save_png(fig, path: Path | str, dpi: int) -> Path:
    """Write a matplotlib figure (black background) atomically and close it: every PNG ``segment`` writes."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_target(path, ".png") as tmp:
            fig.savefig(tmp, dpi=dpi, facecolor="black", format="png")
    finally:
        plt.close(fig)
    return path
