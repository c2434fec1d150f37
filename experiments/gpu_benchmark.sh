#!/usr/bin/env bash
# Paper-model (ResNeSt-50 COSNet) benchmark on one GPU with bfloat16 compute.
# Under 5 minutes on an H100 / H200. Writes to $OUT (default ./gpu_out):
#   gpu_paper_bf16.json      config batch (8) of 320x320 (304 padded), bf16
#   gpu_paper_bf16_b32.json  batch 32, if time is left (throughput)
#   gpu.txt, gpu_benchmark.log
#
#   bash experiments/gpu_benchmark.sh
#
# Needs python3 with jax (CUDA), flax, optax, numpy, absl-py, PyYAML.
# ml_collections (pure python) is installed from .whl/ml_collections-*.whl into
# /tmp/site when it is missing; nothing else is imported on this path (no clu,
# tensorflow-datasets, grain: data loading is not timed here).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_out}"
mkdir -p "$OUT"
source experiments/gpu_env.sh   # PYTHONUNBUFFERED, ml_collections from .whl/
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c 'import jax, flax, optax; print("jax", jax.__version__, jax.devices(), "flax", flax.__version__, "optax", optax.__version__)' | tee -a "$OUT/gpu.txt"

start=$SECONDS
common=(--models paper --dtype bfloat16 --scaling '' --no_shares --no_pair --steps 20)
timeout 200 python3 experiments/benchmark.py --out "$OUT/gpu_paper_bf16.json" "${common[@]}" \
  --timeout 190 2>&1 | tee "$OUT/gpu_benchmark.log"
left=$((280 - (SECONDS - start)))
if [ "$left" -gt 90 ]; then
  timeout "$left" python3 experiments/benchmark.py --out "$OUT/gpu_paper_bf16_b32.json" \
    "${common[@]}" --batch 32 --timeout $((left - 5)) 2>&1 | tee -a "$OUT/gpu_benchmark.log"
else
  echo "skipped batch 32: only ${left}s left" | tee -a "$OUT/gpu_benchmark.log"
fi
echo "total ${SECONDS}s"
