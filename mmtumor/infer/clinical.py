"""The clinician's part of ``segment``'s outputs: the lesion table (``lesions.csv``, report.json ``lesions``), RANO
measurements (report.json ``rano``) and the measured diameters as overlays (``measurements.png`` and
``measurements.nii.gz``). Everything is measured on the native grid of the reference series, which is the T1c
whenever a T1c is present (``preprocess.spatial.choose_reference``): nothing is resampled."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..io.atomic import write_text_atomic
from ..io.nifti import write_nifti
from ..lesions import AtlasFrame, find_lesions, lesion_rows
from ..modalities import Modality
from ..rano import measure

#: values of ``measurements.nii.gz``
LINE_VALUES = {"longest": 1, "perpendicular": 2}


def atlas_frame(pre, image: np.ndarray | None = None) -> AtlasFrame:
    """Where the lesions sit: MNI152 when brain extraction registered the atlas; the SRI24 grid centre for
    BraTS-preprocessed input (already in SRI24 space, midline at the grid centre); otherwise (skull-stripped input)
    the atlas registered to ``image`` (the reference series) here, a few seconds; no atlas when that fails."""
    to_working = np.linalg.inv(pre.affine)
    if pre.to_mni is not None:
        return AtlasFrame("MNI152 (affine registration of the reference series)", np.asarray(pre.to_mni), to_working)
    if pre.brats_preprocessed:
        centre = pre.native_affine @ np.r_[(np.asarray(pre.native_shape) - 1) / 2.0, 1.0]
        shift = np.eye(4)
        shift[:3, 3] = -centre[:3]
        return AtlasFrame("SRI24 (BraTS-preprocessed input; origin at the grid centre)", shift, to_working)
    if image is not None:
        from ..preprocess.registration import RegistrationSettings, register_to_mni

        # 4 mm is enough to place a lesion (same transform to ~0.4 mm on a phantom) and half the time of 2 mm
        coarse = RegistrationSettings(spacing=4.0, shrink=(2, 1), smoothing_mm=(4.0, 2.0), atlas_iterations=40)
        try:
            to_mni, _ = register_to_mni(image, pre.native_affine, settings=coarse)
            return AtlasFrame("MNI152 (affine registration of the reference series, for lesion positions only)",
                              to_mni, to_working)
        except RuntimeError:  # SimpleITK failures: positions stay in scanner coordinates
            pass
    return AtlasFrame(None, None, to_working)


def measure_case(labels: np.ndarray, affine: np.ndarray, reference: Modality, frame: AtlasFrame | None = None
                 ) -> tuple[dict, dict, dict[str, np.ndarray]]:
    """(lesions, rano, lesion-number maps per kind) for internal ``labels`` on the reference's native grid."""
    tumour, tumour_map = find_lesions(labels, affine, "tumour", frame)
    enhancing, numbered = find_lesions(labels, affine, "enhancing", frame)
    rano = measure(numbered, affine)
    rano["grid"] = ("T1c native grid" if reference is Modality.T1C else
                    f"{reference.value} native grid: no T1c, so enhancement is judged without the sequence RANO "
                    "measures on")
    lesions = {"tumour": tumour.as_dict(), "enhancing": enhancing.as_dict(),
               "atlas": frame.name if frame else None,
               "rules": "26-connected components of the whole tumour (NCR+ED+ET) and of ET alone; components under "
                        "0.05 mL are counted in below_minimum, not listed; numbered by volume, largest first"}
    return lesions, rano, {"tumour": tumour_map, "enhancing": numbered}


def write_lesions_csv(out_dir: Path, lesions: Mapping, rano: Mapping) -> Path:
    """``lesions.csv``: one row per lesion (tumour lesions, then enhancing lesions with their RANO columns)."""
    by_lesion = {m["lesion"]: m for m in rano["measurements"]}
    rows = lesion_rows([lesions["tumour"], lesions["enhancing"]], by_lesion)
    fields = list(rows[0]) if rows else ["kind", "lesion"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    return write_text_atomic(out_dir / "lesions.csv", buf.getvalue())


def line_mask(shape: Sequence[int], affine: np.ndarray, rano: Mapping) -> np.ndarray:
    """The measured diameters rasterised on the measurement grid: 1 longest, 2 perpendicular (uint8)."""
    out = np.zeros(tuple(shape), np.uint8)
    inv = np.linalg.inv(np.asarray(affine, float))
    step = 0.25 * float(np.min(np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)))
    for m in rano["measurements"]:
        for key, value in (("longest_endpoints_ras", LINE_VALUES["longest"]),
                           ("perpendicular_endpoints_ras", LINE_VALUES["perpendicular"])):
            ends = m.get(key)
            if not ends:
                continue
            a, b = (np.asarray(e, float) for e in ends)
            n = max(2, int(np.ceil(np.linalg.norm(b - a) / step)) + 1)
            pts = a + np.linspace(0, 1, n)[:, None] * (b - a)
            idx = np.rint(pts @ inv[:3, :3].T + inv[:3, 3]).astype(int)
            ok = np.all((idx >= 0) & (idx < np.array(shape)), axis=1)
            out[tuple(idx[ok].T)] = value
    return out


def write_measurement_overlays(out_dir: Path, image: np.ndarray, labels: np.ndarray, affine: np.ndarray,
                               rano: Mapping, title: str = "") -> dict[str, str]:
    """``measurements.nii.gz`` (line mask) and, when a lesion was measured, ``measurements.png``."""
    outputs = {"measurements_nifti": str(write_nifti(out_dir / "measurements.nii.gz",
                                                     line_mask(labels.shape, affine, rano), affine))}
    if rano["measurements"]:
        outputs["measurements_png"] = str(write_measurement_png(out_dir / "measurements.png", image, labels, affine,
                                                                rano, title))
    return outputs


def _shown(rano: Mapping, limit: int = 3) -> list[dict]:
    """The lesions drawn: the targets, else the largest measured lesions."""
    meas = rano["measurements"]
    targets = [m for m in meas if m["target"]]
    return (targets or sorted(meas, key=lambda m: -m["product_mm2"]))[:limit]


def write_measurement_png(path: Path, image: np.ndarray, labels: np.ndarray, affine: np.ndarray, rano: Mapping,
                          title: str = "") -> Path:
    """One axial panel per drawn lesion, in radiological display (patient's right on the left, anterior up),
    with the enhancing tumour outlined and both diameters drawn and labelled in mm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..labels import ET
    from ..rano import axial_axis

    shown = _shown(rano)
    axis = axial_axis(affine)
    p_ax, q_ax = [a for a in range(3) if a != axis]
    cols = np.asarray(affine, float)[:3, :3]
    sp, sq = np.linalg.norm(cols[:, p_ax]), np.linalg.norm(cols[:, q_ax])
    # put the in-plane axis closest to left-right horizontally
    horizontal, vertical = (p_ax, q_ax) if abs(cols[0, p_ax]) / sp >= abs(cols[0, q_ax]) / sq else (q_ax, p_ax)
    inv = np.linalg.inv(np.asarray(affine, float))
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 4.6), squeeze=False, facecolor="black")
    for ax, m in zip(axes[0], shown):
        k = m["slice_index"]
        img = np.take(image, k, axis=axis)
        lab = np.take(labels, k, axis=axis)
        if horizontal > vertical:  # rows of the 2-D slice follow the lower in-plane axis
            img, lab = img.T, lab.T
        vals = img[img != 0]
        lo, hi = np.percentile(vals, [1, 99.5]) if vals.size else (0.0, 1.0)
        h_sp, v_sp = np.linalg.norm(cols[:, horizontal]), np.linalg.norm(cols[:, vertical])
        ax.imshow(img.T, cmap="gray", vmin=lo, vmax=hi, origin="lower", aspect=v_sp / h_sp, interpolation="nearest")
        ax.contour((lab == ET).T.astype(float), levels=[0.5], colors=["yellow"], linewidths=0.8, origin="lower")
        for key, colour, value in (("longest_endpoints_ras", "cyan", m["longest_mm"]),
                                   ("perpendicular_endpoints_ras", "magenta", m["perpendicular_mm"])):
            ends = m.get(key)
            if not ends:
                continue
            vox = np.asarray(ends, float) @ inv[:3, :3].T + inv[:3, 3]
            ax.plot(vox[:, horizontal], vox[:, vertical], color=colour, linewidth=1.6)
            ax.text(vox[1, horizontal], vox[1, vertical], f" {value:.1f} mm", color=colour, fontsize=8)
        ends_vox = np.asarray(m["longest_endpoints_ras"], float) @ inv[:3, :3].T + inv[:3, 3]
        centre = ends_vox.mean(axis=0)
        half = max(35.0, 1.2 * m["longest_mm"])  # mm around the lesion: close enough to see the calipers
        ax.set_xlim(centre[horizontal] - half / h_sp, centre[horizontal] + half / h_sp)
        ax.set_ylim(centre[vertical] - half / v_sp, centre[vertical] + half / v_sp)
        if cols[0, horizontal] > 0:  # +index points to the patient's right: radiological display puts it left
            ax.invert_xaxis()
        if cols[1, vertical] < 0:  # anterior up
            ax.invert_yaxis()
        status = "target" if m["target"] else ("measurable" if m["measurable"] else "not measurable")
        ax.set_title(f"ET lesion {m['lesion']} ({status}), slice {k}\n{m['longest_mm']:.1f} x "
                     f"{m['perpendicular_mm']:.1f} mm = {m['product_mm2']:.0f} mm²", color="white", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.02, 0.5, "R", color="white", transform=ax.transAxes, fontsize=9)
        ax.text(0.95, 0.5, "L", color="white", transform=ax.transAxes, fontsize=9)
    if title:
        fig.suptitle(title, color="white", fontsize=10)
    fig.tight_layout()
    from .preview import save_png

    return save_png(fig, path, dpi=100)
