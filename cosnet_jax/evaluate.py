r"""Evaluates a trained run on a dataset split and writes the report.

  python -m cosnet_jax.evaluate --workdir runs/quickstart
  python -m cosnet_jax.evaluate --workdir runs/o3m --checkpoint latest --split val
  python -m cosnet_jax.evaluate --workdir runs/o3m --dataset octa_folder \
      --data_root /path/to/folder --split test
  python -m cosnet_jax.evaluate --workdir runs/o3m --tta flips   # mean of 4 mirrors

By default the dataset the run was trained on is used. Writes
`WORKDIR/eval/<dataset>-<split>/`: metrics.json (refined output),
metrics_coarse.json (stage-1 output), metrics.md, roc.png, overlays/*.png.
"""

import pathlib
import sys

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging

from cosnet_jax import models
from cosnet_jax.evaluation import inference, report, runner
from cosnet_jax.evaluation import tta as tta_lib
from cosnet_jax.evaluation import metrics as metrics_lib
from cosnet_jax.train import steps as steps_lib



def _threshold(value):
  if value is None or value == 'otsu':
    return 'otsu'
  return float(value)


def tta_mode(config, tta: str | None) -> str:
  """`tta`, or the run's `eval.tta` (configs older than the key: 'none')."""
  return tta if tta is not None else config.eval.get('tta', 'none')


def predict_splits(workdir, splits, *, checkpoint='best',
                   dataset: str | None = None, data_root: str | None = None,
                   batch_size: int | None = None, tta: str | None = None) -> dict:
  """Predicts every image of each split with the run's checkpoints.

  Args:
    workdir: training workdir (config.json + checkpoints).
    splits: split names; None entries mean the config's test split.
    checkpoint, dataset, data_root, batch_size, tta: as for `run`.
  Returns:
    {'config': run config, 'data': data config used, 'outputs': ('coarse',)
     or ('coarse', 'refined') (the last is the final output), 'steps':
     checkpoint steps used, 'tta': the flip mode used,
     'results': {split: runner.predict_split list}}.
  """
  workdir = pathlib.Path(workdir)
  config = inference.load_run_config(workdir)
  key = 'tta' if tta is not None else 'eval.tta'
  tta = tta_mode(config, tta)
  tta_lib.check_mode(tta, key)
  s1_vars, s2_vars, used = inference.load_variables(workdir, checkpoint)
  data_cfg = ml_collections.ConfigDict(config.data.to_dict())
  if dataset:
    data_cfg.name = dataset
  if data_root:
    data_cfg.root = data_root

  mesh = steps_lib.make_mesh(jax.local_devices())
  model = models.build_cosnet(config.model, axis_name=steps_lib.AXIS)
  s1 = steps_lib.replicate(s1_vars, mesh)
  if s2_vars is not None:
    refiner = models.build_refiner(config.refine.model, axis_name=steps_lib.AXIS)
    step_fn = steps_lib.build_refine_eval_step(model, refiner, mesh)
    s2 = steps_lib.replicate(s2_vars, mesh)
    predict = lambda batch: step_fn(s1, s2, batch)
    outputs = ('coarse', 'refined')
  else:
    step_fn = steps_lib.build_eval_step(model, mesh)
    predict = lambda batch: step_fn(s1, batch)
    outputs = ('coarse',)
  bs = runner.eval_batch_size(batch_size or config.eval.batch_size)
  results = {}
  for split in splits:
    split = split or data_cfg.test_split
    results[split] = runner.predict_split(predict, data_cfg, split, mesh,
                                          batch_size=bs, outputs=outputs, tta=tta)
    if not results[split]:
      raise ValueError(f'split {split!r} of dataset {data_cfg.name!r} has no images')
  return {'config': config, 'data': data_cfg, 'outputs': outputs, 'steps': used,
          'tta': tta, 'results': results}


def run(workdir, *, split: str | None = None, checkpoint='best',
        dataset: str | None = None, data_root: str | None = None,
        threshold=None, batch_size: int | None = None, overlays: bool = True,
        out_dir: str | None = None, tta: str | None = None) -> dict:
  """Evaluates the run in `workdir`; returns summaries and the markdown table.

  `tta`: test-time augmentation ('none', 'hflip', 'flips', 'flips_shifts';
  default the run's `eval.tta`, see `evaluation.tta`). With a mode other than
  'none' the report goes to `eval/<dataset>-<split>-tta_<mode>/` unless
  `out_dir` says otherwise.

  Returns:
    {'refined': summary, 'coarse': summary, 'out_dir': path, 'text': markdown,
     'steps': checkpoint steps used}.
  """
  workdir = pathlib.Path(workdir)
  pred = predict_splits(workdir, [split], checkpoint=checkpoint, dataset=dataset,
                        data_root=data_root, batch_size=batch_size, tta=tta)
  config, data_cfg, outputs, used = (pred['config'], pred['data'],
                                     pred['outputs'], pred['steps'])
  split, results = next(iter(pred['results'].items()))
  thr = _threshold(threshold if threshold is not None else config.eval.threshold)
  tolerance = int(config.eval.tolerance)
  final = outputs[-1]
  per = {o: [dict(id=r['id'], **metrics_lib.image_metrics(
      r[o], r['mask'], None, threshold=thr, tolerance=tolerance)) for r in results]
         for o in outputs}
  name = f"{data_cfg.name.replace('/', '_')}-{split}"
  if pred['tta'] != 'none':
    name += f"-tta_{pred['tta']}"
  out = pathlib.Path(out_dir) if out_dir else workdir / 'eval' / name
  summaries = report.write_report(
      out, per[final], images=[r['image'] for r in results],
      gts=[r['mask'] for r in results], probs=[r[final] for r in results],
      ids=[r['id'] for r in results],
      coarse=per['coarse'] if final != 'coarse' else None,
      coarse_probs=[r['coarse'] for r in results] if final != 'coarse' else None,
      threshold=thr, tolerance=tolerance, overlays=overlays, label=final)
  text = (out / 'metrics.md').read_text()
  logging.info('evaluation of %s (%s, checkpoints %s) written to %s', workdir,
               name, used, out)
  return {'refined': summaries.get('refined'), 'coarse': summaries.get('coarse'),
          'out_dir': str(out), 'text': f'{name} ({len(results)} images)\n{text}',
          'steps': used, 'tta': pred['tta']}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from cosnet_jax import compilation_cache  # pylint: disable=g-import-not-at-top
  compilation_cache.enable(flags.FLAGS.compilation_cache)
  if not flags.FLAGS.workdir:
    print('error: --workdir is required', file=sys.stderr)
    sys.exit(2)
  try:
    result = run(flags.FLAGS.workdir, split=flags.FLAGS.split,
                 checkpoint=flags.FLAGS.checkpoint, dataset=flags.FLAGS.dataset,
                 data_root=flags.FLAGS.data_root, threshold=flags.FLAGS.threshold,
                 batch_size=flags.FLAGS.batch_size, overlays=flags.FLAGS.overlays,
                 tta=flags.FLAGS.tta)
  except (FileNotFoundError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  print(result['text'])
  print(f"report: {result['out_dir']}")


def define_flags():
  """Command-line flags (defined only when run as a program)."""
  flags.DEFINE_string('compilation_cache', None,
                      "XLA compilation cache folder ('' = off; default "
                      "$COSNET_COMPILATION_CACHE or ~/.cache/cosnet_jax/xla).")
  flags.DEFINE_string('workdir', None, 'Training workdir.')
  flags.DEFINE_string('checkpoint', 'best', "'best', 'latest' or a step number.")
  flags.DEFINE_string('split', None, 'Split to evaluate (default: the config\'s test split).')
  flags.DEFINE_string('dataset', None, 'Dataset name (default: the one trained on).')
  flags.DEFINE_string('data_root', None, 'Folder of that dataset.')
  flags.DEFINE_string('threshold', None, "'otsu' or a float (default: the config's).")
  flags.DEFINE_integer('batch_size', None, 'Eval batch (default: the config\'s).')
  flags.DEFINE_bool('overlays', True, 'Write the per-image overlay PNGs.')
  flags.DEFINE_enum('tta', None, sorted(tta_lib.MODES),
                    "Test-time augmentation: mirrors, or mirrors x one-pixel shifts "
                    "(default: the run's eval.tta).")


if __name__ == '__main__':
  from cosnet_jax import hugepages  # pylint: disable=g-import-not-at-top
  hugepages.reexec_with_hugepages()  # see cosnet_jax/hugepages.py
  define_flags()
  app.run(main)
