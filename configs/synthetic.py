r"""Quick start: no download. The small COSNet trained on procedurally generated
OCTA images (both stages), then evaluated on the synthetic test split; about
5-10 minutes on a 2-core CPU.

  python -m cosnet_jax.main --config configs/synthetic.py --workdir runs/quickstart
"""
from cosnet_jax.train.config import base_config, cpu_overrides


def get_config():
  c = cpu_overrides(base_config())
  c.data.name = 'synthetic_octa'
  c.train.num_steps = 300
  c.train.eval_every = 100
  c.refine.num_steps = 100
  return c
