#!/usr/bin/env bash
# Does the paper model's refiner leave its identity start without weight decay?
# (experiments/README.md, "The paper's full 300 + 300 epochs".) Two commands of
# one device lease, the second issued as soon as the first returns:
#
#   bash experiments/gpu_refine_probe.sh start DATA_ROOT    # stage 1, 300 epochs (~8 min)
#   bash experiments/gpu_refine_probe.sh finish DATA_ROOT   # stage 2 x 2 (~3 min each)
#
# `start` launches stage 1 in its own process session (it outlives the command)
# and waits up to 570 s for it; `finish` waits for it, then runs stage 2 from the
# kept stage-1 weights with refine weight decay 0 (the question) and 1e-4 (the
# authors', the control) while time is left, and packs everything into
# $OUT/refine_probe.tgz. Needs python3 with jax, flax, optax, numpy, scipy,
# scikit-image, matplotlib; ml_collections from .whl/ if missing.
# EPOCHS (default 300, both stages) and EXTRA (more arguments, e.g.
# "--model cosnet_tiny --dtype float32" for a CPU dry run) change the plan.
set -uo pipefail
cd "$(dirname "$0")/.."
phase=${1:?start or finish}
data=${2:?data root (flat train/val/test folders)}
W=${WORK:-/root/refine_probe}
OUT=${OUT:-$W/out}
mkdir -p "$W" "$OUT"
source experiments/gpu_env.sh   # PYTHONUNBUFFERED, ml_collections from .whl/
E=${EPOCHS:-300}
run=(python3 experiments/gpu_paper_octa500.py --data_root "$data" --eval_every 250 --workers 14 ${EXTRA:-})

wait_for() {  # wait_for FILE SECONDS
  local end=$((SECONDS + $2))
  while [ ! -f "$1" ] && [ $SECONDS -lt $end ]; do sleep 2; done
  [ -f "$1" ]
}

case $phase in
start)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$W/gpu.txt"
  setsid nohup bash -c "${run[*]} --out $W/stage1 --epochs $E --refine_epochs 0 \
      --stage1_out $W/stage1.msgpack > $W/stage1.log 2>&1; echo \$? > $W/stage1.rc" \
      > /dev/null 2>&1 < /dev/null &
  wait_for "$W/stage1.rc" 570 && echo "stage 1 exit $(cat "$W/stage1.rc")" \
    || echo "stage 1 still running after ${SECONDS}s: run 'finish' now"
  tail -5 "$W/stage1.log"
  ;;
finish)
  wait_for "$W/stage1.rc" 300 || { echo 'stage 1 did not finish'; tail "$W/stage1.log"; exit 1; }
  [ "$(cat "$W/stage1.rc")" = 0 ] || { echo 'stage 1 failed'; tail -30 "$W/stage1.log"; exit 1; }
  for wd in 0.0 0.0001; do
    [ $SECONDS -lt 300 ] || { echo "no time left for weight decay $wd"; break; }
    timeout 280 "${run[@]}" --out "$W/refine_wd$wd" --stage1_from "$W/stage1.msgpack" \
      --refine_epochs $E --refine_time_budget 170 \
      --set refine.optimizer.weight_decay=$wd 2>&1 | tee "$W/refine_wd$wd.log" | grep -v '^I'
  done
  rm -f "$W/stage1.msgpack"
  tar czf "$OUT/refine_probe.tgz" --exclude out -C "$(dirname "$W")" "$(basename "$W")"
  ls -la "$OUT"
  ;;
*) echo "unknown phase $phase: start or finish"; exit 1 ;;
esac
