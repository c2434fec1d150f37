r"""The paper's configuration: ResNeSt-50 COSNet, Adam 3e-4 / wd 1e-4, poly 0.9,
batch 8, 300 epochs of stage 1 + 300 epochs of refinement, contrast weight 0.05
(thin x0.1), rotation +-10 deg, CLAHE, on the synthetic data (set a dataset
with the per-dataset configs instead, e.g. octa500_3m). Needs an accelerator.

  python -m cosnet_jax.main --config configs/default.py --workdir runs/paper
"""
from cosnet_jax.config import base_config


def get_config(arg=None):
  del arg
  return base_config()
