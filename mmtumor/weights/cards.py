"""Model cards (Markdown) and one-line summaries, generated from a model's JSON so the two never disagree."""

from __future__ import annotations

from ..modalities import subset_from_code
from .locations import INTENDED_USE, REGIONS, members_of


def render_card(meta: dict) -> str:
    """Human-readable model card (Markdown) generated from the JSON, so the two never disagree."""
    lines = [f"# {meta.get('name')} ({meta.get('method')})", "", f"**Intended use:** {meta.get('intended_use') or INTENDED_USE}", ""]
    if meta.get("description"):
        lines += [meta["description"], ""]
    rows = [("Method", meta.get("method")), ("Weights format", meta.get("format")), ("Version", meta.get("version")),
            ("Modalities trained", ", ".join(meta.get("modalities") or [])), ("Patch size", meta.get("patch_size")),
            ("Normalisation", meta.get("normalization")), ("Outputs", f"{', '.join(meta.get('label_regions') or [])} ({meta.get('output')})"),
            ("Label scheme written", meta.get("label_scheme")),
            ("Region thresholds (WT / TC / ET)", _thresholds(meta)),
            ("Enhancing tumour predicted from (with T1c)", "+".join(meta.get("et_modalities") or []) or "all given scans"),
            *([(("Ensemble of" if meta.get("method") == "ensemble" else "Router of"), _members(meta))]
              if members_of(meta) else []),
            ("Training data", meta.get("training_data")),
            # only weights exported from a run folder know their training cases: no row for the others
            *([("Training cases recorded", _trained(meta))] if meta.get("training_cases") else []),
            ("mmtumor version", meta.get("mmtumor_version")), ("Created", meta.get("created"))]
    lines += ["| Field | Value |", "|---|---|"] + [f"| {k} | {v if v not in (None, '') else '–'} |" for k, v in rows] + [""]
    training = meta.get("training") or {}
    if training:
        lines += ["## Training recipe", ""] + [f"- **{k}**: {v}" for k, v in training.items()] + [""]
    metrics = meta.get("metrics") or {}
    table = metrics.get("expected_dice") or {}
    if table:
        lines += _subset_table(f"## Dice per modality subset ({metrics.get('expected_dice_source', 'held-out phantoms')})", table)
    real = metrics.get("real") or {}
    if real:
        lines += ["## Real scans (validation only, never trained on)", ""] + _real_rows(real)
    before = metrics.get("phantom") or {}
    if before:  # a real-trained model keeps the figures of the phantom-trained weights it started from
        lines += ["## Before real data: the phantom-trained weights this model started from", "",
                  f"Training data: {before.get('training_data') or '–'}", ""]
        if before.get("expected_dice"):
            lines += _subset_table(f"### Dice per modality subset ({before.get('expected_dice_source', 'held-out phantoms')})",
                                   before["expected_dice"])
        if before.get("real"):
            lines += ["### Real scans (validation only)", ""] + _real_rows(before["real"])
    if not table and not real:
        lines += ["## Performance", "", "No benchmark recorded for these weights yet.", ""]
    lines += ["## Limitations", "", "Trained on synthetic phantoms unless stated above; accuracy on real scans can be much",
              "lower than on phantoms. Always review the segmentation.", ""]
    return "\n".join(lines)


def _members(meta: dict) -> str:
    listed = ", ".join(f"{m.get('name')} ({m.get('method')}, SHA-256 {str(m.get('sha256'))[:12]})"
                       for m in members_of(meta))
    if meta.get("method") == "ensemble":
        return listed + " (mean of their region probabilities)"
    routes = "; ".join(f"{'/'.join(r.get('regions') or [])} from member {i + 2} for "
                       f"{', '.join(subset_from_code(c).name for c in r.get('subsets') or [])}"
                       for i, r in enumerate((meta.get("config") or {}).get("routes") or []))
    return f"{listed} (the first for every other input; {routes})"


def _trained(meta: dict) -> str:
    return (f"{len(meta['training_cases'])} (label fingerprints in the metadata: `mmtumor benchmark` refuses to "
            "score the model on them)")


def _thresholds(meta: dict) -> str:
    t = meta.get("region_thresholds")
    if not t:
        return "0.5 / 0.5 / 0.5"
    return " / ".join(f"{x:g}" for x in t) + (f" ({meta['region_thresholds_source']})" if meta.get("region_thresholds_source") else "")


def _subset_table(title: str, table: dict) -> list[str]:
    from ..modalities import SUBSETS

    lines = [title, "", "| T1 | T1c | T2 | FLAIR | WT | TC | ET |", "|:-:|:-:|:-:|:-:|--:|--:|--:|"]
    for s in SUBSETS:
        row = table.get(s.code)
        if not isinstance(row, dict):
            continue
        dots = " | ".join("●" if p else "○" for p in s.mask)
        vals = " | ".join(f"{row[r]:.3f}" if isinstance(row.get(r), (int, float)) else "–" for r in REGIONS)
        lines.append(f"| {dots} | {vals} |")
    return lines + [""]


def _real_rows(real: dict) -> list[str]:
    return [f"- **{key}**: " + (", ".join(f"{k} {v}" for k, v in row.items()) if isinstance(row, dict) else str(row))
            for key, row in real.items()] + [""]


def summary(meta: dict) -> str:
    """One line for tables: mean Dice over the subsets the card reports, and the real-scan figure if any."""
    metrics = (meta or {}).get("metrics") or {}
    table = metrics.get("expected_dice") or {}
    parts = []
    if table:
        means = []
        for r in REGIONS:
            vals = [row[r] for row in table.values() if isinstance(row, dict) and isinstance(row.get(r), (int, float))]
            means.append(f"{r} {sum(vals) / len(vals):.2f}" if vals else f"{r} –")
        parts.append(" ".join(means) + f" (mean of {len(table)} subsets, {metrics.get('expected_dice_source', 'phantoms')})")
    real = [(key, row) for key, row in (metrics.get("real") or {}).items() if isinstance(row, dict)]
    if real:  # the first real-scan figure; a table line has no room for the rest, which the card lists
        key, row = real[0]
        vals = " ".join(f"{r} {row[r]:.2f}" for r in REGIONS if isinstance(row.get(r), (int, float)))
        more = f" (+{len(real) - 1} more real-scan rows in the card)" if len(real) > 1 else ""
        parts.append(f"real {key}: {vals}{more}")
    return "; ".join(parts) or "no benchmark recorded"
