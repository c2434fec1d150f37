r"""Builds the result tables of experiments/results/ (markdown, printed and written).

  python experiments/summarize.py            # writes experiments/results/TABLES.md

For every `results/<experiment>/<row>-s<seed>/metrics.json` it reports the
per-image mean +- std over the evaluated images (the paper's convention). Rows
with several seeds report the mean over seeds of those per-image means, the
mean of the per-image stds, and separately each seed's Dice and the standard
deviation of Dice across seeds (the seed spread that a difference between rows
must exceed). Row d of octa500_3m* is read from row e's metrics_coarse.json
(row e's stage 1 is row d); in other experiments a run's metrics_coarse.json
(its stage-1 output, where it has a stage 2) is the row '<row>, stage 1'.

`results/diagnose/tta/<experiment>_<run>.json` (from `diagnose.py --parts
tta`) add a table of mean Dice without and with flip test-time augmentation.

For octa500_3m* experiments a second table compares every row with row (a)
on test Dice: the difference of the seed means, Welch's t over the seeds (and
its degrees of freedom), and on how many test images the row is better once
each image's Dice is averaged over the row's seeds. Every probe under
`results/probes/<probe>/octa500_3m/` gets its table, and the comparison with
row (a) where it holds one; probes named in PROBE_BASELINES are compared row by
row with the same rows of the recipe they change.
"""
from __future__ import annotations

import json
import pathlib
import statistics

RESULTS = pathlib.Path(__file__).resolve().parent / 'results'
METRICS = ('auc', 'acc', 'sen', 'spe', 'dice', 'iou', 'kappa', 'fdr', 'gmean', 'cldice')
HEAD = ('AUC', 'ACC', 'SEN', 'SPE', 'Dice', 'IoU', 'Kappa', 'FDR', 'G-mean', 'clDice')
ROW_NAMES = {
    'a': '(a) two-branch, segmentation loss only',
    'b': '(b) + in-batch pixel contrast',
    'c': '(c) + memory bank frozen at init (authors\' code)',
    'd': '(d) + memory bank updated (the method)',
    'e': '(e) (d) + refinement',
    'f': '(f) (e) without CLAHE',
}

# Probes without a row (a) of their own, compared row by row with the runs of
# the recipe they change (same budget and seeds); the first folder that holds
# a row is its reference.
PROBE_BASELINES = {
    'wide_encoder_6000': ('select_start', 'long_stage1_6000'),
    'refine_1000': ('select_start',),
    'refine_wd0': ('select_start',),
    'refine_bce': ('select_start',),
    'refine_lr1e-4': ('select_start',),
    'refine_lr1e-3': ('select_start',),
    'adamw_6000': ('select_start',),
    'wide_noclahe_6000': ('long_stage1_6000',),
    'wide_encoder_8000': ('wide_encoder_6000',),
    'wide_head32_6000': ('wide_encoder_6000',),
    'wide_fullres16_6000': ('wide_encoder_6000',),
    'wide_crop128_4000': ('wide_encoder_6000',),
    'wide_encoder_6000_rerun': ('wide_encoder_6000',),
    'contrast_weight_0.25_6000': ('select_start', 'long_stage1_6000'),
    'contrast_weight_1.0_6000': ('select_start', 'long_stage1_6000'),
    'easy_anchors_6000': ('select_start', 'long_stage1_6000'),
    'synth3000_6000': ('select_start',),
}
# A synthetic_to_real probe's fine-tuned run against the octa500_3m rows.
FINETUNE_ROWS = {'finetune': 'e', 'finetune, stage 1': 'd'}


def _load(path: pathlib.Path) -> dict | None:
  return json.loads(path.read_text()) if path.exists() else None


def collect(experiment: str, results: pathlib.Path = RESULTS
            ) -> dict[str, list[tuple[int, dict, dict]]]:
  """row -> [(seed, metrics, run_info)] for one experiment folder."""
  rows: dict[str, list] = {}
  folder = results / experiment
  for run in sorted(folder.glob('*-s*')):
    row, seed = run.name.rsplit('-s', 1)
    info = _load(run / 'run.json') or {}
    final = _load(run / 'metrics.json')
    if final is None:
      continue
    rows.setdefault(row, []).append((int(seed), final, info))
    coarse = _load(run / 'metrics_coarse.json')
    if coarse is None:
      continue
    if experiment.startswith('octa500_3m'):
      if row == 'e':
        rows.setdefault('d', []).append((int(seed), coarse, info))
    else:
      rows.setdefault(f'{row}, stage 1', []).append((int(seed), coarse, info))
  return rows


def _row_line(label: str, runs: list) -> tuple[str, str]:
  cells = []
  for m in METRICS:
    means = [r[1]['summary'][m]['mean'] for r in runs]
    stds = [r[1]['summary'][m]['std'] for r in runs]
    cells.append(f'{statistics.mean(means):.4f} ± {statistics.mean(stds):.4f}')
  dice = [r[1]['summary']['dice']['mean'] for r in runs]
  seeds = ', '.join(f's{r[0]}: {d:.4f}' for r, d in zip(runs, dice))
  spread = f'{statistics.stdev(dice):.4f}' if len(dice) > 1 else '–'
  minutes = ', '.join(_minutes(r) for r in runs)
  main = f'| {label} | ' + ' | '.join(cells) + ' |'
  extra = f'| {label} | {len(runs)} | {seeds} | {spread} | {minutes} |'
  return main, extra


def _minutes(run) -> str:
  """'s<seed>: <min>' of one run, '(1 core)' when it was pinned to fewer cores."""
  seed, _, info = run
  wall = info.get('wall_s')
  text = f's{seed}: ' + (f'{wall / 60:.1f}' if wall else '?')
  hw = info.get('hardware', {})
  if hw.get('cpus_usable') and hw.get('cpu_count') and hw['cpus_usable'] < hw['cpu_count']:
    text += f" ({hw['cpus_usable']} of {hw['cpu_count']} cores)"
  return text


def table(experiment: str, names: dict | None = None,
          results: pathlib.Path = RESULTS) -> str:
  rows = collect(experiment, results)
  if not rows:
    return ''
  names = names or {}
  order = sorted(rows)
  out = [f'### {experiment}', '',
         '| row | ' + ' | '.join(HEAD) + ' |', '|---' * (len(HEAD) + 1) + '|']
  extras = ['', '| row | seeds | Dice per seed | Dice std over seeds | train+eval minutes per seed |',
            '|---|---|---|---|---|']
  for row in order:
    main, extra = _row_line(names.get(row, row), sorted(rows[row], key=lambda r: r[0]))
    out.append(main)
    extras.append(extra)
  return '\n'.join(out + extras) + '\n'


def welch(x: list[float], y: list[float]) -> tuple[float, float] | None:
  """Welch's t of mean(x) - mean(y) and its Welch-Satterthwaite degrees of
  freedom; None when either side has fewer than 2 values or both no spread."""
  if len(x) < 2 or len(y) < 2:
    return None
  vx, vy = statistics.variance(x) / len(x), statistics.variance(y) / len(y)
  if vx + vy == 0:
    return None
  t = (statistics.mean(x) - statistics.mean(y)) / (vx + vy) ** 0.5
  df = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1))
  return t, df


def _image_dice(runs: list) -> dict[str, float]:
  """image id -> Dice averaged over the runs (seeds) that evaluated it."""
  sums: dict[str, list[float]] = {}
  for _, metrics, _ in runs:
    for rec in metrics.get('per_image', []):
      sums.setdefault(str(rec['id']), []).append(rec['dice'])
  return {k: statistics.mean(v) for k, v in sums.items() if len(v) == len(runs)}


def _versus_line(label: str, runs: list, ref_runs: list) -> str:
  """One comparison row: seed counts, difference of seed means, Welch t (df),
  test images better (each image averaged over its seeds)."""
  dice = [r[1]['summary']['dice']['mean'] for r in runs]
  ref = [r[1]['summary']['dice']['mean'] for r in ref_runs]
  w = welch(dice, ref)
  img, ref_img = _image_dice(runs), _image_dice(ref_runs)
  common = sorted(set(img) & set(ref_img))
  better = (f'{sum(img[k] > ref_img[k] for k in common)} of {len(common)}'
            if common else '–')
  return (f'| {label} | {len(dice)} vs {len(ref)} | '
          f'{statistics.mean(dice) - statistics.mean(ref):+.4f} | '
          + (f'{w[0]:+.2f} ({w[1]:.1f})' if w else '–') + f' | {better} |')


def comparison_table(rows: dict, base: str = 'a', names: dict | None = None) -> str:
  """Markdown: every row against `base` on mean per-image test Dice."""
  if base not in rows:
    return ''
  names = names or {}
  out = [f'Against row ({base}), test Dice: difference of the seed means, Welch t '
         '(degrees of freedom) over the seeds, and test images where the row is '
         'better with each image averaged over its seeds.', '',
         f'| row | seeds | Dice - row {base} | Welch t (df) | images better |',
         '|---|---|---|---|---|']
  out += [_versus_line(names.get(row, row), rows[row], rows[base])
          for row in sorted(rows) if row != base]
  return '\n'.join(out) + '\n'


def baseline_table(rows: dict, reference: dict, label: str,
                   names: dict | None = None) -> str:
  """Markdown: every row against the same row of `reference` (another result
  folder at the same budget, e.g. a probe against the recipe it changes)."""
  common = [row for row in sorted(rows) if row in reference]
  if not common:
    return ''
  names = names or {}
  out = [f'Against the same row of {label}, test Dice: difference of the seed '
         'means, Welch t (degrees of freedom) over the seeds, and test images '
         'where the probe is better with each image averaged over its seeds.', '',
         '| row | seeds | Dice - reference | Welch t (df) | images better |',
         '|---|---|---|---|---|']
  out += [_versus_line(names.get(row, row), rows[row], reference[row]) for row in common]
  return '\n'.join(out) + '\n'


TTA_MODES = ('none', 'hflip', 'flips')


def tta_table(folder: pathlib.Path = RESULTS / 'diagnose' / 'tta') -> str:
  """Markdown: per run, val / test Dice of each output for each flip mode."""
  files = sorted(folder.glob('*.json')) if folder.is_dir() else []
  if not files:
    return ''
  out = ['### flip test-time augmentation (diagnose.py --parts tta)', '',
         'Mean per-image Dice (Otsu), val / test; in brackets the number of test '
         'images the mode improves over a single pass.', '',
         '| run | output | ' + ' | '.join(TTA_MODES) + ' | test gain of flips |',
         '|---' * (len(TTA_MODES) + 3) + '|']
  for f in files:
    r = json.loads(f.read_text())
    tta, n = r['tta'], r.get('tta_test_images')
    for o in tta['none']:
      cells = []
      for mode in TTA_MODES:
        v = tta[mode][o]
        better = tta[mode].get('test_images_better', {}).get(o)
        cells.append(f"{v['val']:.4f} / {v['test']:.4f}" +
                     (f' ({better}/{n})' if better is not None else ''))
      gain = tta['flips'][o]['test'] - tta['none'][o]['test']
      out.append(f'| {f.stem} | {o} | ' + ' | '.join(cells) + f' | {gain:+.4f} |')
  return '\n'.join(out) + '\n'


def _against_baseline(probe: pathlib.Path, rows: dict) -> str:
  """The baseline table of a probe named in PROBE_BASELINES ('' otherwise)."""
  if probe.name not in PROBE_BASELINES:
    return ''
  reference: dict = {}
  for name in PROBE_BASELINES[probe.name]:
    for row, runs in collect('octa500_3m', probe.parent / name).items():
      reference.setdefault(row, runs)
  label = ' / '.join(f'probes/{n}' for n in PROBE_BASELINES[probe.name])
  return baseline_table(rows, reference, label + ' (first holding the row)', ROW_NAMES)


def main() -> None:
  parts = ['# Result tables (generated by experiments/summarize.py)', '',
           'Per-image mean ± std over the evaluated images; rows with several seeds '
           'average the per-seed values. Threshold: per-image Otsu.', '']
  for exp in sorted(p.name for p in RESULTS.iterdir() if p.is_dir()):
    t = table(exp, ROW_NAMES if exp.startswith('octa500_3m') else None)
    if t:
      parts.append(t)
    if exp.startswith('octa500_3m'):
      c = comparison_table(collect(exp), names=ROW_NAMES)
      if c:
        parts.append(c)
  probes = RESULTS / 'probes'
  for probe in sorted(p for p in probes.glob('*') if (p / 'octa500_3m').is_dir()):
    rows = collect('octa500_3m', probe)
    if not rows:
      continue
    parts.append(table('octa500_3m', ROW_NAMES, probe).replace(
        '### octa500_3m', f'### probes/{probe.name} (octa500_3m rows; see experiments/README.md)', 1))
    c = comparison_table(rows, names=ROW_NAMES)
    if c:
      parts.append(c)
    c = _against_baseline(probe, rows)
    if c:
      parts.append(c)
  # Synthetic pre-training probes: the fine-tuned run is row (e) of the
  # real-data recipe it starts, its stage 1 row (d).
  for probe in sorted(p for p in probes.glob('*') if (p / 'synthetic_to_real').is_dir()):
    t = table('synthetic_to_real', None, probe)
    if not t:
      continue
    parts.append(t.replace('### synthetic_to_real', f'### probes/{probe.name} '
                           '(synthetic_to_real; see experiments/README.md)', 1))
    rows = collect('synthetic_to_real', probe)
    c = _against_baseline(probe, {FINETUNE_ROWS[k]: v for k, v in rows.items()
                                  if k in FINETUNE_ROWS})
    if c:
      parts.append(c)
  t = tta_table()
  if t:
    parts.append(t)
  text = '\n'.join(parts)
  (RESULTS / 'TABLES.md').write_text(text)
  print(text)


if __name__ == '__main__':
  main()
