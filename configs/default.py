r"""The paper's configuration: ResNeSt-50 COSNet, Adam 3e-4 / wd 1e-4, poly 0.9,
batch 8, 300 epochs of stage 1 + 300 epochs of refinement, contrast weight 0.05
(thin x0.1), rotation +-10 deg, CLAHE. Needs an accelerator; dataset defaults to
the synthetic one, set it with --config.data.name / --config.data.root.

  python -m cosnet_jax.main --config configs/default.py --workdir runs/paper \
      --config.data.name=octa500/3m_ilm_opl_largevessel \
      --config.data.root=../shared/data/OCTA500_3M
"""
from cosnet_jax.train.config import base_config


def get_config():
  return base_config()
