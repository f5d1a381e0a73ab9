"""The Python API that the CLI mirrors. Heavy imports (torch, SimpleITK) happen inside functions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, MmtumorError, NoCasesError
from .io.dataset import Case, discover_cases, label_scheme_of, load_or_create_manifest
from .io.nifti import load_header, voxel_spacing
from .labels import LABEL_NAMES
from .modalities import MODALITIES
from .results import BenchmarkResult, CompareResult, ConvertResult, InspectResult, TrainResult


def _inspect_case(case: Case) -> dict:
    row: dict = {
        "case_id": case.case_id,
        "folder": str(case.folder),
        "naming": case.naming,
        "modalities": {m.value: (str(case.images[m]) if m in case.images else None) for m in MODALITIES},
        "subset": case.subset.code if case.subset else None,
        "label": str(case.label) if case.label else None,
        "shape": None, "spacing": None, "orientation": None,
        "label_values": None, "label_scheme": None,
        "problems": list(case.problems),
    }
    ref = None
    for path in case.files:
        try:
            img = load_header(path)
        except MmtumorError as exc:
            row["problems"].append(str(exc))
            continue
        if ref is None:
            ref = (path, img)
            import nibabel as nib

            row["shape"] = list(img.shape[:3])
            row["spacing"] = [round(s, 4) for s in voxel_spacing(img.affine)]
            row["orientation"] = "".join(nib.aff2axcodes(img.affine))
        else:
            rp, rimg = ref
            if tuple(img.shape[:3]) != tuple(rimg.shape[:3]):
                row["problems"].append(f"shape mismatch: {rp.name} {tuple(rimg.shape[:3])} vs {path.name} {tuple(img.shape[:3])}")
            elif not np.allclose(img.affine, rimg.affine, atol=1e-3):
                row["problems"].append(f"affine mismatch: {rp.name} vs {path.name}")
    if case.label is not None and not any(case.label.name in p for p in row["problems"]):
        try:
            data = np.asanyarray(load_header(case.label).dataobj)
            values = {int(v) for v in np.unique(np.rint(data))}
            row["label_values"] = sorted(values)
            scheme = label_scheme_of(case, values)
            row["label_scheme"] = scheme.value
            from .labels import SCHEME_VALUES

            extra = values - SCHEME_VALUES[scheme]
            if extra:
                row["problems"].append(f"label values {sorted(extra)} outside the {scheme.value} scheme")
        except Exception as exc:  # unreadable voxel data
            row["problems"].append(f"cannot read label {case.label.name}: {exc}")
    return row


def inspect(path: Path | str) -> InspectResult:
    """Describe a NIfTI folder: cases, modalities, geometry, labels and problems (never raises for per-case issues).

    A folder of DICOM files (and no NIfTI) is described series by series instead (see :func:`inspect_dicom`).
    """
    path = Path(path)
    from .io.dicom import looks_like_dicom

    if path.exists() and looks_like_dicom(path):
        return inspect_dicom(path)
    cases, unknown = discover_cases(path)
    if not cases:
        hint = f"; {len(unknown)} NIfTI files have unrecognised names" if unknown else ""
        raise NoCasesError(f"no cases found in {path}{hint}")
    rows = [_inspect_case(c) for c in cases]
    document = {"kind": "nifti", "root": str(path), "label_names": {str(k): v for k, v in LABEL_NAMES.items()},
                "cases": rows, "unrecognised": [str(p) for p in unknown]}
    return InspectResult("nifti", path, cases=rows, unrecognised=list(unknown), document=document)


def inspect_dicom(path: Path | str, progress=None) -> InspectResult:
    """DICOM study: every series with orientation, size, spacing, detected modality, confidence, reasons, problems."""
    from .convert import study_report

    document = study_report(path, progress)[3]
    return InspectResult("dicom", Path(document["root"]), series=document["series"], document=document)


def convert(dicom_dir: Path | str, out_dir: Path | str, *, all_series: bool = False, t1: str | None = None,
            t1c: str | None = None, t2: str | None = None, flair: str | None = None,
            mapping: Path | str | dict | None = None, progress=None) -> ConvertResult:
    """``mmtumor convert``, flag for flag: DICOM study -> t1/t1c/t2/flair.nii.gz + JSON sidecars (``all_series``:
    every image series too).

    ``t1``... and ``mapping`` (a JSON file, or the dict it holds: ``{"T1": "5", "FLAIR": "path/to/series"}``) name a
    modality's series by series id, SeriesInstanceUID or path; the single flags win over the mapping. Low-confidence
    detections are never used without one (they are listed in the result's ``warnings``).
    """
    import json

    from .convert import convert_study
    from .modalities import parse_modality

    overrides: dict = {}
    if mapping is not None:
        if isinstance(mapping, dict):
            table = mapping
        else:
            try:
                table = json.loads(Path(mapping).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise MmtumorError(f"cannot read mapping file {mapping}: {exc}") from None
        if not isinstance(table, dict):
            raise MmtumorError(f"mapping {mapping} must be a JSON object {{modality: series}}")
        overrides = {parse_modality(k).value: str(v) for k, v in table.items()}
    overrides.update({k: str(v) for k, v in (("T1", t1), ("T1c", t1c), ("T2", t2), ("FLAIR", flair)) if v})
    return convert_study(dicom_dir, out_dir, all_series=all_series, overrides=overrides, progress=progress)


def make_manifest(data_dir: Path | str, manifest_path: Path | str, seed: int = 0,
                  ratios: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> dict:
    """Seeded train/val/test manifest, written once at ``manifest_path`` and reused afterwards."""
    return load_or_create_manifest(data_dir, manifest_path, seed, ratios)


def check_run_folder(run_dir: Path, resume: bool = False, overwrite: bool = False) -> None:
    """A run folder that already holds a training run is continued (``resume``) or replaced (``overwrite``: its
    checkpoints and logs are removed first), never silently mixed with a new run."""
    import shutil

    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"run folder {run_dir} exists and is a file")
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    if resume:
        return
    held = [p for p in ("last.pt", "best.pt", "metrics.jsonl") if (run_dir / p).exists()]
    if held and not overwrite:
        raise InputError(f"{run_dir} already holds a training run ({', '.join(held)}): continue it with --resume, "
                         "start again with --overwrite, or choose another -o")
    if held:
        for name in ("last.pt", "best.pt", "metrics.jsonl", "metrics.csv", "curves.png", "config.json", "manifest.json"):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "tb", ignore_errors=True)


def train(data_dir: Path | str, *, method: str = "a2fseg", output: Path | str = "runs/train",
          preset: str | None = None, epochs: int | None = None, iters_per_epoch: int | None = None,
          patch: tuple[int, int, int] | None = None, batch: int | None = None, lr: float | None = None,
          optimizer: str | None = None, amp: bool | None = None, device: str = "auto", workers: int | None = None,
          align: str | None = None, dropout_schedule: str | None = None, subsets: str | None = None,
          augment: str | None = None, mix_data: Path | str | None = None, mix_fraction: float | None = None, seed: int | None = None,
          val_every: int | None = None, target_spacing: float | None = None, soft_labels: bool | None = None,
          stop_after: int | None = None, time_limit: float | None = None, resume: bool = False,
          overwrite: bool = False, init_from: str | None = None, split_file: Path | str | None = None,
          config: Path | str | None = None, quiet: bool = False) -> TrainResult:
    """``mmtumor train``, flag for flag: train ``method`` on a BraTS-layout folder into the run folder ``output``.

    Options left at None take the method's paper defaults (``mmtumor.methods``), then ``config`` (JSON) values; with
    ``resume`` the run's saved ``config.json`` is reused (explicit options still win).
    """
    import torch

    from .train.config import resolve_config
    from .train.trainer import train as _train

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise NoCasesError(f"data folder not found: {data_dir}")
    run_dir = Path(output)
    check_run_folder(run_dir, resume=resume, overwrite=overwrite)
    if resume and config is None and (run_dir / "config.json").exists():
        config = run_dir / "config.json"
    if preset is None and config is None:
        from .methods import default_preset

        preset = default_preset(device != "cpu" and torch.cuda.is_available())
    options = dict(epochs=epochs, iters_per_epoch=iters_per_epoch, patch=tuple(patch) if patch is not None else None,
                   batch=batch, lr=lr, optimizer=optimizer, amp=amp, device=device, workers=workers, align=align,
                   dropout_schedule=dropout_schedule, subsets=subsets, augment=augment, mix_data=str(mix_data) if mix_data else None,
                   mix_fraction=mix_fraction, seed=seed, val_every=val_every, target_spacing=target_spacing,
                   soft_labels=soft_labels, stop_after=stop_after, time_limit=time_limit, init_from=init_from,
                   split_file=str(split_file) if split_file else None)
    cfg = resolve_config(method, data_dir, run_dir, config, preset=preset, **options)
    if cfg.init_from and not resume:
        from .train.trainer import load_init

        _, spacing = load_init(cfg.init_from, cfg.method)  # wrong or missing weights -> error before preprocessing
        if cfg.target_spacing is None and spacing:
            cfg.target_spacing = spacing  # fine-tune at the voxel size the weights were trained at
    if cfg.soft_labels and not cfg.target_spacing:
        raise InputError("--soft-labels needs a training grid to resample to: add --target-spacing MM (soft targets are "
                         "the region fraction of each resampled voxel)")
    return _train(cfg, quiet=quiet, resume=resume)


# ------------------------------------------------------------------------- weights (logic in mmtumor.weights)
def weights_list() -> list:
    """Bundled and cached Hub models (``mmtumor weights list``)."""
    from .weights import list_models

    return list_models()


def weights_pull(spec: str):
    """Download (or refresh) and verify weights: NAME, PATH or hf://owner/repo[/NAME][@revision]."""
    from .weights import resolve

    return resolve(spec, refresh=True)


def weights_verify(name_or_path: str | None = None) -> list:
    """Re-hash weights files against their manifest; returns one check per file."""
    from .weights import verify

    return verify(name_or_path)


def weights_export(run_dir: Path | str, out_dir: Path | str, name: str | None = None, meta_file: Path | str | None = None,
                   dtype: str | None = None, default: bool = False):
    """Training run (checkpoint) -> safetensors + JSON config + model card + manifest entry."""
    import json

    from .errors import ReadError
    from .weights import export_run

    meta = None
    if meta_file is not None:
        try:
            meta = json.loads(Path(meta_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReadError(f"cannot read metadata file {meta_file}: {exc}") from None
    return export_run(run_dir, out_dir, name, meta=meta, dtype=dtype, default=default)


def weights_ensemble(members: list[str], out_dir: Path | str, name: str, description: str = "",
                     default: bool = False):
    """Several exported models -> one ensemble (the mean of their region probabilities) in the weights format."""
    from .weights import ensemble_weights

    return ensemble_weights(members, out_dir, name, description=description, default=default)


def weights_route(base: str, specialist: str, subsets: str, out_dir: Path | str, name: str, *,
                  regions: list[str] = ("ET",), description: str = "", default: bool = False):
    """A base model and a specialist for ``subsets`` (``train --subsets``) -> one routed model in the weights format."""
    from .weights import route_weights

    return route_weights(base, specialist, subsets, out_dir, name, regions=regions, description=description,
                         default=default)


def weights_push(folder: Path | str, repo_id: str, revision: str | None = None, message: str | None = None,
                 private: bool = False) -> str:
    """Upload an exported weights folder to a Hugging Face Hub model repository; returns the commit URL."""
    from .weights import push

    return push(folder, repo_id, revision=revision, commit_message=message, private=private)


def synth(out_dir: Path | str, cases: int, seed: int = 0, shape: tuple[int, int, int] = (240, 240, 155),
          fmt: str = "brats2020", randomize: bool = False, workers: int = 1, dicom: bool = False,
          progress=None) -> list[Path]:
    """Write BraTS-layout phantom cases (see docs/synth.md); ``progress(case_id)`` is called per finished case."""
    from .synth.generate import write_dataset

    return write_dataset(out_dir, cases, seed=seed, shape=shape, fmt=fmt, randomize=randomize,
                         workers=workers, dicom=dicom, progress=progress)


def unique_output_names(items: list[Path | None]) -> list[str]:
    """One output folder name per input: the folder's name, with ``-2``, ``-3`` ... when two inputs share it (two
    patients must never overwrite each other)."""
    seen: dict[str, int] = {}
    names = []
    for item in items:
        base = item.name if item is not None and item.name else "patient"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    while len(set(names)) != len(names):  # a generated name that was also a real one ("p-2" given twice, say)
        names = [n if names.index(n) == i else f"{n}-{i + 1}" for i, n in enumerate(names)]
    return names


def describe_error(exc: BaseException) -> str:
    """One line for any failure: our errors as they are, others (a library's) with their type named."""
    if isinstance(exc, MmtumorError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"unexpected {type(exc).__name__}" + (f": {text}" if text else "")


@dataclass
class PatientFailure:
    """One patient of a batch that could not be segmented (the batch went on)."""

    patient: str
    output: str
    error: str


@dataclass
class SegmentRun:
    """What ``segment`` returns: one report (``report.json``'s content) per segmented patient, the patients that
    failed, the weights used and how long loading them took."""

    results: list[dict]
    failures: list[PatientFailure]
    weights: dict
    load_seconds: float


def segment(patients: list[Path | str] | Path | str | None = None, output: Path | str = "mmtumor-output", *,
            batch: Path | str | None = None, t1=None, t1c=None, t2=None, flair=None, weights: str | None = None,
            device: str = "auto", tta: bool = False, fast: bool = False, overlap: float = 0.5, sw_batch: int = 2,
            threads: int | None = None, label_scheme: str = "brats2021", save_probabilities: bool = False,
            preview: bool = True, output_type: str = "nifti", skull_strip: str | bool = "auto", n4: bool = False,
            min_et_voxels: int | None = None, min_component_fraction: float = 0.2, thresholds=None,
            et_modalities: str | None = None, on_patient=None, on_step=None) -> SegmentRun:
    """``mmtumor segment``, flag for flag: segment one or more patients with the model loaded once; in a batch a
    failing patient is recorded in ``failures``, not fatal.

    ``t1``/``t1c``/``t2``/``flair`` override detection for a single patient; each is a path or an in-memory
    ``nibabel`` image. ``on_patient(pin)`` is called with each resolved input before work starts (the CLI prints the
    detection table there); ``on_step(step, n, total)`` reports progress.
    """
    options = segment_options(device=device, tta=tta, fast=fast, overlap=overlap, sw_batch=sw_batch, threads=threads,
                              label_scheme=label_scheme, save_probabilities=save_probabilities, preview=preview,
                              output_type=output_type, skull_strip=skull_strip, n4=n4, min_et_voxels=min_et_voxels,
                              min_component_fraction=min_component_fraction, thresholds=thresholds,
                              et_modalities=et_modalities)
    if isinstance(patients, (str, Path)):
        patients = [patients]
    from .infer.inputs import explicit_images

    with explicit_images({"T1": t1, "T1c": t1c, "T2": t2, "FLAIR": flair}) as explicit:
        return _segment(list(patients or []), output, weights, batch, explicit, options, on_patient, on_step)


def segment_options(*, skull_strip: str | bool = "auto", overlap: float = 0.5, min_et_voxels: int | None = None,
                    thresholds=None, **flags):
    """The predictor's options from ``segment``'s flags, checked the way the CLI checks them."""
    from .infer.core import parse_et_modalities
    from .infer.predictor import SegmentOptions
    from .postprocess import DEFAULT_MIN_ET_VOXELS, check_region_thresholds

    if not 0 <= overlap < 1:
        raise InputError(f"overlap must be in [0, 1), not {overlap}")
    strip = skull_strip if isinstance(skull_strip, bool) else {"auto": "auto", "yes": True, "no": False}.get(str(skull_strip).lower())
    if strip is None:
        raise InputError(f"skull_strip must be auto, yes or no, not {skull_strip!r}")
    parse_et_modalities(flags.get("et_modalities"))  # a wrong value fails before any patient is read
    return SegmentOptions(skull_strip=strip, overlap=overlap,
                          min_et_voxels=DEFAULT_MIN_ET_VOXELS if min_et_voxels is None else min_et_voxels,
                          thresholds=None if thresholds is None else check_region_thresholds(thresholds), **flags)


def _segment(items: list[Path | str], output: Path | str, weights: str | None, batch: Path | str | None,
             explicit: dict, options, on_patient=None, on_step=None) -> SegmentRun:
    """The batch loop behind ``segment`` and ``compare``: output checks first, one model load, one report per patient."""
    import tempfile

    from .infer.inputs import resolve_patient
    from .infer.predictor import Predictor
    from .io.staging import check_output_folder

    items: list[Path | None] = [Path(p) for p in items]
    if batch is not None:
        root = Path(batch)
        if not root.is_dir():
            raise NoCasesError(f"--batch: folder not found: {root}")
        items += sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not items:
            raise NoCasesError(f"--batch: no patient folders in {root}")
    if not items:
        items = [None]
    if len(items) > 1 and explicit:
        raise MmtumorError("--t1/--t1c/--t2/--flair apply to a single patient; do not combine them with several folders")
    output = Path(output)
    names = unique_output_names(items)
    # the output location is checked before the model loads or any patient is read (a second, not minutes, later)
    if len(items) == 1:
        check_output_folder(output)
    else:
        if output.exists() and not output.is_dir():
            raise InputError(f"output {output} exists and is a file, not a folder")
        for name in names:
            check_output_folder(output / name)
    predictor = Predictor(weights, options)
    results, failures = [], []
    for item, name in zip(items, names):
        out_dir = output / name if len(items) > 1 else output
        try:
            with tempfile.TemporaryDirectory(prefix="mmtumor-") as work:
                pin = resolve_patient(item, explicit, Path(work))
                if on_patient:
                    on_patient(pin)
                results.append(predictor.segment(pin, out_dir, progress=on_step))
        except Exception as exc:  # noqa: BLE001 - one patient's failure, of whatever kind, must not end a batch
            if len(items) == 1:
                raise
            failures.append(PatientFailure(str(item), str(out_dir), describe_error(exc)))
    return SegmentRun(results, failures, predictor.weights_info, predictor.load_seconds)


def compare(baseline: Path | str, followup: Path | str, output: Path | str = "mmtumor-compare", *,
            weights: str | None = None, register: bool = True, device: str = "auto", on_patient=None,
            on_step=None) -> CompareResult:
    """``mmtumor compare``, flag for flag: two time points of one patient. Each is a ``segment`` output folder, or a
    patient folder (DICOM or NIfTI) that is segmented first (kept in ``output/baseline`` and ``output/followup``)."""
    import shutil
    import tempfile

    from .compare import write_comparison
    from .io.staging import check_output_folder

    output = Path(output)
    check_output_folder(output)
    paths = {"baseline": Path(baseline), "followup": Path(followup)}
    for name, p in paths.items():
        if not p.exists():
            raise InputError(f"{name}: not found: {p}")
    to_segment = {k: p for k, p in paths.items() if not (p / "report.json").is_file()}
    options = segment_options(device=device)
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".mmtumor-compare-", dir=output.parent))
    try:
        made = {}
        for name, p in to_segment.items():
            res = _segment([p], work / name, weights, None, {}, options, on_patient, on_step)
            made[name] = Path(res.results[0]["outputs"]["report"]).parent
        src = {k: made.get(k, p) for k, p in paths.items()}
        return CompareResult.from_json(write_comparison(src["baseline"], src["followup"], output, register=register,
                                                        include=made))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def benchmark(data_dir: Path | str | None = None, *, weights: list[str] | None = None,
              methods: list[str] | str | None = None, split: str = "test", split_file: Path | str | None = None,
              subsets: str = "all", tta: bool = False, speed: bool = False, device: str = "auto",
              max_cases: int | None = None, min_et_voxels: int | None = None, min_component_fraction: float = 0.2,
              thresholds=None, et_modalities: str | None = None, reference: Path | str | None = None,
              allow_training_cases: bool = False, output: Path | str = "mmtumor-benchmark",
              progress=None) -> BenchmarkResult:
    """``mmtumor benchmark``, flag for flag: the 15-subset report. With no data folder, held-out phantoms are
    generated (into ``output``/phantoms); with no weights, every bundled model (optionally only those of ``methods``,
    a list or a comma list) is benchmarked. ``progress(description, n, total)`` reports progress."""
    from .benchmark import BenchmarkOptions, default_phantoms, run_benchmark
    from .postprocess import DEFAULT_MIN_ET_VOXELS
    from .weights import list_models, resolve

    output = Path(output)
    opts = BenchmarkOptions(split=split, subsets=subsets, tta=tta, speed=speed, device=device, max_cases=max_cases,
                            min_et_voxels=DEFAULT_MIN_ET_VOXELS if min_et_voxels is None else min_et_voxels,
                            min_component_fraction=min_component_fraction, thresholds=thresholds,
                            et_modalities=et_modalities, reference=str(reference) if reference else None,
                            allow_training_cases=allow_training_cases,
                            split_file=str(split_file) if split_file else None)
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    specs: list[str | None] = list(weights or [])
    for spec in specs:  # a wrong --weights fails in a second, before phantoms are generated or cases read
        if spec is not None and not str(spec).startswith("hf://"):
            resolve(spec)
    if data_dir is None:
        data_dir = default_phantoms(output / "phantoms")
        opts.split = "all"
    if not specs:
        bundled = [m for m in list_models() if m.source == "bundled"]
        if methods:
            bundled = [m for m in bundled if m.method in methods or m.name in methods]
        specs = [m.spec for m in bundled]
        if not specs:
            raise NoCasesError("no bundled weights to benchmark" + (f" for methods {', '.join(methods)}" if methods else "")
                               + "; pass --weights NAME|PATH|hf://...")
    return run_benchmark(data_dir, specs, output, opts, progress)


# ------------------------------------------------------------------------- segment, from Python objects
@dataclass
class Segmentation:
    """What ``segment_images`` returns: the label map on the reference image's grid (in the requested label
    scheme), compartment volumes in mL, and the run report (``report.json``'s content)."""

    labels: object  # nibabel.Nifti1Image
    volumes_ml: dict[str, float]
    report: dict
    output_dir: Path | None  # where the files are, or None when nothing was kept on disk


def segment_images(*, t1=None, t1c=None, t2=None, flair=None, output: Path | str | None = None,
                   **flags) -> Segmentation:
    """One patient from Python objects: ``segment(t1c=..., flair=...)`` (any subset, each a path or an in-memory
    ``nibabel`` image; every other ``segment`` flag by name) with the label map returned in memory. With
    ``output=None`` nothing stays on disk.

    >>> import nibabel as nib, mmtumor
    >>> result = mmtumor.segment_images(t1c=nib.load("post.nii.gz"), flair="flair.nii.gz", fast=True)
    >>> result.volumes_ml["WT"], result.labels.shape
    """
    import shutil
    import tempfile

    import nibabel as nib

    if all(v is None for v in (t1, t1c, t2, flair)):
        raise InputError("segment_images needs at least one of t1, t1c, t2, flair")
    work = Path(tempfile.mkdtemp(prefix="mmtumor-api-"))
    try:
        out_dir = Path(output) if output is not None else work / "output"
        report = segment(None, out_dir, t1=t1, t1c=t1c, t2=t2, flair=flair, **flags).results[0]
        seg = nib.load(report["outputs"]["segmentation"])
        labels = nib.Nifti1Image(np.asanyarray(seg.dataobj), seg.affine, seg.header)  # in memory, file may go
        return Segmentation(labels, dict(report["volumes_ml"]), report, Path(output) if output is not None else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
