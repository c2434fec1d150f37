r"""The paper's configuration on the synthetic data: ResNeSt-50 COSNet, Adam
3e-4 / wd 1e-4, poly 0.9, batch 8, 300 epochs of stage 1 + 300 epochs of
refinement, contrast weight 0.05 (thin x0.1), rotation +-10 deg, CLAHE (every
value: cosnet_jax/config.py). Set a dataset with the per-dataset recipes
instead, e.g. octa500_3m. Needs an accelerator.

  python -m cosnet_jax.main --config configs/default.py --workdir runs/paper
"""
from cosnet_jax import config as config_lib


def get_config(arg=None):
  del arg
  return config_lib.base_config()
