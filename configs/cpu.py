r"""CPU settings: the small COSNet on 128x128 crops, batch 8, 600 + 200 steps;
trains in minutes on 2 CPU cores (synthetic data unless --config.data.* say).

  python -m cosnet_jax.main --config configs/cpu.py --workdir runs/cpu
"""
from cosnet_jax.train.config import base_config, cpu_overrides


def get_config():
  return cpu_overrides(base_config())
