#!/usr/bin/env bash
# The whole octa500_3m ablation (rows a-f; 3 seeds for a and e, which also
# gives row d), then rossa and synthetic_to_real, then the tables.
# Each run: about the budget in experiments/run.py (BUDGET) on a 2-core CPU.
# Runs that finished are skipped on a rerun (their results folder exists).
#
#   bash experiments/ablation.sh [DATA_ROOT_OCTA500_3M]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${1:-../shared/data/OCTA500_3M}"
run() {  # experiment, tag, args...
  local exp=$1 tag=$2; shift 2
  if [ -f "experiments/results/$exp/$tag/metrics.json" ]; then
    echo "skip $exp/$tag (done)"; return
  fi
  python experiments/run.py "$exp" "$@"
}
for seed in 0 1 2; do
  run octa500_3m "e-s$seed" --row e --seed "$seed" --data_root "$ROOT"
  run octa500_3m "a-s$seed" --row a --seed "$seed" --data_root "$ROOT"
done
for row in b c f; do
  run octa500_3m "$row-s0" --row "$row" --seed 0 --data_root "$ROOT"
done
run rossa e-s0
run synthetic_to_real zero_shot-s0 --part zero_shot --data_root "$ROOT"
run synthetic_to_real finetune-s0 --part finetune --data_root "$ROOT"
python experiments/summarize.py
