"""tiny_config as a config file for `python -m cosnet_jax.main` in tests."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from tiny_config import tiny_config  # pylint: disable=g-import-not-at-top,wrong-import-position


def get_config():
  c = tiny_config('')
  c.refine.num_steps = 0
  c.eval.final_split = ''
  c.train.num_steps = 3
  c.train.eval_every = 1000
  return c
