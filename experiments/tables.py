r"""The README tables from the committed results (experiments/results/).

  python experiments/tables.py                   # every table, markdown
  python experiments/tables.py octa500_3m_6000   # one
  python experiments/tables.py octa_general      # rows of the mixture, every held-out set
  python experiments/tables.py octa_general_all  # the same, every public training set
  python experiments/tables.py rossa_alone       # ROSSA alone, the same held-out sets

Each results/<table>/<row>-s<seed>/ holds a run's final report (metrics.json:
the refined output, metrics_coarse.json: stage 1) and run.json (the command
and machine). Row (d) is row (e)'s stage-1 output (the same run). Per table:
mean ± std over seeds of the per-image mean Dice on the report's split, the
number of seeds, and each row against row (a): Welch's t over seeds and the
number of images a row's seed-mean beats row (a)'s on.

A table whose runs hold cross_domain.json (`cosnet-crossdomain` of the run)
instead of metrics.json is read per held-out set: mean ± std over seeds of
each set's mean per-image Dice, and each row against row (a) with Welch's t.
Row (d) there is the same config without its refinement stage.
"""
from __future__ import annotations

import json
import math
import pathlib
import sys

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / 'results'


def per_image(path: pathlib.Path) -> dict:
  return {m['id']: m['dice'] for m in json.loads(path.read_text())['per_image']}


def load(table: str) -> dict:
  """{row: [per-image dice dict per seed]}."""
  rows: dict = {}
  for run in sorted((RESULTS / table).iterdir()):
    if not (run / 'metrics.json').is_file():
      continue
    row = run.name.split('-s')[0]
    rows.setdefault(row, []).append(per_image(run / 'metrics.json'))
    if row == 'e' and (run / 'metrics_coarse.json').is_file():
      rows.setdefault('d', []).append(per_image(run / 'metrics_coarse.json'))
  return rows


def welch_t(a, b) -> float:
  a, b = np.asarray(a), np.asarray(b)
  if len(a) < 2 or len(b) < 2:
    return math.nan
  se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
  return float((a.mean() - b.mean()) / se) if se > 0 else math.nan


def table(name: str) -> str:
  rows = load(name)
  means = {r: [float(np.mean(list(s.values()))) for s in seeds] for r, seeds in rows.items()}
  lines = [f'### {name}', '', '| row | Dice mean ± std over seeds | seeds | vs (a): diff, Welch t, images better |',
           '|---|---|---|---|']
  ref = rows.get('a')
  for r in sorted(rows):
    m = means[r]
    cell = '-'
    if ref and r != 'a':
      ids = sorted(ref[0])
      mine = np.mean([[s[i] for i in ids] for s in rows[r]], axis=0)
      base = np.mean([[s[i] for i in ids] for s in ref], axis=0)
      cell = (f'{np.mean(m) - np.mean(means["a"]):+.4f}, t {welch_t(m, means["a"]):.2f}, '
              f'{int((mine > base).sum())} of {len(ids)}')
    std = f' ± {np.std(m, ddof=1):.4f}' if len(m) > 1 else ''
    lines.append(f'| {r} | {np.mean(m):.4f}{std} | {len(m)} | {cell} |')
  return '\n'.join(lines) + '\n'


def cross_domain_table(name: str) -> str:
  """Rows x held-out sets from results/<name>/<row>-s<seed>/cross_domain.json."""
  rows: dict = {}
  sets: list = []
  for run in sorted((RESULTS / name).iterdir()):
    f = run / 'cross_domain.json'
    if not f.is_file():
      continue
    t = json.loads(f.read_text())
    sets = sets or [(s['key'], s['description']) for s in t['sets']]
    res = t['models'][0]['results']
    rows.setdefault(run.name.split('-s')[0], []).append(
        {k: res[k]['mean']['dice'] for k, _ in sets if k in res})
  head = '| row | seeds | ' + ' | '.join(d for _, d in sets) + ' |'
  lines = [f'### {name}', '', head, '|---|---|' + '---|' * len(sets)]
  for r in sorted(rows):
    cells = []
    for k, _ in sets:
      v = [x[k] for x in rows[r] if k in x]
      cell = f'{np.mean(v):.4f}' + (f' ± {np.std(v, ddof=1):.4f}' if len(v) > 1 else '')
      if 'a' in rows and r != 'a':
        ref = [x[k] for x in rows['a'] if k in x]
        cell += f' ({np.mean(v) - np.mean(ref):+.4f}, t {welch_t(v, ref):.2f})'
      cells.append(cell)
    lines.append(f'| {r} | {len(rows[r])} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def main(argv) -> None:
  names = argv or sorted(p.name for p in RESULTS.iterdir()
                         if p.is_dir() and p.name.startswith(('octa500_3m', 'octa_general', 'rossa_alone')))
  out = []
  for n in names:
    has_metrics = any((RESULTS / n).glob('*/metrics.json'))
    out.append(table(n) if has_metrics else cross_domain_table(n))
  print('\n'.join(out))


if __name__ == '__main__':
  main(sys.argv[1:])
