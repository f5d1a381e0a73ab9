#!/usr/bin/env bash
# Real-data GPU stage: train the paper-size preset of every bundled method on the real BraTS cases at 1 mm, all at
# once on one GPU, inside a lease (docs/training.md, "Real data on a GPU").
#
#   bash benchmarks/gpu_train_real.sh OUT_DIR [MINUTES] [DATA] [JOBS...]
#
# DATA: a BraTS-layout folder with splits.json (default ../shared/data/real-train; on a device machine, a copy
# carried into the repository). Training reads DATA/splits.json: the 'val' cases choose each best.pt and never
# train; ALL36=1 trains on every case instead (a final refit once the recipe is fixed: its card must then say that
# its val figures came from the split model).
# Each JOB is NAME:METHOD:PRESET:PATCH:BATCH:LR[:EXTRA ARGS with commas], e.g.
#   a2fseg-real:a2fseg:paper:96:2:1e-3
#   robustseg-real:robustseg:paper:80:1:1e-4:--dropout-schedule,bernoulli
# With no JOBS, every bundled method at its paper preset (DEFAULT_JOBS). All jobs run concurrently under
# --time-limit MINUTES (the learning-rate schedule ends inside the budget), sharing one preprocessing cache at
# SPACING mm (default 1) built before they start. Outputs: OUT_DIR/runs.tar.gz (each run's log, metrics, config and
# weights-only best.pt: small enough to bring back), OUT_DIR/gpu_train_real.log.
# Toy scale on a CPU (what tests/test_bench_scripts.py runs): DEVICE=cpu SPACING=2 ITERS=1 with tiny jobs.
set -euo pipefail
OUT=${1:?OUT_DIR}
MINUTES=${2:-7}
DATA=${3:-$(cd "$(dirname "$0")/.." && pwd)/../shared/data/real-train}
shift $(( $# < 3 ? $# : 3 ))
DEFAULT_JOBS=(
  "a2fseg-real:a2fseg:paper:96:2:1e-3"
  "a2fseg-avg-real:a2fseg-avg:paper:96:2:1e-3"
  "a2fseg-medmap-real:a2fseg:paper:96:2:1e-3:--align,medmap"
  "robustseg-real:robustseg:paper:80:1:1e-4"
  "hemis-real:hemis:paper:96:2:1e-3"
  "mmformer-real:mmformer:paper:96:1:2e-4"
  "unet-real:unet:paper:96:2:1e-2"
  "master-assistant-real:master-assistant:paper:96:2:1e-3"
)
JOBS=("$@")
[ ${#JOBS[@]} -eq 0 ] && JOBS=("${DEFAULT_JOBS[@]}")
SPACING=${SPACING:-1}
WORK=${WORK:-/tmp/mmtumor-gpu-real}
mkdir -p "$OUT" "$WORK/runs"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/gpu_train_real.log
export PYTHONUNBUFFERED=1 MMTUMOR_HOME=$WORK/home
PY=${PYTHON:-python3}
SPLIT_ARGS=(--split-file "$DATA/splits.json")
if [ "${ALL36:-0}" = 1 ]; then
  echo '{"val": [], "note": "final refit on every case"}' > "$WORK/all.json"
  SPLIT_ARGS=(--split-file "$WORK/all.json" --val-every 0)
fi
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  t0=$(date +%s)
  # one preprocessing cache for every job, built in parallel before they start (the cache key is the trainer's)
  $PY - "$DATA" "$WORK" "$SPACING" "${SPLIT_ARGS[1]}" <<'EOF'
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from mmtumor.io.dataset import cases_from_manifest, load_or_create_manifest
from mmtumor.train.cache import build_cache, dataset_key
import dataclasses
from mmtumor.train.config import TrainConfig
data, work, spacing, split = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
man = load_or_create_manifest(data, work / "manifest.json", split_file=split)
cases = cases_from_manifest(man, "train") + cases_from_manifest(man, "val")[: {f.name: f.default for f in dataclasses.fields(TrainConfig)}["val_max_cases"]]
cache = work / "home" / "cache" / dataset_key(cases, spacing, False)
n = len(cases)
with ProcessPoolExecutor() as ex:
    list(ex.map(build_cache, [[c] for c in cases], [cache] * n, [None] * n, [spacing] * n))
print("cache:", cache, n, "cases", f"({len(man['split']['train'])} train, {len(man['split']['val'])} val)")
EOF
  echo "prepared: $(( $(date +%s) - t0 )) s"
  pids=()
  for job in "${JOBS[@]}"; do
    IFS=: read -r name method preset patch batch lr extra <<<"$job"
    extra_args=()
    [ -n "${extra:-}" ] && IFS=, read -r -a extra_args <<<"$extra"
    cmd=($PY -m mmtumor train "$DATA" "${SPLIT_ARGS[@]}" --method "$method" -o "$WORK/runs/$name" --preset "$preset"
         --epochs 1000 --iters-per-epoch "${ITERS:-50}" --patch "$patch" "$patch" "$patch" --batch "$batch" --lr "$lr"
         --device "${DEVICE:-cuda}" --workers "${WORKERS:-2}" --target-spacing "$SPACING" --time-limit "$MINUTES"
         "${extra_args[@]}")
    [ "${ALL36:-0}" = 1 ] || cmd+=(--val-every "${VAL_EVERY:-10}")
    echo "${cmd[*]}"
    "${cmd[@]}" >"$WORK/runs/$name.log" 2>&1 &
    pids+=($!)
  done
  failed=0
  for p in "${pids[@]}"; do wait "$p" || { echo "job $p failed"; failed=$((failed + 1)); }; done
  echo "trained: $(( $(date +%s) - t0 )) s, $failed job(s) failed"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader || true
  # weights-only checkpoints (no optimizer state) so every run comes back in one small archive
  $PY "$(dirname "$0")/weights_only.py" "$WORK/runs"
  for f in "$WORK"/runs/*.log; do echo "== $f"; tail -4 "$f"; done
  keep=(--exclude=last.pt)
  [ "${ALL36:-0}" = 1 ] && keep=()  # a refit without validation has no best.pt: its last.pt is the model
  (cd "$WORK" && tar czf "$OUT/runs.tar.gz" "${keep[@]}" runs manifest.json)
  ls -la "$OUT"
} 2>&1 | tee "$LOG"
