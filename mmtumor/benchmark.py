"""The missing-modality sweep: every model x every case x every requested modality subset -> metric records.

Inputs are BraTS-layout cases (co-registered, labelled). For a subset, only its modalities' arrays go through
``segment``'s own preprocessing and inference core (``infer.core``), so nothing leaks from the hidden ones and every
figure describes what ``segment`` gives. Predictions are compared with the reference labels on the native grid.
Results are cached per (weights SHA-256, case, subset) in ``<report>/cache/``: an interrupted run resumes, and a
failing case is recorded and skipped.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import InputError, MmtumorError
from .io.dataset import Case, find_cases, load_case, load_or_create_manifest, cases_from_manifest
from .io.nifti import voxel_spacing
from .infer.core import InferenceSettings
from .io.atomic import write_text_atomic
from .modalities import MODALITIES, Subset, parse_subsets
from .postprocess import (DEFAULT_MIN_ET_VOXELS, NEUTRAL_THRESHOLDS, check_component_fraction, check_min_et_voxels,
                          check_region_thresholds)
from .preprocess.spatial import PreprocessResult
from .results import BenchmarkResult


@dataclass
class BenchmarkOptions:
    split: str = "test"  # test | val | all
    subsets: str = "all"
    tta: bool = False
    speed: bool = False
    device: str = "auto"
    overlap: float = 0.5
    min_et_voxels: int = DEFAULT_MIN_ET_VOXELS  # as segment does by default (metrics.relabel_small_et); 0 = off
    min_component_fraction: float = 0.2  # as segment does by default (metrics.drop_small_components); 0 = off
    max_cases: int | None = None
    thresholds: tuple[float, float, float] | None = None  # region probability thresholds; None: each model's own
    et_modalities: str | None = None  # modalities ET comes from when T1c is present ("T1c,FLAIR", "all"); None: own
    allow_training_cases: bool = False  # score a model on cases its metadata says it trained on (its fit, not validation)
    split_file: str | None = None  # fixed split (JSON, io.dataset.read_split_file) instead of the seeded manifest
    reference: str | None = None  # CSV of published Dice (method,subset,region,dice %), see report.load_reference_csv


def select_cases(data_dir: Path, split: str, report_dir: Path, split_file: str | None = None) -> list[Case]:
    if split == "all":
        return find_cases(data_dir, require_label=True)
    if split not in ("test", "val", "train"):
        raise InputError(f"unknown split '{split}' (test, val, train or all)")
    manifest = load_or_create_manifest(data_dir, report_dir / "manifest.json", split_file=split_file)
    cases = cases_from_manifest(manifest, split)
    if not cases:
        raise InputError(f"the '{split}' split of {data_dir} is empty; use --split all")
    return cases


@dataclass
class PreparedSubset:
    """A case as ``segment`` would see it given only ``subset``'s files: ``preprocess_case`` on those modalities alone
    (working grid, brain mask), so nothing leaks from the hidden ones. Model-independent: shared by every model."""

    pre: PreprocessResult
    seconds: float  # time it took (added to every model's latency with --speed)


def prepare_subset(image: np.ndarray, available: np.ndarray, affine: np.ndarray, subset: Subset) -> PreparedSubset:
    """``segment``'s preprocessing of the subset's modalities of a co-registered case, from in-memory arrays."""
    from .preprocess import preprocess_case

    t0 = time.perf_counter()
    images = {m: (image[m.index], affine) for m in MODALITIES if subset.mask[m.index] and available[m.index]}
    if not images:
        raise InputError(f"the case has none of the modalities of subset {subset.name}")
    # a BraTS-layout data set is co-registered by definition: on BraTS-preprocessed cases segment takes the same path
    # (no registration); elsewhere segment would also register the already aligned images
    return PreparedSubset(preprocess_case(images, coregistered=True), time.perf_counter() - t0)


def settings_for(meta: dict, opts: BenchmarkOptions) -> InferenceSettings:
    """The inference core's settings for a model under these benchmark options (the rest as ``segment``'s defaults)."""
    return InferenceSettings.for_model(meta, overlap=opts.overlap, tta=opts.tta,
                                       min_component_fraction=opts.min_component_fraction,
                                       min_et_voxels=opts.min_et_voxels, region_thresholds=opts.thresholds,
                                       et_modalities=opts.et_modalities)


def _predict_prepared(model, settings: InferenceSettings, prep: PreparedSubset, device) -> np.ndarray:
    """Labels on the case's (native) grid for one prepared subset: the inference core, then ``segment``'s way back."""
    from .infer.core import predict_case
    from .preprocess import to_native

    pred = predict_case(model, prep.pre, settings, device)
    return to_native(pred.labels, prep.pre, order=0).astype(np.uint8)


def predict_subset(model, meta: dict, image: np.ndarray, available: np.ndarray, affine: np.ndarray, subset: Subset,
                   device: str = "cpu", options: BenchmarkOptions | None = None) -> np.ndarray:
    """Labels (case grid) a model gives a co-registered case when it sees only ``subset``: the sweep's own path,
    which is ``segment``'s (same preprocessing, inference core and post-processing), for one case and subset."""
    opts = options or BenchmarkOptions()
    prep = prepare_subset(image, available, affine, subset)
    return _predict_prepared(model, settings_for(meta, opts), prep, device)


@dataclass
class _Entry:
    """One model of the sweep, loaded once for the whole run."""

    name: str
    model: object
    meta: dict
    key_prefix: str
    settings: InferenceSettings
    latencies: dict = field(default_factory=dict)
    warmed: bool = False
    peak_gpu_mb: float = 0.0  # this model's weights + the most its inference allocated on top of what was resident


#: in every cache key: results of the benchmark's own earlier preparation (before it shared ``segment``'s path) are
#: never reused
PREDICTION_PATH = "core1"


def inference_tag(opts: BenchmarkOptions) -> str:
    """Cache-key suffix for the options that change predictions (TTA, window overlap, post-processing): a resumed
    run with other options must not reuse results predicted with these. Empty for plain predictions (no TTA, overlap
    0.5, no post-processing), the keys caches had before these options existed; the component filter, on by
    default, is therefore tagged (``cc0.2``) rather than left implicit."""
    parts = (["tta"] if opts.tta else []) + ([f"ov{opts.overlap:g}"] if opts.overlap != BenchmarkOptions.overlap else [])
    parts += [f"cc{opts.min_component_fraction:g}"] if opts.min_component_fraction else []
    parts += [f"et{opts.min_et_voxels}"] if opts.min_et_voxels else []
    return "-" + "-".join(parts) if parts else ""


def settings_tag(settings: InferenceSettings) -> str:
    """Cache-key suffix for region thresholds other than 0.5 (a model's own or ``--thresholds``) and for enhancing
    tumour from fewer modalities (``et_modalities``): empty at 0.5 and all modalities, the keys caches had before."""
    t, et = settings.region_thresholds, settings.et_modalities
    return (("" if tuple(t) == NEUTRAL_THRESHOLDS else "-thr" + "_".join(f"{x:g}" for x in t))
            + ("" if et is None else "-et" + "".join(map(str, et))))


def _model_order(records: list[dict], names: list[str]) -> list[dict]:
    """Records grouped by model in the order the models were given (the sweep runs case by case)."""
    rank = {n: i for i, n in enumerate(names)}
    return sorted(records, key=lambda r: rank.get(r["method"], len(rank)))


def _param_mb(model) -> float:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers())) / 2**20


def run_benchmark(data_dir: Path | str, weights: Sequence[str | None], report_dir: Path | str,
                  options: BenchmarkOptions | None = None, progress: Callable[[str, int, int], None] | None = None) -> BenchmarkResult:
    """Sweep and write the report; returns {records, failures, speed, files}.

    Cases are the outer loop: each case is read once and each subset's preparation (mask, normalisation, resampling to
    the model grid) is done once and shared by every model with that voxel size.
    """
    import torch

    from .metrics import region_metrics, to_records
    from .report import load_reference_csv, write_report
    from .device import pick_device
    from .weights import load_model, resolve
    from .weights.provenance import case_fingerprints, check_unseen

    opts = options or BenchmarkOptions()
    data_dir, report_dir = Path(data_dir), Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    subsets = parse_subsets(opts.subsets)
    check_component_fraction(opts.min_component_fraction)
    check_min_et_voxels(opts.min_et_voxels)
    if opts.thresholds is not None:
        opts = replace(opts, thresholds=check_region_thresholds(opts.thresholds))
    reference = load_reference_csv(opts.reference) if opts.reference else None  # fail before the long sweep
    cases = select_cases(data_dir, opts.split, report_dir, opts.split_file)
    if opts.max_cases:
        cases = cases[: opts.max_cases]
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(opts.device, int(os.environ.get("LOCAL_RANK", "0")))
    all_cases = cases
    cases = cases[rank::world]  # torchrun: each rank takes every world-th case
    cache = report_dir / "cache"
    cache.mkdir(exist_ok=True)
    records: list[dict] = []
    failures: list[dict] = []
    speed: list[dict] = []
    entries: list[_Entry] = []
    fingerprints: dict[str, str] | None = None  # label fingerprints of the cases, made once if a model has any
    seen_by: dict[str, int] = {}
    for spec in weights:
        rw = resolve(spec)
        if rw.meta.get("training_cases"):
            fingerprints = case_fingerprints(all_cases) if fingerprints is None else fingerprints
            seen = check_unseen(rw.name, rw.meta, fingerprints, opts.allow_training_cases)
            if seen:
                seen_by[rw.name] = seen
        model, meta = load_model(rw, device=str(device))
        sha = next(iter(rw.files.values()), None) if rw.files else None
        settings = settings_for(meta, opts)
        entries.append(_Entry(rw.name, model, dict(meta), f"{rw.name}-{(sha or 'nosha')[:12]}-{PREDICTION_PATH}"
                              f"{inference_tag(opts)}{settings_tag(settings)}", settings))
    model_names = [e.name for e in entries]
    prefixes = [e.key_prefix for e in entries]
    thresholds = {e.name: list(e.settings.region_thresholds) for e in entries}  # entries are freed before the report
    et_from = {e.name: [MODALITIES[i].value for i in e.settings.et_modalities] for e in entries
               if e.settings.et_modalities is not None}
    total = len(entries) * len(cases) * len(subsets)
    done = 0
    for case in cases:
        cfiles = {(e.key_prefix, s.code): cache / f"{e.key_prefix}__{case.case_id}__{s.code}.json" for e in entries for s in subsets}
        if not opts.speed and all(f.exists() for f in cfiles.values()):  # resumed run: nothing left to do for this case
            for e in entries:
                for s in subsets:
                    records += json.loads(cfiles[(e.key_prefix, s.code)].read_text())
            done += len(entries) * len(subsets)
            continue
        try:
            loaded = load_case(case)
        except MmtumorError as exc:
            failures += [{"method": e.name, "case_id": case.case_id, "error": str(exc)} for e in entries]
            done += len(entries) * len(subsets)
            continue
        spacing = voxel_spacing(loaded.affine)
        for subset in subsets:
            usable = (np.array(subset.mask) & loaded.present).any() and not (np.array(subset.mask) & ~loaded.present).any()
            prepared: PreparedSubset | None = None  # made once, shared by every model
            for e in entries:
                done += 1
                if progress:
                    progress(f"{e.name} {case.case_id} {subset.name}", done, total)
                if not usable:
                    continue  # the case lacks a modality of this subset
                cfile = cfiles[(e.key_prefix, subset.code)]
                if cfile.exists() and not opts.speed:
                    records += json.loads(cfile.read_text())
                    continue
                try:
                    if prepared is None:
                        prepared = prepare_subset(loaded.image, loaded.present, loaded.affine, subset)
                    prep = prepared
                    if opts.speed and not e.warmed:
                        _predict_prepared(e.model, e.settings, prep, device)
                        e.warmed = True
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                        resident = torch.cuda.memory_allocated()
                        torch.cuda.reset_peak_memory_stats()
                    t0 = time.perf_counter()
                    pred = _predict_prepared(e.model, e.settings, prep, device)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                        used = (torch.cuda.max_memory_allocated() - resident) / 2**20 + _param_mb(e.model)
                        e.peak_gpu_mb = max(e.peak_gpu_mb, used)
                    e.latencies.setdefault(subset.size, []).append(prep.seconds + time.perf_counter() - t0)
                    recs = to_records(e.name, case.case_id, subset.code, region_metrics(pred, loaded.label, spacing))
                except MmtumorError as exc:
                    failures.append({"method": e.name, "case_id": case.case_id, "subset": subset.code, "error": str(exc)})
                    continue
                write_text_atomic(cfile, json.dumps(recs))
                records += recs
    if opts.speed:
        peak_cpu = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        for e in entries:
            peak_gpu = round(e.peak_gpu_mb, 1) if device.type == "cuda" else None
            for n, lat in sorted(e.latencies.items()):
                speed.append({"method": e.name, "n_present": n, "latency_s": lat, "peak_cpu_mb": peak_cpu,
                              "peak_gpu_mb": peak_gpu, "device": str(device)})
    records = _model_order(records, model_names)
    entries.clear()
    if world > 1:
        records, failures, done_early = _gather_ranks(rank, device, report_dir, cache, prefixes, all_cases, subsets, failures)
        if done_early:
            return BenchmarkResult(records, failures, speed, {}, {}, rank=rank)
        cases = all_cases
    if not records:
        raise MmtumorError("no results: every case failed or no case has the requested modalities"
                           + (f" (first failure: {failures[0]['error']})" if failures else ""))
    meta_out = {"title": "mmtumor missing-modality benchmark", "data": str(data_dir), "split": opts.split, "split_file": opts.split_file,
                "cases": len(cases), "subsets": [s.code for s in subsets], "weights": model_names, "device": str(device),
                "tta": opts.tta, "overlap": opts.overlap, "min_component_fraction": opts.min_component_fraction,
                "min_et_voxels": opts.min_et_voxels,
                "region_thresholds": thresholds,
                "et_modalities": et_from,
                "trained_on_cases": seen_by,
                "torch": torch.__version__, "python": platform.python_version(),
                "platform": platform.platform(), "failures": len(failures), "dataset": _dataset_name(cases)}
    files = write_report(records, report_dir, speed or None, meta_out, reference=reference)
    if failures:
        (report_dir / "failures.json").write_text(json.dumps(failures, indent=2))
    return BenchmarkResult(records, failures, speed, {k: Path(v) for k, v in files.items()}, meta_out, reference)


def _gather_ranks(rank, device, report_dir: Path, cache: Path, prefixes: list[str], cases: list[Case], subsets, failures):
    """After a sharded sweep: every rank saves its failures, rank 0 collects all results from the shared cache."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    (report_dir / f".failures-rank{rank}.json").write_text(json.dumps(failures))
    dist.barrier()
    if rank != 0:
        return [], failures, True
    records: list[dict] = []
    merged: list[dict] = []
    for f in sorted(report_dir.glob(".failures-rank*.json")):
        merged += json.loads(f.read_text())
        f.unlink()
    for prefix in prefixes:
        for case in cases:
            for subset in subsets:
                cfile = cache / f"{prefix}__{case.case_id}__{subset.code}.json"
                if cfile.exists():
                    records += json.loads(cfile.read_text())
    return records, merged, False


def _dataset_name(cases: list[Case]) -> str:
    ids = " ".join(c.case_id for c in cases[:3]).lower()
    if "brats20_" in ids:
        return "brats2020"
    if "synth" in ids:
        return "phantoms"
    return "other"


# The no-argument run: every bundled model (eight) x 15 subsets on this many phantoms stays within minutes on a
# 2-core CPU; the documented tables (benchmarks/bench_models.py) use the first 10 phantoms of the same seeds.
DEFAULT_PHANTOM_CASES = 2


def default_phantoms(folder: Path, n: int = DEFAULT_PHANTOM_CASES, seed: int = 900_000, shape=(240, 240, 155)) -> Path:
    """Held-out phantoms (seeds far from any training seed): writes whichever of cases 0..n-1 are missing.

    Case i depends only on (seed, i), so asking for more cases later keeps the earlier ones (and any cached
    predictions for them) and adds the rest.
    """
    from .synth import write_dataset
    from .synth.generate import case_id

    for i in range(n):
        cid = case_id(i, "brats2020")
        if not (folder / cid / f"{cid}_seg.nii.gz").exists():
            write_dataset(folder, 1, seed=seed, shape=shape, start=i)
    return folder


__all__ = ["BenchmarkOptions", "run_benchmark", "default_phantoms"]
