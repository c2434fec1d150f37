"""Config validation: values, and shape-changing edits on resume."""
from __future__ import annotations

import json
import pathlib
from typing import Any

import jax
import ml_collections

from cosnet_jax import compilation
from cosnet_jax import config as config_lib
from cosnet_jax.contrast.config import check_contrast_config
from cosnet_jax.errors import ConfigError
from cosnet_jax.inference import tta as tta_lib
from cosnet_jax.models.config import resolve_model_config
from cosnet_jax.models.formulation import formulation

# Fields whose change alters the shapes of the saved state: a workdir trained
# with other values cannot be resumed.
SHAPE_FIELDS = ('model', 'contrast.queue_len', 'refine.model')
# Fields that say where to find things, not what to compute: not "changes".
_WHERE_FIELDS = ('model.pretrained', 'model.init_from')


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first field whose value cannot work."""
  resolve_model_config(config.model)
  check_contrast_config(config.contrast)
  formulation(config.platform, jax.default_backend())
  compilation.compiler_options(config.platform, jax.default_backend())
  tta_lib.check_mode(config.eval.tta, 'config.eval.tta')
  for what in ('train.batch_size', 'refine.batch_size'):
    section, field = what.split('.')
    n, bs = jax.device_count(), int(config[section][field])
    if bs <= 0 or bs % n:
      raise ConfigError(
          f'config.{what}={bs} must be a positive multiple of the number of '
          f'devices ({n}: {jax.process_count()} process(es) x '
          f'{jax.local_device_count()} local device(s))')
  for section in ('optimizer', 'refine.optimizer'):
    o = config.optimizer if section == 'optimizer' else config.refine.optimizer
    if o.name not in ('adam', 'adamw'):
      raise ConfigError(f"config.{section}.name={o.name!r}: expected 'adam' or 'adamw'")
    if not 0.0 <= float(o.ema_decay) < 1.0:
      raise ConfigError(f'config.{section}.ema_decay={o.ema_decay}: expected 0 (off) or a '
                        'value in (0, 1)')
    if float(o.learning_rate) <= 0:
      raise ConfigError(f'config.{section}.learning_rate={o.learning_rate}: expected > 0')
  if config.refine.loss not in ('mse', 'bce'):
    raise ConfigError(f"config.refine.loss={config.refine.loss!r}: expected 'mse' or 'bce'")
  if config.eval.threshold != 'otsu':
    try:
      t = float(config.eval.threshold)
    except (TypeError, ValueError):
      t = -1.0
    if not 0.0 < t < 1.0:
      raise ConfigError(f"config.eval.threshold={config.eval.threshold!r}: expected 'otsu' "
                        'or a number in (0, 1)')
  lo, hi = (float(v) for v in config.data.scale_range)
  if not 0 < lo <= hi:
    raise ConfigError(f'config.data.scale_range=({lo}, {hi}): expected 0 < lo <= hi')
  if config.data.reader not in ('files', 'tfds'):
    raise ConfigError(f"config.data.reader={config.data.reader!r}: expected 'files' or 'tfds'")
  for key in ('log_every', 'eval_every', 'checkpoint_every'):
    if int(config.train[key]) < 1:
      raise ConfigError(f'config.train.{key}={config.train[key]}: expected >= 1')


def _get(cfg: Any, dotted: str) -> Any:
  for part in dotted.split('.'):
    if not isinstance(cfg, dict) or part not in cfg:
      return None
    cfg = cfg[part]
  return cfg


def config_diff(saved: dict, current: dict) -> dict:
  """{'a.b': (saved value, current value)} of every leaf that differs."""
  a, b = config_lib.flat_items(saved), config_lib.flat_items(current)
  norm = lambda v: list(v) if isinstance(v, tuple) else v
  return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
          if norm(a.get(k)) != norm(b.get(k))}


def check_resume_compatible(config: ml_collections.ConfigDict,
                            workdir: pathlib.Path) -> None:
  """Compares the shape-changing fields with the config saved in the workdir.

  Writes nothing (config.json is written after all start-up checks).

  Raises:
    ConfigError naming each field whose value differs, with both values.
  """
  saved_file = pathlib.Path(workdir) / 'config.json'
  if not saved_file.exists():
    return
  saved = config_lib.with_defaults(json.loads(saved_file.read_text())).to_dict()
  current = json.loads(config.to_json_best_effort())
  saved = json.loads(json.dumps(saved, default=list))
  diffs = []
  for field in SHAPE_FIELDS:
    a, b = _get(saved, field), _get(current, field)
    if isinstance(a, dict) and isinstance(b, dict):
      for k in sorted(set(a) | set(b)):
        if f'{field}.{k}' not in _WHERE_FIELDS and a.get(k) != b.get(k):
          diffs.append(f'config.{field}.{k}: saved {a.get(k)!r}, now {b.get(k)!r}')
    elif a != b:
      diffs.append(f'config.{field}: saved {a!r}, now {b!r}')
  for field in ('optimizer.ema_decay', 'refine.optimizer.ema_decay'):
    # On / off changes the saved state (ema_params); the value alone does not.
    a, b = bool(_get(saved, field) or 0), bool(_get(current, field) or 0)
    if a != b:
      diffs.append(f'config.{field}: saved {_get(saved, field)!r}, now '
                   f'{_get(current, field)!r} (the parameter average is kept only when > 0)')
  if diffs:
    raise ConfigError(
        f'workdir {workdir} holds a run with other shapes, so it cannot be resumed: '
        + '; '.join(diffs) + '. Use a new --workdir, or the saved config.')
