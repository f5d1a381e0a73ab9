"""Typer CLI: parse, call ``mmtumor.api``, render with rich. Nothing else lives here."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import MmtumorError

CONTEXT = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="mmtumor", context_settings=CONTEXT, no_args_is_help=True, add_completion=False,
    help="Brain-tumour segmentation in multi-modal MRI (T1, T1c, T2, FLAIR) that keeps working when scans are missing.",
)
weights_app = typer.Typer(context_settings=CONTEXT, no_args_is_help=True, help="List, download, verify, export and publish model weights.")
app.add_typer(weights_app, name="weights")

out = Console()
err = Console(stderr=True)


def user_errors(fn):
    """Turn MmtumorError into one red line + exit 1; Ctrl-C into exit 130. Never a traceback for user errors."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MmtumorError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


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
def _render_inspect(report: dict) -> None:
    table = Table(title=f"Cases in {report['root']}", show_lines=False)
    for col in ("case", "T1", "T1c", "T2", "FLAIR", "label", "shape", "spacing (mm)", "orient.", "label values", "problems"):
        table.add_column(col, overflow="fold")
    for row in report["cases"]:
        mods = [("[green]●[/]" if row["modalities"][m] else "[dim]○[/]") for m in ("T1", "T1c", "T2", "FLAIR")]
        table.add_row(
            row["case_id"], *mods,
            "●" if row["label"] else "[dim]○[/]",
            "×".join(map(str, row["shape"])) if row["shape"] else "?",
            "×".join(f"{s:g}" for s in row["spacing"]) if row["spacing"] else "?",
            row["orientation"] or "?",
            ",".join(map(str, row["label_values"])) + f" ({row['label_scheme']})" if row["label_values"] is not None else "",
            "[red]" + "; ".join(row["problems"]) + "[/]" if row["problems"] else "",
        )
    out.print(table)
    if report["unrecognised"]:
        out.print(f"[yellow]{len(report['unrecognised'])} NIfTI file(s) with unrecognised names:[/] "
                  + ", ".join(Path(p).name for p in report["unrecognised"][:10]))
    n_prob = sum(bool(r["problems"]) for r in report["cases"])
    out.print(f"{len(report['cases'])} case(s), {n_prob} with problems. Labels: 1 NCR/NET, 2 ED, 4 ET (internal BraTS<=2021 scheme).")


@app.command()
@user_errors
def inspect(
    path: Path = typer.Argument(..., help="Folder of NIfTI cases (BraTS layout or one folder per case)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table."),
) -> None:
    """List the cases in a folder: modalities, shapes, spacing, orientation, labels and problems."""
    from . import api

    report = api.inspect(path)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _render_inspect(report)


# ------------------------------------------------------------------------- not delivered yet
def _pending(command: str, issue: str):
    from . import api

    api.not_available(command, issue)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def segment(ctx: typer.Context) -> None:
    """Segment a patient folder (DICOM or NIfTI) with the fusion model."""
    _pending("segment", "issue 7")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def convert(ctx: typer.Context) -> None:
    """Convert a DICOM study to NIfTI, one file per detected modality."""
    _pending("convert", "issue 4")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def train(ctx: typer.Context) -> None:
    """Train a fusion model on a BraTS-layout folder."""
    _pending("train", "issue 6")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def benchmark(ctx: typer.Context) -> None:
    """Missing-modality report over all 15 subsets."""
    _pending("benchmark", "issue 8")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def synth(ctx: typer.Context) -> None:
    """Generate BraTS-like phantom cases (NIfTI or DICOM)."""
    _pending("synth", "issue 3")


for _name, _issue in (("list", "issue 7"), ("pull", "issue 7"), ("verify", "issue 7"), ("export", "issue 6"), ("push", "issue 7")):
    def _make(name=_name, issue=_issue):
        @user_errors
        def _cmd(ctx: typer.Context) -> None:
            _pending(f"weights {name}", issue)
        _cmd.__doc__ = f"weights {name} (not available yet)"
        return _cmd
    weights_app.command(_name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(_make())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
