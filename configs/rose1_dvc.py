r"""ROSE-1 DVC (deep plexus, centreline labels): both branches get gt;
metrics with a 1-pixel dilation tolerance (ROSE practice).

  python -m cosnet_jax.main --config configs/rose1_dvc.py --workdir runs/rose1_dvc \
      --config.data.root=/path/to/ROSE-1
  # small CPU model on crops:
  python -m cosnet_jax.main --config configs/rose1_dvc.py:cpu --workdir runs/rose1_dvc_cpu \
      --config.data.root=/path/to/ROSE-1
"""
from cosnet_jax.train.dataset_configs import dataset_config


def get_config(variant=''):
  return dataset_config('rose1/dvc', '/path/to/ROSE-1', variant=variant, tolerance=1)
