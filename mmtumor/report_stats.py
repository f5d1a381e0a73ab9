"""Statistics of a benchmark: paired Wilcoxon tests with Holm correction, the A2FSeg fusion ablation, and speed.
Pure functions of metric records (``mmtumor.metrics``); ``mmtumor.report`` renders them."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from .errors import InputError
from .labels import REGIONS
from .metrics import HIGHER_IS_BETTER
from .modalities import SUBSETS, subset_from_code

ABLATION_PAIR = ("a2fseg-avg", "a2fseg")


def _holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    order = np.argsort(pvalues)
    m = len(pvalues)
    adj = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[idx]))
        adj[idx] = running
    return adj.tolist()


def paired_tests(records: Iterable[Mapping], metric: str = "dice", alpha: float = 0.05,
                 methods: Sequence[str] | None = None) -> list[dict]:
    """Paired per-case differences between every pair of methods per subset and region (Wilcoxon signed-rank).

    Pairs are matched on case_id. Zero differences are dropped (Wilcoxon's original treatment); all-zero
    differences give p = 1 ('identical'). With fewer than 6 non-zero differences the two-sided exact test
    cannot reach p < 0.05, which the note says. ``flag`` is ``p < alpha`` per comparison (uncorrected, as
    papers usually report); ``p_holm`` is Holm-adjusted over all tests returned and ``flag_holm`` is
    ``p_holm < alpha`` (with 15 subsets x 3 regions x pairs, some uncorrected flags are expected by chance).
    ``better`` names the method with the better median difference (direction-aware: lower HD95 is better).
    """
    from scipy.stats import wilcoxon

    by_key: dict[tuple[str, str], dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    all_methods: list[str] = []
    for rec in records:
        v = rec.get(metric)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        by_key[(str(rec["subset_code"]), str(rec["region"]))][str(rec["method"])][str(rec["case_id"])] = float(v)
        all_methods.append(str(rec["method"]))
    methods = list(methods) if methods is not None else list(dict.fromkeys(all_methods))
    order = {s.code: i for i, s in enumerate(SUBSETS)}
    out = []
    def sort_key(k: tuple[str, str]) -> tuple:
        return order.get(k[0], 99), REGIONS.index(k[1]) if k[1] in REGIONS else 99, k[1]

    for (code, region) in sorted(by_key, key=sort_key):
        per_method = by_key[(code, region)]
        for a, b in combinations([m for m in methods if m in per_method], 2):
            cases = sorted(set(per_method[a]) & set(per_method[b]))
            if not cases:
                continue
            diffs = np.array([per_method[a][c] - per_method[b][c] for c in cases])
            nonzero = int(np.count_nonzero(diffs))
            note = ""
            if nonzero == 0:
                p, stat, note = 1.0, 0.0, "identical"
            else:
                try:
                    res = wilcoxon(diffs, zero_method="wilcox", alternative="two-sided")
                    p, stat = float(res.pvalue), float(res.statistic)
                except ValueError as exc:
                    p, stat, note = float("nan"), float("nan"), f"test not possible: {exc}"
                if nonzero < 6:
                    note = (note + "; " if note else "") + f"only {nonzero} non-zero differences: p cannot reach 0.05"
            med = float(np.median(diffs))
            higher = HIGHER_IS_BETTER.get(metric, True)
            better = "" if med == 0 else (a if (med > 0) == higher else b)
            out.append({"subset_code": code, "subset_name": subset_from_code(code).name, "region": region, "metric": metric,
                        "method_a": a, "method_b": b, "n": len(cases), "n_nonzero": nonzero,
                        "mean_diff": float(diffs.mean()), "median_diff": med, "statistic": stat, "p": p,
                        "better": better, "note": note})
    valid = [i for i, t in enumerate(out) if not math.isnan(t["p"])]
    adjusted = _holm([out[i]["p"] for i in valid]) if valid else []
    for t in out:
        t["flag"] = bool(not math.isnan(t["p"]) and t["p"] < alpha)
        t["p_holm"], t["flag_holm"] = float("nan"), False
    for i, pa in zip(valid, adjusted, strict=True):
        out[i]["p_holm"] = pa
        out[i]["flag_holm"] = bool(pa < alpha)
    return out


def ablation(agg: Mapping, metric: str = "dice", pair: tuple[str, str] = ABLATION_PAIR) -> dict | None:
    """A2FSeg Table-2 style ablation: average fusion only vs average + adaptive fusion, mean over subsets.

    Returns None unless both methods are present. Values are each method's mean over subsets per region,
    the mean of the three regions, and the difference (full - average-only).
    """
    overall = agg["overall"]
    if not all(m in overall for m in pair):
        return None
    rows = []
    for m in pair:
        vals = {r: overall[m].get(r, {}).get(metric, {}).get("mean") for r in REGIONS}
        known = [v for v in vals.values() if v is not None]
        vals["avg"] = float(np.mean(known)) if len(known) == len(REGIONS) else None
        n_sub = {overall[m].get(r, {}).get(metric, {}).get("n_subsets") for r in REGIONS}
        rows.append({"method": m, "values": vals, "n_subsets": max((n for n in n_sub if n), default=0)})
    delta = {k: (rows[1]["values"][k] - rows[0]["values"][k]
                 if rows[0]["values"][k] is not None and rows[1]["values"][k] is not None else None)
             for k in (*REGIONS, "avg")}
    return {"metric": metric, "rows": rows, "delta": delta,
            "label": {pair[0]: "average fusion only", pair[1]: "average + adaptive fusion (A2FSeg)"}}


def speed_table(speed_records: Iterable[Mapping]) -> list[dict]:
    """Latency (median/min/max over cases, s), throughput (cases/min) and peak memory per method and n_present.

    A speed record is ``{method, n_present, latency_s: [seconds per case, after warm-up], peak_gpu_mb?,
    peak_cpu_mb?, device?}``; several records of one (method, n_present) are pooled.
    """
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    for rec in speed_records:
        try:
            key = (str(rec["method"]), int(rec["n_present"]))
            lat = [float(x) for x in rec["latency_s"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"speed record needs method, n_present and a list latency_s ({exc})") from None
        if any(x < 0 or not math.isfinite(x) for x in lat):
            raise InputError(f"speed record for {key[0]} has negative or invalid latencies")
        g = groups.setdefault(key, {"lat": [], "gpu": [], "cpu": [], "device": set()})
        g["lat"] += lat
        for src, dst in (("peak_gpu_mb", "gpu"), ("peak_cpu_mb", "cpu")):
            if rec.get(src) is not None:
                g[dst].append(float(rec[src]))
        if rec.get("device"):
            g["device"].add(str(rec["device"]))
    out = []
    for (method, n_present), g in sorted(groups.items()):
        lat = np.asarray(g["lat"])
        total = float(lat.sum())
        out.append({"method": method, "n_present": n_present, "n_cases": int(lat.size),
                    "median_s": float(np.median(lat)) if lat.size else None,
                    "min_s": float(lat.min()) if lat.size else None, "max_s": float(lat.max()) if lat.size else None,
                    "throughput_per_min": 60.0 * lat.size / total if total > 0 else None,
                    "peak_gpu_mb": max(g["gpu"]) if g["gpu"] else None, "peak_cpu_mb": max(g["cpu"]) if g["cpu"] else None,
                    "device": ", ".join(sorted(g["device"]))})
    return out
