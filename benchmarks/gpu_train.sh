#!/usr/bin/env bash
# GPU stage of the bundled weights: fine-tune every shipped model at once on one GPU, on fresh randomised phantoms.
#
#   bash benchmarks/gpu_train.sh OUT_DIR [MINUTES] [CASES] [JOBS...]
#
# Each JOB is NAME:METHOD:INIT:PATCH:BATCH:LR[:EXTRA ARGS with commas], e.g.
#   a2fseg-cpu:a2fseg:a2fseg-cpu:48:8:1e-3     (INIT = bundled weights name, run folder or .pt)
#   a2fseg-soft:a2fseg:a2fseg-cpu:64:8:1e-3:--soft-labels   (soft 2 mm targets: their own cache, also prebuilt)
# With no JOBS, every bundled model continues from its shipped weights (see DEFAULT_JOBS).
# All jobs train concurrently (tiny models leave an H100 mostly idle one at a time) under --time-limit MINUTES,
# so the learning-rate schedule of each ends inside the budget. Outputs: OUT_DIR/runs.tar.gz (each run's
# log, metrics and weights-only best.pt) and OUT_DIR/last.tar.gz (weights-only last.pt), small enough to bring back, OUT_DIR/gpu_train.log.
# Phantoms: CASES cases of `mmtumor synth --randomize --shape 120 120 78 --seed 3000` (never the benchmark's
# held-out seeds 900000+, and never real scans).
set -euo pipefail
OUT=${1:?OUT_DIR}
MINUTES=${2:-6}
CASES=${3:-360}
shift $(( $# < 3 ? $# : 3 ))
DEFAULT_JOBS=(
  "a2fseg-cpu:a2fseg:a2fseg-cpu:48:8:1e-3"
  "a2fseg-avg-cpu:a2fseg-avg:a2fseg-avg-cpu:48:8:1e-3"
  "a2fseg-medmap-cpu:a2fseg:a2fseg-medmap-cpu:48:8:1e-3:--align,medmap"
  "robustseg-cpu:robustseg:robustseg-cpu:48:8:1e-3"
  "hemis-cpu:hemis:hemis-cpu:48:8:1e-3"
  "mmformer-cpu:mmformer:mmformer-cpu:48:8:1e-3"
  "unet-cpu:unet:unet-cpu:48:8:1e-3"
  "master-assistant-cpu:master-assistant:master-assistant-cpu:48:8:1e-3"
)
JOBS=("$@")
[ ${#JOBS[@]} -eq 0 ] && JOBS=("${DEFAULT_JOBS[@]}")
WORK=${WORK:-/tmp/mmtumor-gpu}
DATA=$WORK/phantoms
mkdir -p "$OUT" "$WORK/runs"
LOG=$OUT/gpu_train.log
export PYTHONUNBUFFERED=1 MMTUMOR_HOME=$WORK/home
PY=${PYTHON:-python3}
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  t0=$(date +%s)
  $PY -m mmtumor synth "$DATA" --cases "$CASES" --seed 3000 --shape 120 120 78 --randomize -j "$(nproc)" 2>&1 | tail -1
  echo "synth: $(( $(date +%s) - t0 )) s"
  # one shared preprocessing cache (and one with soft targets if a job asks for them), built in parallel before the
  # trainings start (they all find it warm)
  SOFT=0
  for job in "${JOBS[@]}"; do [[ "$job" == *--soft-labels* ]] && SOFT=1; done
  $PY - "$DATA" "$WORK" "$SOFT" <<'EOF'
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from mmtumor.io.dataset import cases_from_manifest, load_or_create_manifest
from mmtumor.train.cache import build_cache, dataset_key
data, work = Path(sys.argv[1]), Path(sys.argv[2])
man = load_or_create_manifest(data, work / "manifest.json", seed=0)
cases = cases_from_manifest(man, "train") + cases_from_manifest(man, "val")[:10]
for soft in [False, True][: 1 + int(sys.argv[3])]:
    cache = work / "home" / "cache" / dataset_key(cases, 2.0, soft)
    n = len(cases)
    with ProcessPoolExecutor() as ex:
        list(ex.map(build_cache, [[c] for c in cases], [cache] * n, [None] * n, [2.0] * n, [soft] * n))
    print("cache:", cache, n, "cases")
EOF
  echo "prepared: $(( $(date +%s) - t0 )) s"
  pids=()
  for job in "${JOBS[@]}"; do
    IFS=: read -r name method init patch batch lr extra <<<"$job"
    extra_args=()
    [ -n "${extra:-}" ] && IFS=, read -r -a extra_args <<<"$extra"
    cmd=($PY -m mmtumor train "$DATA" --method "$method" -o "$WORK/runs/$name" --init-from "$init" --preset tiny
         --epochs 1000 --iters-per-epoch "${ITERS:-100}" --patch "$patch" "$patch" "$patch" --batch "$batch" --lr "$lr"
         --device "${DEVICE:-cuda}" --workers "${WORKERS:-1}" --val-every 10 --target-spacing 2 --time-limit "$MINUTES" "${extra_args[@]}")
    echo "${cmd[*]}"
    "${cmd[@]}" >"$WORK/runs/$name.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || echo "job $p failed"; done
  echo "trained: $(( $(date +%s) - t0 )) s"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader || true
  # weights-only checkpoints (no optimizer state) so every run comes back in one small archive
  $PY "$(dirname "$0")/weights_only.py" "$WORK/runs"
  for f in "$WORK"/runs/*.log; do echo "== $f"; tail -4 "$f"; done
  (cd "$WORK" && tar czf "$OUT/runs.tar.gz" --exclude=last.pt runs manifest.json && tar czf "$OUT/last.tar.gz" runs/*/last.pt)
  ls -la "$OUT"
} 2>&1 | tee "$LOG"
