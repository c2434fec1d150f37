r"""Do models trained on OCTA-500 3M carry to other fields of view and devices?

  python experiments/cross_domain.py --runs "e=RUN_S0,RUN_S1,RUN_S2" \
      --runs "f=RUN_S0,RUN_S1,RUN_S2" [--targets 3m,6m,rossa] \
      [--shared ../shared/data] [--reuse EARLIER.json] \
      --out experiments/results/diagnose/NAME.json

Evaluates the selected checkpoints of every run (`cosnet_jax.evaluate`, one
pass unless a run is given as WORKDIR@MODE with a test-time augmentation
mode, e.g. "fs=RUN@flips_shifts"; per-image Otsu threshold as in the tables)
on each target and writes,
per row, the per-seed mean Dice of the final output and of stage 1, and each
row against the first row: difference of seed means, Welch's t over seeds and
the number of target images where the row is better (each image averaged
over its seeds).

Targets (the folders of `../shared/data`; a user points --shared elsewhere):
  3m     OCTA-500 3M test (50 images, 3x3 mm, 304^2): the training domain.
  6m     OCTA-500 6M, the 5 subjects of the official-layout sample (10001-10005,
         official 6M train ids, never seen): 6x6 mm at 400^2, so every vessel
         is about half as wide in pixels. Same device, same label definition
         (large vessels), ILM-OPL projection.
  rossa  ROSSA val (100 images, 320^2): another device and another
         annotation protocol (its labels include smaller vessels than
         OCTA-500's large-vessel labels), so absolute Dice is low by
         construction; the comparison between rows is what it is for.
Nothing here trains or selects: it reads checkpoints. `--reuse` takes the
per-image results of (workdir, target) pairs from earlier outputs of this
script instead of evaluating them again (the same trained runs: a run
trained again in the same workdir must not be reused).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # cosnet_jax from this checkout

TARGETS = {
    '3m': dict(dataset='', sub='OCTA500_3M', split='test'),     # the run's own dataset
    '6m': dict(dataset='octa500/6m_ilm_opl_largevessel', sub='OCTA-500-official-sample',
               split='train'),
    'rossa': dict(dataset='rossa', sub='ROSSA', split='val'),
}


def _welch():
  spec = importlib.util.spec_from_file_location('summarize', ROOT / 'experiments' / 'summarize.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.welch


def parse_runs(items: list[str]) -> dict[str, list[str]]:
  """['e=A,B', 'f=C'] -> {'e': ['A', 'B'], 'f': ['C']} (order kept)."""
  rows = {}
  for item in items:
    name, sep, paths = item.partition('=')
    if not sep or not name or not paths:
      raise SystemExit(f'--runs {item!r}: expected ROW=WORKDIR[,WORKDIR...]')
    rows[name] = [p for p in paths.split(',') if p]
  return rows


def split_run(run: str) -> tuple[str, str]:
  """'WORKDIR' -> (WORKDIR, 'none'); 'WORKDIR@MODE' -> (WORKDIR, MODE), MODE
  a test-time augmentation mode of `cosnet_jax.evaluation.tta`."""
  from cosnet_jax.evaluation import tta as tta_lib  # pylint: disable=g-import-not-at-top
  workdir, sep, mode = run.rpartition('@')
  if not sep or os.sep in mode or '/' in mode:   # an '@' inside the path
    return run, 'none'
  if mode not in tta_lib.MODES:
    raise SystemExit(f'--runs {run!r}: test-time augmentation {mode!r} is not one of '
                     f'{sorted(tta_lib.MODES)}')
  return workdir, mode


def evaluate(run: str, target: str, shared: pathlib.Path) -> dict:
  """{'final': [per-image Dice], 'coarse': [...], 'ids': [...]} of one run on one target.

  run: a workdir, or WORKDIR@MODE to evaluate with that test-time augmentation.
  """
  t = TARGETS[target]
  workdir, tta = split_run(run)
  cmd = [sys.executable, '-m', 'cosnet_jax.evaluate', f'--workdir={workdir}',
         f'--split={t["split"]}', '--overlays=false', f'--tta={tta}']
  cmd.append(f'--data_root={shared / t["sub"]}')
  if t['dataset']:
    cmd.append(f'--dataset={t["dataset"]}')
  env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
  found = re.findall(r'^report: (.+)$', proc.stdout, flags=re.M)
  if proc.returncode != 0 or not found:
    tail = (proc.stdout + proc.stderr)[-2000:]
    raise SystemExit(f'evaluate failed for {workdir} on {target} (exit {proc.returncode}):\n{tail}')
  out = pathlib.Path(found[-1].strip())
  final = json.loads((out / 'metrics.json').read_text())['per_image']
  coarse_file = out / 'metrics_coarse.json'
  coarse = json.loads(coarse_file.read_text())['per_image'] if coarse_file.exists() else final
  return {'ids': [str(r['id']) for r in final], 'final': [r['dice'] for r in final],
          'coarse': [r['dice'] for r in coarse], 'report': str(out)}


def load_reuse(files: list[str]) -> dict[tuple[str, str], dict]:
  """(workdir, target) -> evaluate() result, from earlier outputs of main()."""
  found = {}
  for f in files:
    try:
      earlier = json.loads(pathlib.Path(f).read_text())
      per_row = earlier['per_image']
    except (OSError, ValueError, KeyError) as e:
      raise SystemExit(f'--reuse {f}: not an output of cross_domain.py ({e})')
    for targets in per_row.values():
      for target, runs in targets.items():
        for r in runs:
          found[(r['workdir'], target)] = r
  return found


def compare(results: dict, output: str = 'final') -> list[dict]:
  """Rows of {row, target, seeds, per_seed, mean, std, vs_first: {...}}.

  results: {row: {target: [evaluate() of each seed]}}; the first row is the
  reference of `vs_first` (None for itself).
  """
  welch = _welch()
  rows = list(results)
  table = []
  for target in dict.fromkeys(t for r in rows for t in results[r]):
    ref = results[rows[0]].get(target)
    ref_means = [float(np.mean(r[output])) for r in ref] if ref else []
    for row in rows:
      runs = results[row].get(target)
      if not runs:
        continue
      means = [float(np.mean(r[output])) for r in runs]
      entry = {'row': row, 'target': target, 'seeds': len(runs), 'per_seed': means,
               'mean': float(np.mean(means)),
               'std': float(np.std(means, ddof=1)) if len(means) > 1 else None,
               'vs_first': None}
      if row != rows[0] and ref:
        per_image = np.mean([r[output] for r in runs], axis=0)
        ref_image = np.mean([r[output] for r in ref], axis=0)
        w = welch(means, ref_means)
        entry['vs_first'] = {
            'reference': rows[0], 'diff': entry['mean'] - float(np.mean(ref_means)),
            'welch_t': None if w is None else w[0], 'df': None if w is None else w[1],
            'images_better': int(np.sum(per_image > ref_image)), 'images': len(per_image)}
      table.append(entry)
  return table


def markdown(table: list[dict]) -> str:
  lines = ['| target | row | seeds | Dice per seed | mean | std over seeds | vs first row: diff, Welch t (df), images better |',
           '|---|---|---|---|---|---|---|']
  for e in table:
    v = e['vs_first']
    vs = '' if v is None else (
        f'{v["diff"]:+.4f}, ' + ('-' if v['welch_t'] is None else
                                 f'{v["welch_t"]:+.2f} ({v["df"]:.1f})')
        + f', {v["images_better"]} of {v["images"]}')
    std = '' if e['std'] is None else f'{e["std"]:.4f}'
    lines.append(f'| {e["target"]} | {e["row"]} | {e["seeds"]} | '
                 + ' / '.join(f'{m:.4f}' for m in e['per_seed'])
                 + f' | {e["mean"]:.4f} | {std} | {vs} |')
  return '\n'.join(lines)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--runs', action='append', required=True, metavar='ROW=WORKDIR,...')
  ap.add_argument('--targets', default='3m,6m,rossa')
  ap.add_argument('--shared', default=str(ROOT.parent / 'shared' / 'data'))
  ap.add_argument('--reuse', action='append', default=[], metavar='EARLIER.json',
                  help='take (workdir, target) results found there instead of evaluating')
  ap.add_argument('--out', required=True)
  args = ap.parse_args(argv)
  reuse = load_reuse(args.reuse)
  rows = parse_runs(args.runs)
  for workdirs in rows.values():   # a bad @MODE fails before any evaluation
    for w in workdirs:
      split_run(w)
  targets = [t for t in args.targets.split(',') if t]
  for t in targets:
    if t not in TARGETS:
      ap.error(f'--targets: unknown target {t!r}; expected some of {sorted(TARGETS)}')
  shared = pathlib.Path(args.shared)
  for t in targets:
    if not (shared / TARGETS[t]['sub']).is_dir():
      ap.error(f'--shared {shared}: no folder {TARGETS[t]["sub"]} for target {t!r}')
  results = {}
  for row, workdirs in rows.items():
    results[row] = {}
    for t in targets:
      results[row][t] = []
      for w in workdirs:
        reused = (w, t) in reuse
        r = dict(reuse[(w, t)]) if reused else evaluate(w, t, shared)
        r['workdir'] = w
        results[row][t].append(r)
        print(f'{row} {t} {w}: final {np.mean(r["final"]):.4f} stage 1 '
              f'{np.mean(r["coarse"]):.4f}' + (' (reused)' if reused else ''), flush=True)
  out = {'rows': rows, 'targets': targets,
         'final': compare(results, 'final'), 'coarse': compare(results, 'coarse'),
         'per_image': results}
  pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  pathlib.Path(args.out).write_text(json.dumps(out, indent=1))
  print('final output:\n' + markdown(out['final']))
  print('stage 1:\n' + markdown(out['coarse']))
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()
