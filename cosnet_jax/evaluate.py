r"""Evaluates a trained model on a dataset split and writes the report: `cosnet-evaluate`.

  python -m cosnet_jax.evaluate --workdir runs/quickstart
  python -m cosnet_jax.evaluate --workdir runs/o3m --checkpoint latest --split val
  cosnet-evaluate --model octa500-3m --dataset octa_folder --data_root /path/to/folder \
      --split test --out reports/mine
  cosnet-evaluate --model runs/o3m --dataset octa500/6m_ilm_opl_largevessel \
      --data_root /path/to/OCTA-500 --split test     # resampled to the model's spacing
  python -m cosnet_jax.evaluate --workdir runs/o3m --tta flips   # mean of 4 mirrors

`--workdir` (a training run) or `--model` (a model file, a shipped name or a
workdir). By default the dataset the model was trained on is used. Writes
metrics.json (final output), metrics_coarse.json (stage-1 output),
metrics.md, roc.png, overlays/*.png into `--out` (default
WORKDIR/eval/<dataset>-<split>[-tta_<mode>]/, or ./eval/<model>/... for a model).
"""
import pathlib

from absl import flags, logging

from cosnet_jax import cli, places
from cosnet_jax.data import source as source_lib
from cosnet_jax.errors import UserError
from cosnet_jax.inference import evaluate_split
from cosnet_jax.inference import trained as trained_lib

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('workdir', None, 'Training workdir.')
  flags.DEFINE_string('model', None, 'A model file, a shipped model name or a workdir.')
  flags.DEFINE_string('checkpoint', 'best', "'best', 'latest' or a step number (workdirs).")
  flags.DEFINE_string('split', None, "Split to evaluate (default: the model's test split).")
  flags.DEFINE_string('dataset', None, 'Dataset name (default: the one trained on).')
  flags.DEFINE_string('data_root', None, 'Folder of that dataset.')
  flags.DEFINE_float('spacing_um', None, "The dataset's pixel spacing in micrometres: "
                     "images are resampled to the model's (default: known datasets' own).")
  flags.DEFINE_string('threshold', None, "'otsu' or a float (default: the model's).")
  flags.DEFINE_integer('batch_size', None, "Eval batch (default: the model's config).")
  flags.DEFINE_bool('overlays', True, 'Write the per-image overlay PNGs.')
  flags.DEFINE_string('out', None, 'Report folder.')
  flags.DEFINE_string('tta', None, "Test-time augmentation: 'none', 'hflip', 'flips', "
                      "'flips_shifts' (default: the model's eval.tta).")


def run(source: str, *, split=None, checkpoint='best', dataset=None, data_root=None,
        spacing_um=None, threshold=None, batch_size=None, overlays=True, out=None,
        tta=None) -> dict:
  """Evaluates `source` (workdir / model file / name); see evaluate_split.evaluate."""
  trained = trained_lib.load(source, checkpoint)
  data_cfg = evaluate_split.dataset_config(trained, dataset, data_root, spacing_um)
  if split is None:
    split = data_cfg.test_split
    if not source_lib.has_split(data_cfg, split) and source_lib.has_split(
        data_cfg, data_cfg.val_split):
      # As the run's final report did: a dataset without a test split reports on val.
      logging.warning('%s has no %r split: evaluating %r (the split used for selection)',
                      data_cfg.name, split, data_cfg.val_split)
      split = data_cfg.val_split
  tta_mode = tta if tta is not None else trained.config.eval.tta
  name = evaluate_split.report_name(data_cfg, split, tta_mode)
  if out is None:   # a workdir's own eval/ folder, else ./eval/<model>/
    base = (pathlib.Path(source) / 'eval' if pathlib.Path(source).is_dir() else
            pathlib.Path('eval') / pathlib.Path(str(source)).name.replace('.cosnet', ''))
    out = base / name
  out = places.writable_folder(out, '--out')
  if (out / 'metrics.json').is_file():
    logging.warning('replacing the report in %s', out)
  result = evaluate_split.evaluate(trained, data_cfg, split, out, threshold=threshold,
                                   batch_size=batch_size, overlays=overlays, tta=tta_mode)
  result['steps'] = trained.meta.get('steps')
  return result


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments: {argv[1:]}')
  if bool(FLAGS.workdir) == bool(FLAGS.model):
    raise UserError('give one of --workdir (a training run) or --model (a model file or name)')
  result = run(FLAGS.workdir or FLAGS.model, split=FLAGS.split, checkpoint=FLAGS.checkpoint,
               dataset=FLAGS.dataset, data_root=FLAGS.data_root, spacing_um=FLAGS.spacing_um,
               threshold=FLAGS.threshold, batch_size=FLAGS.batch_size,
               overlays=FLAGS.overlays, out=FLAGS.out, tta=FLAGS.tta)
  print(result['text'])
  print(f"report: {result['out_dir']}")


def cli_main():
  cli.run(main, define_flags)


if __name__ == '__main__':
  cli_main()
