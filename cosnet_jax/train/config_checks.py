"""Config validation: unknown override keys, shape-changing edits on resume."""

import importlib.util
import json
import pathlib
from typing import Any, Iterable

import ml_collections

# Fields whose change alters the shapes of the saved state: a workdir trained
# with other values cannot be resumed.
SHAPE_FIELDS = ('model', 'contrast.queue_len', 'refine.model')


class ConfigError(ValueError):
  """A config key or value the program cannot use (message names the key)."""


def flat_keys(cfg: ml_collections.ConfigDict, prefix: str = '') -> list[str]:
  keys = []
  for k, v in cfg.items():
    path = f'{prefix}{k}'
    if isinstance(v, ml_collections.ConfigDict):
      keys += flat_keys(v, path + '.')
    else:
      keys.append(path)
  return keys


def load_config_file(path: str) -> ml_collections.ConfigDict:
  """Imports a config file and calls its get_config()."""
  file = pathlib.Path(path.split(':')[0])
  if not file.is_file():
    raise ConfigError(f'config file not found: {file}')
  spec = importlib.util.spec_from_file_location('_cosnet_config', file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def check_override_keys(argv: Iterable[str]) -> None:
  """Rejects `--config.a.b=v` overrides whose key is not in the config.

  ml_collections fails on them with a bare AttributeError deep in flag
  parsing; this names the key and lists the valid ones instead.
  """
  argv = list(argv)
  path = None
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      path = arg.split('=', 1)[1]
    elif arg == '--config' and i + 1 < len(argv):
      path = argv[i + 1]
  if path is None:
    return
  valid = flat_keys(load_config_file(path))
  for arg in argv:
    if arg.startswith('--config.'):
      key = arg[len('--config.'):].split('=', 1)[0]
      if key not in valid and not any(v.startswith(key + '.') for v in valid):
        raise ConfigError(
            f'unknown config key {key!r} (from {arg!r}). Valid keys:\n  ' +
            '\n  '.join(valid))


def _get(cfg: Any, dotted: str) -> Any:
  for part in dotted.split('.'):
    if not isinstance(cfg, dict) or part not in cfg:
      return None
    cfg = cfg[part]
  return cfg


def check_resume_compatible(config: ml_collections.ConfigDict,
                            workdir: pathlib.Path) -> None:
  """Compares the shape-changing fields with the config saved in the workdir.

  Writes `workdir/config.json` on the first start.

  Raises:
    ConfigError naming each field whose value differs.
  """
  saved_file = workdir / 'config.json'
  current = json.loads(config.to_json_best_effort())
  if not saved_file.exists():
    saved_file.write_text(json.dumps(current, indent=2, sort_keys=True))
    return
  saved = json.loads(saved_file.read_text())
  diffs = []
  for field in SHAPE_FIELDS:
    a, b = _get(saved, field), _get(current, field)
    if isinstance(a, dict) and isinstance(b, dict):
      for k in sorted(set(a) | set(b)):
        if k not in ('pretrained', 'init_from') and a.get(k) != b.get(k):
          diffs.append(f'{field}.{k}: saved {a.get(k)!r}, now {b.get(k)!r}')
    elif a != b:
      diffs.append(f'{field}: saved {a!r}, now {b!r}')
  for field in ('optimizer.ema_decay', 'refine.optimizer.ema_decay'):
    # On / off changes the saved state (ema_params); the value alone does not.
    a, b = bool(_get(saved, field) or 0), bool(_get(current, field) or 0)
    if a != b:
      diffs.append(f'{field}: saved {_get(saved, field)!r}, now {_get(current, field)!r} '
                   '(the parameter average is kept only when > 0)')
  if diffs:
    raise ConfigError(
        f'workdir {workdir} holds a run whose config differs in fields that '
        'change the model/state shapes, so it cannot be resumed:\n  ' +
        '\n  '.join(diffs) + '\nUse a new --workdir or the saved config.')
