"""What the terminal shows: rich tables of the API's results (the CLI and ``make demo`` share them)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .results import CompareResult

out = Console()
err = Console(stderr=True)


def render_inspect(report: dict) -> None:
    table = Table(title=f"Cases in {escape(str(report['root']))}", show_lines=False)
    for col in ("case", "T1", "T1c", "T2", "FLAIR", "label", "shape", "spacing (mm)", "orient.", "label values", "problems"):
        table.add_column(col, overflow="fold")
    for row in report["cases"]:
        mods = [("[green]●[/]" if row["modalities"][m] else "[dim]○[/]") for m in ("T1", "T1c", "T2", "FLAIR")]
        table.add_row(
            escape(row["case_id"]), *mods,
            "●" if row["label"] else "[dim]○[/]",
            "×".join(map(str, row["shape"])) if row["shape"] else "?",
            "×".join(f"{s:g}" for s in row["spacing"]) if row["spacing"] else "?",
            row["orientation"] or "?",
            ",".join(map(str, row["label_values"])) + f" ({row['label_scheme']})" if row["label_values"] is not None else "",
            "[red]" + escape("; ".join(row["problems"])) + "[/]" if row["problems"] else "",
        )
    out.print(table)
    if report["unrecognised"]:
        out.print(f"[yellow]{len(report['unrecognised'])} NIfTI file(s) with unrecognised names:[/] "
                  + escape(", ".join(Path(p).name for p in report["unrecognised"][:10])))
    n_prob = sum(bool(r["problems"]) for r in report["cases"])
    out.print(f"{len(report['cases'])} case(s), {n_prob} with problems. Labels: 1 NCR/NET, 2 ED, 4 ET (internal BraTS<=2021 scheme).")

def render_detections(pin) -> None:
    table = Table(title=f"{escape(pin.name)}: inputs ({pin.source})", show_lines=False)
    for col in ("modality", "file / series", "confidence", "used", "why"):
        table.add_column(col, overflow="fold")
    for r in pin.detections:
        table.add_row(r["modality"], escape(Path(r["file"]).name if pin.source != "dicom" else r["file"]), f"{r['confidence']:.2f}",
                      "[green]yes[/]" if r["used"] else "[dim]no[/]", escape("; ".join(r["reasons"])))
    out.print(table)
    for w in pin.warnings:
        err.print(f"[yellow]warning:[/] {escape(w)}")

def render_volumes(report: dict) -> None:
    table = Table(title=f"{escape(report['patient'])}: tumour volumes (mL) — subset {report['modality_subset']['name']}")
    for k in ("NCR", "ED", "ET", "TC", "WT"):
        table.add_column(k, justify="right")
    v = report["volumes_ml"]
    table.add_row(*(f"{v[k]:.2f}" for k in ("NCR", "ED", "ET", "TC", "WT")))
    out.print(table)
    if report.get("expected_dice"):
        e = report["expected_dice"]
        out.print("expected Dice for this subset (model card): " + ", ".join(f"{k} {e[k]:.2f}" for k in e))
    if report.get("rano"):
        r, les = report["rano"], report["lesions"]
        out.print(f"lesions: {len(les['tumour']['lesions'])} tumour, {len(les['enhancing']['lesions'])} enhancing; "
                  f"RANO: {r['measurable_lesions']} measurable, SPD of {len(r['targets'])} target(s) "
                  f"{r['spd_mm2']:.0f} mm² (on the {escape(r['grid'])})", highlight=False)
    for k, pth in report["outputs"].items():
        out.print(f"  {k}: {escape(str(pth))}", highlight=False)
    shown = set(report["input"].get("warnings", []))  # input warnings were printed with the detections
    for w in report["warnings"]:
        if w not in shown:
            err.print(f"[yellow]warning:[/] {escape(w)}")

def render_dicom(report: dict) -> None:
    """DICOM series table: what each series is, how sure we are, why, and what is wrong with it."""
    table = Table(title=f"DICOM series in {escape(str(report['root']))}", show_lines=True)
    for col in ("series", "description", "orient.", "size", "spacing (mm)", "detected", "conf.", "reasons", "problems"):
        table.add_column(col, overflow="fold")
    for r in report["series"]:
        det = r["detected"]
        style = "dim" if det == "OTHER" else ("bold green" if r["selected"] else ("yellow" if not r["confident"] else "green"))
        mark = " ★" if r["selected"] else ""
        table.add_row(
            escape(str(r["series_id"])), escape(str(r["description"])), r["orientation"], "×".join(map(str, r["size"])),
            "×".join("?" if v is None else f"{v:g}" for v in r["spacing"]),
            f"[{style}]{det}{mark}[/]", f"{r['confidence']:.2f}", escape("; ".join(r["reasons"])),
            "[red]" + escape("; ".join(r["problems"])) + "[/]" if r["problems"] else "",
        )
    out.print(table)
    sel = escape(", ".join(f"{m} = series {sid}" for m, sid in report["selected"].items()) or "none")
    skipped = escape(", ".join(f"{v} {k}" for k, v in report["skipped"].items()))
    out.print(f"{len(report['series'])} series from {report['n_files']} files{f' (skipped: {skipped})' if skipped else ''}. "
              f"Selected (★): {sel}. Yellow = low confidence: confirm, or choose with --t1/--t1c/--t2/--flair.")


def render_compare(result: CompareResult) -> None:
    """Volumes then / now, SPD, new lesions and the RANO 2.0 imaging categories."""
    table = Table(title="Follow-up comparison (imaging measurements only)")
    for col in ("", "baseline", "follow-up", "change", "change %"):
        table.add_column(col, justify="right")

    def pct(v):
        return "–" if v is None else f"{v:+.1f}"

    for k, r in result.volumes.items():
        table.add_row(f"{k} mL", f"{r['baseline_ml']:.2f}", f"{r['followup_ml']:.2f}", f"{r['change_ml']:+.2f}",
                      pct(r["change_percent"]))
    s = result.spd
    table.add_row("SPD mm²", f"{s['baseline_mm2']:.0f}", f"{s['followup_mm2']:.0f}", f"{s['change_mm2']:+.0f}",
                  pct(s["change_percent"]))
    out.print(table)
    e = result.lesions["enhancing"]
    out.print(f"new enhancing lesions: {len(e['new'])} ({len(e['new_measurable'])} measurable); resolved: "
              f"{len(e['resolved'])}")
    for kind in ("bidimensional", "volumetric"):
        r = result.response[kind]
        out.print(f"RANO 2.0 imaging category ({kind}): [bold]{r['category']}[/] — {escape(r['why'])}")
    err.print(f"[dim]{escape(result.response['caveat'])}[/]")
    for n in result.notes:
        err.print(f"[yellow]warning:[/] {escape(n)}")
    for k, pth in result.outputs.items():
        out.print(f"  {k}: {escape(str(pth))}", highlight=False)
