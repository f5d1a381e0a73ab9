"""Real scans acquired the clinical way: the labelled real cases re-acquired as PACS-like DICOM studies and run
through the whole `segment` path (docs/bench-clinical-real.md).

    python benchmarks/bench_clinical_real.py [--weights default] [--real ../shared/data/real] [--cases 6]
                                             [--protocols 2d-5mm,oblique,...] [--update-card] [--keep DIR]
                                             [--head-seed 7100]

Why: the real validation cases are BraTS files (1 mm, co-registered, skull-stripped), the one input where
`segment` interpolates nothing. Users bring DICOM: 2D stacks with 5 mm slices, 3D sagittal acquisitions, oblique
planes, one series per modality on its own grid, vendor naming, localizers and DWI beside them. This script
re-acquires each labelled real case (T1c + FLAIR, BraTS 2013) in such protocols with the phantom DICOM writer
(`mmtumor.synth.dicom.write_study`: slab-averaged thick slices, vendor headers, distractor series), then runs
`mmtumor.api.segment` on the study folder exactly as a user would: discovery, modality detection, conversion,
co-registration, resampling, inference and the way back to the T1c series' native grid.

The `skull-on` protocols first put each real brain back into a synthetic head (`mmtumor.synth.head`: skull, scalp,
orbits, neck), so `segment` must find the brain itself, as on a clinical scan; the head is a model, the brain and
its label are real.

Scoring: the segmentation (on the T1c series' grid) is brought back onto the original 1 mm reference grid
(nearest neighbour through world coordinates) and compared with the reference label. "ceiling" is the Dice of
the reference itself after the same round trip (reference -> T1c acquisition grid -> 1 mm): what a perfect
model could score at that slice thickness. Validation only: these cases are never trained on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT_MD = ROOT / "docs" / "bench-clinical-real.md"
REAL = ROOT.parent / "shared" / "data" / "real"

@dataclass(frozen=True)
class Protocol:
    """How a case is re-acquired: T1c and FLAIR as (plane, slice mm) or None (not acquired), and scanner effects."""

    t1c: tuple[str, float]
    flair: tuple[str, float] | None
    what: str
    bias: float = 0.0  # strength of a smooth multiplicative receive field exp(bias * n), n unit-variance over ~70 mm
    n4: bool = False  # run segment with --n4
    tilt: float = 0.0  # head pitched by this many degrees (chin down) about the left-right axis before acquisition
    flair_motion: float = 0.0  # the head moved between the T1c and the FLAIR: this many degrees of pitch, as many mm
    skull_strip: str | bool = "auto"  # segment --skull-strip (True = the atlas brain mask even on a stripped scan)
    head: bool = False  # put the real brain back into a synthetic head (skull, scalp, face, neck; mmtumor.synth.head)


PROTOCOLS: dict[str, Protocol] = {
    "dicom-1mm": Protocol(("axial", 1.0), ("axial", 1.0), "both axial at 1 mm (the BraTS grid, through DICOM)"),
    "3d-t1c+2d-flair": Protocol(("sagittal", 1.0), ("axial", 5.0), "T1c 3D sagittal 1 mm, FLAIR 2D axial 5 mm (a common modern protocol)"),
    "2d-5mm": Protocol(("axial", 5.0), ("axial", 5.0), "T1c and FLAIR 2D axial 5 mm (older or fast protocols)"),
    "oblique": Protocol(("oblique", 3.0), ("coronal", 4.0), "T1c oblique 3 mm, FLAIR coronal 4 mm"),
    "2d-t1c-only": Protocol(("axial", 5.0), None, "T1c alone, 2D axial 5 mm (no FLAIR acquired)"),
    "bias": Protocol(("sagittal", 1.0), ("axial", 5.0), "as 3d-t1c+2d-flair, with an uncorrected receive-coil field on each series (exp(0.25 n), about ±40 %)", bias=0.25),
    "bias+n4": Protocol(("sagittal", 1.0), ("axial", 5.0), "the same studies as bias, segmented with --n4", bias=0.25, n4=True),
    "flair-moved": Protocol(("sagittal", 1.0), ("axial", 5.0), "the patient moved between the series: FLAIR turned 8° and shifted 8 mm against the T1c",
                            flair_motion=8.0),
    "atlas-mask": Protocol(("sagittal", 1.0), ("axial", 5.0), "as 3d-t1c+2d-flair, with the atlas brain mask forced (--skull-strip yes), as a skull-on scan would get",
                           skull_strip=True),
    "tilted": Protocol(("sagittal", 1.0), ("axial", 5.0), "head pitched 20° in the coil; T1c 3D sagittal 1 mm, FLAIR 2D axial 5 mm not angled to the brain", tilt=20.0),
    "skull-on": Protocol(("sagittal", 1.0), ("axial", 5.0), "as 3d-t1c+2d-flair, the real brain inside a synthetic head (CSF, skull with diploe, muscle, scalp fat, face, neck): `segment` must find the brain itself",
                         head=True),
    "skull-on-2d": Protocol(("axial", 5.0), ("axial", 5.0), "as 2d-5mm, inside the synthetic head", head=True),
}


def _pitched(affine: np.ndarray, shape, degrees: float) -> np.ndarray:
    """The affine of the same voxels after the head turned by ``degrees`` about the left-right axis through its centre."""
    if not degrees:
        return affine
    a = np.deg2rad(degrees)
    rot = np.eye(4)
    rot[1:3, 1:3] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    centre = affine @ np.array([*(np.array(shape[:3]) - 1) / 2.0, 1.0])
    to, back = np.eye(4), np.eye(4)
    to[:3, 3], back[:3, 3] = -centre[:3], centre[:3]
    return back @ rot @ to @ affine


def _round_trip(label: np.ndarray, affine: np.ndarray, grid_shape, grid_affine) -> np.ndarray:
    """``label`` (on ``affine``) -> nearest onto the acquisition grid -> nearest back onto ``affine``."""
    from scipy.ndimage import affine_transform

    m = np.linalg.inv(affine) @ grid_affine
    on_grid = affine_transform(label, m[:3, :3], m[:3, 3], output_shape=tuple(grid_shape), order=0)
    back = np.linalg.inv(m)
    return affine_transform(on_grid, back[:3, :3], back[:3, 3], output_shape=label.shape, order=0)


def _on_reference(seg_path: Path, ref_shape, ref_affine) -> np.ndarray:
    """The segmentation file brought onto the 1 mm reference grid (nearest neighbour), internal labels."""
    import nibabel as nib
    from scipy.ndimage import affine_transform

    from mmtumor.labels import to_internal

    img = nib.load(str(seg_path))
    m = np.linalg.inv(img.affine) @ ref_affine
    seg = to_internal(np.asarray(img.dataobj).astype(np.uint8), "brats2021")
    return affine_transform(seg, m[:3, :3], m[:3, 3], output_shape=tuple(ref_shape), order=0)


def main() -> None:
    import json

    import torch

    from mmtumor import api
    from mmtumor.io.dataset import find_cases, load_case
    from mmtumor.labels import labels_to_regions
    from mmtumor.modalities import Modality
    from mmtumor.synth.artefacts import bias_field
    from mmtumor.synth.dicom import VENDORS, acquisition_grid, write_study
    from mmtumor.synth.head import wrap_in_head
    from mmtumor.weights import resolve

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="default")
    ap.add_argument("--real", type=Path, default=REAL, help="folder holding brats2013-flair-t1c/")
    ap.add_argument("--cases", type=int, default=6)
    ap.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated subset of " + ", ".join(PROTOCOLS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="keep the DICOM studies and outputs here")
    ap.add_argument("--head-seed", type=int, default=7100, help="seed of the synthetic heads (case i gets seed + i)")
    ap.add_argument("--md", type=Path, default=OUT_MD, help="where the results page goes")
    ap.add_argument("--update-card", action="store_true",
                    help="record the CARD_PROTOCOLS rows in the weights' model card (metrics.real)")
    args = ap.parse_args()
    labelled = args.real / "brats2013-flair-t1c"
    if not labelled.is_dir():
        sys.exit(f"real validation data not found under {args.real}")
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        sys.exit(f"unknown protocols {sorted(unknown)}; choose from {', '.join(PROTOCOLS)}")
    torch.set_num_threads(args.threads)
    weights = None if args.weights == "default" else args.weights
    rw = resolve(weights)
    flags = dict(device="cpu", preview=False, threads=args.threads)  # segment's own defaults otherwise
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mmtumor-clinical-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows: dict[str, list[dict]] = {p: [] for p in ["nifti"] + protocols}
    try:
        for ci, case in enumerate(find_cases(labelled, require_label=True)[: args.cases]):
            lc = load_case(case)
            ref = labels_to_regions(lc.label).astype(bool)
            vols = {}
            for m in (Modality.T1C, Modality.FLAIR):
                data = lc.image[m.index]  # the file's own voxels (load_case does not normalise)
                vols[m] = (data - data.min(), lc.affine)  # clinical images are non-negative with a zero background

            # the BraTS files themselves (what the existing real-scan tables measure)
            out = work / case.case_id / "nifti"
            t = time.perf_counter()
            api.segment(None, out, weights=weights, t1c=case.images[Modality.T1C], flair=case.images[Modality.FLAIR],
                        **flags)
            rows["nifti"].append(_score(out, ref, lc.affine, time.perf_counter() - t))
            print(case.case_id, "nifti", _fmt(rows["nifti"][-1]), flush=True)

            head_vols = None
            for name in protocols:
                proto = PROTOCOLS[name]
                acq = {Modality.T1C: proto.t1c}
                study_vols = {Modality.T1C: vols[Modality.T1C]}
                if proto.flair is not None:
                    acq[Modality.FLAIR] = proto.flair
                    study_vols[Modality.FLAIR] = vols[Modality.FLAIR]
                base = lc.affine
                if proto.head:  # one head per case (built once, for T1c and FLAIR), shared by the skull-on protocols
                    if head_vols is None:
                        imgs, head_aff, _brain = wrap_in_head({m: vols[m][0] for m in vols}, lc.affine, seed=args.head_seed + ci)
                        head_vols = {m: (d, head_aff) for m, d in imgs.items()}
                    study_vols = {m: head_vols[m] for m in study_vols}
                    base = head_vols[Modality.T1C][1]
                if proto.bias:
                    rng = np.random.default_rng(7000 + ci)  # the same field for bias and bias+n4
                    study_vols = {m: (d * bias_field(rng, d.shape, np.ones(3), proto.bias), a) for m, (d, a) in study_vols.items()}
                if proto.tilt and proto.head:
                    raise ValueError("tilt and head are not combined: the label would turn about another centre")
                head = _pitched(lc.affine, ref.shape[1:], proto.tilt)  # where the head (and its reference label) now is
                if proto.tilt:
                    base = head
                study_vols = {m: (d, base) for m, (d, _a) in study_vols.items()}
                if proto.flair_motion and Modality.FLAIR in study_vols:
                    moved = _pitched(base, study_vols[Modality.FLAIR][0].shape, proto.flair_motion)
                    moved[:3, 3] += proto.flair_motion / np.sqrt(3)  # and shifted by flair_motion mm
                    study_vols[Modality.FLAIR] = (study_vols[Modality.FLAIR][0], moved)
                # the same study for protocols that differ only in how segment runs
                seed = 1000 * ci + list(PROTOCOLS).index(name.replace("+n4", ""))
                vendor = VENDORS[seed % len(VENDORS)]
                study = work / case.case_id / f"{name}-dicom"
                if study.exists():
                    shutil.rmtree(study)
                write_study(study_vols, study, seed=seed, vendor=vendor, distractors=True, acquisition=acq)
                out = work / case.case_id / name
                t = time.perf_counter()
                try:
                    res = api.segment([study], out, weights=weights, **dict(flags, n4=proto.n4, skull_strip=proto.skull_strip))
                    if res.failures:
                        raise RuntimeError(res.failures[0].error)
                except Exception as exc:  # recorded, not fatal: a failure is a finding
                    rows[name].append({"error": f"{type(exc).__name__}: {exc}"})
                    print(case.case_id, name, "FAILED", exc, flush=True)
                    continue
                grid = acquisition_grid(*study_vols[Modality.T1C], *proto.t1c)
                r = _score(out, ref, head, time.perf_counter() - t, grid=(grid[0].shape, grid[1]))
                r["vendor"] = vendor
                r["detected"] = "+".join(sorted(json.loads((out / "report.json").read_text())["input"]["images"]))
                rows[name].append(r)
                print(case.case_id, name, vendor, r["detected"], _fmt(r), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    minutes = (time.perf_counter() - t0) / 60
    _write_md(rows, protocols, args, rw.name, minutes)
    print(f"wrote {args.md}")
    if args.update_card:
        _update_card(rw, rows)


#: the rows a model card shows (the others are in docs/bench-clinical-real.md)
CARD_PROTOCOLS = {"3d-t1c+2d-flair": "3D sagittal T1c + 2D axial 5 mm FLAIR", "2d-5mm": "2D axial 5 mm T1c and FLAIR"}


def _update_card(rw, rows: dict) -> None:
    """Add the clinical-protocol rows to the card's real-scan section (only when every case ran)."""
    from mmtumor.weights import bundled_dir, update_meta

    metrics = dict(rw.meta.get("metrics") or {})
    real = dict(metrics.get("real") or {})
    for name, label in CARD_PROTOCOLS.items():
        ok = [r["dice"] for r in rows.get(name, []) if "dice" in r]
        if not ok or len(ok) != len(rows[name]):
            continue
        m = np.mean(ok, axis=0)
        real[f"BraTS2013 T1c+FLAIR re-acquired as DICOM, {label} ({len(ok)} cases, bench_clinical_real.py)"] = {
            r: round(float(v), 4) for r, v in zip(("WT", "TC", "ET"), m)}
    metrics["real"] = real
    update_meta(rw.folder if rw.source != "bundled" else bundled_dir(), rw.name, metrics=metrics)
    print(f"updated the model card of {rw.name}")


def _score(out: Path, ref: np.ndarray, affine: np.ndarray, seconds: float, grid: tuple | None = None) -> dict:
    """Dice of ``out``/segmentation.nii.gz against the regions ``ref`` (on ``affine``); with ``grid`` (shape, affine of
    the T1c series) also the ceiling: the reference's own Dice after the round trip to that grid."""
    from mmtumor.labels import labels_to_regions, regions_to_labels
    from mmtumor.metrics import dice

    pred = labels_to_regions(_on_reference(out / "segmentation.nii.gz", ref.shape[1:], affine)).astype(bool)
    r = {"dice": [dice(pred[i], ref[i]) for i in range(3)], "seconds": seconds}
    if grid is not None:
        lab = regions_to_labels(ref.astype(np.uint8))
        back = labels_to_regions(_round_trip(lab, affine, *grid)).astype(bool)
        r["ceiling"] = [dice(back[i], ref[i]) for i in range(3)]
    return r


def _fmt(r: dict) -> str:
    s = "dice " + " / ".join(f"{v:.3f}" for v in r["dice"])
    if "ceiling" in r:
        s += " (ceiling " + " / ".join(f"{v:.3f}" for v in r["ceiling"]) + ")"
    return s + f" {r['seconds']:.0f} s"


def _write_md(rows: dict, protocols: list[str], args, weights_name: str, minutes: float) -> None:
    lines = ["# Real scans acquired the clinical way (`benchmarks/bench_clinical_real.py`)", "",
             f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
             f"{os.cpu_count()} cores, {args.threads} torch threads, CPU; {minutes:.1f} min",
             f"- command: `python benchmarks/bench_clinical_real.py --weights {args.weights}"
             f"{'' if protocols == list(PROTOCOLS) else ' --protocols ' + ','.join(protocols)}"
             f"{' --update-card' if args.update_card else ''}"
             f"{f' --head-seed {args.head_seed}' if args.head_seed != 7100 else ''}` (weights: {weights_name}; "
             "`mmtumor.api.segment` with its defaults, no preview)",
             "- cases: the labelled real BraTS 2013 cases (T1c + FLAIR), validation only, never trained on",
             "- each case is re-acquired as a DICOM study (phantom DICOM writer: vendor headers and names, a localizer, "
             "DWI, ADC and an MPR beside the tumour series; thick slices average their slab) and `segment` is run on "
             "the study folder; Dice is scored on the original 1 mm grid; *ceiling* = the reference label's own Dice "
             "after the round trip to the T1c series' grid and back (a perfect model's score at that slice thickness)",
             "", "| input | what it stands for | cases ok | WT | TC | ET | ceiling WT / TC / ET | s per case |",
             "|---|---|--:|--:|--:|--:|---|--:|"]
    for name in ["nifti"] + protocols:
        ok = [r for r in rows[name] if "dice" in r]
        what = "the BraTS files (1 mm, skull-stripped, one grid)" if name == "nifti" else PROTOCOLS[name].what
        if not ok:
            lines.append(f"| {name} | {what} | 0/{len(rows[name])} | | | | | |")
            continue
        d = np.mean([r["dice"] for r in ok], axis=0)
        ceil = " / ".join(f"{v:.3f}" for v in np.mean([r["ceiling"] for r in ok], axis=0)) if "ceiling" in ok[0] else "1 / 1 / 1"
        sec = np.median([r["seconds"] for r in ok])
        lines.append(f"| {name} | {what} | {len(ok)}/{len(rows[name])} | {d[0]:.3f} | {d[1]:.3f} | {d[2]:.3f} | {ceil} | {sec:.0f} |")
    failures = [(n, i, r["error"]) for n in rows for i, r in enumerate(rows[n]) if "error" in r]
    if failures:
        lines += ["", "Failures:", ""] + [f"- {n}, case {i + 1}: {e}" for n, i, e in failures]
    lines += ["", "Per case (WT / TC / ET; vendor style; modalities `segment` used):", "",
              "| input | " + " | ".join(f"case {i + 1}" for i in range(max(len(v) for v in rows.values()))) + " |",
              "|---|" + "---|" * max(len(v) for v in rows.values())]
    for name in ["nifti"] + protocols:
        cells = []
        for r in rows[name]:
            if "error" in r:
                cells.append("failed")
            else:
                extra = f" ({r['vendor']}; {r['detected']})" if "vendor" in r else ""
                cells.append(" / ".join(f"{v:.2f}" for v in r["dice"]) + extra)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    args.md.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
