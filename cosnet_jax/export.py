r"""Writes a trained run as one model file to share: `cosnet-export`.

  cosnet-export --workdir runs/o3m --out o3m.cosnet
  cosnet-predict --model o3m.cosnet --input scans/ --output masks/

The file (model_file.py) holds the inference weights of stage 1 and stage 2
(the parameter average where the run kept one; no optimizer state, no memory
bank), the run config (model, preprocessing, threshold, the spacing it was
trained at) and metadata: the training data, the validation scores of the
selected checkpoints and the final reports found in the workdir, versions.
"""
import json
import pathlib

import jax
import numpy as np
from absl import flags

from cosnet_jax import cli, places
from cosnet_jax.data import mixture
from cosnet_jax.errors import UserError
from cosnet_jax.inference import trained as trained_lib

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('workdir', None, 'Training workdir.')
  flags.DEFINE_string('out', None, 'Model file to write (.cosnet).')
  flags.DEFINE_string('checkpoint', 'best', "'best', 'latest' or a step number.")
  flags.DEFINE_string('description', '', 'A line about the model, stored in its metadata.')
  flags.mark_flags_as_required(['workdir', 'out'])


def _reports(workdir: pathlib.Path) -> dict:
  """{report folder: summary of the final output} of WORKDIR/eval/*/metrics.json."""
  out = {}
  for f in sorted((workdir / 'eval').glob('*/metrics.json')):
    m = json.loads(f.read_text())
    out[f.parent.name] = {'images': len(m.get('per_image', [])),
                          'mean': {k: v['mean'] for k, v in m.get('summary', {}).items()}}
  return out


def _checkpoint_bytes(workdir: pathlib.Path) -> int:
  return sum(p.stat().st_size for p in (workdir / 'checkpoints').rglob('*') if p.is_file())


def export(workdir, out, checkpoint='best', description: str = '') -> dict:
  """Exports the run in `workdir` to the model file `out`; returns sizes and the path."""
  workdir = pathlib.Path(workdir)
  out = pathlib.Path(out)
  if out.suffix != '.cosnet':
    out = out.with_name(out.name + '.cosnet')
  places.writable_file(out, '--out')
  trained = trained_lib.from_workdir(workdir, checkpoint)
  c = trained.config
  training = []
  for key, cfg in mixture.sources(c.data):
    training.append({'key': key, 'dataset': cfg.name, 'root': pathlib.Path(cfg.root).name,
                     'train_split': cfg.train_split, 'val_split': cfg.val_split,
                     'weight': float(cfg.weight), 'spacing_um': float(cfg.spacing_um)})
  best = {}
  for stage in ('stage1', 'stage2'):
    f = workdir / 'checkpoints' / stage / 'best.json'
    if f.is_file():
      best[stage] = json.loads(f.read_text())
  splits = workdir / 'splits.json'
  meta = {'description': description, 'training_data': training, 'selected': best,
          'reports': _reports(workdir),
          'splits': json.loads(splits.read_text()) if splits.is_file() else None}
  out.parent.mkdir(parents=True, exist_ok=True)
  sizes = trained_lib.export(trained, out, meta)
  params = int(sum(np.asarray(x).nbytes for tree in
                   [trained.stage1['params']] + ([trained.stage2['params']]
                                                 if trained.stage2 else [])
                   for x in jax.tree.leaves(tree)))
  sizes.update(path=str(out), param_bytes=params, checkpoint_bytes=_checkpoint_bytes(workdir),
               steps=trained.meta['steps'])
  return sizes


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments: {argv[1:]}')
  s = export(FLAGS.workdir, FLAGS.out, FLAGS.checkpoint, FLAGS.description)
  mb = lambda b: f'{b / 1e6:.2f} MB'
  print(f"wrote {s['path']}: {mb(s['bytes'])} ({s['bytes'] / s['param_bytes']:.3f}x the "
        f"{mb(s['param_bytes'])} of parameters; BatchNorm statistics included; the "
        f"workdir's checkpoints: {mb(s['checkpoint_bytes'])}); checkpoint steps {s['steps']}")


def cli_main():
  cli.run(main, define_flags)


if __name__ == '__main__':
  cli_main()
