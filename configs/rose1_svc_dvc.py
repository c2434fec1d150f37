r"""ROSE-1 SVC+DVC (both plexuses): gt of SVC_DVC, thick / thin branches from
the SVC thick_gt / thin_gt (what the authors' released code trains with).

  python -m cosnet_jax.main --config configs/rose1_svc_dvc.py:cpu --workdir runs/rose1_both \
      --config.data.root=/path/to/ROSE
"""
from cosnet_jax import recipes


def get_config(arg=None):
  return recipes.dataset_config('rose1/svc_dvc', arg)
