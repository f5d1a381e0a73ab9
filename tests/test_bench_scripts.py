"""Bookkeeping of the benchmark scripts: sim2real rows land in the attempts table, the GPU and post-GPU training stages
chain as recorded, and the default-benchmark page keeps its history."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _script(name: str):
    """A script of benchmarks/ loaded as a module (they are not a package); their folder goes on sys.path, as when
    a script runs, so that their ``from common import ...`` (benchmarks/common.py) resolves."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    path = folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_script", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _sim2real():
    return _script("sim2real")


def test_add_row_goes_into_the_first_table():
    doc = "# t\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nnotes\n\n| x | y |\n|---|---|\n| 9 | 9 |\n"
    out = _sim2real().add_row(doc, "| 3 | 4 |")
    lines = out.splitlines()
    assert lines[lines.index("| 1 | 2 |") + 1] == "| 3 | 4 |"
    assert out.count("| 3 | 4 |") == 1 and lines[-1] == "| 9 | 9 |"
    assert _sim2real().add_row("no table\n", "| 3 | 4 |\n").endswith("| 3 | 4 |\n")


def test_gpu_train_script_runs_end_to_end_on_cpu(tmp_path):
    """benchmarks/gpu_train.sh (the GPU stages of the bundled weights) on CPU at toy scale: the time-limited run
    stops after one epoch, and the archive brings back weights-only checkpoints that --init-from accepts."""
    import os
    import subprocess
    import sys
    import tarfile

    import torch

    from mmtumor.train.trainer import load_init

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE": "cpu", "ITERS": "1", "WORK": str(tmp_path / "work"),
           "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    subprocess.run(["bash", str(root / "benchmarks" / "gpu_train.sh"), str(out), "0.001", "5", "u:unet:unet-cpu:32:1:1e-3",
                    "s:unet:unet-cpu:32:1:1e-3:--soft-labels"], cwd=root, env=env, check=True, capture_output=True, timeout=600)
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "back", filter="data")
    assert "runs/u/best.pt" in names and "manifest.json" in names and not any(n.endswith("last.pt") for n in names)
    ck = torch.load(tmp_path / "back" / "runs" / "u" / "best.pt", weights_only=False)
    assert ck["epoch"] == 1 and "optimizer" not in ck and "full_model" not in ck
    net, spacing = load_init(str(tmp_path / "back" / "runs" / "u" / "best.pt"), "unet")
    assert spacing == 2.0 and sum(p.numel() for p in net.parameters()) > 0
    log = (out / "gpu_train.log").read_text()
    assert "trained:" in log
    # a --soft-labels job trains on the soft cache that was prebuilt beside the binary one (the same cache key)
    assert "runs/s/best.pt" in names and log.count("cache: ") == 2 and "-2mm-soft " in log
    soft_cache = next(line.split()[1] for line in log.splitlines() if line.startswith("cache: ") and "-soft" in line)
    run_log = (tmp_path / "work" / "runs" / "s.log").read_text()
    assert f"preprocessing cache: {soft_cache}" in run_log.replace("\n", "")


def test_post_gpu_stage_continues_from_the_newest_finished_stage(tmp_path):
    """bundled.py post starts from the last finished GPU stage (else the last CPU stage), and its recorded command
    is the one it runs: same method, the stage's own schedule and time limit."""
    import pytest

    b = _script("bundled")
    with pytest.raises(SystemExit):
        b._last_run(tmp_path, "a2fseg-cpu")  # nothing trained yet: a clear stop, not a traceback
    for run in (b.stage_run(tmp_path, "a2fseg-cpu", 1), b.stage_run(tmp_path, "a2fseg-cpu", 2)):
        run.mkdir(parents=True)
        (run / "best.pt").write_bytes(b"x")
    assert b._last_run(tmp_path, "a2fseg-cpu") == b.stage_run(tmp_path, "a2fseg-cpu", 2)
    gpu2 = b.gpu_stage_run(tmp_path, "a2fseg-cpu", 2)  # a GPU stage beats every CPU stage, even with a gap before it
    gpu2.mkdir()
    (gpu2 / "best.pt").write_bytes(b"x")
    assert b._last_run(tmp_path, "a2fseg-cpu") == gpu2
    stage = b.POST_GPU_STAGES["a2fseg-cpu"][0]
    cmd = b.post_command("a2fseg-cpu", stage, "prev.pt")
    assert "--method a2fseg" in cmd and "--init-from prev.pt" in cmd and "--dropout-schedule uniform" in cmd
    assert " ".join(stage["args"]) in cmd and stage["checkpoint"] in ("best.pt", "last.pt")


def test_default_benchmark_page_keeps_its_history():
    """bench_default_benchmark.py rewrites its figure but adds the run to the history list instead of erasing it."""
    mod = _script("bench_default_benchmark")
    prev = "# t\n\nWall time: 9 min\n\nHistory on this machine:\n- run 1: **15 min**\n  why it was slow\n- run 2\n\nA closing paragraph.\n"
    out = mod.keep_history(prev, "- run 3")
    lines = out.splitlines()
    assert lines[lines.index("- run 2") + 1] == "- run 3" and "  why it was slow" in lines
    assert out.rstrip().endswith("A closing paragraph.") and out.count("History on this machine") == 1
    assert mod.keep_history("# t\n\nWall time: 9 min\n", "- run 1").endswith("History on this machine:\n- run 1\n")


def test_default_phantoms_add_missing_cases_and_keep_the_earlier_ones(tmp_path):
    """Asking for more held-out phantoms later keeps cases 0..k-1 byte for byte (their cached predictions stay
    valid) and writes only the new ones, each the same as a fresh write of that index."""
    from mmtumor.benchmark import default_phantoms
    from mmtumor.synth import write_dataset

    folder = tmp_path / "ph"
    default_phantoms(folder, n=1, seed=7, shape=(48, 48, 32))
    first = (folder / "Synth_00000" / "Synth_00000_seg.nii.gz").read_bytes()
    default_phantoms(folder, n=2, seed=7, shape=(48, 48, 32))
    assert sorted(p.name for p in folder.iterdir()) == ["Synth_00000", "Synth_00001"]
    assert (folder / "Synth_00000" / "Synth_00000_seg.nii.gz").read_bytes() == first
    import nibabel as nib
    import numpy as np

    write_dataset(tmp_path / "ref", 2, seed=7, shape=(48, 48, 32))
    got = np.asarray(nib.load(folder / "Synth_00001" / "Synth_00001_flair.nii.gz").dataobj)
    ref = np.asarray(nib.load(tmp_path / "ref" / "Synth_00001" / "Synth_00001_flair.nii.gz").dataobj)
    assert np.array_equal(got, ref) and got.std() > 0


def test_bench_models_per_case_table_pairs_sizes_with_dice(tmp_path):
    """The per-case table reads each case's volumes from metadata.json and averages one model's Dice over subsets."""
    import json

    mod = _script("bench_models")
    for cid, wt in (("Synth_00000", 2.0), ("Synth_00001", 80.0)):
        (tmp_path / cid).mkdir()
        (tmp_path / cid / "metadata.json").write_text(json.dumps({"volumes_ml": {"WT": wt, "TC": wt / 2, "ET": 0.0}}))
    recs = [dict(method="m", case_id="Synth_00000", subset_code=c, region=r, dice=d)
            for c, d in (("1000", 0.2), ("1111", 0.6)) for r in ("WT", "TC", "ET")]
    recs += [dict(method="m", case_id="Synth_00001", subset_code="1111", region=r, dice=0.9) for r in ("WT", "TC", "ET")]
    recs += [dict(method="other", case_id="Synth_00001", subset_code="1111", region="WT", dice=0.0)]
    rows = [ln for ln in mod.per_case_table(recs, tmp_path, "m") if ln.startswith("| Synth")]
    assert rows == ["| Synth_00000 | 2.0 | 1.0 | 0.0 | 0.400 | 0.400 | 0.400 |",
                    "| Synth_00001 | 80.0 | 40.0 | 0.0 | 0.900 | 0.900 | 0.900 |"]


def test_et_threshold_scores_weight_subsets_equally_and_filter_rows():
    score_rows = _script("bench_et_threshold").score_rows
    rows = [{"subset": "0100", "case": "a", "et": {"0": 0.0, "100": 1.0}},
            {"subset": "0100", "case": "b", "et": {"0": 1.0, "100": 1.0}},
            {"subset": "1111", "case": "a", "et": {"0": 0.2, "100": 0.4}}]
    # mean over subsets of the per-subset case means: (0.5 + 0.2) / 2 and (1.0 + 0.4) / 2
    assert score_rows(rows, (0, 100)) == [0.35, 0.7]
    assert score_rows(rows, (0, 100), lambda r: r["case"] == "b") == [1.0, 1.0]
    assert all(v != v for v in score_rows(rows, (0,), lambda r: False))  # nothing left: NaN, not a crash


def test_grid_ceiling_is_exact_on_grid_aligned_blocks_and_loses_thin_rims():
    """The working-grid ceiling: a tumour made of whole 2 mm voxels survives the round trip (all but its corners,
    which trilinear upsampling rounds off); a 1 mm enhancing shell does not (hard targets lose it, soft ones keep part of it); an absent region scores 1 (BraTS convention)."""
    import numpy as np

    ceiling = _script("bench_grid_ceiling").grid_ceiling
    lab = np.zeros((32, 32, 32), np.uint8)
    lab[8:24, 8:24, 8:24] = 2  # edema
    lab[12:20, 12:20, 12:20] = 1  # necrotic core, no ET
    r = ceiling(lab, (1.0, 1.0, 1.0), 2.0)
    assert all(d > 0.99 for d in r["hard"] + r["soft"]) and r["hard"][2] == 1.0
    shell = lab.copy()
    shell[11:21, 11:21, 11:21] = 4  # a 3 mm enhancing shell around the core (odd offsets: straddles 2 mm voxels)
    shell[14:18, 14:18, 14:18] = 1
    r = ceiling(shell, (1.0, 1.0, 1.0), 2.0)
    assert r["hard"][0] > 0.99 and r["hard"][2] < 0.7 and r["soft"][2] > 0.9


def test_clinical_real_scoring_round_trips_through_world_coordinates(tmp_path):
    """bench_clinical_real scores a segmentation on the T1c series' own grid against the 1 mm reference: the round
    trip must be exact on the same grid, lose only thin structure on a 5 mm grid, and follow a flipped affine."""
    import nibabel as nib
    import numpy as np

    mod = _script("bench_clinical_real")
    aff = np.diag([-1.0, -1.0, 1.0, 1.0])
    label = np.zeros((40, 40, 30), np.uint8)
    label[10:30, 10:30, 5:25] = 2
    label[15:25, 15:25, 10:20] = 4
    assert np.array_equal(mod._round_trip(label, aff, label.shape, aff), label)
    thick = aff @ np.diag([1.0, 1.0, 5.0, 1.0])
    back = mod._round_trip(label, aff, (40, 40, 6), thick)
    assert 0.5 < (back == 4).sum() / (label == 4).sum() < 1.5 and not np.array_equal(back, label)
    # a segmentation written on a left-right flipped grid comes back onto the reference voxel for voxel
    flip = aff.copy()
    flip[0, 0], flip[0, 3] = 1.0, -39.0
    nib.save(nib.Nifti1Image(label[::-1].copy(), flip), str(tmp_path / "seg.nii.gz"))
    assert np.array_equal(mod._on_reference(tmp_path / "seg.nii.gz", label.shape, aff), label)


def test_common_page_header_and_models_table(tmp_path):
    """Every benchmark page says when, on what and how it was made, and lists the bundled models it measured."""
    common = _script("common")
    lines = common.header_lines("T", "python benchmarks/x.py --y")
    assert lines[0] == "# T" and "UTC; machine:" in lines[2] and "torch" in lines[2] and lines[3] == "- command: `python benchmarks/x.py --y`"
    table = common.models_table(["a2fseg-cpu"]).splitlines()
    assert len(table) == 3 and table[2].startswith("| a2fseg-cpu | a2fseg |")
    out = common.write_doc(tmp_path / "p.md", lines)
    assert out.read_text().endswith("`python benchmarks/x.py --y`\n") and not list(tmp_path.glob(".tmp-*"))


def test_real_gpu_script_runs_at_toy_scale_on_cpu(tmp_path):
    """benchmarks/gpu_train_real.sh on CPU at toy scale: the split file keeps its val case out of training, the
    shared cache is built once, and the archive brings back a weights-only best.pt per job."""
    import json
    import os
    import subprocess
    import sys
    import tarfile

    import torch

    from conftest import make_case

    root = Path(__file__).resolve().parents[1]
    data = tmp_path / "real"
    for cid in ("BraTS20_Training_001", "BraTS20_Training_002", "BraTS20_Training_003"):
        make_case(data, cid, shape=(48, 48, 40))
    (data / "splits.json").write_text(json.dumps({"val": ["BraTS20_Training_003"]}))
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE": "cpu", "ITERS": "1", "SPACING": "2", "WORKERS": "0",
           "VAL_EVERY": "1", "WORK": str(tmp_path / "work"), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    subprocess.run(["bash", str(root / "benchmarks" / "gpu_train_real.sh"), str(out), "0.001", str(data),
                    "a:a2fseg:tiny:16:1:1e-3", "h:hemis:tiny:16:1:1e-3"], cwd=root, env=env, check=True,
                   capture_output=True, timeout=600)
    log = (out / "gpu_train_real.log").read_text()
    assert "(2 train, 1 val)" in log, log
    jobs = "\n".join(p.read_text() for p in sorted((tmp_path / "work" / "runs").glob("*.log")))
    assert "0 job(s) failed" in log, log + jobs  # a failed job's own log says why
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "back", filter="data")
    assert {"runs/a/best.pt", "runs/h/best.pt", "manifest.json"} <= set(names)
    assert not any(n.endswith("last.pt") for n in names)
    man = json.loads((tmp_path / "back" / "manifest.json").read_text())
    assert man["split"]["val"] == ["BraTS20_Training_003"] and "BraTS20_Training_003" not in man["split"]["train"]
    ck = torch.load(tmp_path / "back" / "runs" / "a" / "best.pt", weights_only=False)
    assert "optimizer" not in ck and ck["epoch"] >= 1
    cfg = json.loads((tmp_path / "back" / "runs" / "a" / "config.json").read_text())
    assert cfg["preset"] == "tiny" and cfg["split_file"].endswith("splits.json") and cfg["target_spacing"] == 2.0
    cache = next(line.split()[1] for line in log.splitlines() if line.startswith("cache: "))
    assert f"preprocessing cache: {cache}" in (tmp_path / "work" / "runs" / "a.log").read_text().replace("\n", "")


def test_real_trained_card_keeps_the_phantom_figures_it_started_from():
    from mmtumor.weights.cards import render_card

    rw = _script("real_weights")
    phantom = {"training_data": "phantoms only: 40 cases", "metrics": {
        "expected_dice": {"1111": {"WT": 0.71, "TC": 0.55, "ET": 0.19}}, "expected_dice_source": "10 held-out phantoms",
        "real": {"BraTS2013 T1c+FLAIR (6 cases)": {"WT": 0.73, "TC": 0.49, "ET": 0.35}}}}
    block = rw.phantom_figures(phantom)
    assert block["training_data"] == "phantoms only: 40 cases" and block["expected_dice"]["1111"]["ET"] == 0.19
    stage1 = {"training_data": rw.training_data("unet-cpu"), "metrics": {
        "expected_dice": {"1111": {"WT": 0.88, "TC": 0.77, "ET": 0.61}}, "phantom": block}}
    assert rw.phantom_figures(stage1) == block  # a later real stage carries the block forward, not stage 1's figures
    card = render_card({"name": "unet-cpu", "method": "unet", **stage1})
    before = card.split("## Before real data")[1]
    assert "0.190" in before and "0.610" not in before and "BraTS2013 T1c+FLAIR (6 cases)" in before
    assert "initialised from the phantom-trained unet-cpu" in card and "Bakas" in card
    other = rw.training_data("a2fseg-medmap-cpu", "the real-trained a2fseg-cpu")
    assert "initialised from the real-trained a2fseg-cpu;" in other and "phantom-trained" not in other


def test_real_summary_lists_mean_all_four_and_t1c_flair_per_model_and_paper_column():
    from mmtumor.metrics import aggregate
    from mmtumor.modalities import SUBSETS
    from mmtumor.report import build_table

    recs = [{"method": m, "case_id": f"c{c}", "subset_code": s.code, "region": r, "dice": d, "hd95": 1.0,
             "sens": d, "spec": 1.0}
            for m, base in (("good", 0.8), ("weak", 0.4)) for s in SUBSETS for c in range(2)
            for r, d in (("WT", base + 0.01 * s.size), ("TC", base), ("ET", base - 0.1 * c))]
    paper = {"P BraTS2020": {s.code: {"WT": 90.0, "TC": 80.0, "ET": 70.0} for s in SUBSETS}}
    lines = _script("bench_real").summary_table(build_table(aggregate(recs), "dice", ["good", "weak"], reference=paper))
    good = next(line for line in lines if line.startswith("| good "))
    # mean of 15 subsets: WT 0.8 + 0.01 * mean subset size (32/15); all four: 0.84; ET is the case mean 0.75
    assert good == "| good | 0.821 / 0.800 / 0.750 | 0.840 / 0.800 / 0.750 | 0.820 / 0.800 / 0.750 |"
    assert "| _P BraTS2020 (paper)_ | 0.900 / 0.800 / 0.700 |" in next(line for line in lines if "P BraTS2020" in line)
    assert any(line.startswith("| weak | 0.421 /") for line in lines)


def test_real_page_names_the_models_that_run_with_their_own_thresholds():
    """A model whose thresholds were chosen on the val cases is not like for like with one at 0.5: the page says so."""
    line = _script("bench_real").threshold_line
    assert line({"tuned": [0.5, 0.3, 0.3], "plain": [0.5, 0.5, 0.5]}, {}) == (
        "- region thresholds (WT / TC / ET): tuned 0.5 / 0.3 / 0.3 (its own); every other model 0.5 / 0.5 / 0.5")
    assert line({"tuned": [0.4, 0.5, 0.5]}, {"tuned": "shown"}).startswith("- region thresholds (WT / TC / ET): shown 0.4 /")
    assert line({"plain": [0.5, 0.5, 0.5]}, {}) == "- region thresholds (WT / TC / ET): every model 0.5 / 0.5 / 0.5"
    et = _script("bench_real").et_line  # so does one that takes enhancing tumour from fewer scans
    assert et({"tuned": ["T1c", "FLAIR"]}, {}) == ("- enhancing tumour, when T1c is given: tuned from T1c+FLAIR; every "
                                                 "other model from every given scan (docs/segment.md, step 3)")
    assert et({}, {}).startswith("- enhancing tumour, when T1c is given: every model from every given scan")


def test_small_tumour_page_reports_true_and_predicted_volume_per_subset(tmp_path, monkeypatch):
    """The over-segmentation check runs `segment`'s path on a phantom and reports the phantom's true tumour volume
    beside each model's, for T1c + FLAIR and for all four modalities."""
    from mmtumor.metrics import volumes_ml
    from mmtumor.synth import generate_case

    script = _script("bench_small_tumours")
    out = tmp_path / "small.md"
    monkeypatch.setattr(sys, "argv", ["bench_small_tumours.py", "--weights", "unet-cpu", "--seeds", "4", "--shape",
                                      "120", "120", "78", "--threads", "1", "--out", str(out)])
    script.main()
    rows = [ln.split("|")[1:-1] for ln in out.read_text().splitlines() if ln.startswith("| 4 |")]
    assert [r[2].strip() for r in rows] == ["T1c + FLAIR", "all four"]
    case = generate_case(4, shape=(120, 120, 78))
    true_ml = volumes_ml(case.label, case.affine)["WT"]
    for r in rows:
        assert abs(float(r[1]) - true_ml) < 0.06
        predicted, dice = r[3].strip().rstrip(")").split(" (")
        assert float(predicted) >= 0 and 0 <= float(dice) <= 1


def test_recipe_variants_change_one_flag_and_keep_the_rest():
    rw = _script("real_weights")
    base = ["--patch", "64", "64", "64", "--lr", "5e-4", "--target-spacing", "2"]
    assert rw._with(base, "--patch", "80", "80", "80") == ["--patch", "80", "80", "80", "--lr", "5e-4", "--target-spacing", "2"]
    assert rw._with(base, "--target-spacing", "1.5")[-2:] == ["--target-spacing", "1.5"]
    p80 = rw.RECIPES["a2fseg-cpu-p80"][1]
    assert p80[p80.index("--patch") + 1:p80.index("--patch") + 4] == ["80", "80", "80"] and p80.count("--patch") == 1
    assert rw._with(rw.RECIPES["a2fseg-cpu-std"][1], "--patch", "80", "80", "80") == p80


def test_threshold_rule_prefers_the_neutral_side_of_near_ties_and_scores_held_out_cases():
    """bench_thresholds_real: the one-standard-error rule takes the triple closest to 0.5 among those the cases
    cannot tell from the best; leave-one-case-out scores each case with the triple chosen without it."""
    import numpy as np

    th = _script("bench_thresholds_real")
    cases = [f"c{i}" for i in range(6)]
    rng = np.random.default_rng(0)
    base = {c: float(x) for c, x in zip(cases, rng.uniform(0.6, 0.7, len(cases)))}
    gains = {(0.5, 0.5, 0.5): 0.0, (0.5, 0.5, 0.3): 0.050, (0.3, 0.3, 0.2): 0.052, (0.5, 0.5, 0.2): 0.020}
    noise = {c: float(x) for c, x in zip(cases, rng.normal(0, 0.01, len(cases)))}

    def scores(t, c):
        g = gains[t] + (noise[c] if t != th.NEUTRAL else 0.0)
        return [base[c] + g] * 3

    per = {t: {"1111": {c: scores(t, c) for c in cases}, "0101": {c: scores(t, c) for c in cases}} for t in gains}
    table = th.table_of(per, cases)
    assert th.best_of(table) == (0.3, 0.3, 0.2)
    assert th.chosen_of(per, cases) == (0.5, 0.5, 0.3)  # 0.002 behind the best, well within one standard error
    gains[(0.5, 0.5, 0.3)], gains[(0.5, 0.5, 0.2)] = 0.0, 0.049
    per = {t: {"1111": {c: scores(t, c) for c in cases}} for t in gains}
    assert th.chosen_of(per, cases) == (0.5, 0.5, 0.2)  # the nearest triple left within reach
    gains[(0.5, 0.5, 0.2)] = 0.02
    per = {t: {"1111": {c: scores(t, c) for c in cases}} for t in gains}
    assert th.chosen_of(per, cases) == (0.3, 0.3, 0.2)  # nothing near the best: the best itself
    cv, neutral, chosen = th.leave_one_case_out(per, cases)
    assert chosen == [(0.3, 0.3, 0.2)] * len(cases) and cv.mean() > neutral.mean()
    assert np.allclose(neutral, th.table_of(per, cases)[th.NEUTRAL])


def test_refit_on_all_cases_replays_the_split_recipe_and_bench_real_says_why_a_model_is_absent():
    """The refit recipes hold no case out and run by epochs (stage 2 pauses where `val` chose the split checkpoint,
    without ending its schedule); bench_real names a model it leaves out because it trained on the `val` cases."""
    import json

    rw = _script("real_weights")
    split = json.loads(rw.ALL36_SPLIT.read_text())
    assert split["val"] == [] and "train" not in split  # every case of the folder trains
    s1, s2 = rw.RECIPES["a2fseg-cpu-all36-s1"][1], rw.RECIPES["a2fseg-cpu-all36"][1]
    for args in (s1, s2):
        assert args[args.index("--split-file") + 1] == str(rw.ALL36_SPLIT) and args[args.index("--epochs") + 1] == "23"
    assert s1[s1.index("--init-from") + 1] == "a2fseg-phantom-cpu" and s1[s1.index("--lr") + 1] == "1e-3"
    assert s2[s2.index("--stop-after") + 1] == "16" and s2[s2.index("--mix-fraction") + 1] == "0.25"
    assert s2[s2.index("--init-from") + 1] == str(rw.ALL36_STAGE1)
    assert rw.val_source(8, "the checkpoint").startswith("8 real validation cases")
    line = _script("bench_real").left_out_line("a2fseg-cpu-all36", 8, 8)
    assert line.startswith("- not scored here: a2fseg-cpu-all36, trained on 8 of these 8 cases")
