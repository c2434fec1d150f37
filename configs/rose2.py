r"""ROSE-2 (Heidelberg, 512x512, centreline labels): both branches get gt;
metrics with a 1-pixel dilation tolerance.

  python -m cosnet_jax.main --config configs/rose2.py --workdir runs/rose2 \
      --config.data.root=/path/to/ROSE-2
  # small CPU model on crops:
  python -m cosnet_jax.main --config configs/rose2.py:cpu --workdir runs/rose2_cpu \
      --config.data.root=/path/to/ROSE-2
"""
from cosnet_jax.train.dataset_configs import dataset_config


def get_config(variant=''):
  return dataset_config('rose2', '/path/to/ROSE-2', variant=variant, tolerance=1)
