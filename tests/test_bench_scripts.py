"""Bookkeeping of the benchmark scripts: sim2real rows land in the attempts table, not in a table of notes below it."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _sim2real():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sim2real.py"
    spec = importlib.util.spec_from_file_location("sim2real_script", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
    subprocess.run(["bash", str(root / "benchmarks" / "gpu_train.sh"), str(out), "0.001", "5", "u:unet:unet-cpu:32:1:1e-3"],
                   cwd=root, env=env, check=True, capture_output=True, timeout=600)
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "back", filter="data")
    assert "runs/u/best.pt" in names and "manifest.json" in names and not any(n.endswith("last.pt") for n in names)
    ck = torch.load(tmp_path / "back" / "runs" / "u" / "best.pt", weights_only=False)
    assert ck["epoch"] == 1 and "optimizer" not in ck and "full_model" not in ck
    net, spacing = load_init(str(tmp_path / "back" / "runs" / "u" / "best.pt"), "unet")
    assert spacing == 2.0 and sum(p.numel() for p in net.parameters()) > 0
    assert "trained:" in (out / "gpu_train.log").read_text()
