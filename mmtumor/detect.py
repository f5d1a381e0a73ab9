"""Which modality is a series or file: T1, T1c, T2, FLAIR or OTHER, with a confidence and readable reasons.

Why rules and not a classifier: every decision must be explainable to a clinician and overridable. Order:
1. **Exclusions** (OTHER): non-MR, DERIVED/SECONDARY/MPR/MIP/projection, localizers (names, < 3 slices, several
   orientations in one series), diffusion (b-value, DIFFUSION/ADC/TRACE), SWI/T2*, perfusion, angiography ...
2. **Evidence** per class from SeriesDescription, ProtocolName, SequenceName (text tokens) and physics
   (ScanningSequence IR + long TI = FLAIR; long TE without IR = T2; short TE/TR or IR with short TI = T1). TR alone
   is never decisive (it means different things per vendor).
3. **Contrast** for T1: ContrastBolusAgent (0018,0010) or tokens post/+C/C+/Gd/gad/KM/contrast; 'pre'/'native' mean
   no contrast. Two T1 series without any contrast evidence: the later acquisition is taken as T1c (flagged).
4. **Competition** (:func:`select_series`): several candidates for one modality -> prefer 3D, then finer in-plane
   resolution, then more slices, then (T1c) the later acquisition.
Image evidence (:func:`detect_image`) for NIfTI files whose names say nothing uses tissue intensity relations and
is always reported with confidence below :data:`CONFIDENT`, so it is never a silent guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .modalities import ALIASES, Modality
from .voxels import largest_component

#: Below this a detection is shown as "needs confirmation" and never used silently.
CONFIDENT = 0.7
OTHER = "OTHER"


@dataclass
class Detection:
    """Outcome for one series or file."""

    label: str  # "T1", "T1c", "T2", "FLAIR" or "OTHER"
    confidence: float
    reasons: list[str] = field(default_factory=list)
    excluded: bool = False  # True when an exclusion rule fired

    @property
    def modality(self) -> Modality | None:
        return None if self.label == OTHER else Modality(self.label)

    @property
    def confident(self) -> bool:
        return self.label != OTHER and self.confidence >= CONFIDENT

    def as_dict(self) -> dict:
        return {"label": self.label, "confidence": round(self.confidence, 3), "reasons": self.reasons,
                "excluded": self.excluded, "confident": self.confident}


# ----------------------------------------------------------------------------------------- text rules
def _norm(text: str) -> str:
    """Lower case; separators to spaces; keep '+' and '*' which carry meaning (+C, T2*)."""
    t = str(text or "").lower()
    # GE spells contrast as "W/" (with) and "W/O" (without): "AX T1 W/", "T1 W/C", "SAG T1 W/O"
    t = re.sub(r"\bw ?/ ?o\b", " without ", t)
    t = re.sub(r"\bw ?/ ?(?=c\b|con|gad|gd|$)", " postc ", t.strip())
    t = re.sub(r"\bwith *$", " postc ", t)
    t = t.replace("c+", " postc ").replace("+c", " postc ").replace("+ c", " postc ").replace("+gd", " gd ")
    t = t.replace("t2*", " t2star ").replace("t2 *", " t2star ")
    return " " + re.sub(r"[^a-z0-9*]+", " ", t).strip() + " "


def _has(text: str, *patterns: str) -> str | None:
    for p in patterns:
        if re.search(p, text):
            return p
    return None


#: Philips SWIp; the same letters start 'sWIP T1W_3D_TFE' (a work-in-progress T1), so it yields to class words
_SWIP = "susceptibility (Philips SWIp)"
_EXCLUDE_TEXT = [
    ("localizer", r" (loc|localizer|localiser|scout|survey|tripilot|pilot|3 plane|3pl|aahead|plan|calibration|cal|asset|sense ref|refscan) "),
    ("localizer", r"(localizer|localiser|scout|survey|3 plane loc|aahead)"),
    ("diffusion", r" (dwi|dti|diff|diffusion|adc|trace|tracew|fa|colfa|tensor|b ?1000|b ?0|exp|eadc|dadc|ep2d diff) "),
    ("diffusion", r"(ep2d_?diff|diffusion|_adc|adc |dwi|dadc|trace)"),
    ("susceptibility (SWI/T2*)", r" (swi|swi3d|swan|t2star|t2 star|hemo|gre hemo|venobold|veno|pha|phase|mag|minip|sw) "),
    (_SWIP, r" swip "),
    ("balanced SSFP (FIESTA/CISS/TrueFISP)", r" (fiesta|ciss|trufi|truefisp|true fisp|bffe|b ffe|balanced ffe) "),
    ("STIR (fat-suppressed short-TI inversion recovery)", r" (stir|tirm stir) "),
    ("proton-density weighted", r" (pd|pdw|pd w|pd fs|proton density) "),
    ("perfusion", r" (perf|perfusion|dsc|dce|asl|pcasl|pasl|pwi|cbf|cbv|mtt|ttp|rcbv) "),
    ("angiography", r" (tof|mra|angio|angiography|pc|venogram) "),
    ("functional/other", r" (bold|fmri|resting|rs|mrs|spectro|csi|svs|cine|flow|mt|fieldmap|field map|b1map|gre field) "),
    ("reformat/projection", r" (mip|minip|reformat|reformatted|3d render|vr|sub|subtraction) "),
    ("reformat (MPR)", r" mpr (tra|cor|sag|ax|axial|coronal|sagittal|obl) $"),  # 't1_mpr_sag_iso' is an MPRAGE, not a reformat
    ("quantitative map", r" (map|maps|mapping|relaxometry|t1map|t2map|mp2rage uni|uni|inv1|inv2|mdme|synthetic) "),
]
_IMAGE_TYPE_EXCLUDE = {
    "DERIVED": "derived image", "SECONDARY": "secondary capture", "MPR": "reformat (MPR)", "MIP": "projection (MIP)",
    "PROJECTION IMAGE": "projection image", "REFORMATTED": "reformat", "LOCALIZER": "localizer", "DIFFUSION": "diffusion",
    "ADC": "diffusion (ADC)", "TRACEW": "diffusion (TRACEW)", "FA": "diffusion (FA)", "PERFUSION": "perfusion",
    "SWI": "susceptibility (SWI)", "PHASE": "phase image", "P": "phase image", "CSA MPR": "reformat (MPR)",
}

_CLASS_TEXT: dict[str, list[str]] = {
    "FLAIR": [r" flair ", r"flair", r" tirm ", r"dark ?fluid", r" da fl ", r" t2f ", r" fluid atten", r" spcir ", r"tir2d"],
    "T2": [r" t2 ", r" t2w ", r" t2 ?tse ", r" t2w ?tse ", r" frfse ", r" tse t2 ", r" t2 ?spc ", r" cube t2 ", r"t2_?tse",
           r" t2 ?fse ", r"^ t2", r" t2 ?propeller ", r"t2w", r" t2 "],
    "T1": [r" t1 ", r" t1w ", r" mprage ", r" mp rage ", r" bravo ", r" fspgr ", r" spgr ", r" tfe ", r" t1tfe ", r" t1 ?se ",
           r" vibe ", r" flash ", r" t1 ?ffe ", r" t1w", r"t1", r"mprage", r"tfl3d", r" fl2d", r"efgre3d", r" mpr age "],
}
_T1_FLAIR = r" t1 (w )?flair |t1 ?flair|t1w ?flair"
_CONTRAST_POS = r" (post|postc|gd|gad|gado|gadolinium|contrast|kontrast|km|mdc|ce|cont|con|enh|enhanced|post contrast|t1c|t1ce|t1gd|dotarem|gadovist|gadavist|multihance|clariscan|prohance) |postc|post ?gad|\+ ?c|c\+"
_CONTRAST_NEG = r" (pre|precontrast|pre contrast|nativ|native|without|wo|nonce|noncontrast|non contrast|plain) "


def _text_votes(fields: dict) -> tuple[dict[str, float], list[str]]:
    votes: dict[str, float] = {"T1": 0.0, "T2": 0.0, "FLAIR": 0.0}
    reasons: list[str] = []
    for key, weight in (("SeriesDescription", 3.0), ("ProtocolName", 2.0), ("SequenceName", 1.0), ("PulseSequenceName", 1.0)):
        raw = fields.get(key)
        if not raw:
            continue
        t = _norm(raw)
        if re.search(_T1_FLAIR, t):
            votes["T1"] += weight
            reasons.append(f"{key} '{raw}' (T1-FLAIR is T1-weighted)")
            continue
        for cls in ("FLAIR", "T2", "T1"):
            if _has(t, *_CLASS_TEXT[cls]):
                votes[cls] += weight
                reasons.append(f"{key} '{raw}'")
                break
    return votes, reasons


def _num(v) -> float | None:
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    try:
        return None if v in (None, "") else float(v)
    except (TypeError, ValueError):
        return None


def _multi(v) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [x.strip().upper() for x in v.replace("/", "\\").split("\\") if x.strip()]
    return [str(x).strip().upper() for x in v]


@dataclass
class _Physics:
    """The sequence facts the rules use, with a readable summary for the reasons."""

    seq: list[str]
    te: float | None
    ti: float | None
    tr: float | None
    ir: bool
    desc: str


def _physics(f: dict) -> _Physics:
    seq = _multi(f.get("ScanningSequence"))
    te, ti, tr = _num(f.get("EchoTime")), _num(f.get("InversionTime")), _num(f.get("RepetitionTime"))
    ir = "IR" in seq or (ti is not None and ti > 0) or f.get("InversionRecovery") == "YES"
    parts = [f"ScanningSequence {'/'.join(seq)}"] if seq else []
    parts += [f"{name} {v:g} ms" for name, v in (("TE", te), ("TI", ti), ("TR", tr)) if v is not None]
    return _Physics(seq, te, ti, tr, ir, " + ".join(parts))


def _physics_votes(f: dict) -> tuple[dict[str, float], list[str]]:
    """Sequence physics: IR with long TI -> FLAIR; long TE without IR -> T2; short TE -> T1."""
    votes: dict[str, float] = {"T1": 0.0, "T2": 0.0, "FLAIR": 0.0}
    ph = _physics(f)
    seq, te, ti, tr, ir, desc = ph.seq, ph.te, ph.ti, ph.tr, ph.ir, ph.desc
    ac = str(f.get("AcquisitionContrast") or "").upper()
    if ac in ("T1", "T2", "FLAIR"):
        votes["T1" if ac == "T1" else ac] += 2.0
        return votes, [f"AcquisitionContrast {ac}"]
    if ir and ti is not None and ti >= 1400 and (te is None or te >= 60):
        votes["FLAIR"] += 3.0
        return votes, [f"inversion recovery with long TI ({desc}) = FLAIR"]
    if ir and ti is not None and ti < 1300 and (te is None or te < 40):
        votes["T1"] += 2.5
        return votes, [f"inversion recovery with short TI ({desc}) = T1-weighted"]
    if not ir and te is not None and te >= 60 and (tr is None or tr >= 1500):
        votes["T2"] += 3.0
        return votes, [f"long TE without inversion ({desc}) = T2-weighted"]
    if te is not None and te <= 20 and (tr is None or tr <= 1000 or "GR" in seq):
        votes["T1"] += 2.5
        return votes, [f"short TE/TR ({desc}) = T1-weighted"]
    return votes, ([f"physics inconclusive ({desc})"] if desc else [])


def _exclusion(f: dict) -> str | None:
    mod = str(f.get("Modality") or "MR").upper()
    if mod != "MR":
        return f"Modality {mod} is not MR"
    itype = _multi(f.get("ImageType"))
    for tok in itype[:1] + itype[1:]:
        if tok in _IMAGE_TYPE_EXCLUDE and not (tok == "P" and len(itype) < 3):
            joined = "\\".join(itype)
            return f"ImageType {joined}: {_IMAGE_TYPE_EXCLUDE[tok]}"
    if (f.get("n_volumes") or 1) > 1:
        return f"4D series ({f['n_volumes']} volumes): diffusion/perfusion/fMRI, not one structural volume"
    if f.get("geometry_status") == "refuse" and (f.get("n_slices") or 0) < 3:
        return f"only {f.get('n_slices')} slice(s): localizer/scout"
    if (f.get("n_orientations") or 1) >= 3 and (f.get("n_slices") or 0) <= 5:
        return f"{f.get('n_orientations')} orientations in one series: localizer"
    if f.get("n_slices") is not None and f["n_slices"] < 3:
        return f"only {f['n_slices']} slice(s): localizer/scout"
    b = _num(f.get("DiffusionBValue"))
    if b is not None and b > 0:
        return f"DiffusionBValue {b:g}: diffusion"
    for key in ("SeriesDescription", "ProtocolName", "SequenceName"):
        raw = f.get(key)
        if not raw:
            continue
        t = _norm(raw)
        for what, pat in _EXCLUDE_TEXT:
            if key == "SequenceName" and what not in ("diffusion",):
                continue
            weak = (what == "localizer" and re.search(r" (plan|cal|pilot) ", t)) or what == _SWIP
            if re.search(pat, t) and not (weak and _has(t, *_CLASS_TEXT["T1"], *_CLASS_TEXT["T2"], *_CLASS_TEXT["FLAIR"])):
                return f"{key} '{raw}': {what}"
    ph = _physics(f)
    seq, te, ti, tr, ir, physics = ph.seq, ph.te, ph.ti, ph.tr, ph.ir, ph.desc
    desc_t = _norm(f.get("SeriesDescription", ""))
    if seq == ["EP"] and te is not None and not _has(desc_t, r"flair", r" t2 ", r" t1 "):
        return "ScanningSequence EP (echo-planar) without structural name: diffusion/perfusion/fMRI"
    if ("GR" in seq and "SE" not in seq and not ir and te is not None and te >= 10
            and not (_has(desc_t, *_CLASS_TEXT["T1"]) and not _has(desc_t, r" t2 ", r"t2w"))):
        # a spoiled T1 gradient echo has TE of a few ms; at 10 ms and more it is T2*-weighted (GRE/FFE/hemo);
        # a series its scanner calls T1 keeps that name (an old low-field T1 GRE)
        return f"gradient echo with long TE ({physics}): T2*-weighted, not a tumour protocol series"
    if ir and "GR" not in seq and ti is not None and 0 < ti < 350:
        return f"inversion recovery with very short TI ({physics}): STIR (fat-suppressed), not T1/T2/FLAIR"
    if (not ir and "GR" not in seq and "EP" not in seq and te is not None and te < 40 and tr is not None and tr >= 1500
            and not _has(desc_t, r"flair", *_CLASS_TEXT["T1"])):
        return f"long TR with short TE without inversion ({physics}): proton-density weighted"
    return None


def _contrast(f: dict) -> tuple[bool | None, str]:
    agent = f.get("ContrastBolusAgent")
    if agent and str(agent).strip().upper() not in ("", "NONE", "NO", "N/A"):
        return True, f"ContrastBolusAgent '{agent}'"
    for key in ("SeriesDescription", "ProtocolName"):
        raw = f.get(key)
        if not raw:
            continue
        t = _norm(raw)
        if re.search(_CONTRAST_NEG, t):
            return False, f"{key} '{raw}' says pre-contrast"
        m = re.search(_CONTRAST_POS, t)
        if m:
            return True, f"{key} '{raw}' (contrast token '{m.group(0).strip()}')"
    return None, ""


def detect_series(facts: dict) -> Detection:
    """Detect one series from its header facts (see ``DicomSeries.facts``); never raises."""
    why = _exclusion(facts)
    if why:
        return Detection(OTHER, 0.95, [why], excluded=True)
    tv, treasons = _text_votes(facts)
    pv, preasons = _physics_votes(facts)
    total = {k: tv[k] + pv[k] for k in tv}
    best = max(total, key=total.get)
    ordered = sorted(total.values(), reverse=True)
    if ordered[0] <= 0:
        return Detection(OTHER, 0.5, ["no name or sequence evidence for T1/T2/FLAIR"] + preasons)
    margin = ordered[0] - ordered[1]
    text_ok = tv[best] > 0 and tv[best] == max(tv.values())
    phys_ok = pv[best] > 0
    conflict = (max(tv.values()) > 0 and not text_ok) or (max(pv.values()) > 0 and not phys_ok)
    # one clear source (a description, or IR/TE/TI physics) ~0.75; two agreeing sources >= 0.9
    conf = min(0.99, 0.5 + 0.085 * margin + (0.2 if text_ok and phys_ok else 0.0))
    if conflict:
        conf = min(conf, 0.6)
    reasons = treasons + preasons
    if conflict:
        reasons.append("names and sequence physics disagree")
    label = best
    if best == "T1":
        post, why_c = _contrast(facts)
        if post:
            label = "T1c"
            reasons.append(why_c)
        elif post is False:
            reasons.append(why_c)
        else:
            reasons.append("no contrast evidence (no ContrastBolusAgent, no post/+C/gad token)")
            facts_flag = facts.get("_t1_order_post")
            if facts_flag:
                label = "T1c"
                conf = min(conf, 0.65)
                reasons.append(facts_flag)
    return Detection(label, round(float(conf), 3), reasons)


# ----------------------------------------------------------------------------------------- study level
def _time_key(f: dict) -> tuple:
    return (str(f.get("SeriesDate") or ""), str(f.get("AcquisitionTime") or f.get("SeriesTime") or ""), _num(f.get("SeriesNumber")) or 0)


def detect_study(facts_list: list[dict]) -> list[Detection]:
    """Detect every series of one study; T1 series without contrast evidence are judged by acquisition order."""
    dets = [detect_series(f) for f in facts_list]

    def plain_t1() -> list[int]:
        return [i for i, d in enumerate(dets) if d.label == "T1" and any("no contrast evidence" in r for r in d.reasons)]

    # a T1 without contrast evidence acquired after a series that carries ContrastBolusAgent is post-contrast
    agent_times = [(_time_key(f), f.get("series_id", "?")) for f in facts_list
                   if f.get("ContrastBolusAgent") and str(f["ContrastBolusAgent"]).strip().upper() not in ("NONE", "NO", "N/A")]
    if agent_times:
        first_agent, sid = min(agent_times)
        for i in plain_t1():
            if _time_key(facts_list[i]) > first_agent:
                f = dict(facts_list[i])
                f["_t1_order_post"] = (f"acquired after series {sid}, which records a contrast agent: "
                                       "assumed post-contrast (please confirm)")
                dets[i] = detect_series(f)
    has_t1c = any(d.label == "T1c" for d in dets)
    plain = plain_t1()
    if len(plain) >= 2 and not has_t1c:
        order = sorted(plain, key=lambda i: _time_key(facts_list[i]))
        first, last = order[0], order[-1]
        f = dict(facts_list[last])
        f["_t1_order_post"] = (f"acquired after T1 series {facts_list[first].get('series_id', '?')} "
                               "with no contrast evidence either way: assumed post-contrast (please confirm)")
        dets[last] = detect_series(f)
    return dets


def _rank(f: dict, det: Detection) -> tuple:
    """Higher is better: confident, 3D, finer in-plane, more slices, later (for T1c)."""
    three_d = str(f.get("MRAcquisitionType") or "").upper() == "3D"
    inplane = f.get("in_plane_mm") or 99.0
    later = _time_key(f) if det.label == "T1c" else ()
    return (det.confident, f.get("geometry_status") != "refuse", f.get("geometry_status") == "ok", three_d,
            -round(float(inplane), 2), f.get("n_slices") or 0, later)


def select_series(facts_list: list[dict], dets: list[Detection]) -> dict[Modality, int]:
    """Index of the series chosen for each modality (competition rules in the module docstring)."""
    chosen: dict[Modality, int] = {}
    for mod in Modality:
        cands = [i for i, d in enumerate(dets) if d.modality is mod and facts_list[i].get("geometry_status") != "refuse"]
        if cands:
            chosen[mod] = max(cands, key=lambda i: _rank(facts_list[i], dets[i]))
    return chosen


# ----------------------------------------------------------------------------------------- files
def detect_filename(path: Path | str) -> Detection | None:
    """Modality from a file name (BraTS names, aliases, sequence words); None when the name says nothing."""
    from .io.nifti import strip_nifti_suffix

    stem = strip_nifti_suffix(Path(path).name).lower()
    tokens = re.split(r"[^a-z0-9+]+", stem)
    for tok in reversed(tokens):
        if tok in ALIASES:
            mod = ALIASES[tok]
            return Detection(mod.value, 0.9, [f"file name token '{tok}'"])
    det = detect_series({"SeriesDescription": stem, "Modality": "MR"})
    if det.label != OTHER and not det.excluded:
        det.confidence = min(det.confidence, 0.8)
        det.reasons = [f"file name '{Path(path).name}': " + "; ".join(det.reasons)]
        return det
    return None


def image_features(data: np.ndarray) -> dict[str, float]:
    """Tissue intensity relations inside the brain (skull-stripped or not).

    deep = voxels far from the brain surface (white matter + ventricles), shell = the outer 4 mm-ish layer (cortex +
    sulcal CSF). T1: shell darker than deep WM; T2: bright CSF tail in the deep region and brighter shell; FLAIR: dark
    ventricles with a shell brighter than WM (grey > white matter).
    """
    from scipy import ndimage

    d = np.asarray(data, dtype=np.float32)
    while d.size > 2_000_000:  # statistics do not need full resolution; the distance transform is costly
        d = d[::2, ::2, ::2]
    thr = np.percentile(d[d > 0], 2) if np.any(d > 0) else 0.0
    mask = d > thr
    mask = largest_component(ndimage.binary_opening(mask, iterations=1))
    dist = ndimage.distance_transform_edt(mask)
    dmax = dist.max() if dist.size else 0
    deep = d[dist > 0.45 * dmax]
    shell = d[(dist > 0) & (dist <= max(2.0, 0.12 * dmax))]
    if deep.size < 50 or shell.size < 50:
        return {}
    med = float(np.median(deep)) or 1.0
    return {
        "shell_ratio": float(np.median(shell) / med),
        "deep_p98_ratio": float(np.percentile(deep, 98) / med),
        "deep_p5_ratio": float(np.percentile(deep, 5) / med),
        "brain_p995_ratio": float(np.percentile(d[mask], 99.5) / med),
    }


def detect_image(data: np.ndarray) -> Detection:
    """Modality from intensity relations alone; confidence is capped below :data:`CONFIDENT` on purpose."""
    f = image_features(data)
    if not f:
        return Detection(OTHER, 0.2, ["image too small or empty for intensity evidence"])
    desc = f"shell/deep {f['shell_ratio']:.2f}, deep p98/median {f['deep_p98_ratio']:.2f}, deep p5/median {f['deep_p5_ratio']:.2f}"
    if f["deep_p98_ratio"] > 1.6 and f["shell_ratio"] > 1.2:
        return Detection("T2", 0.55, [f"image evidence: bright CSF, cortex brighter than white matter ({desc})"])
    if f["shell_ratio"] < 0.9:
        return Detection("T1", 0.5, [f"image evidence: white matter brighter than cortex/CSF ({desc})"])
    return Detection("FLAIR", 0.5, [f"image evidence: dark CSF, grey matter brighter than white matter ({desc})"])


def detect_files(paths: list[Path | str]) -> list[Detection]:
    """Detect a set of NIfTI files: names first, then image evidence; set-level reasoning among image guesses."""
    from .io.nifti import read_nifti

    dets: list[Detection | None] = [detect_filename(p) for p in paths]
    todo = [i for i, d in enumerate(dets) if d is None]
    feats: dict[int, dict] = {}
    for i in todo:
        try:
            data = read_nifti(paths[i]).data
        except Exception as exc:  # unreadable file: say so, do not guess
            dets[i] = Detection(OTHER, 0.0, [f"cannot read: {exc}"])
            continue
        dets[i] = detect_image(data)
        feats[i] = image_features(data)
    # two T1-like images: the one with the heavier bright tail (enhancement, vessels) is the T1c
    t1s = [i for i in feats if dets[i] is not None and dets[i].label == "T1" and feats[i]]
    taken = {d.label for j, d in enumerate(dets) if d is not None and j not in feats}
    if len(t1s) >= 2 or (len(t1s) == 1 and "T1" in taken and "T1c" not in taken):
        post = max(t1s, key=lambda i: feats[i]["brain_p995_ratio"])
        dets[post] = Detection("T1c", 0.45, dets[post].reasons + [
            f"brightest tail among the T1-like images (p99.5/median {feats[post]['brain_p995_ratio']:.2f}): enhancement"])
    # two T2-like images: the one with the brighter cortex/CSF shell is the T2, the other the FLAIR (dark CSF)
    t2s = [i for i in feats if dets[i] is not None and dets[i].label in ("T2", "FLAIR") and feats[i]]
    if len(t2s) == 2:
        t2, fl = sorted(t2s, key=lambda i: -feats[i]["shell_ratio"])
        dets[t2] = Detection("T2", 0.5, [f"image evidence: brighter CSF/cortex shell than the other T2-like image "
                                         f"(shell/deep {feats[t2]['shell_ratio']:.2f} vs {feats[fl]['shell_ratio']:.2f})"])
        dets[fl] = Detection("FLAIR", 0.5, [f"image evidence: darker CSF than the other T2-like image "
                                            f"(shell/deep {feats[fl]['shell_ratio']:.2f} vs {feats[t2]['shell_ratio']:.2f})"])
    for i in feats:
        d = dets[i]
        if d is not None and d.label != OTHER:
            d.reasons.append("low confidence: confirm or override with --t1/--t1c/--t2/--flair")
    return [d if d is not None else Detection(OTHER, 0.0, ["no evidence"]) for d in dets]
