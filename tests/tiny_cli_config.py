"""tiny_config as a config file for the command-line tests: both stages, a few steps.

  get_config('')        synthetic data (4 + 2 steps, final report on test)
  get_config('folder')  octa_folder (set --config.data.root)
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from tiny_config import tiny_config  # pylint: disable=g-import-not-at-top,wrong-import-position


def get_config(arg=''):
  c = tiny_config('', steps=4, refine_steps=2)
  c.optimizer.learning_rate = 3e-3
  c.train.eval_every = 2
  c.train.checkpoint_every = 2
  if arg == 'folder':
    c.data.name = 'octa_folder'
    c.data.synthetic.num_train = 0
  return c
