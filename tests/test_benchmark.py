"""`mmtumor benchmark`: the sweep over subsets writes every report file, resumes from its cache, skips failing cases."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmtumor.cli import app

from conftest import small_brain_case

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import torch

    from mmtumor.models.registry import build_model
    from mmtumor.train.checkpoint import save_checkpoint
    from mmtumor.weights import export_run

    root = tmp_path_factory.mktemp("bench")
    for i in range(3):
        small_brain_case(root / "data", i)
    torch.manual_seed(0)
    weights = {}
    for method in ("unet", "hemis"):
        m = build_model(method, "tiny")
        save_checkpoint(root / method / "best.pt", {"model": m.state_dict(), "method": method, "config": dataclasses.asdict(m.config),
                                                    "train_config": json.dumps({"patch": [32, 32, 32], "target_spacing": 4.0})})
        weights[method] = export_run(root / method, root / "w", f"tiny-{method}").weights_path
    return root, weights


def test_report_files_cache_and_failures(setup, tmp_path):
    root, weights = setup
    data = root / "data"
    out = tmp_path / "report"
    args = ["benchmark", str(data), "--weights", str(weights["unet"]), "--weights", str(weights["hemis"]),
            "--split", "all", "--subsets", "1111,0101,0001", "--device", "cpu", "-o", str(out), "-q", "--speed"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    for f in ("report.md", "report.csv", "report.json", "per_case.csv", "heatmap.png", "dice_vs_modalities.png", "report.html"):
        assert (out / f).exists(), f
    rep = json.loads((out / "report.json").read_text())
    assert rep["meta"]["subsets"] == ["1111", "0101", "0001"]
    per_case = (out / "per_case.csv").read_text().splitlines()
    assert len(per_case) == 1 + 2 * 3 * 3 * 3  # header + methods x cases x subsets x regions
    assert "tiny-unet" in (out / "report.md").read_text() and "T1c" in r.output
    assert rep["speed"] and all(s["n_cases"] >= 1 for s in rep["speed"])
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html
    cached = sorted(p.name for p in (out / "cache").iterdir())
    assert len(cached) == 2 * 3 * 3
    # resume: a second run takes every result from the cache (files untouched)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cache").iterdir()}
    r = runner.invoke(app, args[:-1])  # without --speed, which always re-measures
    assert r.exit_code == 0, r.output
    assert {p: p.stat().st_mtime_ns for p in (out / "cache").iterdir()} == stamps
    # options that change predictions get their own cache entries: a --tta run never reuses plain results
    r = runner.invoke(app, ["benchmark", str(data), "--weights", str(weights["unet"]), "--split", "all", "--subsets", "0101",
                            "--device", "cpu", "-o", str(out), "-q", "--tta", "--min-et-voxels", "3"])
    assert r.exit_code == 0, r.output
    tagged = sorted(p.name for p in (out / "cache").iterdir() if p not in stamps)
    assert len(tagged) == 3 and all("-tta-cc0.2-et3__" in n and n.endswith("__0101.json") for n in tagged), tagged
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / "report.json").read_text())["meta"]["tta"] is True
    # so do region thresholds other than 0.5, and the report says which each model used
    r = runner.invoke(app, ["benchmark", str(data), "--weights", str(weights["unet"]), "--split", "all", "--subsets", "0101",
                            "--device", "cpu", "-o", str(out), "-q", "--thresholds", "0.5,0.4,0.3"])
    assert r.exit_code == 0, r.output
    assert len([p for p in (out / "cache").iterdir() if "-thr0.5_0.4_0.3__" in p.name]) == 3
    assert json.loads((out / "report.json").read_text())["meta"]["region_thresholds"] == {"tiny-unet": [0.5, 0.4, 0.3]}
    r = runner.invoke(app, ["benchmark", str(data), "--weights", str(weights["unet"]), "-o", str(out), "-q",
                            "--thresholds", "0.5,0.4,1.5"])
    assert r.exit_code == 1 and "region thresholds must be three numbers in (0, 1)" in r.output


def test_failing_case_is_recorded_not_fatal(setup, tmp_path):
    import shutil

    root, weights = setup
    data = tmp_path / "data"
    shutil.copytree(root / "data", data)
    bad = sorted(data.iterdir())[0]
    next(bad.glob("*_t1.nii.gz")).write_bytes(b"broken")
    out = tmp_path / "report"
    r = runner.invoke(app, ["benchmark", str(data), "--weights", str(weights["unet"]), "--split", "all", "--subsets", "1111",
                            "--device", "cpu", "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    failures = json.loads((out / "failures.json").read_text())
    assert failures and failures[0]["case_id"] == bad.name
    assert "failed" in r.output


def test_bad_arguments(tmp_path, setup):
    _, weights = setup
    r = runner.invoke(app, ["benchmark", str(tmp_path / "missing"), "--weights", str(weights["unet"]), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    r = runner.invoke(app, ["benchmark", str(tmp_path), "--weights", str(weights["unet"]), "--subsets", "0000", "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "0000" in r.output


def test_published_reference_table(setup, tmp_path):
    """--reference puts a user's published table (e.g. the A2FSeg paper's) in the report; a bad one fails fast."""
    root, weights = setup
    ref = tmp_path / "paper.csv"
    ref.write_text("method,subset,region,dice\nPaper-A,1111,WT,91.5\nPaper-A,T1c+FLAIR,ET,70.25\n")
    out = tmp_path / "report"
    base = ["benchmark", str(root / "data"), "--weights", str(weights["unet"]), "--split", "all", "--subsets", "1111",
            "--device", "cpu", "-o", str(out), "-q"]
    r = runner.invoke(app, base + ["--reference", str(ref)])
    assert r.exit_code == 0, r.output
    md = (out / "report.md").read_text()
    # phantoms are not BraTS 2020: the published numbers are shown apart and labelled not comparable
    assert "NOT comparable" in md and "91.50" in md.split("NOT comparable")[1] and "70.25" in md
    rep = json.loads((out / "report.json").read_text())
    assert rep["reference_mode"] == "separate" and rep["reference"]["Paper-A"]["0101"]["ET"] == 70.25
    ref.write_text("method,subset,region,dice\nPaper-A,1111,WT,91.5\nPaper-A,1111,XX,80\n")
    out2 = tmp_path / "report2"
    r = runner.invoke(app, base[:-3] + ["-o", str(out2), "-q", "--reference", str(ref)])
    assert r.exit_code == 1 and "line 3" in r.output and "XX" in r.output and "Traceback" not in r.output
    assert not (out2 / "report.md").exists()


def _bench_rank(rank: int, world: int, port: int, data: str, weights: str, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    import torch

    torch.set_num_threads(1)
    from mmtumor.benchmark import BenchmarkOptions, run_benchmark

    res = run_benchmark(data, [weights], out, BenchmarkOptions(split="all", subsets="1111", device="cpu"))
    (Path(out) / f"result{rank}.json").write_text(json.dumps({"n": len(res.records), "files": {k: str(v) for k, v in res.files.items()}}))
    import torch.distributed as dist

    dist.destroy_process_group()


def test_cases_shard_across_torchrun_ranks(setup, tmp_path):
    import socket

    import torch.multiprocessing as mp

    root, weights = setup
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "report"
    mp.spawn(_bench_rank, args=(2, port, str(root / "data"), str(weights["unet"]), str(out)), nprocs=2, join=True)
    r0 = json.loads((out / "result0.json").read_text())
    r1 = json.loads((out / "result1.json").read_text())
    assert r0["n"] == 3 * 3 and r0["files"]  # rank 0 reports all 3 cases x 3 regions
    assert r1["files"] == {}  # other ranks only compute their share
    assert len(list((out / "cache").iterdir())) == 3


def test_preparation_is_shared_by_models_and_matches_per_model_prediction(setup, tmp_path, monkeypatch):
    """Each (case, subset) is preprocessed once for all models, and the shared path predicts exactly what preparing
    separately for each model predicts."""
    import torch

    import mmtumor.benchmark as bm
    from mmtumor.io.dataset import find_cases, load_case
    from mmtumor.io.nifti import voxel_spacing
    from mmtumor.metrics import region_metrics, to_records
    from mmtumor.modalities import parse_subsets
    from mmtumor.weights import load_model, resolve

    root, weights = setup
    calls = []
    real = bm.prepare_subset
    monkeypatch.setattr(bm, "prepare_subset", lambda *a, **k: calls.append(a[3].code) or real(*a, **k))
    res = bm.run_benchmark(root / "data", [str(weights["unet"]), str(weights["hemis"])], tmp_path / "r",
                           bm.BenchmarkOptions(split="all", subsets="1111,0100", device="cpu"))
    assert len(calls) == 3 * 2  # cases x subsets, not x models
    assert res.records[0]["method"] == "tiny-unet" and res.records[-1]["method"] == "tiny-hemis"  # grouped by model
    assert res.files["html"] == tmp_path / "r" / "report.html" and res.files["html"].is_file()
    table = res.dice_table()  # what the CLI prints: the report's Dice table, one row per subset
    assert table["methods"] == ["tiny-unet", "tiny-hemis"] and [r["subset_code"] for r in table["rows"]] == ["0100", "1111"]

    case = find_cases(root / "data", require_label=True)[0]
    loaded = load_case(case)
    model, meta = load_model(resolve(str(weights["hemis"])))
    sub = parse_subsets("0100")[0]
    alone = real(loaded.image, loaded.present, loaded.affine, sub)
    labels = bm._predict_prepared(model, bm.settings_for(meta, bm.BenchmarkOptions()), alone, torch.device("cpu"))
    spacing = voxel_spacing(loaded.affine)
    expect = to_records("tiny-hemis", case.case_id, "0100", region_metrics(labels, loaded.label, spacing))
    got = [r for r in res.records if r["method"] == "tiny-hemis" and r["case_id"] == case.case_id and r["subset_code"] == "0100"]
    assert [(r["region"], r["dice"]) for r in got] == [(r["region"], r["dice"]) for r in expect]
    assert all(r["hd95"] == e["hd95"] for r, e in zip(got, expect))


def test_predict_subset_is_the_sweeps_path_and_hidden_modalities_do_not_leak(setup, tmp_path):
    """The public one-case helper (used by benchmarks/bench_subsets_real.py) gives the sweep's numbers, and what a
    hidden modality contains cannot change the answer."""
    import numpy as np

    import mmtumor.benchmark as bm
    from mmtumor.io.dataset import find_cases, load_case
    from mmtumor.metrics import region_metrics
    from mmtumor.modalities import parse_subsets
    from mmtumor.weights import load_model, resolve

    root, weights = setup
    res = bm.run_benchmark(root / "data", [str(weights["unet"])], tmp_path / "r",
                           bm.BenchmarkOptions(split="all", subsets="0101", device="cpu"))
    case = find_cases(root / "data", require_label=True)[1]
    loaded = load_case(case)
    model, meta = load_model(resolve(str(weights["unet"])))
    sub = parse_subsets("0101")[0]
    labels = bm.predict_subset(model, meta, loaded.image, loaded.present, loaded.affine, sub)
    assert labels.shape == loaded.label.shape
    got = {r["region"]: r["dice"] for r in res.records if r["case_id"] == case.case_id}
    assert got == {k: v["dice"] for k, v in region_metrics(labels, loaded.label, None).items()}
    noisy = loaded.image.copy()
    noisy[[0, 2]] = np.random.default_rng(0).normal(size=noisy[[0, 2]].shape) * 50  # T1 and T2 are hidden
    again = bm.predict_subset(model, meta, noisy, loaded.present, loaded.affine, sub)
    assert np.array_equal(again, labels)

def test_inference_tag_separates_prediction_options_and_keeps_default_keys():
    from mmtumor.benchmark import BenchmarkOptions, inference_tag

    plain = BenchmarkOptions(min_component_fraction=0, min_et_voxels=0)
    assert inference_tag(plain) == ""  # plain predictions keep the keys caches had before post-processing existed
    # the default post-processing (island removal, small-ET relabelling) is never mistaken for plain
    assert inference_tag(BenchmarkOptions()) == "-cc0.2-et100"
    assert inference_tag(BenchmarkOptions(min_component_fraction=0, min_et_voxels=0, speed=True, split="all",
                                          subsets="0101")) == ""
    tags = {inference_tag(BenchmarkOptions(tta=True)), inference_tag(BenchmarkOptions(overlap=0.25)),
            inference_tag(BenchmarkOptions(min_et_voxels=0)), inference_tag(BenchmarkOptions(tta=True, overlap=0.25)),
            inference_tag(BenchmarkOptions()), inference_tag(BenchmarkOptions(min_component_fraction=0.5))}
    assert len(tags) == 6 and "" not in tags


def test_a_model_is_not_scored_on_its_own_training_cases(setup, tmp_path):
    """Export records fingerprints of the training labels; benchmark refuses those cases (one line, exit 1), also
    copied under another name, unless told that it measures the fit; cases the model never saw pass."""
    import shutil

    from mmtumor.io.dataset import load_or_create_manifest
    from mmtumor.weights import export_run, resolve

    root, _ = setup
    run = tmp_path / "run"
    shutil.copytree(root / "unet", run)
    (tmp_path / "split.json").write_text(json.dumps({"val": []}))  # every case trains
    load_or_create_manifest(root / "data", run / "manifest.json", split_file=tmp_path / "split.json")
    rw = export_run(run, tmp_path / "w", "seen-unet")
    assert sorted(rw.meta["training_cases"]) == sorted(p.name for p in (root / "data").iterdir())
    assert all(len(fp) == 16 for fp in rw.meta["training_cases"].values())
    assert "Training cases recorded | 3 (" in (tmp_path / "w" / "seen-unet.md").read_text()
    renamed = tmp_path / "renamed"
    first = sorted((root / "data").iterdir())[0]
    shutil.copytree(first, renamed / "Other_001")
    for f in sorted((renamed / "Other_001").iterdir()):
        f.rename(f.with_name(f.name.replace(first.name, "Other_001")))
    base = ["--weights", str(rw.weights_path), "--split", "all", "--subsets", "0101", "--device", "cpu", "-q"]
    for data in (root / "data", renamed):
        r = runner.invoke(app, ["benchmark", str(data), *base, "-o", str(tmp_path / "refused")])
        assert r.exit_code == 1 and "seen-unet was trained on" in r.output and "Traceback" not in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1
    r = runner.invoke(app, ["benchmark", str(root / "data"), *base, "-o", str(tmp_path / "fit"), "--allow-training-cases"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "fit" / "report.json").read_text())["meta"]["trained_on_cases"] == {"seen-unet": 3}
    unseen = tmp_path / "unseen"
    small_brain_case(unseen, 7)
    r = runner.invoke(app, ["benchmark", str(unseen), *base, "-o", str(tmp_path / "new")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "new" / "report.json").read_text())["meta"]["trained_on_cases"] == {}
    assert "training_cases" not in resolve(str(setup[1]["unet"])).meta  # a bare checkpoint records nothing


def test_an_ensemble_of_two_methods_is_benchmarked_like_any_model(setup, tmp_path):
    """``weights ensemble`` of the tiny U-Net and HeMIS (one patch, one grid) runs through ``benchmark`` end to end."""
    root, weights = setup
    r = runner.invoke(app, ["weights", "ensemble", str(weights["unet"]), str(weights["hemis"]), "-o",
                            str(tmp_path / "w"), "--name", "duo"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "report"
    r = runner.invoke(app, ["benchmark", str(root / "data"), "--weights", str(tmp_path / "w" / "duo.safetensors"),
                            "--split", "all", "--subsets", "0101", "--device", "cpu", "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    rows = (out / "per_case.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 3 and all(row.startswith("duo,") for row in rows[1:])  # header + cases x regions
