r"""One table of trained models on every held-out OCTA set available: `cosnet-crossdomain`.

  cosnet-crossdomain --model octa500-3m --model runs/general --data ../shared/data \
      --out experiments/results/cross_domain
  cosnet-crossdomain --model mine=my.cosnet --folder mine=/path/to/folder:test@12.5 --out t

Sets, where their folder exists under `--data` (the layout of ../shared/data):
  octa500_3m_test    OCTA-500 3M test split (50 images, 304 px, 9.87 um/px)
  octa500_6m_val     OCTA-500 6M val split (20 images, 400 px, 15 um/px)
  octa500_6m_sample  the OCTA-500 6M subjects of the release sample, when no
                     OCTA500_6M folder is there (5 training subjects, 400 px)
  rossa_val          ROSSA val (100 images, 320 px)
plus each `--folder KEY=DIR[:SPLIT][@SPACING_UM]` (an octa_folder layout; split
default 'test', else every image of a single image/label pair). A set with a
known spacing is resampled to each model's spacing (where the model knows
it); `--no_rescale` evaluates every set at its own pixel size. Writes
OUT.md (mean per-image Dice, Otsu threshold) and OUT.json (every metric,
per-image Dice).
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import numpy as np
from absl import flags

from cosnet_jax import cli
from cosnet_jax.config import data_config
from cosnet_jax.data.datasets import SPACING_UM
from cosnet_jax.errors import UserError
from cosnet_jax.evaluation import metrics as metrics_lib
from cosnet_jax.inference import evaluate_split
from cosnet_jax.inference import trained as trained_lib

FLAGS = flags.FLAGS


@dataclasses.dataclass
class HeldOut:
  key: str
  name: str
  root: str
  split: str
  spacing_um: float
  description: str


def shared_sets(data_dir: str) -> list[HeldOut]:
  """The held-out sets present in a ../shared/data-like folder."""
  d = pathlib.Path(data_dir)
  six_m = HeldOut('octa500_6m_val', 'octa500/6m_ilm_opl_largevessel', str(d / 'OCTA500_6M'),
                  'val', SPACING_UM['octa500/6m'], 'OCTA-500 6M val')
  if not os.path.isdir(six_m.root):   # its release-sample subjects are training subjects
    six_m = HeldOut('octa500_6m_sample', 'octa500/6m_ilm_opl_largevessel',
                    str(d / 'OCTA-500-official-sample'), 'train', SPACING_UM['octa500/6m'],
                    'OCTA-500 6M release sample')
  sets = [
      HeldOut('octa500_3m_test', 'octa500/3m_ilm_opl_largevessel', str(d / 'OCTA500_3M'),
              'test', SPACING_UM['octa500/3m'], 'OCTA-500 3M test'),
      six_m,
      HeldOut('rossa_val', 'rossa', str(d / 'ROSSA'), 'val', SPACING_UM['rossa'], 'ROSSA val'),
  ]
  return [s for s in sets if os.path.isdir(s.root)]


def parse_folder(spec: str) -> HeldOut:
  """'KEY=DIR[:SPLIT][@SPACING_UM]' -> HeldOut."""
  key, eq, rest = spec.partition('=')
  if not eq or not key:
    raise UserError(f'--folder {spec!r}: expected KEY=DIR[:SPLIT][@SPACING_UM]')
  spacing = 0.0
  if '@' in rest:
    rest, _, text = rest.rpartition('@')
    try:
      spacing = float(text)
    except ValueError:
      raise UserError(f'--folder {spec!r}: spacing {text!r} is not a number') from None
  root, _, split = rest.partition(':')
  if not os.path.isdir(root):
    raise UserError(f'--folder {spec!r}: folder {root!r} does not exist')
  if not split:
    split = 'train' if os.path.isdir(os.path.join(root, 'image')) else 'test'
  return HeldOut(key, 'octa_folder', root, split, spacing, f'{key} ({root})')


def parse_model(spec: str) -> tuple[str, str]:
  """'LABEL=MODEL' or 'MODEL' -> (label for the table, model file / name / workdir)."""
  label, eq, source = spec.partition('=')
  if eq and label and '/' not in label and not os.path.exists(spec):
    return label, source
  return spec, spec


def set_data_config(s: HeldOut):
  """The data config of a held-out set: every image of its split, no hold-out."""
  base = data_config()
  base.name, base.root, base.spacing_um = s.name, s.root, s.spacing_um
  base.holdout_fraction = 0.0
  return base


def evaluate_models(models: list[str], sets: list[HeldOut], *, tta: str = 'none',
                    rescale: bool = True, stage1_only: bool = False) -> dict:
  """{'sets': [...], 'models': [{'model', 'results': {set: {...}}}]}."""
  table = {'sets': [dataclasses.asdict(s) for s in sets], 'tta': tta, 'rescale': rescale,
           'stage1_only': stage1_only, 'models': []}
  for spec in models:
    label, source = parse_model(spec)
    trained = trained_lib.load(source)
    if stage1_only:   # the first stage's map (ablation row d of a row e run)
      trained = dataclasses.replace(trained, stage2=None)
    row = {'model': label, 'source': source, 'spacing_um': trained.spacing_um, 'results': {}}
    for s in sets:
      base = set_data_config(s)
      data_cfg = evaluate_split.dataset_config(trained, s.name, s.root,
                                               s.spacing_um if rescale else 0.0, base=base)
      if not rescale:
        data_cfg.target_spacing_um = 0.0
      pred = evaluate_split.model_maps(trained, data_cfg, s.split, tta=tta)
      final = pred['outputs'][-1]
      per = [dict(id=r['id'], **metrics_lib.image_metrics(
          r[final], r['mask'], None, threshold=trained.config.eval.threshold))
             for r in pred['results']]
      summary = {m: float(np.mean([p[m] for p in per])) for m in metrics_lib.SUMMARY_METRICS}
      summary['dice_std'] = float(np.std([p['dice'] for p in per]))
      row['results'][s.key] = {'images': len(per), 'mean': summary,
                               'per_image_dice': {p['id']: p['dice'] for p in per}}
    table['models'].append(row)
  return table


def markdown(table: dict) -> str:
  sets = table['sets']
  head = '| model | ' + ' | '.join(f"{s['description']} ({s['split']})" for s in sets) + ' |'
  stage = ', first stage only' if table['stage1_only'] else ''
  lines = [f"Mean per-image Dice (Otsu threshold, test-time augmentation: {table['tta']}, "
           f"resampled to the model's spacing: {'yes' if table['rescale'] else 'no'}"
           f"{stage}).", '',
           head, '|' + '---|' * (len(sets) + 1)]
  for row in table['models']:
    cells = []
    for s in sets:
      r = row['results'].get(s['key'])
      cells.append(f"{r['mean']['dice']:.4f} ± {r['mean']['dice_std']:.4f} "
                   f"(n={r['images']})" if r else '-')
    lines.append(f"| {row['model']} | " + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def define_flags():
  flags.DEFINE_multi_string('model', [], 'A model file, shipped name or workdir, optionally '
                            'LABEL=MODEL (the label names its row; repeatable).')
  flags.DEFINE_string('data', None, 'Folder holding OCTA500_3M, OCTA500_6M (flat layouts) '
                      'or OCTA-500-official-sample (the release layout, OCTA_6M), and ROSSA '
                      '(those present are used).')
  flags.DEFINE_multi_string('folder', [], 'More held-out sets: KEY=DIR[:SPLIT][@SPACING_UM].')
  flags.DEFINE_string('out', None, 'Output path without extension (.md and .json written).')
  flags.DEFINE_string('tta', 'none', "Test-time augmentation of every model: 'none', "
                      "'hflip', 'flips', 'flips_shifts'.")
  flags.DEFINE_bool('rescale', True, "Resample sets of known spacing to each model's.")
  flags.DEFINE_bool('stage1_only', False, 'Score the first stage\'s map (without the '
                    'refinement stage) of every model.')


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS.model:
    raise UserError('give at least one --model')
  if not FLAGS.out:
    raise UserError('--out is required')
  if FLAGS.data is None and not FLAGS.folder:
    raise UserError('give --data=DIR (a folder holding OCTA500_3M, '
                    'OCTA-500-official-sample, ROSSA) and/or --folder KEY=DIR')
  if FLAGS.data is not None and not os.path.isdir(FLAGS.data):
    raise UserError(f'--data={FLAGS.data!r}: no such folder')
  sets = ((shared_sets(FLAGS.data) if FLAGS.data else [])
          + [parse_folder(f) for f in FLAGS.folder])
  if not sets:
    raise UserError(f'no held-out set found under --data={FLAGS.data!r} (expected '
                    'OCTA500_3M, OCTA-500-official-sample or ROSSA in it) and no --folder')
  table = evaluate_models(FLAGS.model, sets, tta=FLAGS.tta, rescale=FLAGS.rescale,
                          stage1_only=FLAGS.stage1_only)
  out = pathlib.Path(FLAGS.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.with_suffix('.json').write_text(json.dumps(table, indent=1) + '\n')
  text = markdown(table)
  out.with_suffix('.md').write_text(text)
  print(text)
  print(f'written: {out}.md, {out}.json')


def cli_main():
  cli.run(main, define_flags)


if __name__ == '__main__':
  cli_main()
