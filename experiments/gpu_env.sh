# Sourced (not run) by the experiments/gpu_*.sh scripts from the repository root:
# unbuffered Python output, quiet TensorFlow logs, and ml_collections (pure
# Python, absent from the lent GPU machines' image) installed from
# .whl/ml_collections-*.whl into /tmp/site when it cannot be imported.
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
if ! python3 -c 'import ml_collections' 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target /tmp/site .whl/ml_collections-*.whl || { echo 'need .whl/ml_collections-*.whl'; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
