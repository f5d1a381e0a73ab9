"""One phantom case end to end, and BraTS-layout datasets of them.

Pipeline of ``generate_case``: random geometry -> tumour plan (centres in white matter) -> one
coordinate map (affine + elastic + mass effect) -> warped tissue maps inside the brain's bounding box
-> tumour labels -> four noise-free contrasts -> per-modality scanner artefacts -> skull-stripped
volumes on the output grid. Deterministic for a seed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..labels import from_internal
from ..modalities import MODALITIES, Modality
from . import anatomy as ana
from .artefacts import acquire
from .contrast import dura_map, render, sample_intensities, vessel_map
from .fields import single_thread, upsample
from .tumour import ED, ET, NCR, build_tumour, load_real_shapes, plan_lesions

GENERATOR_VERSION = "1.1"  # 1.1: dural venous sinuses (bright on T1c) in --randomize phantoms; canonical ones unchanged
FORMATS = ("brats2020", "brats2023")
_SUFFIX = {
    "brats2020": {Modality.T1: "_t1", Modality.T1C: "_t1ce", Modality.T2: "_t2", Modality.FLAIR: "_flair", "seg": "_seg"},
    "brats2023": {Modality.T1: "-t1n", Modality.T1C: "-t1c", Modality.T2: "-t2w", Modality.FLAIR: "-t2f", "seg": "-seg"},
}


@dataclass
class SynthCase:
    """A phantom: images (float32, 0 outside the brain), internal labels 0/1/2/4, RAS affine, metadata."""

    images: dict[Modality, np.ndarray]
    label: np.ndarray
    affine: np.ndarray
    metadata: dict = field(default_factory=dict)
    #: normal-tissue probability maps (gm, wm, csf) and the venous-sinus weight (sinus) on the same grid, only with
    #: ``keep_tissues=True``
    tissues: dict[str, np.ndarray] | None = None

    @property
    def brain_mask(self) -> np.ndarray:
        return np.any(np.stack([v > 0 for v in self.images.values()]), axis=0)


def _check_shape(shape) -> tuple[int, int, int]:
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise InputError(f"shape must be three integers, got {shape!r}") from None
    if len(shape) != 3 or min(shape) < 16 or max(shape) > 512:
        raise InputError(f"shape must be three integers between 16 and 512, got {shape}")
    return shape  # type: ignore[return-value]


def _candidates(rng: np.random.Generator, low_maps: dict[str, np.ndarray], low_coords: np.ndarray,
                nodes: list[np.ndarray]) -> np.ndarray:
    """Candidate tumour centres (reference mm): mostly deep/hemispheric white matter, supratentorial."""
    wm, brain = low_maps["wm"], low_maps["brain"]
    supra = low_coords[2] > 62 if rng.random() < 0.92 else np.ones_like(wm, bool)
    if rng.random() < 0.85:
        ok = (wm > 0.55) & supra
    else:  # cortical / mixed locations
        ok = (brain > 0.95) & supra
    idx = np.argwhere(ok)
    if len(idx) == 0:
        idx = np.argwhere(brain > 0.5)
    return np.stack([nodes[a][idx[:, a]] for a in range(3)], axis=1)


def generate_case(seed: int, shape: tuple[int, int, int] = ana.REF_SHAPE, randomize: bool = False,
                  keep_tissues: bool = False) -> SynthCase:
    """One phantom case; same seed, shape and ``randomize`` -> identical arrays."""
    shape = _check_shape(shape)
    with single_thread():
        return _generate(int(seed), shape, bool(randomize), keep_tissues)


def _generate(seed: int, shape: tuple[int, int, int], randomize: bool, keep_tissues: bool) -> SynthCase:
    rng = np.random.default_rng(seed)
    tpl = ana.load_templates()
    spacing, affine = ana.output_grid(shape)
    params = ana.sample_spatial(rng, randomize)
    low, nodes = ana.coarse_coords(rng, params, shape)
    gm_l, wm_l, csf_l = ana.sample_maps([tpl.gm, tpl.wm, tpl.csf], low)
    low_maps = {"wm": wm_l, "brain": gm_l + wm_l + csf_l}
    reals = load_real_shapes()
    plans = plan_lesions(rng, _candidates(rng, low_maps, low, nodes), len(reals), randomize)
    for p in plans:
        # mass effect: centre in template space is where the low-res map sends the tumour centre
        node = tuple(int(np.argmin(np.abs(nodes[a] - p.centre[a]))) for a in range(3))
        strength = float(np.clip(rng.uniform(0.2, 0.65) * min(1.0, p.core_radius / 15.0), 0.0, 0.65))
        eff = ana.MassEffect(centre=low[(slice(None), *node)].astype(np.float64),
                             length_mm=max(4.0, 1.3 * p.core_radius + 4.0), strength=strength)
        eff.apply(low)
        p.params["mass_effect"] = round(strength, 3)
    # enlarged ventricles (common at glioma age): push tissue away from the ventricles' centre
    ventricles = float(rng.uniform(0.0, 0.2))
    vc = (np.linalg.inv(ana.REF_AFFINE) @ np.array([0.0, -12.0, 14.0, 1.0]))[:3]
    ana.MassEffect(centre=vc, length_mm=28.0, strength=ventricles).apply(low)
    box = ana.brain_box(low_maps["brain"], shape)
    coords = ana.full_coords(low, shape, box)
    # venous sinuses (version 1.1) only in domain-randomised phantoms, the training data: canonical phantoms (the
    # held-out benchmark set) stay byte-identical to version 1. Thin, so sampled at full resolution.
    maps = [tpl.gm, tpl.wm, tpl.csf] + ([ana.load_sinus_template()] if randomize else [])
    gm, wm, csf, *rest = ana.sample_maps(maps, coords)
    sinus = rest[0] if rest else np.zeros_like(gm)
    del coords
    # sulcal widening (atrophy): grey matter bordering CSF turns into CSF
    atrophy = float(rng.uniform(0.0, 0.6))
    eaten = atrophy * gm * np.clip(3.0 * csf, 0.0, 1.0)
    gm -= eaten
    csf += eaten
    del eaten
    plexus_low, deep_low = ana.sample_maps([tpl.plexus, tpl.deep], low)
    plexus = upsample(plexus_low, shape, box) * csf * rng.uniform(0.5, 1.0)
    # the sinuses' visibility (how much skull stripping left) has its own stream, so every other draw is as in version 1
    sinus *= float(np.random.default_rng([seed, 2]).uniform(0.6, 1.0))
    deep = np.clip(upsample(deep_low, shape, box) * 1.5, 0.0, 1.0) * gm
    brain_prob = gm + wm + csf
    brain = brain_prob > 0.5
    axes = [ax[b] for ax, b in zip(ana.ref_coords_1d(shape), box)]
    labels = build_tumour(rng, plans, axes, spacing, wm, csf, brain, randomize)
    # tumour tissue replaces normal tissue (and lies inside the skull-stripped brain)
    brain |= labels > 0
    origin = np.array([ax[0] for ax in axes])
    near = [(p.centre - origin) / spacing for p in plans if p.enhancing]
    vessels = vessel_map(rng, labels.shape, spacing, csf, brain, near, int(rng.integers(25, 70)))
    vessels[labels == ET] = 0
    sinus = np.clip(sinus, 0.0, 1.0) * brain
    sinus[labels > 0] = 0  # a tumour displaces the sinus; the labels stay the truth
    vessels = np.maximum(vessels, sinus)
    dura = dura_map(rng, brain_prob, spacing)
    intens = sample_intensities(rng, randomize)
    render_params: dict = {}
    clean = render(rng, {"gm": gm, "wm": wm, "csf": csf, "plexus": plexus, "deep": deep, "vessel": vessels,
                    "dura": dura},
                   labels, spacing, intens, randomize, render_params)
    images: dict[Modality, np.ndarray] = {}
    acq: dict[str, dict] = {}
    for m in MODALITIES:
        p: dict = {}
        img = acquire(rng, clean[m], spacing, randomize, p)
        scale = float(np.exp(rng.uniform(np.log(200.0), np.log(2000.0))))
        offset = float(rng.uniform(-0.05, 0.1))
        img = np.clip((img + offset) * scale, 1.0, None)  # >= 1 inside: 0 means background, as in BraTS
        img[~brain] = 0.0
        full = np.zeros(shape, np.float32)
        full[box] = img
        images[m] = full
        p.update(scale=round(scale, 2), offset=round(offset, 4))
        acq[m.value] = p
    label = np.zeros(shape, np.uint8)
    label[box] = labels
    voxel_ml = float(np.prod(spacing)) / 1000.0
    counts = {k: int((labels == v).sum()) for k, v in (("NCR", NCR), ("ED", ED), ("ET", ET))}
    vol = {k: round(c * voxel_ml, 3) for k, c in counts.items()}
    vol["TC"] = round(vol["NCR"] + vol["ET"], 3)
    vol["WT"] = round(vol["TC"] + vol["ED"], 3)
    metadata = {
        "generator": "mmtumor.synth", "generator_version": GENERATOR_VERSION, "seed": int(seed),
        "shape": list(shape), "spacing_mm": [round(float(s), 5) for s in spacing], "randomize": bool(randomize),
        "labels": {"0": "background", "1": "NCR/NET", "2": "ED", "4": "ET"}, "label_scheme_internal": "brats2021",
        "volumes_ml": vol,
        "brain_ml": round(float(brain.sum()) * voxel_ml, 2),
        "anatomy": {"brain_scale": round(params.brain_scale, 4), "elastic_mm": round(params.elastic_mm, 3),
                    "ventricle_enlargement": round(ventricles, 3), "atrophy": round(atrophy, 3)},
        "lesions": [{"centre_mm": [round(float(c), 1) for c in (affine @ np.r_[(p.centre + 0.5) / spacing - 0.5, 1])[:3]],
                     "wt_radius_mm": round(p.wt_radius, 2), "core_fraction": round(p.core_fraction, 3),
                     "enhancing": p.enhancing, "shape": p.shape, **p.params} for p in plans],
        "multifocal": len(plans) > 1,
        "intensities": {m.value: {k: round(v, 3) for k, v in intens[m].items()} for m in MODALITIES},
        "texture": render_params,
        "acquisition": acq,
    }
    tissues = None
    if keep_tissues:
        tissues = {}
        for name, arr in (("gm", gm), ("wm", wm), ("csf", csf), ("sinus", sinus)):
            full = np.zeros(shape, np.float32)
            full[box] = arr
            tissues[name] = np.ascontiguousarray(full[::-1, ::-1])
    images, label, affine = _to_brats_layout(images, label, affine)
    return SynthCase(images=images, label=label, affine=affine, metadata=metadata, tissues=tissues)


def _to_brats_layout(images: dict[Modality, np.ndarray], label: np.ndarray, affine: np.ndarray):
    """Flip the first two voxel axes so arrays are laid out like BraTS files (LPS axis codes), the layout the
    preprocessing hands to models; the affine follows, so world (RAS mm) positions are unchanged."""
    flip = np.array([[-1.0, 0, 0, label.shape[0] - 1], [0, -1.0, 0, label.shape[1] - 1], [0, 0, 1, 0], [0, 0, 0, 1]])
    images = {m: np.ascontiguousarray(v[::-1, ::-1]) for m, v in images.items()}
    return images, np.ascontiguousarray(label[::-1, ::-1]), affine @ flip


# ------------------------------------------------------------------------------------------ datasets
def case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` in a dataset seeded ``seed`` (independent streams, order-free)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint32)[0])


def case_id(index: int, fmt: str) -> str:
    return f"SYNTH-GLI-{index:05d}-000" if fmt == "brats2023" else f"Synth_{index:05d}"


def _to_int16(img: np.ndarray) -> np.ndarray:
    """Store like scanners do (integers); values are in the hundreds to thousands, rounding is harmless."""
    return np.clip(np.rint(img), 0, np.iinfo(np.int16).max).astype(np.int16)


def write_case(case: SynthCase, out_dir: Path, cid: str, fmt: str, dicom: bool = False, dicom_seed: int = 0,
               dicom_options: dict | None = None) -> Path:
    """Write one case folder atomically: everything goes to a hidden temp folder, then one rename."""
    from ..io.nifti import write_nifti

    final = out_dir / cid
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{cid}-", dir=out_dir))
    try:
        suf = _SUFFIX[fmt]
        for m in MODALITIES:
            write_nifti(tmp / f"{cid}{suf[m]}.nii.gz", _to_int16(case.images[m]), case.affine)
        seg = from_internal(case.label, "brats2023" if fmt == "brats2023" else "brats2021")
        write_nifti(tmp / f"{cid}{suf['seg']}.nii.gz", seg, case.affine)
        meta = dict(case.metadata, case_id=cid, format=fmt,
                    label_scheme_files="brats2023 (3 = ET)" if fmt == "brats2023" else "brats2021 (4 = ET)")
        if dicom:
            meta["dicom_series"] = _write_dicom(case, tmp / "dicom", dicom_seed, dicom_options)
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2))
        mode = 0o777 & ~_umask()
        for f in tmp.rglob("*"):
            f.chmod(mode if f.is_dir() else mode & 0o666)
        tmp.chmod(mode)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _write_dicom(case: SynthCase, out: Path, seed: int, options: dict | None = None) -> list[dict]:
    """DICOM series of the case through :func:`mmtumor.synth.dicom.write_study`; returns a JSON-able summary."""
    try:
        from . import dicom as dicom_writer
    except ImportError:
        raise InputError("DICOM output is not available in this installation (mmtumor.synth.dicom missing)") from None
    volumes = {m: (_to_int16(case.images[m]), case.affine) for m in MODALITIES}
    records = dicom_writer.write_study(volumes, out, seed=seed, **(options or {}))
    summary = []
    for r in records:
        summary.append({"kind": r.kind, "modality": r.modality.value if r.modality else None,
                        "series_number": int(r.series_number), "description": r.description,
                        "folder": str(Path(r.folder).relative_to(out.parent)), "n_files": len(r.files),
                        "orientation": r.orientation, "broken": r.broken})
    return summary


def _one(args) -> str:
    index, seed, shape, fmt, randomize, out_dir, dicom, dicom_options = args
    s = case_seed(seed, index)
    case = generate_case(s, shape, randomize)
    cid = case_id(index, fmt)
    write_case(case, Path(out_dir), cid, fmt, dicom=dicom, dicom_seed=s, dicom_options=dicom_options)
    return cid


def write_dataset(out_dir: Path | str, n_cases: int, seed: int = 0, shape: tuple[int, int, int] = ana.REF_SHAPE,
                  fmt: str = "brats2020", randomize: bool = False, workers: int = 1, dicom: bool = False,
                  start: int = 0, progress: Callable[[str], None] | None = None,
                  dicom_options: dict | None = None) -> list[Path]:
    """Write ``n_cases`` phantoms in BraTS layout under ``out_dir``; case i is seeded from (seed, i).

    ``dicom=True`` also writes each case as a DICOM study in ``<case>/dicom`` (vendor drawn per case);
    ``dicom_options`` are passed to :func:`mmtumor.synth.dicom.write_study` (vendor, distractors, broken,
    acquisition, transfer_syntax).
    """
    shape = validate_options(out_dir, n_cases, shape, fmt, workers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(start + i, int(seed), shape, fmt, bool(randomize), str(out), bool(dicom), dicom_options)
            for i in range(n_cases)]
    done: list[Path] = []
    if workers == 1 or n_cases == 1:
        for job in jobs:
            cid = _one(job)
            done.append(out / cid)
            if progress:
                progress(cid)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, n_cases)) as pool:
            for cid in pool.map(_one, jobs):
                done.append(out / cid)
                if progress:
                    progress(cid)
    return done


def validate_options(out_dir: Path | str, n_cases: int, shape, fmt: str, workers: int) -> tuple[int, int, int]:
    """Check dataset options up front (one clear InputError), so nothing starts with a bad option."""
    if n_cases < 1:
        raise InputError(f"number of cases must be at least 1, got {n_cases}")
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}' (use brats2020 or brats2023)")
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output exists and is not a folder: {out}")
    return _check_shape(shape)
