r"""Held-out Dice beside training Dice of trained runs: does an option fit the vessels better?

  python experiments/fit_table.py --data ../shared/data --out experiments/results/resolution \
      base=runs/gen_base_s0 hires=runs/gen_hires_s0 ...

Per run (LABEL=WORKDIR or a model file): per-image Dice (Otsu, one pass, the
final output) on OCTA-500 3M test, OCTA-500 6M val and ROSSA val (the
held-out sets of cosnet-crossdomain), and on the first --train_images
training images of each (3M train, 6M train, ROSSA train_manual): a model
that underfits scores on its training images what it scores held out.
Writes OUT/<label>.json per run and prints the markdown table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:   # `python experiments/...` from anywhere
  sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from cosnet_jax import cross_domain  # noqa: E402
from cosnet_jax.evaluation import metrics  # noqa: E402
from cosnet_jax.inference import evaluate_split, trained as trained_lib  # noqa: E402

# held-out set key -> (the training split of the same dataset, its label)
TRAIN_SPLITS = {'octa500_3m_test': ('train', '3M train'),
                'octa500_6m_val': ('train', '6M train'),
                'rossa_val': ('train_manual', 'ROSSA train')}


def dice(trained, held, split: str) -> dict:
  data_cfg = evaluate_split.dataset_config(trained, held.name, held.root, held.spacing_um,
                                           base=cross_domain.set_data_config(held))
  pred = evaluate_split.model_maps(trained, data_cfg, split)
  final = pred['outputs'][-1]
  per = {r['id']: metrics.image_metrics(r[final], r['mask'], None,
                                        threshold=trained.config.eval.threshold)['dice']
         for r in pred['results']}
  return {'mean': float(np.mean(list(per.values()))), 'images': len(per), 'per_image': per}


def main():
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('runs', nargs='+', help='LABEL=WORKDIR (or a model file)')
  ap.add_argument('--data', required=True)
  ap.add_argument('--out', required=True)
  ap.add_argument('--train_images', type=int, default=40)
  args = ap.parse_args()
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  sets = [s for s in cross_domain.shared_sets(args.data) if s.key in TRAIN_SPLITS]
  rows = {}
  for spec in args.runs:
    label, source = spec.split('=', 1)
    path = out / f'{label}.json'
    if path.is_file():                    # measured before: read back
      rows[label] = json.loads(path.read_text())
      continue
    trained = trained_lib.load(source)
    row = {'source': source, 'steps': trained.meta.get('steps'), 'held_out': {}, 'train': {}}
    for s in sets:
      row['held_out'][s.key] = dice(trained, s, s.split)
      split, _ = TRAIN_SPLITS[s.key]
      train = dataclasses.replace(s, split=f'{split}[:{args.train_images}]')
      row['train'][s.key] = dice(trained, train, train.split)
    path.write_text(json.dumps(row, indent=1) + '\n')
    rows[label] = row
  keys = [s.key for s in sets]
  print('| run | ' + ' | '.join(f'{s.description} (train)' for s in sets) + ' |')
  print('|---|' + '---|' * len(sets))
  for label, row in rows.items():
    cells = [f"{row['held_out'][k]['mean']:.4f} ({row['train'][k]['mean']:.4f})" for k in keys]
    print(f'| {label} | ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
  main()
