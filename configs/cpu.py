r"""The CPU recipe (cosnet_jax.recipes.cpu_recipe) on the synthetic data: the
small COSNet on 96x96 crops, BCE + Dice at lr 1e-3, 1500 + 300 steps.

  python -m cosnet_jax.main --config configs/cpu.py --workdir runs/cpu
  python -m cosnet_jax.main --config configs/cpu.py:row=a --workdir runs/cpu_a
"""
from cosnet_jax import recipes


def get_config(arg=None):
  v = recipes.parse_arg(arg, **recipes.VARIANT_KEYS)
  v.cpu = True
  return recipes.apply_variant(recipes.base_config(), v)
