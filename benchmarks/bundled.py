"""Reproduce the bundled weights: one recipe for all eight shipped models, trained on phantoms only.

    python benchmarks/bundled.py data                 # 40 randomised phantoms at 2 mm (runs/bundled/phantoms-2mm)
    python benchmarks/bundled.py train --jobs 2       # every model, two single-threaded trainings at a time
    python benchmarks/bundled.py finetune             # the default model's further stages (FINETUNE below)
    (on a GPU machine) GPU_STAGES below, each: bash benchmarks/gpu_train.sh $OUT MINUTES CASES JOB; its runs.tar.gz
                      unpacked and each run folder moved to runs/bundled/<name>-gpu<j>
    python benchmarks/bundled.py post                 # CPU stages after the GPU stages (POST_GPU_STAGES below)
    python benchmarks/bundled.py export               # weights/<name>.{safetensors,json,md} + manifest
    python benchmarks/bench_models.py --update-cards  # Dice tables into the cards, docs/bench-models.md
    python benchmarks/collect.py                      # docs/benchmarks.md

Every model gets the same budget (600 Adam steps of two 48^3 patches at 2 mm, lr 3e-3) so that the
phantom and real-scan tables compare methods, not budgets. Each method keeps its own paper defaults
for the missing-modality schedule and losses. ``--only NAME`` restricts to some models.
The default model then gets further stages (``finetune``): each continues from the previous stage's run with
``--init-from`` for FINETUNE's extra steps, so its card states a larger budget than the others'.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "runs" / "bundled"
DATA_ARGS = ["--cases", "40", "--seed", "1000", "--shape", "120", "120", "78", "--randomize"]
TRAIN_ARGS = ["--preset", "tiny", "--epochs", "30", "--iters-per-epoch", "20", "--patch", "48", "48", "48", "--batch", "2",
              "--lr", "3e-3", "--device", "cpu", "--workers", "1", "--val-every", "10", "--target-spacing", "2"]
TRAINING_DATA = ("phantoms only: 40 cases from mmtumor synth --randomize --shape 120 120 78 --seed 1000 "
                 "(phantom generator version {version}); no real data")

# name -> (method, extra train args, what it is)
MODELS: dict[str, tuple[str, list[str], str]] = {
    "a2fseg-cpu": ("a2fseg", [], "A2FSeg (4 modality U-Nets, average + adaptive fusion; the default)"),
    "a2fseg-avg-cpu": ("a2fseg-avg", [], "A2FSeg with average fusion only (the paper's Table 2 ablation)"),
    "a2fseg-medmap-cpu": ("a2fseg", ["--align", "medmap"], "A2FSeg trained with the MedMAP alignment add-on "
                          "(latent features pulled to the anchor P_mix; the add-on is training-only, inference is plain A2FSeg)"),
    "robustseg-cpu": ("robustseg", [], "RobustSeg (content/appearance disentanglement, gated fusion at every scale)"),
    "hemis-cpu": ("hemis", [], "HeMIS (per-modality encoders, mean/variance fusion)"),
    "mmformer-cpu": ("mmformer", [], "mmFormer (hybrid modality-specific encoders, inter-modal transformer)"),
    "unet-cpu": ("unet", [], "early-fusion U-Net with modality dropout (the usual first try)"),
    "master-assistant-cpu": ("master-assistant", [], "master-assistant cross-modal attention (T1c master)"),
}

# name -> train args of each further stage; stage k (k >= 2) continues from stage k-1's run with --init-from
# (same data, patches and voxel size; a fresh optimizer and poly schedule each time)
FINETUNE: dict[str, list[list[str]]] = {
    "a2fseg-cpu": [["--epochs", "60", "--lr", "1e-3", "--val-every", "20"],
                   ["--epochs", "50", "--lr", "1e-3", "--val-every", "25"],
                   ["--epochs", "50", "--lr", "7e-4", "--val-every", "25"],
                   ["--epochs", "50", "--lr", "5e-4", "--val-every", "25"],
                   ["--epochs", "50", "--lr", "5e-4", "--val-every", "25"]],
}


# name -> GPU stages, run by benchmarks/gpu_train.sh on a lent GPU (device tool), each continuing from the previous
# stage's weights. Their run folders come back in runs.tar.gz and are kept as WORK/<name>-gpu<j> for export.
# (minutes of the --time-limit, phantoms generated there with seed 3000, the job, trainings sharing the GPU, shell env)
GPU_STAGES: dict[str, list[dict]] = {
    "a2fseg-cpu": [
        {"minutes": 6.2, "cases": 360, "job": "a2fseg-p64:a2fseg:a2fseg-cpu:64:8:1e-3", "sharing": 9, "env": ""},
        {"minutes": 7.0, "cases": 600, "job": "a2fseg-p64b:a2fseg:.gpu/p64.pt:64:8:1e-3", "sharing": 3, "env": ""},
        {"minutes": 7.5, "cases": 600, "job": "a2fseg-p64c:a2fseg:.gpu/p64b.pt:64:8:7e-4", "sharing": 2,
         "env": "WORKERS=3 OMP_NUM_THREADS=4 "},
    ],
}
# the other seven models: one GPU stage, all nine jobs of that call sharing the GPU for the same 6.2 minutes
for _name, (_method, _extra, _) in MODELS.items():
    if _name != "a2fseg-cpu":
        _job = f"{_name}:{_method}:{_name}:48:8:1e-3" + (":" + ",".join(_extra) if _extra else "")
        GPU_STAGES[_name] = [{"minutes": 6.2, "cases": 360, "job": _job, "sharing": 9, "env": ""}]
# name -> CPU stages after the GPU stages (a session without a lent GPU), each continuing from the previous stage's
# weights on phantoms from the GPU stages' generator settings (seed 3000, the first CASES of them), generated here.
# "checkpoint": which checkpoint of the run is exported (last.pt = the end of the poly schedule).
POST_GPU_STAGES: dict[str, list[dict]] = {
    "a2fseg-cpu": [
        {"cases": 200, "checkpoint": "last.pt", "why": "the uniform schedule over the 15 subsets, the benchmark's own "
         "weighting, instead of A2FSeg's (all modalities on every other epoch)",
         "args": ["--epochs", "1000", "--iters-per-epoch", "25", "--patch", "64", "64", "64", "--batch", "2", "--lr", "3e-4",
                  "--device", "cpu", "--workers", "1", "--val-every", "10", "--target-spacing", "2", "--time-limit", "65",
                  "--dropout-schedule", "uniform"]},
    ],
}
GPU_NAME = "NVIDIA H100 80GB HBM3 (torch 2.11.0+cu130, bf16 autocast)"
GPU_DATA = "{cases} phantoms from mmtumor synth --randomize --shape 120 120 78 --seed 3000"


def gpu_stage_run(work: Path, name: str, j: int) -> Path:
    """Run folder of GPU stage j (1-based), as brought back from the GPU machine."""
    return work / f"{name}-gpu{j}"


def post_stage_run(work: Path, name: str, j: int) -> Path:
    """Run folder of post-GPU CPU stage j (1-based)."""
    return work / f"{name}-post{j}"


def post_train_args(name: str, stage: dict, data, init, run=None) -> list[str]:
    """`mmtumor` arguments of a post-GPU CPU stage: what `post` runs and what the card records."""
    method, extra, _ = MODELS[name]
    out = ["-o", str(run)] if run is not None else []
    return ["train", str(data), "--method", method, *out, "--preset", "tiny", "--init-from", str(init), *extra, *stage["args"]]


def post_command(name: str, stage: dict, init: str = "<previous stage>") -> str:
    """The training command of a post-GPU CPU stage, as recorded in the model card."""
    return "mmtumor " + " ".join(post_train_args(name, stage, f"runs/bundled/phantoms-3000-{stage['cases']}", init))


def gpu_command(stage: dict) -> str:
    """The exact command that ran a GPU stage (on the GPU machine, in the repository root)."""
    return f"{stage['env']}bash benchmarks/gpu_train.sh $OUT {stage['minutes']} {stage['cases']} {stage['job']}"


def stage_run(work: Path, name: str, k: int) -> Path:
    """Run folder of stage k (1 = the shared-budget training)."""
    return work / (name if k == 1 else f"{name}-stage{k}")


def _mmtumor() -> list[str]:
    return [sys.executable, "-m", "mmtumor"]


def make_data(args) -> None:
    subprocess.run(_mmtumor() + ["synth", str(args.data), *DATA_ARGS], check=True)


def _train_one(name: str, args) -> int:
    method, extra, _ = MODELS[name]
    run = args.work / name
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = _mmtumor() + ["train", str(args.data), "--method", method, "-o", str(run), *TRAIN_ARGS, *extra]
    print(" ".join(cmd[2:]), flush=True)
    with open(args.work / f"{name}.log", "w") as log:
        return subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode


def train(args) -> None:
    args.work.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        codes = dict(zip(args.only, pool.map(lambda n: _train_one(n, args), args.only)))
    failed = [n for n, c in codes.items() if c]
    if failed:
        sys.exit(f"training failed for: {', '.join(failed)} (logs in {args.work})")


def finetune(args) -> None:
    """Further stages for the models in FINETUNE, in order, all torch threads (one training at a time).
    A stage whose run already has a best.pt is kept (delete its folder to redo it)."""
    for name in [n for n in args.only if n in FINETUNE]:
        method, extra, _ = MODELS[name]
        for k, stage_args in enumerate(FINETUNE[name], start=2):
            run = stage_run(args.work, name, k)
            if (run / "best.pt").is_file():
                continue
            cmd = _mmtumor() + ["train", str(args.data), "--method", method, "-o", str(run), "--init-from",
                                str(stage_run(args.work, name, k - 1)), *TRAIN_ARGS, *extra, *stage_args]
            print(" ".join(cmd[2:]), flush=True)
            with open(args.work / f"{run.name}.log", "w") as log:
                if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode:
                    sys.exit(f"stage {k} failed for {name} (log: {args.work / f'{run.name}.log'})")


def _last_run(work: Path, name: str) -> Path:
    """The newest finished stage before the post-GPU stages: the last GPU stage, else the last CPU stage."""
    gpu = [gpu_stage_run(work, name, j) for j in range(1, len(GPU_STAGES.get(name, [])) + 1)]
    cpu = [stage_run(work, name, k) for k in range(1, len(FINETUNE.get(name, [])) + 2)]
    done = [r for r in cpu + gpu if (r / "best.pt").is_file()]
    if not done:
        sys.exit(f"{name}: no finished stage in {work} to continue from")
    return done[-1]


def post(args) -> None:
    """CPU stages after the GPU stages, in order; a stage whose run already has its checkpoint is kept."""
    for name in [n for n in args.only if n in POST_GPU_STAGES]:
        init = _last_run(args.work, name) / "best.pt"
        for j, stage in enumerate(POST_GPU_STAGES[name], start=1):
            run = post_stage_run(args.work, name, j)
            if not (run / stage["checkpoint"]).is_file():
                data = args.work / f"phantoms-3000-{stage['cases']}"
                if not data.is_dir():
                    subprocess.run(_mmtumor() + ["synth", str(data), "--cases", str(stage["cases"]), "--seed", "3000",
                                                "--shape", "120", "120", "78", "--randomize", "-j", "2"], check=True)
                cmd = _mmtumor() + post_train_args(name, stage, data, init, run)
                print(" ".join(cmd[2:]), flush=True)
                with open(args.work / f"{run.name}.log", "w") as log:
                    if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode:
                        sys.exit(f"post-GPU stage {j} failed for {name} (log: {args.work / f'{run.name}.log'})")
            init = run / stage["checkpoint"]


def _steps_minutes(run: Path) -> tuple[int, float]:
    """Optimiser steps taken and minutes spent in training epochs, from the run's own log."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    epochs = [r for r in rows if "seconds" in r]
    iters = json.loads((run / "config.json").read_text()).get("iters_per_epoch", 0)
    return len(epochs) * int(iters), sum(r["seconds"] for r in epochs) / 60


def _stage_facts(run: Path) -> tuple[int, float, dict]:
    """Steps, minutes of epochs and training configuration of one stage's run."""
    steps, minutes = _steps_minutes(run)
    return steps, minutes, json.loads((run / "config.json").read_text())


def _generator_version(run: Path) -> str:
    """The phantom generator version of the data a run was trained on (from the phantoms' metadata.json)."""
    data = Path(json.loads((run / "config.json").read_text())["data_dir"])
    meta = next(data.glob("*/metadata.json"), None)
    return json.loads(meta.read_text()).get("generator_version", "?") if meta else "?"


def export(args) -> None:
    import torch

    from mmtumor.models.registry import build_model
    from mmtumor.weights import export_run, update_meta

    torch.set_num_threads(1)
    for name in args.only:
        method, extra, what = MODELS[name]
        run = args.work / name
        if not (run / "best.pt").is_file():
            print(f"skip {name}: no trained run in {run}")
            continue
        version = _generator_version(run)
        n_params = sum(p.numel() for p in build_model(method, "tiny").parameters())
        steps, minutes = _steps_minutes(run)
        desc = (f"Small {what}: tiny preset, {n_params / 1e3:.0f}k parameters, trained for {steps} Adam steps "
                f"(30 epochs x 20, batch 2, 48^3 patches at 2 mm, lr 3e-3, the method's own missing-modality schedule) "
                f"on 40 domain-randomised phantoms. Hardware: the project CPU machine (2-core x86_64, 1 torch thread), "
                f"{minutes:.0f} min of training epochs.")
        hardware = f"CPU, 2 cores (shared), 1 torch thread, ~{minutes:.0f} min of epochs"
        total = steps
        for k in range(2, len(FINETUNE.get(name, [])) + 2):
            stage = stage_run(args.work, name, k)
            if not (stage / "best.pt").is_file():
                break
            steps_k, minutes_k, cfg_k = _stage_facts(stage)
            total += steps_k
            desc += (f" Stage {k}: {steps_k} more steps from stage {k - 1}'s weights ({cfg_k['epochs']} epochs x "
                     f"{cfg_k['iters_per_epoch']}, lr {cfg_k['lr']:g} with poly decay, same data and patches; 2 torch threads, "
                     f"{minutes_k:.0f} min).")
            hardware += f"; stage {k}: 2 torch threads, ~{minutes_k:.0f} min"
            run = stage
        gpu_cases = 0
        for j, stage_cfg in enumerate(GPU_STAGES.get(name, []), start=1):
            stage = gpu_stage_run(args.work, name, j)
            if not (stage / "best.pt").is_file():
                break
            steps_j, minutes_j, cfg_j = _stage_facts(stage)
            total += steps_j
            gpu_cases = max(gpu_cases, stage_cfg["cases"])
            desc += (f" GPU stage {j}: {steps_j} more steps from the previous weights on an {GPU_NAME}, "
                     f"{minutes_j:.1f} min (--time-limit {stage_cfg['minutes']:g}; {stage_cfg['sharing']} trainings sharing the GPU), "
                     f"batch {cfg_j['batch']}, {cfg_j['patch'][0]}^3 patches at 2 mm, lr {cfg_j['lr']:g} with poly decay, "
                     f"on {GPU_DATA.format(cases=stage_cfg['cases'])} (command: {gpu_command(stage_cfg)}).")
            hardware += f"; GPU stage {j}: 1 x H100, {minutes_j:.1f} min"
            run = stage
        checkpoint, n_post = run, 0
        for j, stage_cfg in enumerate(POST_GPU_STAGES.get(name, []), start=1):
            stage = post_stage_run(args.work, name, j)
            if not (stage / stage_cfg["checkpoint"]).is_file():
                break
            steps_j, minutes_j, cfg_j = _stage_facts(stage)
            total += steps_j
            desc += (f" CPU stage {j} after the GPU stages (no GPU lent that session): {steps_j} more steps from the "
                     f"previous weights on the project CPU machine (2 torch threads, {minutes_j:.0f} min, --time-limit "
                     f"{cfg_j['time_limit']:g}), batch {cfg_j['batch']}, {cfg_j['patch'][0]}^3 patches at 2 mm, lr {cfg_j['lr']:g} "
                     f"with poly decay, {stage_cfg['why']}, on the first {stage_cfg['cases']} of the GPU stages' phantoms "
                     f"(seed 3000, generated on the CPU); exported from {stage_cfg['checkpoint']} "
                     f"(command: {post_command(name, stage_cfg)}).")
            hardware += f"; post-GPU CPU stage {j}: 2 torch threads, ~{minutes_j:.0f} min"
            run, n_post = stage, j
            checkpoint = stage / stage_cfg["checkpoint"]
        post_text = f" and the post-GPU CPU stage{'s' if n_post > 1 else ''}" if n_post else ""
        desc += (f" {total} steps in all" + (f" (CPU stages 2-6{post_text} too: a larger budget than the other bundled models)."
                                            if name in FINETUNE else ", the same CPU and GPU stages as the other six "
                                            "non-default models (their GPU steps differ: same minutes, different step times)."))
        desc += (" The GPU stages were short (minutes of a 30-minute device lease), not a full GPU-scale training."
                 if gpu_cases else " No GPU was used for this model, so this is the CPU-scale version.")
        desc += " Recipe: benchmarks/bundled.py, docs/training.md."
        data_text = TRAINING_DATA.format(version=version)
        if gpu_cases:
            data_text = data_text.replace("; no real data", f"; then {GPU_DATA.format(cases=gpu_cases)} (GPU stages); no real data")
        meta = {"description": desc, "training_data": data_text, "hardware": hardware}
        if args.meta_only:  # card text only: tensors, their SHA-256 and the measured metrics stay as they are
            res = update_meta(args.weights, name, **meta)
        else:
            res = export_run(checkpoint, args.weights, name, meta=meta, default=(name == "a2fseg-cpu"))
        print(f"{'updated the card of' if args.meta_only else 'exported'} {name}: {res.weights_path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["data", "train", "finetune", "post", "export"])
    ap.add_argument("--only", nargs="*", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--jobs", type=int, default=2, help="trainings at a time (each one torch thread)")
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--data", type=Path, default=WORK / "phantoms-2mm")
    ap.add_argument("--weights", type=Path, default=ROOT / "weights")
    ap.add_argument("--meta-only", action="store_true", help="export: rewrite only the description/training data/hardware "
                    "of the existing weights (no new tensors, so the benchmark caches and card metrics stay valid)")
    args = ap.parse_args()
    {"data": make_data, "train": train, "finetune": finetune, "post": post, "export": export}[args.step](args)


if __name__ == "__main__":
    main()
