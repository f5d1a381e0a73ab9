"""Typer CLI: parse, call ``mmtumor.api``, render with rich. Nothing else lives here."""

from __future__ import annotations

import functools
import json
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from .version import __version__
from .views import err, out, render_compare, render_detections, render_dicom, render_inspect, render_volumes
from .errors import MmtumorError
from .methods import DEFAULT_METHOD, method_names
from .postprocess import DEFAULT_MIN_ET_VOXELS

CONTEXT = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="mmtumor", context_settings=CONTEXT, no_args_is_help=True, add_completion=False,
    help="Brain-tumour segmentation in multi-modal MRI (T1, T1c, T2, FLAIR) that keeps working when scans are missing.",
)
weights_app = typer.Typer(context_settings=CONTEXT, no_args_is_help=True, help="List, download, verify, export and publish model weights.")
app.add_typer(weights_app, name="weights")



def user_errors(fn):
    """Every failure is one red line: our errors and file-system errors exit 1, Ctrl-C and SIGTERM exit 130, and any
    other exception (a library's, from an input we did not foresee) is named in one line, exit 1. No traceback
    unless MMTUMOR_DEBUG=1 asks for one."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import os
        import signal

        previous = None
        try:
            previous = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM unwinds like Ctrl-C: staging cleaned up
        except ValueError:  # not the main thread (a test runner's worker): leave signals alone
            pass
        try:
            with warnings.catch_warnings():
                # numpy, matplotlib, pydicom and torch warnings are not for the user's console (segment records
                # them in report.json as library_warnings); MMTUMOR_DEBUG=1 shows them
                if os.environ.get("MMTUMOR_DEBUG") != "1":
                    warnings.simplefilter("ignore")
                return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except MmtumorError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]: nothing was left half-written")
            raise typer.Exit(130) from None
        except OSError as exc:
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            _fail(f"{exc.strerror or type(exc).__name__}{where}")
        except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
            if os.environ.get("MMTUMOR_DEBUG") == "1":
                raise
            from .api import describe_error

            _fail(f"{describe_error(exc)} (set MMTUMOR_DEBUG=1 for the traceback)")
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _version(value: bool) -> None:
    if value:
        out.print(f"mmtumor {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """mmtumor command-line interface."""


# ----------------------------------------------------------------------------------------- inspect
@app.command()
@user_errors
def inspect(
    path: Path = typer.Argument(..., help="Folder of NIfTI cases (BraTS layout or one folder per case), or a DICOM study folder."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table."),
) -> None:
    """List the cases in a folder (or the series of a DICOM study with their detected modality and problems)."""
    from . import api

    with err.status("reading headers ...", spinner="dots"):  # DICOM studies can hold thousands of files
        result = api.inspect(path)
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    elif result.kind == "dicom":
        render_dicom(result.to_json())
    else:
        render_inspect(result.to_json())


@app.command()
@user_errors
def segment(
    patients: list[Path] = typer.Argument(None, help="Patient folder(s): DICOM study or NIfTI files."),
    output: Path = typer.Option(Path("mmtumor-output"), "-o", "--output", help="Output folder (one sub-folder per patient when several)."),
    batch: Optional[Path] = typer.Option(None, "--batch", help="Folder whose sub-folders are patients."),
    t1: Optional[Path] = typer.Option(None, "--t1", help="T1 NIfTI (overrides detection)."),
    t1c: Optional[Path] = typer.Option(None, "--t1c", help="T1 post-contrast NIfTI (overrides detection)."),
    t2: Optional[Path] = typer.Option(None, "--t2", help="T2 NIfTI (overrides detection)."),
    flair: Optional[Path] = typer.Option(None, "--flair", help="FLAIR NIfTI (overrides detection)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="NAME, PATH or hf://owner/repo[@revision] (default: bundled)."),
    device: str = typer.Option("auto", "-d", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    tta: bool = typer.Option(False, "--tta/--no-tta", help="Average the 8 mirrorings (~4.5x the inference time: ~70 s per case "
                             "on a 2-core CPU; no Dice gain for the bundled default on the real validation scans)."),
    fast: bool = typer.Option(False, "--fast", help="Less window overlap, no TTA (quick look)."),
    overlap: float = typer.Option(0.5, min=0.0, max=0.9, help="Sliding-window overlap (0-0.9)."),
    sw_batch: int = typer.Option(2, "--sw-batch", min=1, help="Windows per forward pass."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads for torch."),
    label_scheme: str = typer.Option("brats2021", "--label-scheme", help="brats2021 (1/2/4) or brats2023 (1/2/3)."),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="Also write region probabilities."),
    preview: bool = typer.Option(True, "--preview/--no-preview", help="Write preview.png."),
    output_type: str = typer.Option("nifti", "--output-type", help="nifti, or dicom-seg (adds a DICOM SEG)."),
    skull_strip: str = typer.Option("auto", "--skull-strip", help="auto, yes or no."),
    n4: bool = typer.Option(False, "--n4", help="N4 bias-field correction."),
    min_et_voxels: int = typer.Option(DEFAULT_MIN_ET_VOXELS, "--min-et-voxels", min=0, help="Relabel enhancing tumour totalling fewer than N voxels "
                                        "(1 mm working grid) as necrosis (0 = off)."),
    min_component_fraction: float = typer.Option(0.2, "--min-component-fraction", min=0.0, max=1.0, help="Remove tumour islands smaller than "
                                                 "this fraction of the largest tumour component (0 = keep every island)."),
    thresholds: Optional[str] = typer.Option(None, "--thresholds", help="Probability thresholds WT,TC,ET, e.g. 0.5,0.5,0.3 "
                                             "(default: the model's own, chosen on real validation cases; else 0.5)."),
    et_modalities: Optional[str] = typer.Option(None, "--et-modalities", help="Modalities enhancing tumour is predicted "
                                                "from when T1c is given: e.g. T1c,FLAIR, or all (default: the model's own)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors."),
) -> None:
    """Segment brain tumours in a patient folder (DICOM or NIfTI, any subset of T1/T1c/T2/FLAIR)."""
    from . import api

    if skull_strip.lower() not in ("auto", "yes", "no"):
        raise typer.BadParameter("--skull-strip must be auto, yes or no")
    result = api.segment(patients or [], output, batch=batch, t1=t1, t1c=t1c, t2=t2, flair=flair, weights=weights,
                         device=device, tta=tta, fast=fast, overlap=overlap, sw_batch=sw_batch, threads=threads,
                         label_scheme=label_scheme, save_probabilities=save_probabilities, preview=preview,
                         output_type=output_type, skull_strip=skull_strip, n4=n4, min_et_voxels=min_et_voxels,
                         min_component_fraction=min_component_fraction, thresholds=thresholds,
                         et_modalities=et_modalities, on_patient=None if quiet else render_detections)
    if not quiet:
        for rep in result.results:
            render_volumes(rep)
    if result.failures:
        for f in result.failures:
            err.print(f"[bold red]failed:[/] {escape(f.patient)}: {escape(f.error)}")
        err.print(f"[red]{len(result.failures)} of {len(result.failures) + len(result.results)} patient(s) failed[/]")
        raise typer.Exit(batch_exit_code(len(result.failures)))


@app.command()
@user_errors
def compare(
    baseline: Path = typer.Argument(..., help="Earlier time point: a 'segment' output folder, or a patient folder to segment."),
    followup: Path = typer.Argument(..., help="Later time point: a 'segment' output folder, or a patient folder to segment."),
    output: Path = typer.Option(Path("mmtumor-compare"), "-o", "--output", help="Output folder."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Weights for patient folders that need segmenting."),
    register: bool = typer.Option(True, "--register/--no-register", help="Rigidly align the two studies before "
                                  "matching lesions (off: scanner coordinates)."),
    device: str = typer.Option("auto", "-d", "--device", help="auto, cpu, cuda, cuda:N or mps (when segmenting)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors."),
) -> None:
    """Follow-up comparison: volume and bidimensional changes, new lesions, RANO 2.0 imaging categories."""
    from . import api

    result = api.compare(baseline, followup, output, weights=weights, register=register, device=device,
                         on_patient=None if quiet else render_detections)
    if not quiet:
        render_compare(result)


@app.command()
@user_errors
def convert(
    dicom_dir: Path = typer.Argument(..., help="DICOM study folder (searched recursively; DICOMDIR tolerated)."),
    out_dir: Path = typer.Argument(..., help="Output folder for t1/t1c/t2/flair.nii.gz and JSON sidecars."),
    all_series: bool = typer.Option(False, "--all", help="Also convert every other image series (series_<id>_<description>.nii.gz)."),
    t1: str | None = typer.Option(None, "--t1", help="Use this series (id from 'inspect', SeriesInstanceUID or path) as T1."),
    t1c: str | None = typer.Option(None, "--t1c", help="Use this series as T1c."),
    t2: str | None = typer.Option(None, "--t2", help="Use this series as T2."),
    flair: str | None = typer.Option(None, "--flair", help="Use this series as FLAIR."),
    mapping: Path | None = typer.Option(None, "--mapping", help='JSON file {"T1": "5", "FLAIR": "path/to/series", ...} (options win).'),
    as_json: bool = typer.Option(False, "--json", help="Print the conversion report as JSON."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No table and no progress bar."),
) -> None:
    """Convert a DICOM study to NIfTI, one file per detected modality (T1, T1c, T2, FLAIR)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import api

    flags = dict(all_series=all_series, t1=t1, t1c=t1c, t2=t2, flair=flair, mapping=mapping)
    if quiet or as_json:
        result = api.convert(dicom_dir, out_dir, **flags)
    else:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("reading headers", total=None)

            def progress(stage: str, n: int, total: int) -> None:
                bar.update(task, description=stage, completed=n, total=total)

            result = api.convert(dicom_dir, out_dir, progress=progress, **flags)
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2, default=str) + "\n")
        return
    if not quiet:
        render_dicom(result.to_json())
    for w in result.warnings + result.errors:
        err.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    for mod, path in result.written.items():
        out.print(f"[green]{mod}[/] -> {escape(str(path))}", highlight=False)
    if result.written_all:
        out.print(f"{len(result.written_all)} further series written to {escape(str(result.out_dir))}", highlight=False)
    if result.missing:
        out.print(f"[yellow]not found:[/] {', '.join(result.missing)} (segmentation works with the modalities present)")
    if not result.written and not result.written_all:
        raise MmtumorError(f"no T1/T1c/T2/FLAIR series could be converted from {dicom_dir}")


@app.command()
@user_errors
def train(
    data_dir: Path = typer.Argument(..., help="BraTS-layout folder with labelled cases (real BraTS or phantoms)."),
    method: str = typer.Option(DEFAULT_METHOD, "--method", "-m", help=f"{', '.join(method_names())}."),
    output: Path = typer.Option(Path("runs/train"), "-o", "--output", help="Run folder (checkpoints, logs, config)."),
    preset: Optional[str] = typer.Option(None, help="Model size: paper (default on GPU) or tiny (default on CPU)."),
    epochs: Optional[int] = typer.Option(None, min=1, help="Number of epochs."),
    iters_per_epoch: Optional[int] = typer.Option(None, "--iters-per-epoch", min=1, help="Optimiser steps per epoch."),
    patch: Optional[tuple[int, int, int]] = typer.Option(None, help="Patch size D H W (paper default per method)."),
    batch: Optional[int] = typer.Option(None, min=1, help="Patches per step (per GPU)."),
    lr: Optional[float] = typer.Option(None, min=1e-12, help="Initial learning rate (poly decay, power 0.9)."),
    optimizer: Optional[str] = typer.Option(None, help="adam or sgd."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="Mixed precision on GPU (bf16 where supported)."),
    device: str = typer.Option("auto", "-d", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    workers: Optional[int] = typer.Option(None, min=0, help="DataLoader worker processes."),
    align: Optional[str] = typer.Option(None, help="Training add-on: medmap."),
    dropout_schedule: Optional[str] = typer.Option(None, "--dropout-schedule", help="a2fseg, uniform, bernoulli or none (default per method)."),
    subsets: Optional[str] = typer.Option(None, "--subsets", help="Train only on these modality subsets (e.g. "
                                          "T1c+FLAIR,T1c or 0101,0100) instead of the dropout schedule: a model for one protocol."),
    augment: Optional[str] = typer.Option(None, "--augment", help="standard (flips, rotation, scaling, intensity, gamma, "
                                          "noise), clinical (adds elastic, bias field, thick slices, low resolution) or none."),
    mix_data: Optional[Path] = typer.Option(None, "--mix-data", help="A second labelled folder (e.g. phantoms from "
                                            "mmtumor synth) mixed into the training patches; its cases never validate."),
    mix_fraction: Optional[float] = typer.Option(None, "--mix-fraction", help="With --mix-data: share of patches drawn from it (default 0.25)."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    val_every: Optional[int] = typer.Option(None, "--val-every", min=0, help="Validate every K epochs (0 = never)."),
    target_spacing: Optional[float] = typer.Option(None, "--target-spacing", min=1e-12, help="Train at this isotropic voxel size in mm (e.g. 2 for CPU models)."),
    soft_labels: Optional[bool] = typer.Option(None, "--soft-labels/--hard-labels", help="With --target-spacing: learn each "
                                               "coarse voxel's region fraction (partial volume) instead of a 0.5 threshold."),
    stop_after: Optional[int] = typer.Option(None, "--stop-after", min=1, help="Stop after N epochs in this invocation (continue with --resume)."),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", min=1e-12, help="Wall-clock budget in minutes: the learning-rate "
                                               "schedule is fitted to the epochs that fit, and training stops when the next would not."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again in an --output that already holds a run "
                                   "(its checkpoints and logs are removed)."),
    init_from: Optional[str] = typer.Option(None, "--init-from", help="Fine-tune: start from these weights (bundled NAME, PATH, "
                                            "hf://... or a training run folder); their architecture and voxel size are used."),
    split_file: Optional[Path] = typer.Option(None, "--split-file", help="JSON with fixed 'train'/'val'/'test' case ids "
                                              "(cases in no list train); default: a seeded 70/10/20 split."),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON file of training options (CLI flags win)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
) -> None:
    """Train a fusion model on a BraTS-layout folder (works under torchrun for several GPUs)."""
    from . import api

    result = api.train(data_dir, method=method, output=output, preset=preset, epochs=epochs, iters_per_epoch=iters_per_epoch,
                       patch=patch, batch=batch, lr=lr, optimizer=optimizer, amp=amp, device=device, workers=workers,
                       align=align, dropout_schedule=dropout_schedule, subsets=subsets, augment=augment, seed=seed, val_every=val_every, resume=resume,
                       mix_data=mix_data, mix_fraction=mix_fraction,
                       target_spacing=target_spacing, soft_labels=soft_labels, stop_after=stop_after, time_limit=time_limit,
                       init_from=init_from, config=config, quiet=quiet, split_file=split_file, overwrite=overwrite)
    if result.rank == 0:
        out.print(f"[green]done[/]: {result.epochs} epoch(s); best validation score {result.best_score:.3f}; "
                  f"checkpoints in {escape(str(result.run_dir))} (export with: mmtumor weights export {escape(str(result.run_dir))})",
                  highlight=False)


@app.command()
@user_errors
def benchmark(
    data_dir: Optional[Path] = typer.Argument(None, help="BraTS-layout folder with labels (default: generated held-out phantoms)."),
    weights: Optional[list[str]] = typer.Option(None, "--weights", help="Model(s) to compare: NAME, PATH or hf://... (repeatable)."),
    methods: Optional[str] = typer.Option(None, "--methods", help="Comma list of bundled methods/names to compare."),
    split: str = typer.Option("test", "--split", help="test, val, train or all (manifest split of DATA_DIR)."),
    split_file: Optional[Path] = typer.Option(None, "--split-file", help="JSON with fixed 'train'/'val'/'test' case ids "
                                              "(e.g. the splits.json a data set ships) instead of the seeded split."),
    subsets: str = typer.Option("all", "--subsets", help="all, or codes/names like 1111,0101,T1c+FLAIR."),
    tta: bool = typer.Option(False, "--tta/--no-tta", help="Mirroring test-time augmentation."),
    speed: bool = typer.Option(False, "--speed", help="Also measure latency and peak memory."),
    device: str = typer.Option("auto", "-d", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    max_cases: Optional[int] = typer.Option(None, "--max-cases", min=1, help="Use at most N cases."),
    min_et_voxels: int = typer.Option(DEFAULT_MIN_ET_VOXELS, "--min-et-voxels", min=0, help="Relabel ET totalling fewer than N voxels as "
                                        "necrosis, as segment does (0 = off)."),
    min_component_fraction: float = typer.Option(0.2, "--min-component-fraction", min=0.0, max=1.0, help="Remove tumour islands smaller than "
                                                 "this fraction of the largest, as segment does (0 = off)."),
    thresholds: Optional[str] = typer.Option(None, "--thresholds", help="Probability thresholds WT,TC,ET for every model "
                                             "(default: each model's own, as segment uses them)."),
    et_modalities: Optional[str] = typer.Option(None, "--et-modalities", help="Modalities enhancing tumour is predicted "
                                                "from when T1c is given, for every model: T1c,FLAIR or all (default: "
                                                "each model's own)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Published Dice to show beside ours: CSV with "
                                             "method,subset,region,dice (in %), e.g. the A2FSeg paper's Table 1. Columns "
                                             "on BraTS 2020 data, a separate not-comparable table otherwise."),
    allow_training_cases: bool = typer.Option(False, "--allow-training-cases", help="Score a model on cases its "
                                              "metadata says it trained on (its fit, not validation; the report "
                                              "says how many). Default: a one-line error."),
    output: Path = typer.Option(Path("mmtumor-benchmark"), "-o", "--output", help="Report folder."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar."),
) -> None:
    """Dice/HD95 for WT, TC and ET over the 15 modality subsets (A2FSeg Table-1 layout), methods side by side."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import api
    from .report import rich_table

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=quiet, transient=True) as prog:
        task = prog.add_task("benchmark", total=None)

        def progress(desc: str, n: int, total: int) -> None:
            prog.update(task, description=desc, completed=n, total=total)

        result = api.benchmark(data_dir, weights=weights, methods=methods, split=split, split_file=split_file,
                               subsets=subsets, tta=tta, speed=speed, device=device, max_cases=max_cases,
                               min_et_voxels=min_et_voxels, min_component_fraction=min_component_fraction,
                               thresholds=thresholds, et_modalities=et_modalities, reference=reference,
                               allow_training_cases=allow_training_cases, output=output, progress=progress)
    if result.rank != 0:  # torchrun: only rank 0 reports
        return
    out.print(rich_table(result.dice_table(), title="Dice (mean over cases)"))
    if result.failures:
        err.print(f"[yellow]{len(result.failures)} case/subset run(s) failed; see {escape(str(output))}/failures.json[/]")
    out.print(f"report: {escape(str(result.files.get('html', output)))}", highlight=False)


@app.command()
@user_errors
def synth(
    out_dir: Path = typer.Argument(..., help="Output folder (one sub-folder per case, BraTS layout)."),
    cases: int = typer.Option(..., "--cases", "-n", help="Number of cases to generate."),
    seed: int = typer.Option(0, "--seed", help="Dataset seed; case i is seeded from (seed, i)."),
    shape: Optional[tuple[int, int, int]] = typer.Option(None, "--shape", help="Grid D H W (default 240 240 155 at 1 mm; "
                                                         "smaller shapes cover the same field of view)."),
    fmt: str = typer.Option("brats2020", "--format", help="File naming: brats2020 (_t1, _t1ce, _t2, _flair, _seg) "
                            "or brats2023 (-t1n, -t1c, -t2w, -t2f, -seg)."),
    randomize: bool = typer.Option(False, "--randomize", help="Domain randomisation: wider contrasts, resolutions, artefacts."),
    workers: int = typer.Option(1, "--workers", "-j", help="Parallel processes."),
    dicom: bool = typer.Option(False, "--dicom", help="Also write every case as DICOM series (in <case>/dicom)."),
) -> None:
    """Generate BraTS-like phantom cases with ground truth (labels 1 NCR, 2 ED, 4 ET; 3 = ET with brats2023)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import api
    from .synth.generate import validate_options

    shape = validate_options(out_dir, cases, shape or (240, 240, 155), fmt.lower(), workers)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=False) as bar:
        task = bar.add_task("phantoms", total=cases)
        done = api.synth(out_dir, cases, seed=seed, shape=shape, fmt=fmt.lower(), randomize=randomize,
                         workers=workers, dicom=dicom, progress=lambda cid: bar.advance(task))
    out.print(f"wrote {len(done)} case(s) to {escape(str(out_dir))}", highlight=False)


# ----------------------------------------------------------------------------------------- weights
@weights_app.command("list")
@user_errors
def weights_list(as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """Bundled models and Hub models in the cache: size, modalities, source and benchmark summary."""
    from . import api

    models = api.weights_list()
    if as_json:
        rows = [{**m.__dict__, "path": str(m.path)} for m in models]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not models:
        out.print("No weights found: no bundled weights/manifest.json and nothing cached. Pull with: mmtumor weights pull hf://owner/repo")
        return
    table = Table(title="mmtumor weights")
    for col in ("name", "method", "size (MB)", "modalities", "source", "benchmark (Dice)"):
        table.add_column(col, overflow="fold")
    for m in models:
        name = f"{escape(m.name)} [green](default)[/]" if m.default else escape(m.name)
        source = m.source if m.source == "bundled" else f"{m.source}: {m.spec}"
        table.add_row(name, m.method, f"{m.size_bytes / 1e6:.2f}", ",".join(m.modalities), escape(source), escape(m.summary))
    out.print(table)


@weights_app.command("pull")
@user_errors
def weights_pull(spec: str = typer.Argument(..., help="NAME, PATH or hf://owner/repo[/NAME][@revision].")) -> None:
    """Download weights into $MMTUMOR_HOME (default ~/.cache/mmtumor) and verify their SHA-256 sums."""
    from . import api

    rw = api.weights_pull(spec)
    state = "[green]SHA-256 verified[/]" if rw.verified else "[yellow]no manifest: not verified[/]"
    out.print(f"{escape(rw.name)} ({rw.method}) {state}: {escape(str(rw.weights_path))}", highlight=False)
    out.print(f"use it with: --weights {escape(rw.spec)}", highlight=False)


@weights_app.command("verify")
@user_errors
def weights_verify(name: Optional[str] = typer.Argument(None, help="NAME, folder or hf:// spec; all models when omitted.")) -> None:
    """Recompute SHA-256 sums against the manifest; exit 1 when any file differs or is missing."""
    from . import api

    checks = api.weights_verify(name)
    if not checks:
        out.print("nothing to verify (no bundled or cached weights)")
        return
    table = Table(title="SHA-256 check")
    for col in ("model", "file", "status", "sha256"):
        table.add_column(col, overflow="fold")
    for c in checks:
        status = "[green]ok[/]" if c.ok else f"[red]{escape(str(c.problem))}[/]"
        table.add_row(escape(c.model), escape(c.file), status, (c.actual or "")[:16])
    out.print(table)
    bad = [c for c in checks if not c.ok]
    if bad:
        err.print(f"[bold red]error:[/] {len(bad)} of {len(checks)} file(s) failed verification", highlight=False)
        raise typer.Exit(1)


@weights_app.command("export")
@user_errors
def weights_export(
    run_dir: Path = typer.Argument(..., help="Training run folder (best.pt/last.pt) or a checkpoint file."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write NAME.safetensors/.json/.md and manifest.json."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name (default: the run folder's name)."),
    meta: Optional[Path] = typer.Option(None, "--meta", help="JSON with card fields (metrics, training_data, ...)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Store weights as float32|float16|bfloat16."),
    default: bool = typer.Option(False, "--default", help="Make this the folder's default model."),
) -> None:
    """Export a training run to the weights format (safetensors + JSON config + model card + SHA-256 manifest)."""
    from . import api

    rw = api.weights_export(run_dir, output, name, meta, dtype, default)
    out.print(f"exported {escape(rw.name)} ({rw.method}) to {escape(str(rw.weights_path.parent))} "
              f"({rw.weights_path.stat().st_size / 1e6:.2f} MB)", highlight=False)


@weights_app.command("ensemble")
@user_errors
def weights_ensemble(
    members: list[str] = typer.Argument(..., help="Two or more models: bundled NAMEs, PATHs or hf:// specs."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write NAME.safetensors/.json/.md and manifest.json."),
    name: str = typer.Option(..., "--name", help="Name of the ensemble."),
    description: str = typer.Option("", "--description", help="Sentence added to the model card."),
    default: bool = typer.Option(False, "--default", help="Make this the folder's default model."),
) -> None:
    """Combine exported models into one ensemble (the mean of their region probabilities; inference costs the sum)."""
    from . import api

    rw = api.weights_ensemble(members, output, name, description, default)
    out.print(f"wrote ensemble {escape(rw.name)} of {len(rw.meta['members'])} models to "
              f"{escape(str(rw.weights_path.parent))} ({rw.weights_path.stat().st_size / 1e6:.2f} MB)", highlight=False)


@weights_app.command("route")
@user_errors
def weights_route(
    base: str = typer.Argument(..., help="The model for every other input: bundled NAME, PATH or hf:// spec."),
    specialist: str = typer.Argument(..., help="The model trained for --subsets (train --subsets)."),
    subsets: str = typer.Option(..., "--subsets", help="Inputs the specialist answers, exactly as given (e.g. T1c+FLAIR,T1c)."),
    regions: str = typer.Option("ET", "--regions", help="Regions it answers there (comma list of WT, TC, ET)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write NAME.safetensors/.json/.md and manifest.json."),
    name: str = typer.Option(..., "--name", help="Name of the routed model."),
    description: str = typer.Option("", "--description", help="Sentence added to the model card."),
    default: bool = typer.Option(False, "--default", help="Make this the folder's default model."),
) -> None:
    """Combine a base model and a specialist for some modality subsets into one model (unrouted inputs cost the base only)."""
    from . import api

    rw = api.weights_route(base, specialist, subsets, output, name, regions=regions.split(","),
                           description=description, default=default)
    out.print(f"wrote {escape(rw.name)}: {escape(rw.meta['description'].split(';')[0])} "
              f"({rw.weights_path.stat().st_size / 1e6:.2f} MB)", highlight=False)


@weights_app.command("push")
@user_errors
def weights_push(
    folder: Path = typer.Argument(..., help="An exported weights folder (with manifest.json)."),
    repo_id: str = typer.Argument(..., help="Hub repository, owner/name (created if missing)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch to commit to (default main)."),
    message: Optional[str] = typer.Option(None, "-m", "--message", help="Commit message."),
    private: bool = typer.Option(False, "--private", help="Create the repository as private."),
) -> None:
    """Upload an exported folder with its model cards to the Hugging Face Hub (needs a token: hf auth login)."""
    from . import api

    url = api.weights_push(folder, repo_id, revision, message, private)
    out.print(f"pushed: {escape(str(url))}", highlight=False)


#: a batch with failures exits with 10 + the number of failed patients (at most 110): distinct from 1 (one bad
#: input), 2 (usage) and 130 (interrupted), and a script reads the count from ``$?`` without parsing the output
BATCH_EXIT_BASE, BATCH_EXIT_MAX = 10, 110


def batch_exit_code(n_failed: int) -> int:
    return min(BATCH_EXIT_BASE + n_failed, BATCH_EXIT_MAX)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
