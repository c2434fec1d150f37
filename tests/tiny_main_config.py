"""tiny_config as a config file for `python -m cosnet_jax.main` in tests.

The schedule and optimizer are tiny_run's (6 steps, lr 3e-3), so an
in-process run of this config reuses the train step the test run compiled for
tiny_run; `max_steps_per_run` stops it after 3 steps (exit status 0). No
validation split and no stage 2: these runs only compare training steps.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from tiny_config import tiny_config  # pylint: disable=g-import-not-at-top,wrong-import-position


def get_config():
  c = tiny_config('')
  c.optimizer.learning_rate = 3e-3
  c.refine.num_steps = 0
  c.eval.final_split = ''
  c.data.val_split = ''
  c.train.max_steps_per_run = 3
  return c
