r"""ROSE-1 DVC (deep plexus, centreline labels): one label (thick = thin = gt),
metrics with a 1-pixel dilation tolerance (ROSE practice).

  python -m cosnet_jax.main --config configs/rose1_dvc.py:cpu --workdir runs/rose1_dvc \
      --config.data.root=/path/to/ROSE
"""
from cosnet_jax import recipes


def get_config(arg=None):
  return recipes.dataset_config('rose1/dvc', arg, tolerance=1)
