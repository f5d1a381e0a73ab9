"""Report rendering: Table-1 layout, best-in-bold, CSV/JSON round trips, self-contained HTML, Wilcoxon flags."""

from __future__ import annotations

import base64
import csv
import json
import re

import numpy as np
import pytest

from mmtumor.errors import InputError
from mmtumor.metrics import aggregate
from mmtumor.modalities import SUBSETS
from mmtumor.report import (
    A2FSEG_PAPER_TABLE1,
    ablation,
    build_table,
    paired_tests,
    paper_reference,
    rich_table,
    speed_table,
    to_markdown,
    write_report,
)

METHODS = {"a2fseg-avg": 0.0, "a2fseg": 0.05, "unet": -0.15}
N_CASES = 7


def _records(seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for method, offset in METHODS.items():
        for s in SUBSETS:
            for c in range(N_CASES):
                for r in ("WT", "TC", "ET"):
                    d = float(np.clip(0.45 + 0.08 * s.size + offset + rng.normal(0, 0.03), 0, 1))
                    out.append({"method": method, "case_id": f"case{c}", "subset_code": s.code, "region": r,
                                "dice": d, "hd95": 30.0 * (1 - d), "sens": d, "spec": 0.999})
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    recs = _records()
    speed = [{"method": "a2fseg", "n_present": 4, "latency_s": [2.0, 1.0, 3.0], "peak_cpu_mb": 800.0, "device": "cpu"},
             {"method": "a2fseg", "n_present": 4, "latency_s": [2.0], "peak_cpu_mb": 900.0, "device": "cpu"}]
    paths = write_report(recs, out, speed_records=speed, meta={"dataset": "phantoms", "split": "test"})
    return recs, out, paths


def test_write_report_writes_every_file_atomically(report):
    _, out, paths = report
    names = {"report.md", "report.csv", "report.json", "per_case.csv", "heatmap.png", "dice_vs_modalities.png", "report.html"}
    assert {p.name for p in paths.values()} == names
    assert {p.name for p in out.iterdir()} == names  # no temp files left behind
    for p in paths.values():
        assert p.stat().st_size > 0
    assert paths["heatmap"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_write_that_dies_before_its_rename_leaves_the_old_file_and_no_temp(report, monkeypatch):
    """Every report file goes through a temporary name and one rename: when the rename never happens (a crash, a
    full disk) the previous file is intact and no temporary file stays. A plain write_text would fail this."""
    import os

    from mmtumor.report import write_report

    records, out, paths = report
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError):
        write_report(records[: len(records) // 2], out)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_markdown_table_has_15_rows_plus_mean_and_marks(report):
    _, _, paths = report
    md = paths["markdown"].read_text()
    dice_section = md.split("## Dice per modality subset")[1].split("## HD95")[0]
    rows = [ln for ln in dice_section.splitlines() if ln.startswith("| ●") or ln.startswith("| ○") or ln.startswith("| mean")]
    assert len(rows) == 16 and rows[-1].startswith("| mean")
    for row, subset in zip(rows[:15], SUBSETS, strict=True):   # canonical subset order, ● present / ○ missing
        marks = [c.strip() for c in row.strip("|").split("|")][:4]
        assert marks == ["●" if p else "○" for p in subset.mask]
    assert "WT · a2fseg" in dice_section and "ET · unet" in dice_section


def _two_method_agg(better_on_wt: str) -> dict:
    recs = []
    for method in ("m1", "m2"):
        for c in range(3):
            for region in ("WT", "TC", "ET"):
                d = 0.9 if (region == "WT" and method == better_on_wt) or (region != "WT" and method == "m1") else 0.5
                recs.append({"method": method, "case_id": str(c), "subset_code": "0101", "region": region,
                             "dice": d, "hd95": 10 * (1 - d), "sens": d, "spec": 1.0})
    return aggregate(recs)


def test_bold_marks_the_best_per_row_and_direction():
    agg = _two_method_agg("m2")
    table = build_table(agg, "dice")
    assert table["rows"][0]["best"] == {"WT": ["m2"], "TC": ["m1"], "ET": ["m1"]}
    md = to_markdown(table)
    row = [ln for ln in md.splitlines() if ln.startswith("| ○ | ● | ○ | ●")][0]
    cells = [c.strip() for c in row.strip("|").split("|")][4:]   # WT m1, WT m2, TC m1, TC m2, ET m1, ET m2
    assert cells == ["50.00", "**90.00**", "**90.00**", "50.00", "**90.00**", "50.00"]
    hd = build_table(agg, "hd95")     # lower HD95 is better
    assert hd["rows"][0]["best"]["WT"] == ["m2"]
    rt = rich_table(table)
    wt_m2 = rt.columns[5]._cells[0]
    assert "bold" in str(wt_m2.style) and "bold" not in str(rt.columns[4]._cells[0].style)


def test_single_method_or_ties():
    recs = [{"method": "only", "case_id": "a", "subset_code": "1111", "region": "WT", "dice": 0.8}]
    assert build_table(aggregate(recs), "dice")["rows"][0]["best"]["WT"] == []
    tie = recs + [{**recs[0], "method": "twin"}]
    assert build_table(aggregate(tie), "dice")["rows"][0]["best"]["WT"] == ["only", "twin"]


def test_csv_and_json_round_trip(report):
    recs, _, paths = report
    agg = aggregate(recs)
    with paths["csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(METHODS) * 16 * 3 * 4       # methods x (15 subsets + mean) x regions x metrics
    for r in rows:
        if r["subset_code"] == "mean":
            want = agg["overall"][r["method"]][r["region"]][r["metric"]]["mean"]
            assert float(r["mean"]) == pytest.approx(want, rel=1e-12)
        else:
            stat = agg["per_subset"][r["method"]][r["subset_code"]][r["region"]][r["metric"]]
            assert float(r["mean"]) == stat["mean"] and float(r["sd"]) == stat["sd"] and int(r["n"]) == N_CASES
    doc = json.loads(paths["json"].read_text())
    dice_rows = doc["tables"]["dice"]["rows"]
    assert len(dice_rows) == 15
    assert dice_rows[14]["values"]["TC"]["unet"] == agg["per_subset"]["unet"]["1111"]["TC"]["dice"]["mean"]
    assert doc["meta"]["dataset"] == "phantoms" and doc["reference_mode"] == "none"
    with paths["per_case"].open() as fh:
        cases = list(csv.DictReader(fh))
    assert len(cases) == len(recs)
    assert float(cases[5]["dice"]) == recs[5]["dice"] and cases[5]["case_id"] == recs[5]["case_id"]


def test_html_is_self_contained_with_embedded_images(report):
    _, _, paths = report
    page = paths["html"].read_text()
    uris = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(uris) == 2
    for u in uris:
        assert base64.b64decode(u)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "src='http" not in page and "<link" not in page
    assert page.count("<tr class='mean'>") == 2 and "<b>" in page


def test_wilcoxon_flags_a_clear_difference_not_an_identical_pair():
    rng = np.random.default_rng(3)
    recs = []
    for c in range(12):
        base = float(rng.uniform(0.6, 0.8))
        for method, d in (("good", base + 0.1 + rng.normal(0, 0.01)), ("same", base + 0.1), ("bad", base - 0.1)):
            recs.append({"method": method, "case_id": f"c{c}", "subset_code": "1111", "region": "WT", "dice": d})
    # 'same' equals 'good' exactly on every case
    good = {r["case_id"]: r["dice"] for r in recs if r["method"] == "good"}
    for r in recs:
        if r["method"] == "same":
            r["dice"] = good[r["case_id"]]
    tests = {(t["method_a"], t["method_b"]): t for t in paired_tests(recs)}
    clear = tests[("good", "bad")]
    assert clear["flag"] and clear["flag_holm"] and clear["p"] < 0.001 and clear["better"] == "good" and clear["n"] == 12
    ident = tests[("good", "same")]
    assert not ident["flag"] and ident["p"] == 1.0 and ident["note"] == "identical" and ident["better"] == ""


def test_wilcoxon_small_n_and_ties_are_graceful():
    recs = []
    for c, (a, b) in enumerate([(0.9, 0.5), (0.8, 0.5), (0.7, 0.7), (0.6, 0.5)]):   # one zero difference, n=4
        recs += [{"method": "a", "case_id": str(c), "subset_code": "0001", "region": "ET", "dice": a},
                 {"method": "b", "case_id": str(c), "subset_code": "0001", "region": "ET", "dice": b}]
    recs.append({"method": "a", "case_id": "lonely", "subset_code": "0001", "region": "ET", "dice": 0.1})  # unpaired
    (t,) = paired_tests(recs)
    assert t["n"] == 4 and t["n_nonzero"] == 3 and not t["flag"]
    assert "p cannot reach 0.05" in t["note"] and 0 < t["p"] <= 1


def test_ablation_pair_and_absence():
    agg = aggregate(_records())
    abl = ablation(agg)
    assert abl is not None and [r["method"] for r in abl["rows"]] == ["a2fseg-avg", "a2fseg"]
    want = agg["overall"]["a2fseg"]["ET"]["dice"]["mean"] - agg["overall"]["a2fseg-avg"]["ET"]["dice"]["mean"]
    assert abl["delta"]["ET"] == pytest.approx(want) and abl["delta"]["ET"] > 0.03
    only = aggregate([r for r in _records() if r["method"] != "a2fseg-avg"])
    assert ablation(only) is None


def test_reference_columns_only_on_brats2020(tmp_path):
    assert A2FSEG_PAPER_TABLE1 == {} and paper_reference("brats2020")[0] == "none"  # not bundled: never invented
    fake = {"paper-X": {"1111": {"WT": 90.0, "TC": 80.0, "ET": 70.0}}}
    recs = [r for r in _records() if r["subset_code"] in ("1111", "0101")]
    p = write_report(recs, tmp_path / "b20", meta={"dataset": "BraTS2020"}, reference=fake)
    md = p["markdown"].read_text()
    assert "WT · paper-X (paper)" in md and "_90.00_" in md and "NOT comparable" not in md
    p2 = write_report(recs, tmp_path / "other", meta={"dataset": "phantoms"}, reference=fake)
    md2 = p2["markdown"].read_text()
    assert "NOT comparable" in md2 and "| WT · paper-X |" in md2.split("NOT comparable")[1]
    assert "(paper)" not in md2.split("NOT comparable")[0]


def test_load_reference_csv(tmp_path):
    from mmtumor.errors import InputError
    from mmtumor.report import load_reference_csv

    f = tmp_path / "t.csv"
    f.write_text("Method,Subset,Region,Dice\nA2FSeg,1111,wt,89.79\nA2FSeg,T1c+FLAIR,TC,80\nB,0001,ET,0\n")
    assert load_reference_csv(f) == {"A2FSeg": {"1111": {"WT": 89.79}, "0101": {"TC": 80.0}}, "B": {"0001": {"ET": 0.0}}}
    for body, why in [("method,subset,dice\nA,1111,5\n", "header"), ("method,subset,region,dice\nA,0000,WT,5\n", "0000"),
                      ("method,subset,region,dice\nA,1111,WT,0.9x\n", "not a number"),
                      ("method,subset,region,dice\nA,1111,WT,150\n", "0-100"),
                      ("method,subset,region,dice\nA,1111,WT,50\nA,1111,WT,51\n", "duplicate")]:
        f.write_text(body)
        with pytest.raises(InputError, match=why):
            load_reference_csv(f)
    with pytest.raises(InputError, match="not found"):
        load_reference_csv(tmp_path / "nope.csv")


def test_speed_table_values_and_errors(report):
    _, _, paths = report
    (row,) = speed_table([{"method": "m", "n_present": 2, "latency_s": [2.0, 1.0, 3.0], "peak_gpu_mb": 100},
                          {"method": "m", "n_present": 2, "latency_s": [2.0], "peak_gpu_mb": 300}])
    assert (row["median_s"], row["min_s"], row["max_s"], row["n_cases"]) == (2.0, 1.0, 3.0, 4)
    assert row["throughput_per_min"] == pytest.approx(60 * 4 / 8.0) and row["peak_gpu_mb"] == 300
    with pytest.raises(InputError):
        speed_table([{"method": "m", "n_present": 1, "latency_s": [-1.0]}])
    with pytest.raises(InputError):
        speed_table([{"method": "m"}])
    assert "## Speed and memory" in paths["markdown"].read_text()


def test_empty_and_failed_records(tmp_path):
    with pytest.raises(InputError):
        write_report([], tmp_path / "x")
    recs = _records()[:3] + [{"method": "a2fseg-avg", "case_id": "broken", "subset_code": "1000", "region": "WT",
                              "dice": None, "hd95": None, "sens": None, "spec": None, "error": "unreadable file"}]
    p = write_report(recs, tmp_path / "y")
    with p["per_case"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows[-1]["error"] == "unreadable file" and rows[-1]["dice"] == ""
    doc = json.loads(p["json"].read_text())   # strict JSON: the undefined SD of one case is written as null
    assert doc["tables"]["dice"]["rows"][0]["sd"]["WT"]["a2fseg-avg"] is None
    assert doc["tables"]["dice"]["rows"][0]["n"]["WT"]["a2fseg-avg"] == 1
