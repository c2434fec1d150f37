r"""The README tables from the committed results (experiments/results/).

  python experiments/tables.py                   # every table, markdown
  python experiments/tables.py octa500_3m_6000   # one

Each results/<table>/<row>-s<seed>/ holds a run's final report (metrics.json:
the refined output, metrics_coarse.json: stage 1) and run.json (the command
and machine). Row (d) is row (e)'s stage-1 output (the same run). Per table:
mean ± std over seeds of the per-image mean Dice on the report's split, the
number of seeds, and each row against row (a): Welch's t over seeds and the
number of images a row's seed-mean beats row (a)'s on.
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


def main(argv) -> None:
  names = argv or sorted(p.name for p in RESULTS.iterdir()
                         if p.is_dir() and p.name.startswith('octa500_3m'))
  print('\n'.join(table(n) for n in names))


if __name__ == '__main__':
  main(sys.argv[1:])
