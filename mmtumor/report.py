"""Benchmark report rendering: the A2FSeg Table-1 layout in rich, Markdown, CSV, JSON and HTML, plus plots.

Rendering only: inputs are plain metric records (see :func:`mmtumor.metrics.aggregate`) and speed
records; nothing here runs a model. Rows are the modality subsets in the canonical order of
:data:`mmtumor.modalities.SUBSETS` (● present / ○ missing for T1, T1c, T2, FLAIR), column groups are
the regions WT / TC / ET (plus any extra region such as a post-processed ``ET-pp``), one column per
method; the best method per row and region is bold. Dice is shown in % (as in the paper), HD95 in mm.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .io.atomic import write_bytes_atomic
from .metrics import HD95_BOTH_EMPTY, HD95_ONE_EMPTY, HIGHER_IS_BETTER, METRIC_NAMES, aggregate
from .modalities import MODALITIES, SUBSETS, subset_from_code
from .report_figures import dice_vs_modalities_png, heatmap_png
from .report_reference import A2FSEG_PAPER_TABLE1, load_reference_csv, paper_reference  # noqa: F401
from .report_stats import ABLATION_PAIR, ablation, paired_tests, speed_table  # noqa: F401 - part of the report API

PRESENT, MISSING = "●", "○"
REGION_ORDER = ("WT", "TC", "ET")


CONVENTIONS = (
    "Dice = 1 when prediction and reference are both empty; HD95 (mm, voxel spacing applied) = "
    f"{HD95_ONE_EMPTY} when exactly one is empty and {HD95_BOTH_EMPTY} when both are; HD95 is the 95th "
    "percentile of the pooled symmetric surface distances (official BraTS evaluation). Aggregation: per "
    "case -> mean ± sd over cases per subset -> unweighted mean over subsets."
)

_FMT = {"dice": (100.0, "{:.2f}", "%"), "hd95": (1.0, "{:.2f}", "mm"), "sens": (100.0, "{:.2f}", "%"),
        "spec": (100.0, "{:.3f}", "%")}


# ----------------------------------------------------------------------------- table model

def subset_marks(code: str) -> dict[str, str]:
    """{'T1': '●', 'T1c': '○', ...} for a 4-bit subset code."""
    sub = subset_from_code(code)
    return {m.value: PRESENT if p else MISSING for m, p in zip(MODALITIES, sub.mask, strict=True)}


def _ordered(values: Iterable[str], first: Sequence[str] = ()) -> list[str]:
    seen = list(dict.fromkeys(values))
    return [v for v in first if v in seen] + sorted(v for v in seen if v not in first)


def _display(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    scale, fmt, _ = _FMT.get(metric, (1.0, "{:.3f}", ""))
    return fmt.format(value * scale)


def _best(metric: str, values: Mapping[str, float | None]) -> list[str]:
    """Methods holding the best displayed value (ties at display precision all count); none if < 2 methods."""
    have = {m: v for m, v in values.items() if v is not None and not math.isnan(v)}
    if len(have) < 2:
        return []
    pick = max if HIGHER_IS_BETTER.get(metric, True) else min
    best_shown = _display(metric, pick(have.values()))
    return [m for m, v in have.items() if _display(metric, v) == best_shown]


def build_table(agg: Mapping, metric: str = "dice", methods: Sequence[str] | None = None,
                reference: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None) -> dict:
    """The Table-1 model: rows per subset (canonical order), cells per region and method, best marked.

    ``reference`` adds published columns ({label: {subset_code: {region: value in %}}}) that are shown
    but never take part in the choice of the best. The mean row averages each method over the rows it
    has; its best is marked only when every method covers the same number of subsets.
    """
    per_subset = agg["per_subset"]
    methods = list(methods) if methods is not None else list(per_subset)
    for code in {s for m in per_subset.values() for s in m}:
        subset_from_code(code)  # refuses malformed codes with a clear error
    codes = [s.code for s in SUBSETS if any(s.code in per_subset.get(m, {}) for m in methods)]
    regions = _ordered((r for m in methods for s in per_subset.get(m, {}).values() for r in s), REGION_ORDER)
    ref_labels = list(reference or {})
    rows = []
    for code in codes:
        sub = subset_from_code(code)
        values: dict[str, dict[str, float | None]] = {}
        sds: dict[str, dict[str, float | None]] = {}
        ns: dict[str, dict[str, int]] = {}
        best: dict[str, list[str]] = {}
        refs: dict[str, dict[str, float | None]] = {}
        for region in regions:
            values[region], sds[region], ns[region] = {}, {}, {}
            for m in methods:
                stat = per_subset.get(m, {}).get(code, {}).get(region, {}).get(metric)
                values[region][m] = stat["mean"] if stat else None
                sds[region][m] = stat["sd"] if stat else None
                ns[region][m] = stat["n"] if stat else 0
            best[region] = _best(metric, values[region])
            refs[region] = {lab: (reference[lab].get(code, {}).get(region) / 100.0
                                  if reference[lab].get(code, {}).get(region) is not None else None)
                            for lab in ref_labels}
        rows.append({"subset_code": code, "subset_name": sub.name, "n_present": sub.size, "marks": subset_marks(code),
                     "values": values, "sd": sds, "n": ns, "best": best, "reference": refs})
    mean_values: dict[str, dict[str, float | None]] = {}
    mean_n: dict[str, dict[str, int]] = {}
    mean_best: dict[str, list[str]] = {}
    mean_refs: dict[str, dict[str, float | None]] = {}
    for region in regions:
        mean_values[region], mean_n[region] = {}, {}
        for m in methods:
            vals = [r["values"][region][m] for r in rows if r["values"][region][m] is not None]
            mean_values[region][m] = float(np.mean(vals)) if vals else None
            mean_n[region][m] = len(vals)
        same_cover = len(set(mean_n[region].values())) == 1
        mean_best[region] = _best(metric, mean_values[region]) if same_cover else []
        mean_refs[region] = {}
        for lab in ref_labels:
            vals = [r["reference"][region][lab] for r in rows if r["reference"][region][lab] is not None]
            mean_refs[region][lab] = float(np.mean(vals)) if vals else None
    return {"metric": metric, "unit": _FMT.get(metric, (1.0, "", ""))[2], "methods": methods, "regions": regions,
            "reference_labels": ref_labels, "rows": rows,
            "mean": {"values": mean_values, "n_subsets": mean_n, "best": mean_best, "reference": mean_refs}}


def _cell(table: dict, row: Mapping, region: str, method: str) -> tuple[str, bool]:
    value = row["values"][region][method]
    return _display(table["metric"], value), method in row["best"][region]


def _columns(table: dict) -> list[tuple[str, str, bool]]:
    """(region, label, is_reference) for every value column, grouped by region."""
    cols = []
    for region in table["regions"]:
        cols += [(region, m, False) for m in table["methods"]]
        cols += [(region, lab, True) for lab in table["reference_labels"]]
    return cols


def _row_cells(table: dict, row: Mapping) -> list[tuple[str, bool, bool]]:
    """(text, bold, is_reference) per value column."""
    out = []
    for region, label, is_ref in _columns(table):
        if is_ref:
            out.append((_display("dice", row["reference"][region][label]), False, True))
        else:
            text, bold = _cell(table, row, region, label)
            out.append((text, bold, False))
    return out


def _all_rows(table: dict) -> list[tuple[list[str], Mapping]]:
    rows = [([row["marks"][m.value] for m in MODALITIES], row) for row in table["rows"]]
    mean = table["mean"]
    rows.append((["mean", "", "", ""], mean))
    return rows


def to_markdown(table: dict, title: str | None = None) -> str:
    """GitHub Markdown table; header cells read 'WT · method'; best per row in **bold**, paper columns in _italics_."""
    cols = _columns(table)
    head = ["T1", "T1c", "T2", "FLAIR"] + [f"{r} · {lab}{' (paper)' if ref else ''}" for r, lab, ref in cols]
    lines = []
    if title:
        lines += [f"**{title}** ({table['metric'].upper()}, {table['unit']})", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join([":-:"] * 4 + ["--:"] * len(cols)) + "|"]
    for marks, row in _all_rows(table):
        cells = []
        for text, bold, is_ref in _row_cells(table, row):
            cells.append(f"**{text}**" if bold else (f"_{text}_" if is_ref and text != "–" else text))
        lines.append("| " + " | ".join(marks + cells) + " |")
    return "\n".join(lines) + "\n"


def rich_table(table: dict, title: str | None = None):
    """A rich.table.Table in the Table-1 layout (column headers 'WT\\nmethod'), best per row bold."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title or f"{table['metric'].upper()} ({table['unit']})", show_lines=False)
    for m in ("T1", "T1c", "T2", "FLAIR"):
        t.add_column(m, justify="center")
    for region, label, is_ref in _columns(table):
        t.add_column(f"{region}\n{label}{' (paper)' if is_ref else ''}", justify="right",
                     style="italic dim" if is_ref else None)
    rows = _all_rows(table)
    for i, (marks, row) in enumerate(rows):
        cells = [Text(text, style="bold green" if bold else "") for text, bold, _ in _row_cells(table, row)]
        t.add_row(*marks, *cells, end_section=(i == len(rows) - 2))
    return t


# ----------------------------------------------------------------------------- long CSV / JSON

SUMMARY_FIELDS = ["method", "subset_code", "subset_name", "n_present", "region", "metric", "mean", "sd", "n", "best"]
PER_CASE_FIELDS = ["method", "case_id", "subset_code", "subset_name", "n_present", "region", *METRIC_NAMES]


def summary_rows(agg: Mapping, metrics: Sequence[str] = METRIC_NAMES) -> list[dict]:
    """Long-format summary: one row per method, subset (or 'mean'), region and metric."""
    out = []
    tables = {m: build_table(agg, m) for m in metrics}
    for metric, table in tables.items():
        for row in table["rows"]:
            for region in table["regions"]:
                for method in table["methods"]:
                    v = row["values"][region][method]
                    if v is None:
                        continue
                    out.append({"method": method, "subset_code": row["subset_code"], "subset_name": row["subset_name"],
                                "n_present": row["n_present"], "region": region, "metric": metric, "mean": v,
                                "sd": row["sd"][region][method], "n": row["n"][region][method],
                                "best": int(method in row["best"][region])})
        for region in table["regions"]:
            for method in table["methods"]:
                v = table["mean"]["values"][region][method]
                if v is None:
                    continue
                out.append({"method": method, "subset_code": "mean", "subset_name": "mean over subsets", "n_present": "",
                            "region": region, "metric": metric, "mean": v, "sd": None,
                            "n": table["mean"]["n_subsets"][region][method],
                            "best": int(method in table["mean"]["best"][region])})
    return out


def _csv_text(rows: Sequence[Mapping], fields: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None or (isinstance(r.get(k), float) and math.isnan(r[k]))
                        else (repr(r[k]) if isinstance(r.get(k), float) else r[k])) for k in fields})
    return buf.getvalue()


def per_case_rows(records: Iterable[Mapping]) -> list[dict]:
    """Records with the subset name and number of present modalities added (extra keys kept)."""
    out = []
    for rec in records:
        sub = subset_from_code(str(rec["subset_code"]))
        out.append({**rec, "subset_name": sub.name, "n_present": sub.size})
    return out


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf -> null, numpy scalars -> Python, Paths -> str."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ----------------------------------------------------------------------------- documents

def _tests_markdown(tests: Sequence[Mapping], alpha: float) -> str:
    """Only the flagged comparisons (all of them are in report.json)."""
    if not tests:
        return "No method pairs to compare (one method only).\n"
    flagged = [t for t in tests if t["flag"]]
    n_holm = sum(t["flag_holm"] for t in tests)
    lines = [f"Wilcoxon signed-rank test on paired per-case differences (matched on case id), {len(tests)} tests. "
             f"✱ p < {alpha} uncorrected: {len(flagged)}; ✱✱ also significant after Holm correction over all tests: "
             f"{n_holm}. Only flagged pairs are listed; every test is in report.json.", ""]
    if not flagged:
        return "\n".join(lines) + "\n"
    lines += ["| subset | region | A | B | n | median A−B | p | p_holm | flag | better | note |",
              "|---|---|---|---|--:|--:|--:|--:|:-:|---|---|"]
    for t in flagged:
        lines.append(f"| {t['subset_name']} | {t['region']} | {t['method_a']} | {t['method_b']} | {t['n']} | "
                     f"{t['median_diff']:+.4f} | {_p(t['p'])} | {_p(t['p_holm'])} | {'✱✱' if t['flag_holm'] else '✱'} | "
                     f"{t['better']} | {t['note']} |")
    return "\n".join(lines) + "\n"


def _p(p: float) -> str:
    return "–" if p is None or math.isnan(p) else (f"{p:.2e}" if p < 1e-3 else f"{p:.3f}")


def _ablation_markdown(abl: Mapping | None) -> str:
    if abl is None:
        return ""
    lines = ["| variant | method | WT | TC | ET | avg |", "|---|---|--:|--:|--:|--:|"]
    for row in abl["rows"]:
        v = row["values"]
        lines.append(f"| {abl['label'][row['method']]} | {row['method']} | " +
                     " | ".join(_display("dice", v[k]) for k in (*REGION_ORDER, "avg")) + " |")
    d = abl["delta"]
    lines.append("| difference | | " + " | ".join("–" if d[k] is None else f"{d[k] * 100:+.2f}" for k in (*REGION_ORDER, "avg")) + " |")
    return "\n".join(lines) + "\n"


def _speed_markdown(rows: Sequence[Mapping]) -> str:
    if not rows:
        return ""
    lines = ["| method | present | cases | median s | min s | max s | cases/min | peak GPU MB | peak CPU MB | device |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|"]

    def f(v, fmt="{:.3f}"):
        return "–" if v is None else fmt.format(v)

    for r in rows:
        lines.append(f"| {r['method']} | {r['n_present']} | {r['n_cases']} | {f(r['median_s'])} | {f(r['min_s'])} | "
                     f"{f(r['max_s'])} | {f(r['throughput_per_min'], '{:.1f}')} | {f(r['peak_gpu_mb'], '{:.0f}')} | "
                     f"{f(r['peak_cpu_mb'], '{:.0f}')} | {r['device']} |")
    return "\n".join(lines) + "\n"


def _meta_lines(meta: Mapping) -> list[str]:
    return [f"- **{k}**: {v}" for k, v in meta.items() if k != "title" and not isinstance(v, (dict, list))]


def build_markdown(ctx: Mapping) -> str:
    meta = ctx["meta"]
    parts = [f"# {meta.get('title', 'mmtumor benchmark report')}", "", *_meta_lines(meta), "",
             f"Conventions: {CONVENTIONS}", ""]
    if any(r not in REGION_ORDER for r in ctx["tables"]["dice"]["regions"]):
        parts += ["Extra region columns (e.g. `ET-pp`) are post-processed variants, as named in the metadata.", ""]
    parts += ["## Dice per modality subset (%)", "", to_markdown(ctx["tables"]["dice"]), "",
              "## HD95 per modality subset (mm)", "", to_markdown(ctx["tables"]["hd95"]), ""]
    ref_mode, _ = ctx["reference_mode"]
    if ref_mode == "separate":
        parts += ["## Published numbers (measured on BraTS 2020, not on this data) — NOT comparable", "",
                  to_markdown(ctx["reference_table"]), ""]
    elif ref_mode == "none":
        parts += ["_Published A2FSeg Table 1 numbers are not bundled; add a paper's table with `mmtumor benchmark --reference table.csv` (docs/metrics.md)._", ""]
    if ctx["ablation"]:
        parts += ["## Ablation: average fusion vs average + adaptive fusion (A2FSeg Table 2 style, Dice %)", "",
                  _ablation_markdown(ctx["ablation"]), ""]
    parts += ["## Paired comparisons (Dice)", "", _tests_markdown(ctx["paired_tests"], ctx["alpha"]), ""]
    if ctx["speed"]:
        parts += ["## Speed and memory", "", _speed_markdown(ctx["speed"]), ""]
    parts += ["## Figures", "", "![heatmap](heatmap.png)", "", "![Dice vs present modalities](dice_vs_modalities.png)", ""]
    return "\n".join(parts)


def _html_table(table: dict) -> str:
    cols = _columns(table)
    head1 = "<tr><th colspan=4>present</th>" + "".join(
        f"<th colspan={len(table['methods']) + len(table['reference_labels'])}>{html.escape(r)}</th>" for r in table["regions"]) + "</tr>"
    head2 = "<tr>" + "".join(f"<th>{m}</th>" for m in ("T1", "T1c", "T2", "FLAIR")) + "".join(
        f"<th class='{'ref' if ref else ''}'>{html.escape(lab)}{' (paper)' if ref else ''}</th>" for _, lab, ref in cols) + "</tr>"
    body = []
    for marks, row in _all_rows(table):
        cls = " class='mean'" if marks[0] == "mean" else ""
        cells = "".join(f"<td>{html.escape(m)}</td>" for m in marks)
        for text, bold, is_ref in _row_cells(table, row):
            t = html.escape(text)
            cells += f"<td class='ref'>{t}</td>" if is_ref else (f"<td><b>{t}</b></td>" if bold else f"<td>{t}</td>")
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead>{head1}{head2}</thead><tbody>{''.join(body)}</tbody></table>"


def _md_block_to_html(md: str) -> str:
    """Tiny converter for the pipe tables this module writes (no external Markdown dependency)."""
    out, rows = [], []
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set(":-") for c in cells):
                continue
            rows.append(cells)
        else:
            if rows:
                out.append(_rows_html(rows))
                rows = []
            if line.strip():
                out.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    if rows:
        out.append(_rows_html(rows))
    return "\n".join(out)


def _rows_html(rows: list[list[str]]) -> str:
    def cell(c: str, tag: str) -> str:
        bold = c.startswith("**") and c.endswith("**") and len(c) > 4
        c = c.strip("*")
        return f"<{tag}>{'<b>' if bold else ''}{html.escape(c)}{'</b>' if bold else ''}</{tag}>"

    head = "<tr>" + "".join(cell(c, "th") for c in rows[0]) + "</tr>"
    body = "".join("<tr>" + "".join(cell(c, "td") for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0;
font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3;text-align:center}
tr.mean td{border-top:2px solid #333;font-weight:600}td.ref,th.ref{color:#666;font-style:italic}img{max-width:100%}
.note{color:#555}"""


def build_html(ctx: Mapping, images: Mapping[str, bytes]) -> str:
    """Self-contained HTML: tables inline, images as base64 data URIs (opens anywhere, no side files)."""
    meta = ctx["meta"]
    title = html.escape(str(meta.get("title", "mmtumor benchmark report")))
    meta_html = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in meta.items()
                        if k != "title" and not isinstance(v, (dict, list)))
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head><body>",
             f"<h1>{title}</h1><ul>{meta_html}</ul><p class='note'>{html.escape(CONVENTIONS)}</p>",
             "<h2>Dice per modality subset (%)</h2>", _html_table(ctx["tables"]["dice"]),
             "<h2>HD95 per modality subset (mm)</h2>", _html_table(ctx["tables"]["hd95"])]
    ref_mode, _ = ctx["reference_mode"]
    if ref_mode == "separate":
        parts += ["<h2>Published numbers (measured on BraTS 2020, not on this data) — not comparable</h2>",
                  _html_table(ctx["reference_table"])]
    if ctx["ablation"]:
        parts += ["<h2>Ablation: average vs average + adaptive fusion (Dice %)</h2>", _md_block_to_html(_ablation_markdown(ctx["ablation"]))]
    parts += ["<h2>Paired comparisons (Dice)</h2>", _md_block_to_html(_tests_markdown(ctx["paired_tests"], ctx["alpha"]))]
    if ctx["speed"]:
        parts += ["<h2>Speed and memory</h2>", _md_block_to_html(_speed_markdown(ctx["speed"]))]
    for name, data in images.items():
        b64 = base64.b64encode(data).decode("ascii")
        parts.append(f"<h2>{html.escape(name)}</h2><img alt='{html.escape(name)}' src='data:image/png;base64,{b64}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- writing

def _reference_table(data: Mapping) -> dict:
    """Render the published numbers alone as a Table-1 model (values stored in %, shown in %)."""
    per_subset = {m: {code: {r: {"dice": {"mean": v / 100.0, "sd": None, "n": 0}} for r, v in regs.items()}
                      for code, regs in subsets.items()} for m, subsets in data.items()}
    return build_table({"per_subset": per_subset, "overall": {}}, "dice")


def build_context(records: Sequence[Mapping], speed_records: Sequence[Mapping] | None = None,
                  meta: Mapping | None = None, alpha: float = 0.05,
                  reference: Mapping | None = None) -> dict:
    """Everything the report shows, as plain data (this is what report.json holds)."""
    records = list(records)
    if not records:
        raise InputError("no metric records to report")
    meta = {"title": "mmtumor benchmark report", "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **dict(meta or {})}
    agg = aggregate(records)
    mode, ref_data = paper_reference(meta.get("dataset"), reference)
    # the paper's Table 1 reports Dice only, so reference columns go in the Dice table
    tables = {"dice": build_table(agg, "dice", reference=ref_data if mode == "columns" else None),
              "hd95": build_table(agg, "hd95")}
    return {"meta": meta, "conventions": CONVENTIONS, "alpha": alpha, "aggregate": agg, "tables": tables,
            "reference_mode": (mode, ref_data),
            "reference_table": _reference_table(ref_data) if mode == "separate" else None,
            "paired_tests": paired_tests(records, "dice", alpha), "ablation": ablation(agg),
            "speed": speed_table(speed_records or [])}


def write_report(records: Sequence[Mapping], out_dir: str | os.PathLike, speed_records: Sequence[Mapping] | None = None,
                 meta: Mapping | None = None, alpha: float = 0.05, reference: Mapping | None = None) -> dict[str, Path]:
    """Write report.md/.csv/.json/.html, per_case.csv, heatmap.png and dice_vs_modalities.png atomically.

    ``meta`` is free metadata shown at the top (dataset, split, weights, device, versions, ...);
    ``meta['dataset'] == 'brats2020'`` puts the published A2FSeg numbers beside ours as columns.
    ``reference`` overrides :data:`A2FSEG_PAPER_TABLE1` (for tests or another paper's table).
    """
    records = list(records)
    ctx = build_context(records, speed_records, meta, alpha, reference)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create report folder {out}: {exc.strerror}") from None
    images = {"heatmap": heatmap_png(ctx["tables"]["dice"]), "dice_vs_modalities": dice_vs_modalities_png(ctx["tables"]["dice"])}
    json_doc = {k: v for k, v in ctx.items() if k not in ("reference_mode",)}
    json_doc["reference_mode"] = ctx["reference_mode"][0]
    json_doc["reference"] = ctx["reference_mode"][1]
    json_doc["summary"] = summary_rows(ctx["aggregate"])
    files = {
        "markdown": ("report.md", build_markdown(ctx).encode()),
        "csv": ("report.csv", _csv_text(json_doc["summary"], SUMMARY_FIELDS).encode()),
        "json": ("report.json", json.dumps(_clean(json_doc), indent=1, allow_nan=False).encode()),
        "per_case": ("per_case.csv", _csv_text(per_case_rows(records), PER_CASE_FIELDS + _extra_fields(records)).encode()),
        "heatmap": ("heatmap.png", images["heatmap"]),
        "dice_vs_modalities": ("dice_vs_modalities.png", images["dice_vs_modalities"]),
        "html": ("report.html", build_html(ctx, images).encode()),
    }
    paths = {}
    for key, (name, data) in files.items():
        write_bytes_atomic(out / name, data)
        paths[key] = out / name
    return paths


def _extra_fields(records: Sequence[Mapping]) -> list[str]:
    known = set(PER_CASE_FIELDS)
    return sorted({k for r in records for k in r if k not in known})
