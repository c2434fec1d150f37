#!/usr/bin/env bash
# The octa500_3m ablation (CPU budget of run.py, every row and seed) plus a few
# recipe variants on one GPU: 4 processes, each running the seeds of a row in
# turn on one set of compiled functions. NOT yet run to completion: the one
# attempt (16 processes at once) spent its lease compiling; see accel_run.py.
#
#   OUT=runs/gpu_ablation bash experiments/gpu_ablation.sh [DATA_ROOT]
#
# Jobs run by experiments/accel_run.py (float32, 'highest' matmul / conv
# precision: the CPU run's arithmetic up to summation order). Writes
# $OUT/results.tgz (every job's metrics*.json, metrics.md, roc.png,
# history.jsonl, run.json; the group logs) and $OUT/summary.txt.
# Needs python3 with jax (CUDA), flax, optax, numpy, scipy, scikit-image,
# matplotlib; ml_collections is installed from .whl/ when missing.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_out}"
DATA="${1:-.gpu_data/OCTA500_3M}"
RES=/tmp/gpu_ablation
mkdir -p "$OUT" "$RES"
source experiments/gpu_env.sh   # PYTHONUNBUFFERED, ml_collections from .whl/
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/summary.txt"
nproc | tee -a "$OUT/summary.txt"
jobs=()
# the ablation: rows a b c e f (d = e's stage 1), seeds as the issue asks
for s in 0 1 2; do jobs+=(--job a-s$s:a:$s --job e-s$s:e:$s); done
for s in 0 1; do jobs+=(--job c-s$s:c:$s --job f-s$s:f:$s); done
jobs+=(--job b-s0:b:0)
# recipe variants (row e, seed 0), compared on val
jobs+=(--job v-mse3e-4:e:0:contrast.seg_loss=mse,optimizer.learning_rate=3e-4)
jobs+=(--job v-mse1e-3:e:0:contrast.seg_loss=mse)
jobs+=(--job v-bd3e-4:e:0:optimizer.learning_rate=3e-4)
jobs+=(--job v-crop128:e:0:data.crop_size=128,train.num_steps=850)
jobs+=(--job v-w0.2:e:0:contrast.weight=0.2)
start=$SECONDS
# JOB_BUDGET (s per job): a job still training at 70 % of it stops and evaluates
# what it has (run.json records where); TIME_LIMIT bounds the whole run.
timeout "${TIME_LIMIT:-3600}" python3 experiments/accel_run.py --data_root "$DATA" --out "$RES" \
  --parallel "${PARALLEL:-4}" --workers 1 --time_budget "${JOB_BUDGET:-0}" "${jobs[@]}" \
  2>&1 | tee -a "$OUT/summary.txt"
echo "wall $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
grep -h "test dice" "$RES"/log-*.txt >> "$OUT/summary.txt"
tar czf "$OUT/results.tgz" -C "$RES" .
