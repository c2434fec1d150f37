r"""Biomarkers of a model's masks against the same biomarkers of the manual labels.

  python experiments/biomarker_agreement.py --model octa-general --data ../shared/data \
      --out experiments/results/biomarkers/octa-general

For each held-out set that cosnet-crossdomain knows (OCTA-500 3M test,
OCTA-500 6M val, ROSSA val) the model segments every image (its own
threshold and spacing handling, one pass); `cosnet_jax.biomarkers.measure`
measures the mask and the label at the set's pixel spacing. Per biomarker and
set: the labels' mean, the bias (model - label), the 95 % limits of
agreement (bias +- 1.96 sd of the differences), the same relative to the
labels' mean, and Pearson's r. Writes OUT.json (every image's values),
OUT.md (the table) and OUT.png (Bland-Altman plots).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:   # `python experiments/...` from anywhere
  sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cosnet_jax import biomarkers, cross_domain  # noqa: E402
from cosnet_jax.evaluation import metrics  # noqa: E402
from cosnet_jax.inference import evaluate_split, trained as trained_lib  # noqa: E402

BIOMARKERS = ('vad', 'vsd_mm_per_mm2', 'vdi_um', 'mean_diameter_um', 'tortuosity',
              'branch_points_per_mm2', 'fractal_dimension')


def measure_set(trained, held) -> list[dict]:
  data_cfg = evaluate_split.dataset_config(trained, held.name, held.root, held.spacing_um,
                                           base=cross_domain.set_data_config(held))
  pred = evaluate_split.model_maps(trained, data_cfg, held.split)
  final = pred['outputs'][-1]
  rows = []
  for r in pred['results']:
    mask, _ = metrics.binarize(r[final], trained.config.eval.threshold)
    model = biomarkers.measure(np.asarray(mask, bool), held.spacing_um)
    label = biomarkers.measure(r['mask'] > 0.5, held.spacing_um)
    rows.append({'id': r['id'], 'model': model, 'label': label})
  return rows


def agreement(rows: list[dict], key: str) -> dict:
  m = np.array([r['model'][key] for r in rows], np.float64)
  g = np.array([r['label'][key] for r in rows], np.float64)
  ok = ~(np.isnan(m) | np.isnan(g))
  m, g = m[ok], g[ok]
  d = m - g
  sd = float(d.std(ddof=1)) if len(d) > 1 else float('nan')
  bias = float(d.mean())
  mean = float(g.mean())
  r = float(np.corrcoef(m, g)[0, 1]) if len(d) > 2 and m.std() > 0 and g.std() > 0 else float('nan')
  return {'n': int(len(d)), 'label_mean': mean, 'model_mean': float(m.mean()), 'bias': bias,
          'loa': [bias - 1.96 * sd, bias + 1.96 * sd], 'bias_rel': bias / mean,
          'loa_rel': [(bias - 1.96 * sd) / mean, (bias + 1.96 * sd) / mean], 'pearson_r': r}


def bland_altman(results: dict, path: pathlib.Path) -> None:
  fig = Figure(figsize=(3.2 * len(BIOMARKERS), 3.2))
  FigureCanvasAgg(fig)
  colours = {'octa500_3m_test': 'tab:blue', 'octa500_6m_val': 'tab:orange',
             'octa500_6m_sample': 'tab:orange', 'rossa_val': 'tab:green'}
  for i, key in enumerate(BIOMARKERS):
    ax = fig.add_subplot(1, len(BIOMARKERS), i + 1)
    for name, rows in results.items():
      m = np.array([r['model'][key] for r in rows])
      g = np.array([r['label'][key] for r in rows])
      ax.scatter((m + g) / 2, m - g, s=6, c=colours.get(name, 'k'), label=name)
      a = agreement(rows, key)
      for y, style in ((a['bias'], '-'), (a['loa'][0], ':'), (a['loa'][1], ':')):
        ax.axhline(y, color=colours.get(name, 'k'), ls=style, lw=0.8)
    ax.axhline(0, color='grey', lw=0.5)
    ax.set_title(key, fontsize=8)
    ax.set_xlabel('mean of model and label', fontsize=7)
    if i == 0:
      ax.set_ylabel('model - label', fontsize=7)
      ax.legend(fontsize=6)
    ax.tick_params(labelsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main():
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--model', required=True, help='shipped name, .cosnet file or workdir')
  ap.add_argument('--data', required=True, help='folder laid out as ../shared/data')
  ap.add_argument('--out', required=True, help='output path without extension')
  args = ap.parse_args()
  trained = trained_lib.load(args.model)
  results = {s.key: measure_set(trained, s) for s in cross_domain.shared_sets(args.data)}
  table = {name: {k: agreement(rows, k) for k in BIOMARKERS} for name, rows in results.items()}
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.with_suffix('.json').write_text(json.dumps(
      {'model': args.model, 'agreement': table, 'images': results}, indent=1,
      default=lambda v: None) + '\n')
  lines = [f'Biomarkers of `{args.model}` masks against the manual labels (n images; bias = '
           'model - label; LoA = bias +- 1.96 sd; relative to the labels\' mean).', '',
           '| set | biomarker | labels mean | bias | 95 % LoA | bias % | LoA % | r |',
           '|---|---|---|---|---|---|---|---|']
  for name, rows in table.items():
    for k, a in rows.items():
      lines.append(f"| {name} (n={a['n']}) | {k} | {a['label_mean']:.4g} | {a['bias']:+.3g} | "
                   f"[{a['loa'][0]:+.3g}, {a['loa'][1]:+.3g}] | {100 * a['bias_rel']:+.1f} | "
                   f"[{100 * a['loa_rel'][0]:+.0f}, {100 * a['loa_rel'][1]:+.0f}] | "
                   f"{a['pearson_r']:.3f} |")
  out.with_suffix('.md').write_text('\n'.join(lines) + '\n')
  bland_altman(results, out.with_suffix('.png'))
  print('\n'.join(lines))


if __name__ == '__main__':
  main()
