"""Start-up of a training run: the checks and decisions made before anything is written.

`plan(config)` checks the config's values, decodes and checks every dataset
of the run (all problems reported at once), resolves each split the run
needs (a held-out validation split where a dataset has none; the final
report on val where there is no test split) and returns them as a `Plan`.
Only then does the loop write the run files (`write_run_files`: config.json,
config_history.jsonl, splits.json).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import pathlib
import sys

import ml_collections
from absl import logging

from cosnet_jax.data import mixture, source
from cosnet_jax.errors import ConfigError
from cosnet_jax.train import config_checks


@dataclasses.dataclass
class Plan:
  """What start-up decided: the datasets, their splits and the final report."""
  sources: list                 # [(key, data config)]
  val: dict                     # key -> val split expression (validated datasets only)
  final: list                   # [(key, data config, split)] reported at the end
  num_train: int                # training examples of the first dataset
  train_size: tuple             # (h, w) of training batches
  splits: dict                  # key -> {split: [ids]} (written to splits.json)
  notes: list                   # what was decided, logged at the start


def num_train_steps(num_steps: int, num_epochs: int, batch_size: int,
                    num_train_examples: int) -> int:
  """`num_steps` when set (> 0), else `num_epochs` over the training split."""
  if num_steps > 0:
    return int(num_steps)
  if num_epochs > 0:
    return int(math.ceil(num_epochs * num_train_examples / batch_size))
  return 0


def _field(i: int, key: str) -> str:
  return 'config.data.' if i == 0 else f'config.data.mix.{key}.'


def plan(config: ml_collections.ConfigDict) -> Plan:
  """Checks the config and the data; decides the splits. Writes nothing.

  Raises:
    ConfigError / DataError naming the key, file or folder.
  """
  config_checks.check_config(config)
  sources = mixture.sources(config.data)
  val, final, splits, notes, sizes = {}, [], {}, [], []
  for i, (key, cfg) in enumerate(sources):
    info = source.dataset_info(cfg)     # decodes and checks every pair
    sizes.append(info['train_size'])
    n_train = source.split_num_examples(cfg, cfg.train_split)
    if n_train == 0 and float(cfg.weight) > 0:
      raise ConfigError(f'{_field(i, key)}train_split={cfg.train_split!r}: no images')
    splits[key] = {'train': source.split_ids(cfg, cfg.train_split)}
    views = source.views(cfg)
    if cfg.val_split and source.has_split(cfg, cfg.val_split):
      val[key] = cfg.val_split
      splits[key]['val'] = source.split_ids(cfg, cfg.val_split)
      if views.held_out:
        notes.append(f'{key}: no {cfg.val_split!r} split; {len(splits[key]["val"])} training '
                     f'images held out for validation (data.holdout_fraction='
                     f'{cfg.holdout_fraction}, seed {cfg.holdout_seed})')
    elif cfg.val_split or i == 0:
      notes.append(f'{key}: no validation split ({cfg.val_split!r}): not validated')
    want = config.eval.final_split if i == 0 else cfg.test_split
    if not want:
      continue
    if source.has_split(cfg, want):
      final.append((key, cfg, want))
    elif key in val and i == 0:
      final.append((key, cfg, val[key]))
      notes.append(f'{key}: no {want!r} split; the final report uses {val[key]!r} '
                   '(the split used for selection, so it is optimistic)')
    elif i == 0:
      notes.append(f'{key}: no {want!r} and no validation split; no final report')
    if final and final[-1][0] == key:
      splits[key]['final'] = source.split_ids(cfg, final[-1][2])
  if not val:
    notes.append('no dataset has a validation split: no checkpoint selection, the last '
                 'checkpoint of each stage is used')
  if config.data.select_on != 'mean' and config.data.select_on not in val:
    raise ConfigError(f'config.data.select_on={config.data.select_on!r}: expected '
                      f"'mean' or a validated dataset key ({', '.join(val) or 'none'})")
  first = sources[0][1]
  return Plan(sources, val, final, source.split_num_examples(first, first.train_split),
              tuple(max(s[d] for s in sizes) for d in range(2)), splits, notes)


def write_run_files(config, workdir: pathlib.Path, run_plan: Plan) -> None:
  """config.json (this run's), config_history.jsonl (what changed), splits.json."""
  current = json.loads(config.to_json_best_effort())
  path = workdir / 'config.json'
  previous = json.loads(path.read_text()) if path.exists() else None
  changed = config_checks.config_diff(previous, current) if previous is not None else None
  entry = {'time': datetime.datetime.now().isoformat(timespec='seconds'),
           'argv': sys.argv, 'changed': changed if previous is not None else 'first start'}
  if previous is None or changed:
    with open(workdir / 'config_history.jsonl', 'a') as f:
      f.write(json.dumps(entry, default=str) + '\n')
  if changed:
    logging.warning('config differs from the run in this workdir (kept: no shape changes): %s',
                    '; '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in changed.items()))
  tmp = path.with_suffix('.tmp')
  tmp.write_text(json.dumps(current, indent=2, sort_keys=True))
  tmp.replace(path)
  (workdir / 'splits.json').write_text(json.dumps(run_plan.splits, indent=1) + '\n')
