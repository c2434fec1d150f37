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
from cosnet_jax.evaluation.metrics import SUMMARY_METRICS
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
  _check_ranges(config)


def _need(ok: bool, key: str, value, expected: str) -> None:
  if not ok:
    raise ConfigError(f'config.{key}={value!r}: expected {expected}')


def _pair(value) -> tuple[float, float]:
  lo, hi = (float(v) for v in value)
  return lo, hi


def _check_ranges(config) -> None:
  """Fields whose wrong value would otherwise silently change what a run does."""
  d, t, r = config.data, config.train, config.refine
  _need(isinstance(d.crop_size, int) and d.crop_size >= 0, 'data.crop_size', d.crop_size,
        'an int >= 0 (0 = whole images)')
  _need(d.pad_multiple >= 32 and d.pad_multiple % 32 == 0, 'data.pad_multiple',
        d.pad_multiple, 'a positive multiple of 32 (the network downsamples 32x)')
  for key in ('crop_vessel_prob', 'augment.blur_prob', 'augment.noise_prob',
              'augment.stripes_prob', 'augment.lowres_prob'):
    value = d[key.split('.')[0]][key.split('.')[1]] if '.' in key else d[key]
    _need(0.0 <= value <= 1.0, f'data.{key}', value, 'a probability in [0, 1]')
  _need(0.0 <= d.holdout_fraction < 1.0, 'data.holdout_fraction', d.holdout_fraction,
        'a fraction in [0, 1) (0 = no hold-out)')
  _need(0.0 <= d.intensity_jitter < 1.0, 'data.intensity_jitter', d.intensity_jitter,
        'a value in [0, 1)')
  _need(0.0 <= d.rotation_deg <= 180.0, 'data.rotation_deg', d.rotation_deg, 'degrees in [0, 180]')
  _need(d.augment.gamma >= 0, 'data.augment.gamma', d.augment.gamma, '>= 0')
  for key in ('blur_sigma', 'noise_std'):
    lo, hi = _pair(d.augment[key])
    _need(0 <= lo <= hi, f'data.augment.{key}', d.augment[key], '(lo, hi) with 0 <= lo <= hi')
  lo, hi = _pair(d.augment.lowres_factor)
  _need(1 <= lo <= hi, 'data.augment.lowres_factor', d.augment.lowres_factor,
        '(lo, hi) with 1 <= lo <= hi')
  _need(d.augment.stripes_max >= 1, 'data.augment.stripes_max', d.augment.stripes_max, '>= 1')
  lo, hi = _pair(d.scale_range)
  _need(0 < lo <= hi, 'data.scale_range', d.scale_range, '(lo, hi) with 0 < lo <= hi')
  for key in ('spacing_um', 'target_spacing_um'):
    _need(d[key] >= 0, f'data.{key}', d[key], 'micrometres per pixel >= 0 (0 = unknown / off)')
  _need(d.clahe_clip_limit > 0, 'data.clahe_clip_limit', d.clahe_clip_limit, '> 0')
  _need(d.clahe_tile_grid >= 1, 'data.clahe_tile_grid', d.clahe_tile_grid, '>= 1')
  _need(d.num_workers >= 1, 'data.num_workers', d.num_workers, '>= 1')
  _need(d.prefetch >= 0, 'data.prefetch', d.prefetch, '>= 0 (0 = none)')
  if d.name == 'synthetic_octa':
    _need(d.synthetic.size >= 32, 'data.synthetic.size', d.synthetic.size, '>= 32 pixels')
    for key in ('num_train', 'num_val', 'num_test'):
      _need(d.synthetic[key] >= 0, f'data.synthetic.{key}', d.synthetic[key], '>= 0')
  for key, sec in (('train', t), ('refine', r)):
    _need(sec.num_steps > 0 or (sec.num_steps in (-1, 0) and sec.num_epochs > 0)
          or (key == 'refine' and sec.num_steps == 0), f'{key}.num_steps', sec.num_steps,
          '> 0, or -1 with num_epochs > 0' + (' (0 skips stage 2)' if key == 'refine' else ''))
  for key in ('max_steps_per_run',):
    _need(t[key] == -1 or t[key] > 0, f'train.{key}', t[key], '-1 (off) or > 0')
  _need(t.time_budget_s == -1 or t.time_budget_s > 0, 'train.time_budget_s', t.time_budget_s,
        '-1 (off) or seconds > 0')
  for section in ('optimizer', 'refine.optimizer'):
    o = config.optimizer if section == 'optimizer' else config.refine.optimizer
    for key in ('weight_decay', 'poly_power', 'grad_clip_norm'):
      _need(o[key] >= 0, f'{section}.{key}', o[key], '>= 0')
    _need(o.warmup_steps >= 0, f'{section}.warmup_steps', o.warmup_steps, '>= 0')
  m = r.model
  _need(len(m.channels) == 2 and all(c >= 1 for c in m.channels), 'refine.model.channels',
        m.channels, 'two widths >= 1')
  _need(m.neighbourhood >= 1 and m.neighbourhood % 2 == 1, 'refine.model.neighbourhood',
        m.neighbourhood, 'an odd size >= 1')
  _need(m.init_std > 0, 'refine.model.init_std', m.init_std, '> 0')
  e = config.eval
  _need(e.batch_size >= 1, 'eval.batch_size', e.batch_size, '>= 1')
  _need(e.tolerance >= 0, 'eval.tolerance', e.tolerance, 'pixels >= 0')
  _need(e.select_metric in SUMMARY_METRICS, 'eval.select_metric', e.select_metric,
        f'one of {", ".join(SUMMARY_METRICS)}')


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
