r"""ROSE-2 (centreline labels; thick = thin = gt), metrics with a 1-pixel
dilation tolerance.

  python -m cosnet_jax.main --config configs/rose2.py:cpu --workdir runs/rose2 \
      --config.data.root=/path/to/ROSE
"""
from cosnet_jax import recipes


def get_config(arg=None):
  return recipes.dataset_config('rose2', arg, tolerance=1)
