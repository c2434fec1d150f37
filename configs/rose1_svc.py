r"""ROSE-1 SVC (superficial plexus, 304x304): thick branch on thick_gt, thin
branch on thin_gt, evaluated against gt. ROSE has no validation split: val is a
fixed hold-out of train (see docs/data.md). Arguments as configs/octa500_3m.py.

  python -m cosnet_jax.main --config configs/rose1_svc.py:cpu --workdir runs/rose1_svc \
      --config.data.root=/path/to/ROSE
"""
from cosnet_jax import recipes


def get_config(arg=None):
  return recipes.dataset_config('rose1/svc', arg)
