"""Follow-up comparison of two ``segment`` results of one patient: volumes then / now, the change in the sum of
bidimensional products, matched / new / resolved lesions, and RANO 2.0's imaging-only categories.

* Each time point is measured on its own native grid (volumes and diameters are never taken from resampled labels).
* Lesions are matched by overlap after rigid alignment of the two studies (the co-registration ``segment`` uses,
  ``preprocess.spatial.register_studies``): the baseline's lesions are carried onto the follow-up grid (nearest
  voxel) and a follow-up lesion that overlaps none of them is new; a baseline lesion that overlaps nothing resolved.
* The figure shows both time points side by side on the follow-up's axial slice through its largest lesion, the
  baseline resampled onto that slice through the alignment (display only).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError
from .labels import to_internal
from .modalities import parse_modality

COMPARTMENTS = ("NCR", "ED", "ET", "TC", "WT")


@dataclass
class TimePoint:
    """One ``segment`` output folder, read back: internal labels on the reference's native grid and its image."""

    folder: Path
    name: str
    labels: np.ndarray
    affine: np.ndarray
    reference: str
    image: np.ndarray | None
    image_path: Path | None
    report: dict = field(repr=False, default_factory=dict)


def _reference_image_path(folder: Path, report: Mapping) -> Path | None:
    """The reference series as ``segment`` recorded it: a copy in the folder (DICOM input) or the input file."""
    candidates = []
    out = (report.get("outputs") or {}).get("reference_image")
    if out:
        candidates += [Path(out), folder / Path(out).name]
    ref = (report.get("preprocessing") or {}).get("reference")
    path = (report.get("input") or {}).get("images", {}).get(ref) if ref else None
    if path:
        candidates.append(Path(path))
    return next((p for p in candidates if p.is_file()), None)


def load_time_point(folder: Path | str) -> TimePoint:
    """Read a ``segment`` output folder; a clear error when it is not one."""
    from .io.nifti import read_nifti

    folder = Path(folder)
    report_path, seg_path = folder / "report.json", folder / "segmentation.nii.gz"
    if not report_path.is_file() or not seg_path.is_file():
        raise InputError(f"{folder} is not a segment output folder (needs report.json and segmentation.nii.gz)")
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {report_path}: {exc}") from None
    seg = read_nifti(seg_path, dtype=None)
    labels = to_internal(np.asarray(seg.data).astype(np.uint8), report.get("label_scheme", "brats2021"))
    image_path = _reference_image_path(folder, report)
    image = None
    if image_path is not None:
        img = read_nifti(image_path, dtype=np.float32)
        image = img.data if img.data.shape == labels.shape else None
    reference = str((report.get("preprocessing") or {}).get("reference") or "T1c")
    return TimePoint(folder, str(report.get("patient") or folder.name), labels, np.asarray(seg.affine, float),
                     reference, image, image_path if image is not None else None, report)


def _measure(tp: TimePoint) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    from .infer.clinical import measure_case

    lesions, rano, maps = measure_case(tp.labels, tp.affine, parse_modality(tp.reference))
    return lesions, rano, maps["tumour"], maps["enhancing"]


def _match(base_on_follow: np.ndarray, follow: np.ndarray, n_base: int) -> dict:
    """Overlap of lesion maps on one grid: matches (follow -> base lesions), new and resolved lesion numbers."""
    pairs = np.stack([follow.ravel(), base_on_follow.ravel()], 1)
    pairs = pairs[(pairs[:, 0] > 0) & (pairs[:, 1] > 0)]
    matches: dict[int, list[int]] = {}
    for f, b in {tuple(p) for p in pairs.tolist()}:
        matches.setdefault(int(f), []).append(int(b))
    follow_ids = [int(v) for v in np.unique(follow) if v]
    new = [f for f in follow_ids if f not in matches]
    seen = {b for bs in matches.values() for b in bs}
    resolved = [b for b in range(1, n_base + 1) if b not in seen]
    return {"matches": {str(f): sorted(bs) for f, bs in sorted(matches.items())}, "new": new, "resolved": resolved}


def compare_time_points(base: TimePoint, follow: TimePoint, register: bool = True) -> tuple[dict, dict]:
    """The comparison (JSON-ready) and what the figure needs."""
    from .metrics import volumes_ml
    from .rano import percent_change, response
    from .voxels import sample_on_grid

    notes: list[str] = []
    transform = np.eye(4)
    alignment = {"method": "none: scanner coordinates", "metric": None}
    if register and base.image is not None and follow.image is not None:
        from .preprocess.registration import register_studies, rigid_parameters

        transform, metric, init = register_studies(follow.image, follow.affine, base.image, base.affine)
        angle, shift = rigid_parameters(transform)
        alignment = {"method": f"rigid, Mattes mutual information (init {init})", "metric": round(metric, 4),
                     "rotation_deg": round(angle, 2), "translation_mm": round(shift, 2),
                     "follow_to_baseline_ras": np.round(transform, 5).tolist()}
    elif register:
        notes.append("the reference images were not found, so lesions were matched in scanner coordinates without "
                     "alignment: matches may be wrong if the head moved between the scans")
    vol_b, vol_f = volumes_ml(base.labels, base.affine), volumes_ml(follow.labels, follow.affine)
    volumes = {k: {"baseline_ml": round(vol_b[k], 3), "followup_ml": round(vol_f[k], 3),
                   "change_ml": round(vol_f[k] - vol_b[k], 3), "change_percent": percent_change(vol_b[k], vol_f[k])}
               for k in COMPARTMENTS}
    les_b, rano_b, tum_b, enh_b = _measure(base)
    les_f, rano_f, tum_f, enh_f = _measure(follow)
    shape = follow.labels.shape

    def carried(numbered: np.ndarray) -> np.ndarray:
        return sample_on_grid(numbered.astype(np.int32), base.affine, shape, follow.affine, transform, order=0)

    tumour_match = _match(carried(tum_b), tum_f, len(les_b["tumour"]["lesions"]))
    enh_match = _match(carried(enh_b), enh_f, len(les_b["enhancing"]["lesions"]))
    measurable_f = {m["lesion"] for m in rano_f["measurements"] if m["measurable"]}
    new_measurable = [n for n in enh_match["new"] if n in measurable_f]
    verdict = response(rano_b["spd_mm2"], rano_f["spd_mm2"], vol_b["ET"], vol_f["ET"], len(new_measurable))
    result = {
        "baseline": {"folder": str(base.folder), "patient": base.name, "reference": base.reference,
                     "reference_image": str(base.image_path) if base.image_path else None},
        "followup": {"folder": str(follow.folder), "patient": follow.name, "reference": follow.reference,
                     "reference_image": str(follow.image_path) if follow.image_path else None},
        "alignment": alignment,
        "volumes": volumes,
        "spd": {"baseline_mm2": rano_b["spd_mm2"], "followup_mm2": rano_f["spd_mm2"],
                "change_mm2": round(rano_f["spd_mm2"] - rano_b["spd_mm2"], 1),
                "change_percent": percent_change(rano_b["spd_mm2"], rano_f["spd_mm2"])},
        "lesions": {"tumour": tumour_match, "enhancing": {**enh_match, "new_measurable": new_measurable}},
        "response": verdict,
        "baseline_measurements": {"lesions": les_b, "rano": rano_b},
        "followup_measurements": {"lesions": les_f, "rano": rano_f},
        "notes": notes,
    }
    if base.name != follow.name:
        result["notes"].append(f"the two results name different patients ({base.name} / {follow.name}): "
                               "check that they are one patient")
    return result, {"transform": transform, "tumour_f": tum_f}


def figure_png(base: TimePoint, follow: TimePoint, transform: np.ndarray, tumour_f: np.ndarray, title: str) -> bytes:
    """Baseline and follow-up side by side on the follow-up's axial slice through its largest lesion."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .infer.preview import COLOURS
    from .rano import axial_axis
    from .voxels import sample_on_grid

    shape = follow.labels.shape
    axis = axial_axis(follow.affine)
    base_lab = sample_on_grid(base.labels, base.affine, shape, follow.affine, transform, order=0)
    focus = tumour_f == 1 if (tumour_f == 1).any() else base_lab > 0
    k = int(np.round(np.argwhere(focus)[:, axis].mean())) if focus.any() else shape[axis] // 2
    panels = []
    if base.image is not None:
        panels.append(("baseline (aligned)", sample_on_grid(base.image, base.affine, shape, follow.affine, transform,
                                                            order=1), base_lab))
    else:
        panels.append(("baseline (no image)", np.zeros(shape, np.float32), base_lab))
    panels.append(("follow-up", follow.image if follow.image is not None else np.zeros(shape, np.float32),
                   follow.labels))
    cols = follow.affine[:3, :3]
    inplane = [a for a in range(3) if a != axis]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.8), facecolor="black")
    for ax, (name, img, lab) in zip(axes, panels):
        sl, ls = np.take(img, k, axis=axis), np.take(lab, k, axis=axis)
        vals = sl[sl != 0]
        lo, hi = np.percentile(vals, [1, 99.5]) if vals.size else (0.0, 1.0)
        sp = [float(np.linalg.norm(cols[:, a])) for a in inplane]
        ax.imshow(sl.T, cmap="gray", vmin=lo, vmax=hi, origin="lower", aspect=sp[1] / sp[0], interpolation="nearest")
        rgba = np.zeros((*ls.T.shape, 4))
        for v, colour in COLOURS.items():
            rgba[ls.T == v] = (*colour, 0.45)
        ax.imshow(rgba, origin="lower", aspect=sp[1] / sp[0], interpolation="nearest")
        if cols[0, inplane[0]] > 0:  # radiological display: the patient's right on the left
            ax.invert_xaxis()
        if cols[1, inplane[1]] < 0:
            ax.invert_yaxis()
        ax.set_title(name, color="white")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.02, 0.5, "R", color="white", transform=ax.transAxes)
        ax.text(0.94, 0.5, "L", color="white", transform=ax.transAxes)
    fig.suptitle(title, color="white", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=90, facecolor="black", format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()


def write_comparison(base_dir: Path | str, follow_dir: Path | str, out_dir: Path | str, register: bool = True,
                     include: Mapping[str, Path] | None = None) -> dict:
    """``compare.json``, ``comparison.png``, ``lesion_changes.csv`` and ``report.html`` in ``out_dir`` (all or none).

    ``include`` names folders moved into ``out_dir`` with the results (the segmentations ``compare`` made itself)."""
    import shutil

    from .infer.page import compare_page
    from .io.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
    from .io.staging import check_output_folder, staged_folder

    out_dir = Path(out_dir)
    base, follow = load_time_point(base_dir), load_time_point(follow_dir)
    check_output_folder(out_dir)
    result, extra = compare_time_points(base, follow, register)
    v = result["volumes"]
    png = figure_png(base, follow, extra["transform"], extra["tumour_f"],
                     f"WT {v['WT']['baseline_ml']:.1f} -> {v['WT']['followup_ml']:.1f} mL, "
                     f"ET {v['ET']['baseline_ml']:.1f} -> {v['ET']['followup_ml']:.1f} mL")
    names = {"compare": "compare.json", "figure": "comparison.png", "changes": "lesion_changes.csv",
             "report_html": "report.html"}
    result["outputs"] = {k: str(out_dir / n) for k, n in names.items()}
    for name in include or {}:  # segmentations made for this comparison are kept inside it
        result[name]["folder"] = str(out_dir / name)
    with staged_folder(out_dir) as stage:
        write_bytes_atomic(stage / names["figure"], png)
        write_text_atomic(stage / names["changes"], changes_csv(result))
        write_json_atomic(stage / names["compare"], result, default=str)
        write_text_atomic(stage / names["report_html"], compare_page(result, png))
        for name, folder in (include or {}).items():
            shutil.move(str(folder), str(stage / name))
    return result


def changes_csv(result: Mapping) -> str:
    """One row per compartment (volumes) and one per enhancing measurement line (then / now)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["item", "baseline", "followup", "change", "change_percent", "note"])
    for k in COMPARTMENTS:
        r = result["volumes"][k]
        w.writerow([f"{k} volume (mL)", r["baseline_ml"], r["followup_ml"], r["change_ml"],
                    "" if r["change_percent"] is None else r["change_percent"]])
    s = result["spd"]
    w.writerow(["SPD (mm2)", s["baseline_mm2"], s["followup_mm2"], s["change_mm2"],
                "" if s["change_percent"] is None else s["change_percent"]])
    e = result["lesions"]["enhancing"]
    t = result["lesions"]["tumour"]
    w.writerow(["new tumour lesions", "", len(t["new"]), "", ""])
    w.writerow(["new enhancing lesions (measurable)", "", f"{len(e['new'])} ({len(e['new_measurable'])})", "", ""])
    w.writerow(["resolved enhancing lesions", len(e["resolved"]), "", "", ""])
    for kind in ("bidimensional", "volumetric"):
        w.writerow([f"RANO 2.0 imaging category ({kind})", "", result["response"][kind]["category"], "", "",
                    result["response"][kind]["why"]])
    return buf.getvalue()

