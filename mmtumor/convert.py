"""A DICOM study to one NIfTI per detected modality: read every series (``io.dicom``), detect its modality with its
reasons (``detect``), choose one series per modality, convert. The study level sits above both, so reading DICOM
knows nothing of detection."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from .errors import GeometryError, InputError, ReadError
from .io.dicom import ENHANCED_MR, DicomSeries, Discovery, discover_series
from .io.dicom_pixels import write_series_nifti
from .results import ConvertResult


def _row(series: DicomSeries, det) -> dict:
    g = series.geometry
    sp = series.spacing
    return {
        "series_id": series.series_id, "series_number": series.header.get("SeriesNumber"), "uid": series.uid,
        "description": series.description, "orientation": series.orientation, "size": list(series.size),
        "spacing": [round(float(x), 4) for x in sp] if not math.isnan(sp[2]) else [round(float(x), 4) for x in sp[:2]] + [None],
        "detected": det.label, "confidence": det.confidence, "confident": det.confident, "reasons": det.reasons,
        "geometry": g.status, "problems": series.problems + g.messages, "selected": None, "files": series.n_slices,
        "folder": str(series.slices[0].path.parent),
    }


def study_report(root: Path | str, progress: Callable[[int, int], None] | None = None) -> tuple[Discovery, list, dict, dict]:
    """Discover, check and detect every series; returns (discovery, detections, chosen {Modality: index}, report)."""
    from .detect import detect_study, select_series

    disc = discover_series(root, progress)
    if not disc.series:
        extra = f" ({', '.join(f'{v} {k}' for k, v in disc.skipped.items())})" if disc.skipped else ""
        raise InputError(f"no DICOM image series found in {root}{extra}")
    facts = [s.facts() for s in disc.series]
    dets = detect_study(facts)
    chosen = select_series(facts, dets)
    rows = [_row(s, d) for s, d in zip(disc.series, dets, strict=True)]
    for mod, i in chosen.items():
        rows[i]["selected"] = mod.value
    report = {"kind": "dicom", "root": str(disc.root), "n_files": disc.n_files, "skipped": disc.skipped, "series": rows,
              "selected": {m.value: rows[i]["series_id"] for m, i in chosen.items()},
              "dropped": dropped_series(disc, chosen)}
    return disc, dets, chosen, report


def _would_be(header: dict, n_files: int):
    """What detection would call a series if its geometry were usable (so a dropped T1c is named as one)."""
    from .detect import detect_series

    return detect_series({**header, "n_slices": max(int(n_files), 3), "n_orientations": 1, "geometry_status": "ok",
                          "n_volumes": 1})


def dropped_series(disc: Discovery, chosen: dict) -> list[str]:
    """One warning per series that looks like T1/T1c/T2/FLAIR but cannot be used (refused geometry, or no file
    with usable geometry at all), naming the reason and whether the run goes on without that modality."""
    found = [(s.series_id, s.description, s.header, s.n_slices, "; ".join(s.geometry.messages))
             for s in disc.series if s.geometry.status == "refuse"]
    found += [(u["header"].get("SeriesNumber", u["uid"][-8:]), str(u["header"].get("SeriesDescription") or ""),
               u["header"], u["files"], f"no file has usable geometry ({u['reason']})") for u in disc.unusable]
    out = []
    for sid, desc, header, n, reason in found:
        would = _would_be(header, n)
        if would.modality is None:
            continue
        instead = (f"series {disc.series[chosen[would.modality]].series_id} is used as {would.label} instead"
                   if would.modality in chosen else f"going on without {would.label}")
        out.append(f"series {sid} '{desc}' looks like {would.label} but cannot be used: {reason}; {instead}")
    return out


def _match_override(disc: Discovery, spec: str) -> int:
    """Series index from a series id ('7', '7.2'), a SeriesInstanceUID or a path to the series' folder/file."""
    for i, s in enumerate(disc.series):
        if spec in (s.series_id, s.uid) or (s.n_parts > 1 and spec == s.series_id.split(".")[0] and s.part == 0):
            return i
    p = Path(spec)
    if p.exists():
        p = p.resolve()
        for i, s in enumerate(disc.series):
            if any(sl.path.resolve() == p or p in sl.path.resolve().parents for sl in s.slices):
                return i
    raise InputError(f"no series matches '{spec}' (use a series id from 'mmtumor inspect', a SeriesInstanceUID or a path)")


def _safe_name(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:60] or "series"


def convert_study(root: Path | str, out_dir: Path | str, all_series: bool = False, overrides: dict | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> ConvertResult:
    """Convert the T1/T1c/T2/FLAIR series of a study (and every image series with ``all_series``).

    Low-confidence detections are not used silently: they are listed in ``warnings`` and left out unless the user
    names the series with an override (``{Modality: series id | path}``).
    """
    from .modalities import Modality, parse_modality

    disc, dets, chosen, report = study_report(root, (lambda n, t: progress("reading headers", n, t)) if progress else None)
    warnings: list[str] = list(report["dropped"])
    chosen = dict(chosen)
    for mod, idx in list(chosen.items()):
        if not dets[idx].confident:
            s = disc.series[idx]
            warnings.append(f"series {s.series_id} '{s.description}' looks like {mod.value} with low confidence "
                            f"({dets[idx].confidence:.2f}); not used — pass --{mod.value.lower()} {s.series_id} to use it")
            del chosen[mod]
    forced = {(key if isinstance(key, Modality) else parse_modality(str(key))): _match_override(disc, str(spec))
              for key, spec in (overrides or {}).items()}
    for mod, idx in list(chosen.items()):  # a series is one modality: the user's choice displaces a detection
        if mod not in forced and idx in forced.values():
            s = disc.series[idx]
            given = next(m for m, i in forced.items() if i == idx)
            warnings.append(f"series {s.series_id} '{s.description}' was detected as {mod.value} but is used as "
                            f"{given.value} (override); no {mod.value} unless you name one")
            del chosen[mod]
    chosen.update(forced)
    for row in report["series"]:  # filled in below from what is written, not from the detection alone
        row["selected"] = None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    jobs = [(idx, mod.file_stem, mod) for mod, idx in sorted(chosen.items(), key=lambda kv: kv[0].index)]
    if all_series:
        jobs += [(i, f"series_{_safe_name(s.series_id)}_{_safe_name(s.description)}", None) for i, s in enumerate(disc.series)
                 if s.geometry.status != "refuse"]
    errors: list[str] = []
    extra_files: list[str] = []
    for n, (idx, stem, mod) in enumerate(jobs):
        if progress:
            progress("converting", n, len(jobs))
        s = disc.series[idx]
        override = mod is not None and overrides and any(
            (k if isinstance(k, Modality) else parse_modality(str(k))) is mod for k in overrides)
        side = {"Detection": dets[idx].as_dict(), "AssignedModality": mod.value if mod else None,
                "AssignedBy": "user override" if override else "detection"}
        if mod is not None and s.geometry.volumes > 1:
            errors.append(f"series {s.series_id} '{s.description}' is 4D ({s.geometry.volumes} volumes): not usable as {mod.value}")
            continue
        if s.geometry.volumes > 1 and str(s.header.get("SOPClassUID")) == ENHANCED_MR:
            errors.append(f"series {s.series_id} '{s.description}': 4D enhanced multi-frame series ({s.geometry.volumes} "
                          "volumes) are not converted, their frame order is not verified (dcm2niix converts them)")
            continue
        try:
            path = write_series_nifti(s, out_dir / f"{stem}.nii.gz", side)
        except (GeometryError, ReadError) as exc:
            without = f"; going on without {mod.value}" if mod is not None else ""
            errors.append(f"series {s.series_id} '{s.description}'{f' ({mod.value})' if mod else ''} could not be "
                          f"converted: {exc}{without}")
            continue
        if mod is not None:
            written[mod.value] = str(path)
            report["series"][idx]["selected"] = mod.value
        else:
            extra_files.append(str(path))
    if progress:
        progress("converting", len(jobs), len(jobs))
    missing = [m.value for m in Modality if m.value not in written]
    report["selected"] = {r["selected"]: r["series_id"] for r in report["series"] if r["selected"]}
    report.update({"out_dir": str(out_dir), "written": written, "written_all": extra_files, "warnings": warnings, "errors": errors, "missing": missing})
    return ConvertResult(out_dir, {k: Path(v) for k, v in written.items()}, [Path(p) for p in extra_files], missing,
                         warnings, errors, report["series"], report)
