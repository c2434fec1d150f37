"""Builds the per-dataset configs of configs/*.py.

Each dataset config is the paper's setup on that dataset; the `:cpu` variant
(`--config configs/X.py:cpu`) uses the small model on crops instead.
"""

from cosnet_jax.train.config import base_config, cpu_overrides


def dataset_config(name: str, root: str, *, variant: str = '',
                   train_split: str = 'train', val_split: str = 'val',
                   test_split: str = 'test', tolerance: int = 0):
  """Paper (variant '') or CPU (variant 'cpu') config for one dataset."""
  c = base_config()
  if variant == 'cpu':
    c = cpu_overrides(c)
  elif variant:
    raise ValueError(f"config variant {variant!r}: expected '' or 'cpu'")
  c.data.name = name
  c.data.root = root
  c.data.train_split = train_split
  c.data.val_split = val_split
  c.data.test_split = test_split
  c.eval.tolerance = tolerance
  c.eval.final_split = test_split
  return c
