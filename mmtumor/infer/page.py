"""``report.html``: one self-contained page (inline CSS, images embedded as base64) that opens offline in any browser.

Built from the same dictionary as ``report.json`` (``segment_page``) or the compare result (``compare_page``), so the
page never says something the JSON does not. Every piece of user text (file names, series descriptions, warnings)
is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path

STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#1d2430;
line-height:1.4;padding:0 16px}
h1{font-size:1.5em;margin-bottom:0}h2{font-size:1.15em;border-bottom:1px solid #ccd;padding-bottom:3px;margin-top:28px}
.sub{color:#556;margin-top:4px}.note{color:#556;font-size:.88em}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}th,td{border:1px solid #ccd;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#eef1f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
.warn{background:#fff4d6;border-left:4px solid #e0a800;padding:6px 10px;margin:4px 0}
.caveat{background:#eef4ff;border-left:4px solid #3a6fd8;padding:6px 10px;margin:8px 0}
.cat{font-weight:bold;font-size:1.1em}img{max-width:100%;border:1px solid #ccd}
code{background:#f2f3f6;padding:0 3px}
"""

DISCLAIMER = ("Research software: automated measurements for review by a qualified reader, not a diagnosis. "
              "Check every contour and measurement against the images.")


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def table(header: Sequence[str], rows: Sequence[Sequence], numeric: Sequence[bool] | None = None) -> str:
    numeric = numeric or [False] * len(header)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class=\"num\">{esc(c)}</td>" if numeric[i] else f"<td>{esc(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image(data: bytes | None, alt: str) -> str:
    if not data:
        return f"<p class=\"note\">({esc(alt)}: not written)</p>"
    return f"<img alt=\"{esc(alt)}\" src=\"data:image/png;base64,{base64.b64encode(data).decode('ascii')}\">"


def document(title: str, subtitle: str, sections: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<section><h2>{esc(h)}</h2>{content}</section>" for h, content in sections)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{STYLE}</style></head>"
            f"<body><h1>{esc(title)}</h1><p class=\"sub\">{esc(subtitle)}</p>"
            f"<p class=\"caveat\">{esc(DISCLAIMER)}</p>{body}</body></html>")


def _fmt(v, nd: int = 2) -> str:
    if v is None or v == "":
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x, 1) for x in v)
    return str(v)


def warnings_html(warnings: Sequence[str]) -> str:
    return "".join(f"<div class=\"warn\">{esc(w)}</div>" for w in warnings) or "<p>None.</p>"


def lesions_html(lesions: Mapping, rano: Mapping) -> str:
    """Tumour lesions, then enhancing lesions with their RANO measurements, then the rules used."""
    out = []
    tumour = lesions["tumour"]
    rows = [(f"T{les['number']}", _fmt(les["volumes_ml"]["WT"]), _fmt(les["volumes_ml"]["TC"]),
             _fmt(les["volumes_ml"]["ET"]), _fmt(les["centroid_ras_mm"]), _fmt(les["centroid_atlas_mm"]),
             les["hemisphere"], _fmt(les["crosses_midline"]), _fmt(les["nearest_lesion_mm"], 1))
            for les in tumour["lesions"]]
    out.append(f"<p>{len(rows)} tumour lesion(s)" + _below(tumour) + ".</p>")
    if rows:
        out.append(table(["lesion", "WT mL", "TC mL", "ET mL", "centroid RAS mm", "centroid atlas mm", "hemisphere",
                          "crosses midline", "nearest lesion mm"], rows,
                         [False, True, True, True, False, False, False, False, True]))
    meas = {m["lesion"]: m for m in rano["measurements"]}
    enh = lesions["enhancing"]
    erows = []
    for les in enh["lesions"]:
        m = meas.get(les["number"], {})
        erows.append((f"E{les['number']}", _fmt(les["volumes_ml"]["ET"]), _fmt(m.get("longest_mm"), 1),
                      _fmt(m.get("perpendicular_mm"), 1), _fmt(m.get("product_mm2"), 0), _fmt(m.get("slices")),
                      _fmt(m.get("slice_index")), "yes" if m.get("target") else "no", m.get("reason", "")))
    out.append(f"<p>{len(erows)} enhancing lesion(s)" + _below(enh) + f"; measured on the {esc(rano['grid'])} "
               f"(axial slices {esc(rano['slice_spacing_mm'])} mm apart; minimum measurable diameter "
               f"{esc(rano['min_diameter_mm'])} mm).</p>")
    if erows:
        out.append(table(["lesion", "ET mL", "longest mm", "perpendicular mm", "product mm²", "slices", "slice",
                          "target", "measurability"], erows, [False, True, True, True, True, True, True, False, False]))
    out.append(f"<p><b>Sum of products of perpendicular diameters (SPD) of the target lesions: "
               f"{esc(rano['spd_mm2'])} mm²</b> ({len(rano['targets'])} target lesion(s), "
               f"{rano['measurable_lesions']} measurable).</p>")
    out.append(f"<p class=\"note\">Lesions: {esc(lesions['rules'])}. Atlas: {esc(lesions.get('atlas') or 'none')}. "
               f"RANO: {esc(rano['rules'])}.</p>")
    return "".join(out)


def _below(table_: Mapping) -> str:
    b = table_.get("below_minimum") or {}
    return f", plus {b['count']} smaller component(s) ({b['volume_ml']:.2f} mL) not listed" if b.get("count") else ""


def segment_page(report: Mapping, images: Mapping[str, bytes | None]) -> str:
    """The page for one ``segment`` run, from its report dictionary and its PNGs."""
    w = report["weights"]
    subset = report["modality_subset"]
    det_rows = [(r.get("modality", ""), Path(str(r.get("file", ""))).name if report["input"]["source"] != "dicom"
                 else r.get("file", ""), _fmt(r.get("confidence")), _fmt(bool(r.get("used"))),
                 "; ".join(r.get("reasons") or [])) for r in report.get("detections") or []]
    if not det_rows:
        det_rows = [(m, Path(p).name, "given", "yes", "named on the command line or by file name")
                    for m, p in report["input"]["images"].items()]
    exp = report.get("expected_dice") or {}
    vol = report["volumes_ml"]
    sections = [
        ("Inputs", table(["modality", "file / series", "confidence", "used", "why"], det_rows)
         + f"<p>Modality subset: <b>{esc(subset['name'])}</b> ({esc(subset['code'])}). Reference grid: "
           f"{esc(report['preprocessing']['reference'])}.</p>"),
        ("Tumour volumes", table(["NCR/NET", "edema", "enhancing (ET)", "tumour core (TC)", "whole tumour (WT)"],
                                 [[f"{vol[k]:.2f} mL" for k in ("NCR", "ED", "ET", "TC", "WT")]], [True] * 5)
         + "<p>Expected Dice for this modality subset (model card): "
         + (esc(", ".join(f"{k} {v:.2f}" for k, v in exp.items())) if exp else "not stated")
         + f"</p><p class=\"note\">{esc(report.get('expected_dice_note', ''))}</p>"
         + f"<p class=\"note\">Labels written ({esc(report['label_scheme'])}): "
           + esc(", ".join(f"{k} = {v}" for k, v in report["labels"].items())) + ".</p>"),
    ]
    if report.get("lesions"):
        sections.append(("Lesions and RANO measurements", lesions_html(report["lesions"], report["rano"])
                         + image(images.get("measurements"), "measured diameters")))
    sections += [
        ("Preview", image(images.get("preview"), "preview")),
        ("Warnings", warnings_html(report.get("warnings") or [])),
        ("Provenance", table(["item", "value"], [
            ("mmtumor version", report["mmtumor_version"]),
            ("model", f"{w['name']} ({w['method']}), from {w['source']}"),
            ("weights SHA-256", "; ".join(f"{k}: {v}" for k, v in (w.get("sha256") or {}).items())),
            ("device", report["device"]),
            ("options", "; ".join(f"{k}={v}" for k, v in report["options"].items())),
            ("preprocessing", " | ".join(report["preprocessing"]["steps"])),
            ("post-processing", str(report.get("postprocessing", ""))),
            ("timings (s)", ", ".join(f"{k} {v:.1f}" for k, v in report["timings_s"].items())),
            ("platform", f"Python {report['environment']['python']}, {report['environment']['platform']}"),
        ])),
    ]
    return document(f"mmtumor report: {report['patient']}",
                    f"Brain tumour segmentation, {subset['name']} — all figures are the model's, not a reader's.",
                    sections)


def compare_page(result: Mapping, figure: bytes | None) -> str:
    """The page for one ``compare`` run (two time points of one patient)."""
    vol = result["volumes"]
    spd = result["spd"]
    resp = result["response"]
    def pct(v):
        return "–" if v is None else f"{v:+.1f} %"

    vrows = [(k, f"{r['baseline_ml']:.2f}", f"{r['followup_ml']:.2f}", f"{r['change_ml']:+.2f}", pct(r["change_percent"]))
             for k, r in vol.items()]
    vrows.append(("SPD (mm²)", f"{spd['baseline_mm2']:.1f}", f"{spd['followup_mm2']:.1f}", f"{spd['change_mm2']:+.1f}",
                  pct(spd["change_percent"])))
    lt, le = result["lesions"]["tumour"], result["lesions"]["enhancing"]
    lesion_rows = [("tumour", len(lt["matches"]), ", ".join(map(str, lt["new"])) or "none",
                    ", ".join(map(str, lt["resolved"])) or "none"),
                   ("enhancing", len(le["matches"]), ", ".join(map(str, le["new"])) or "none",
                    ", ".join(map(str, le["resolved"])) or "none")]
    cats = "".join(f"<p><span class=\"cat\">{esc(kind)}: {esc(resp[kind]['category'])}</span> — {esc(resp[kind]['why'])}</p>"
                   for kind in ("bidimensional", "volumetric"))
    al = result["alignment"]
    b, f = result["baseline"], result["followup"]
    meas_b = result["baseline_measurements"]
    meas_f = result["followup_measurements"]
    sections = [
        ("Time points", table(["", "folder", "patient", "measured on"],
                              [("baseline", b["folder"], b["patient"], meas_b["rano"]["grid"]),
                               ("follow-up", f["folder"], f["patient"], meas_f["rano"]["grid"])])
         + f"<p>Alignment: {esc(al['method'])}"
         + (f", rotation {esc(al.get('rotation_deg'))}°, translation {esc(al.get('translation_mm'))} mm"
            if al.get("rotation_deg") is not None else "") + ".</p>"),
        ("Imaging measurement category (RANO 2.0 thresholds)", cats + f"<p class=\"caveat\">{esc(resp['caveat'])}</p>"
         + f"<p class=\"note\">{esc(resp['rules'])}</p>"),
        ("Volumes and bidimensional burden", table(["", "baseline", "follow-up", "change", "change %"], vrows,
                                                   [False, True, True, True, True])),
        ("Lesions", table(["kind", "matched follow-up lesions", "new (follow-up numbers)", "resolved (baseline numbers)"],
                          lesion_rows)
         + f"<p>New measurable enhancing lesions: {esc(', '.join(map(str, le['new_measurable'])) or 'none')}.</p>"
         + "<h3>Baseline</h3>" + lesions_html(meas_b["lesions"], meas_b["rano"])
         + "<h3>Follow-up</h3>" + lesions_html(meas_f["lesions"], meas_f["rano"])),
        ("Both time points", image(figure, "baseline and follow-up")),
        ("Notes", warnings_html(result.get("notes") or [])),
    ]
    return document(f"mmtumor follow-up comparison: {f['patient']}",
                    "Changes between two segment results of one patient — imaging measurements only.", sections)
