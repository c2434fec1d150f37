"""The datasets of a run: `config.data` itself and each `config.data.mix` entry.

A mix entry (`config.mix_source`) sets only the fields of `config.MIX_FIELDS`
(name, root, splits, CLAHE, spacing, weight, hold-out); everything else
(crops, augmentation, padding, workers) is shared with config.data. Each
dataset is validated on its own val split; training draws each batch slot's
dataset with the datasets' weights (pipeline.py).
"""
from __future__ import annotations

import ml_collections

from cosnet_jax.config import MIX_FIELDS
from cosnet_jax.errors import ConfigError


def source_key(data_cfg) -> str:
  """Short name of a dataset in logs: data.key, else from the name
  ('octa500/3m_ilm_opl_largevessel' -> 'octa500_3m', 'rose1/svc' -> 'rose1_svc')."""
  if data_cfg.key:
    return data_cfg.key
  base, _, config = data_cfg.name.partition('/')
  if base == 'octa500' and config:
    return f'octa500_{config.split("_")[0]}'
  return f'{base}_{config}' if config else base


def sources(data_cfg) -> list[tuple[str, ml_collections.ConfigDict]]:
  """[(key, data config of one dataset)]: config.data itself, then each mix entry.

  A mix entry's config is config.data with the entry's MIX_FIELDS set
  (placeholders left at None keep config.data's value), its key, the config
  path that messages about its fields name (`config_path`), and no mix.
  """
  base = data_cfg.to_dict()
  base.pop('mix', None)
  primary = ml_collections.ConfigDict(dict(base, config_path='config.data'))
  out = [(source_key(data_cfg), primary)]
  for key, entry in data_cfg.mix.items():
    d = dict(base)
    for field, value in entry.items():
      if field not in MIX_FIELDS:
        raise ConfigError(f'config.data.mix.{key}.{field}: not a per-dataset field; '
                          f'per-dataset fields: {", ".join(MIX_FIELDS)}')
      if value is not None:
        d[field] = value
    d['key'] = key
    d['config_path'] = f'config.data.mix.{key}'
    if key in [k for k, _ in out]:
      raise ConfigError(f'config.data.mix.{key}: the key is used twice')
    out.append((key, ml_collections.ConfigDict(d)))
  for key, cfg in out:
    if float(cfg.weight) < 0:
      raise ConfigError(f'{cfg.config_path}.weight={cfg.weight}: expected >= 0')
  if sum(float(c.weight) for _, c in out) <= 0:
    raise ConfigError('config.data.weight and the mix weights are all 0: nothing to train on')
  return out
