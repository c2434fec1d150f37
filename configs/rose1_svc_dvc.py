r"""ROSE-1 SVC+DVC (inner retinal plexus): the authors' released setting.

  python -m cosnet_jax.main --config configs/rose1_svc_dvc.py --workdir runs/rose1_svc_dvc \
      --config.data.root=/path/to/ROSE-1
  # small CPU model on crops:
  python -m cosnet_jax.main --config configs/rose1_svc_dvc.py:cpu --workdir runs/rose1_svc_dvc_cpu \
      --config.data.root=/path/to/ROSE-1
"""
from cosnet_jax.train.dataset_configs import dataset_config


def get_config(variant=''):
  return dataset_config('rose1/svc_dvc', '/path/to/ROSE-1', variant=variant)
