r"""ROSE-1 SVC (superficial plexus, 304x304): thick branch on thick_gt, thin
branch on thin_gt, evaluated against gt. ROSE has no validation split: val is a
fixed hold-out of train (see docs/data.md).

  python -m cosnet_jax.main --config configs/rose1_svc.py --workdir runs/rose1_svc \
      --config.data.root=/path/to/ROSE-1
  # small CPU model on crops:
  python -m cosnet_jax.main --config configs/rose1_svc.py:cpu --workdir runs/rose1_svc_cpu \
      --config.data.root=/path/to/ROSE-1
"""
from cosnet_jax.train.dataset_configs import dataset_config


def get_config(variant=''):
  return dataset_config('rose1/svc', '/path/to/ROSE-1', variant=variant)
