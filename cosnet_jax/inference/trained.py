"""A trained model, from a training workdir, a model file or a shipped name.

    trained = load('runs/o3m')            # a workdir: its best checkpoints
    trained = load('octa500-3m.cosnet')   # a model file (cosnet-export)
    trained = load('octa500-3m')          # a model shipped in the package

`TrainedModel` holds the run config (model, refinement, preprocessing,
threshold, spacing), the inference variables of stage 1 and, where the run
has one, stage 2 (numpy), and metadata. `export` writes it as one model file
(model_file.py).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import platform as platform_lib
from typing import Any

import flax
import jax
import ml_collections
import numpy as np

from cosnet_jax import config as config_lib
from cosnet_jax import model_file
from cosnet_jax.checkpoints import StageCheckpoints
from cosnet_jax.errors import CheckpointNotFoundError, ModelFileError

WEIGHTS_DIR = pathlib.Path(__file__).resolve().parents[1] / 'weights'


@dataclasses.dataclass
class TrainedModel:
  """What inference needs: config, stage-1 (+ stage-2) variables, metadata."""
  config: ml_collections.ConfigDict
  stage1: dict                 # {'params': ..., 'batch_stats': ...} numpy
  stage2: dict | None
  meta: dict
  source: str                  # the workdir, file or name it came from

  @property
  def spacing_um(self) -> float:
    """Pixel spacing the network was trained at (0 = unknown)."""
    d = self.config.data
    return float(d.target_spacing_um or d.spacing_um)


def load_run_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  """config.json of a workdir over today's defaults."""
  path = pathlib.Path(workdir) / 'config.json'
  if not path.is_file():
    raise CheckpointNotFoundError(
        f'{path} not found: {workdir} is not a cosnet_jax training workdir')
  return config_lib.with_defaults(json.loads(path.read_text()))


def _variables(raw: dict) -> dict:
  """Inference variables of a restored state: its parameter average
  (`ema_params`, optimizer.ema_decay > 0) where it has one."""
  params = raw.get('ema_params') or raw['params']
  return {'params': jax.device_get(params),
          'batch_stats': jax.device_get(raw.get('batch_stats', {}))}


def load_variables(workdir: str | pathlib.Path, checkpoint: str | int = 'best'
                   ) -> tuple[dict, dict | None, dict]:
  """Restores the inference variables of a run.

  With a stage-2 checkpoint, stage 1 is the best stage-1 checkpoint (the one
  stage 2 was trained on) and `checkpoint` picks the stage-2 one; otherwise
  `checkpoint` picks the stage-1 one.

  Returns:
    (stage1 variables, stage2 variables or None, {'stage1': step, 'stage2': step}).
  """
  root = pathlib.Path(workdir) / 'checkpoints'
  if not (root / 'stage1').is_dir():   # checked first: the managers would create it
    raise CheckpointNotFoundError(f'no checkpoint to load in {root}: no stage1 folder')
  s1 = StageCheckpoints(root / 'stage1')
  s2 = StageCheckpoints(root / 'stage2')
  try:
    if s2.latest_step() is not None or s2.best.latest_step() is not None:
      raw1, step1 = s1.restore_raw('best')
      raw2, step2 = s2.restore_raw(checkpoint)
      return _variables(raw1), _variables(raw2), {'stage1': step1, 'stage2': step2}
    raw1, step1 = s1.restore_raw(checkpoint)
    return _variables(raw1), None, {'stage1': step1, 'stage2': None}
  except FileNotFoundError as e:
    raise CheckpointNotFoundError(f'no checkpoint to load in {root}: {e}') from None
  finally:
    s1.close()
    s2.close()


def from_workdir(workdir: str | pathlib.Path, checkpoint: str | int = 'best',
                 config: ml_collections.ConfigDict | None = None) -> TrainedModel:
  """The run in `workdir` (`config`: this run's config instead of config.json)."""
  workdir = pathlib.Path(workdir)
  config = config if config is not None else load_run_config(workdir)
  s1, s2, steps = load_variables(workdir, checkpoint)
  meta = {'steps': steps, 'workdir': str(workdir.absolute())}
  return TrainedModel(config, s1, s2, meta, str(workdir))


def shipped_models() -> dict[str, pathlib.Path]:
  """{name: file} of the models shipped in the package (cosnet_jax/weights/)."""
  if not WEIGHTS_DIR.is_dir():
    return {}
  return {p.name[:-len(model_file.SUFFIX)]: p
          for p in sorted(WEIGHTS_DIR.glob('*' + model_file.SUFFIX))}


def from_file(path: str | os.PathLike) -> TrainedModel:
  trees, config, meta = model_file.read(path)
  return TrainedModel(config_lib.with_defaults(config), trees['stage1'],
                      trees.get('stage2'), meta, os.fspath(path))


def load(name_or_path: str | os.PathLike, checkpoint: str | int = 'best') -> TrainedModel:
  """A workdir, a model file, or the name of a shipped model.

  Raises:
    ModelFileError / CheckpointNotFoundError naming what was not found.
  """
  p = pathlib.Path(name_or_path)
  if p.is_dir():
    return from_workdir(p, checkpoint)
  if p.is_file():
    return from_file(p)
  shipped = shipped_models()
  if str(name_or_path) in shipped:
    return from_file(shipped[str(name_or_path)])
  names = ', '.join(shipped) or 'none'
  raise ModelFileError(f'model {str(name_or_path)!r} not found: not a file, a workdir or a '
                       f'shipped model name (shipped: {names})')


# Folders of the machine a model was trained on: not stored in a model file
# (a shared file should not carry its author's file system layout).
PATH_FIELDS = ('root', 'cache_dir', 'tfds_dir')


def strip_paths(config: dict) -> dict:
  """The config dict with data.root (also of each data.mix entry) and cache folders blanked."""
  data = config['data']
  for d in [data] + list(data['mix'].values()):
    for f in PATH_FIELDS:
      if f in d:
        d[f] = ''
  for f in ('init_from', 'pretrained'):
    config['model'][f] = ''
  return config


def _param_bytes(tree: Any) -> int:
  return int(sum(np.asarray(x).nbytes for x in jax.tree.leaves(tree)))


def export(trained: TrainedModel, path: str | os.PathLike, extra_meta: dict | None = None
           ) -> dict:
  """Writes `trained` as one model file; returns {'bytes', 'weight_bytes', ...}."""
  trees = {'stage1': trained.stage1}
  if trained.stage2 is not None:
    trees['stage2'] = trained.stage2
  c = trained.config
  meta = dict(trained.meta)
  meta.update({
      'format': model_file.FORMAT_VERSION,
      'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'versions': {'jax': jax.__version__, 'flax': flax.__version__,
                   'numpy': np.__version__, 'python': platform_lib.python_version()},
      'spacing_um': trained.spacing_um,
      'preprocessing': {'intensity': 'value / 255 (8-bit), / 65535 (16-bit), colour to '
                                     'luminance, quantised to 8 bit',
                        'clahe': bool(c.data.clahe), 'clahe_clip_limit': float(c.data.clahe_clip_limit),
                        'clahe_tile_grid': int(c.data.clahe_tile_grid),
                        'pad_multiple': int(c.data.pad_multiple)},
      'threshold': c.eval.threshold,
  })
  meta.update(extra_meta or {})
  if meta.get('workdir'):
    meta['workdir'] = pathlib.Path(meta['workdir']).name
  config = strip_paths(json.loads(c.to_json_best_effort()))
  size = model_file.write(path, trees, config, meta)
  weights = _param_bytes(trees)
  return {'bytes': size, 'weight_bytes': weights, 'ratio': size / max(weights, 1)}


__all__ = ['TrainedModel', 'load', 'from_workdir', 'from_file', 'export', 'shipped_models',
           'load_run_config', 'load_variables', 'ModelFileError']
