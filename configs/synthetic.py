r"""Quick start: no download. The CPU recipe on procedurally generated OCTA
images, shortened to 160 + 40 steps, then evaluated on the synthetic test
split; a few minutes on a 2-core CPU.

  python -m cosnet_jax.main --config configs/synthetic.py --workdir runs/quickstart
"""
from cosnet_jax import recipes


def get_config(arg=None):
  v = recipes.parse_arg(arg, **recipes.VARIANT_KEYS)
  v.cpu = True
  c = recipes.apply_variant(recipes.base_config(), v)
  c.data.name = 'synthetic_octa'
  c.train.num_steps = v.steps or 160
  c.train.eval_every = 80
  c.train.checkpoint_every = 80
  c.train.log_every = 20
  c.refine.num_steps = 40 if v.refine_steps < 0 else v.refine_steps
  if v.row in ('a', 'b', 'c', 'd'):
    c.refine.num_steps = 0
  return c
