r"""Quick start: no download. The small COSNet trained on procedurally generated
OCTA images (96x96 crops, 160 + 40 steps), then evaluated on the synthetic
test split; under 10 minutes on a 2-core CPU.

  python -m cosnet_jax.main --config configs/synthetic.py --workdir runs/quickstart
"""
from cosnet_jax.train.config import base_config, cpu_overrides


def get_config():
  c = cpu_overrides(base_config())
  c.data.name = 'synthetic_octa'
  c.data.crop_size = 96
  c.train.num_steps = 160
  c.train.eval_every = 80
  c.train.checkpoint_every = 80
  c.refine.num_steps = 40
  c.train.log_every = 20
  return c
