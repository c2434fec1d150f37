r"""Paper configuration on OCTA-500 3M on one accelerator, with nothing but
jax / flax / optax / numpy / scipy / scikit-image / matplotlib / ml_collections.

  python experiments/gpu_paper_octa500.py --data_root ../shared/data/OCTA500_3M \
      --out runs/gpu_paper [--epochs 100] [--time_budget 240] [--dtype bfloat16]

For machines without tensorflow_datasets, clu or orbax (the lent GPU machines):
it reads the flat `{train,val,test}/{image,label}` folders directly into the
data layer's SplitArrays and uses the project's own TrainIterator (same CLAHE,
augmentation and batches), train step (`train.steps.build_train_step`: the
ResNeSt-50 COSNet with the global memory bank) and metrics. Model selection on
val (coarse Dice, every --eval_every steps); the selected weights are kept in
host memory, not checkpointed. Reports the stage-1 (coarse) output on test:
metrics.json / metrics.md / roc.png in the same layout as cosnet_jax.evaluate,
plus history.jsonl and run.json. `--time_budget` stops training early (the
steps done are recorded) so the script ends inside a fixed device lease.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
IMAGE_SUFFIXES = ('.bmp', '.png', '.tif', '.tiff', '.jpg')


def load_config(dtype: str):
  spec = importlib.util.spec_from_file_location('octa500_3m', ROOT / 'configs' / 'octa500_3m.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config('')
  c.model.dtype = dtype
  c.refine.model.dtype = dtype
  return c


def read_split(root: pathlib.Path, split: str, data_cfg):
  """Flat folder split -> SplitArrays (CLAHE applied as the pipeline does)."""
  from cosnet_jax.data import load_image, source  # pylint: disable=g-import-not-at-top
  from cosnet_jax.data.preprocess import preprocess_u8  # pylint: disable=g-import-not-at-top
  images, labels, vessels, ids = [], [], [], []
  files = sorted(p for p in (root / split / 'image').iterdir()
                 if p.suffix.lower() in IMAGE_SUFFIXES)
  if not files:
    raise SystemExit(f'no images in {root / split / "image"}')
  for f in files:
    lab = [p for p in (root / split / 'label').glob(f.stem + '.*')]
    if not lab:
      raise SystemExit(f'no label for {f} in {root / split / "label"}')
    img = np.round(load_image(f) * 255).astype(np.uint8)
    mask = load_image(lab[0]) > 0.5
    images.append(preprocess_u8(img, data_cfg))
    labels.append((mask.astype(np.uint8) * 7))   # mask = thick = thin (one label)
    vessels.append(np.flatnonzero(mask).astype(np.int32))
    ids.append(f.stem)
  return source.SplitArrays(images, labels, vessels, ids, np.arange(len(ids)))


def padded_batches(arrays, size: int, batch: int):
  """Whole images padded to size x size: (image [b,S,S,1], list of (h, w))."""
  for k in range(0, len(arrays), batch):
    chunk = list(range(k, min(k + batch, len(arrays))))
    x = np.zeros((batch, size, size, 1), np.float32)
    for j, i in enumerate(chunk):
      h, w = arrays.images[i].shape
      x[j, :h, :w, 0] = arrays.images[i].astype(np.float32) / 255.0
    yield chunk, x


def predict(eval_fn, variables: tuple, arrays, size, batch, mesh, key='coarse'):
  """{image index: [h, w] probabilities} of output `key` of eval_fn(*variables, batch)."""
  from cosnet_jax.train import steps  # pylint: disable=g-import-not-at-top
  probs = {}
  for chunk, x in padded_batches(arrays, size, batch):
    out = np.asarray(eval_fn(*variables, steps.shard_batch({'image': x}, mesh))[key])[..., 0]
    for j, i in enumerate(chunk):
      h, w = arrays.images[i].shape
      probs[i] = out[j, :h, :w]
  return probs


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--data_root', required=True)
  ap.add_argument('--out', required=True)
  ap.add_argument('--epochs', type=float, default=100)
  ap.add_argument('--eval_every', type=int, default=250)
  ap.add_argument('--time_budget', type=float, default=1e9, help='seconds of training')
  ap.add_argument('--dtype', default='bfloat16')
  ap.add_argument('--model', default='', help='override config.model.name (tests)')
  ap.add_argument('--workers', type=int, default=8)
  args = ap.parse_args(argv)

  import jax  # pylint: disable=g-import-not-at-top
  from jax.sharding import NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from cosnet_jax import models  # pylint: disable=g-import-not-at-top
  from cosnet_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from cosnet_jax.evaluation import metrics, report  # pylint: disable=g-import-not-at-top
  from cosnet_jax.models.config import default_model_config  # pylint: disable=g-import-not-at-top
  from cosnet_jax.train import state as state_lib, steps  # pylint: disable=g-import-not-at-top

  t_start = time.time()
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  c = load_config(args.dtype)
  if args.model:
    c.model = default_model_config(args.model)
    c.model.dtype = args.dtype
  c.data.num_workers = args.workers
  c.data.prefetch = 4
  root = pathlib.Path(args.data_root)
  splits = {s: read_split(root, s, c.data) for s in ('train', 'val', 'test')}
  size = -(-max(max(i.shape) for i in splits['train'].images) // 32) * 32
  n_train = len(splits['train'])
  batch = int(c.train.batch_size)
  num_steps = int(round(args.epochs * n_train / batch))
  print(f'devices {jax.devices()}; train {n_train} val {len(splits["val"])} test '
        f'{len(splits["test"])}; {num_steps} steps of {batch} x {size}^2, '
        f'{c.model.name} {args.dtype}', flush=True)

  mesh = steps.make_mesh()
  model = models.build_cosnet(c.model, axis_name=steps.AXIS)
  tx = state_lib.make_optimizer(c.optimizer, num_steps)
  create = lambda r: state_lib.create_train_state(r, model, c, (size, size), num_steps, tx)
  state = models.init_fast(jax.jit(create, out_shardings=NamedSharding(mesh, P())),
                           jax.random.PRNGKey(c.seed))
  train_step = steps.build_train_step(model, c, mesh)
  eval_step = steps.build_eval_step(model, mesh)
  it = pipeline.TrainIterator(c.data, splits['train'], local_batch_size=batch,
                              seed=c.seed, start_step=0, process_index=0,
                              out_hw=(size, size))
  hist = open(out / 'history.jsonl', 'w')
  best = {'dice': -1.0, 'step': 0, 'vars': None}
  t0 = time.time()
  t_compile = None
  step = 0

  def validate():
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    probs = predict(eval_step, (variables,), splits['val'], size, batch, mesh)
    dice = float(np.mean([metrics.image_metrics(
        probs[i], splits['val'].labels[i] & 1, None, threshold=c.eval.threshold)['dice']
        for i in probs]))
    hist.write(json.dumps({'step': step, 'val/dice': dice,
                           'elapsed_s': time.time() - t0}) + '\n')
    hist.flush()
    print(f'step {step}: val dice {dice:.4f}', flush=True)
    if dice > best['dice']:
      best.update(dice=dice, step=step, vars=jax.device_get(variables))

  pending = []
  while step < num_steps:
    state, m = train_step(state, steps.shard_batch(next(it), mesh))
    step += 1
    pending.append(m)
    if step == 1:
      jax.block_until_ready(m)
      t_compile = time.time() - t0
      print(f'first step (compile) {t_compile:.1f} s', flush=True)
    out_of_time = time.time() - t0 > args.time_budget
    if step % 50 == 0 or step == num_steps or out_of_time:
      ms = jax.device_get(pending)
      pending = []
      if any(x['finite'] < 1 for x in ms):
        raise SystemExit(f'non-finite loss before step {step}')
      hist.write(json.dumps({'step': step, 'loss': float(np.mean([x['loss'] for x in ms])),
                             'elapsed_s': time.time() - t0}) + '\n')
    if step % args.eval_every == 0 or step == num_steps or out_of_time:
      validate()
    if out_of_time:
      print(f'time budget reached at step {step}/{num_steps}', flush=True)
      break
  train_s = time.time() - t0
  it.close()

  variables = steps.replicate(best['vars'], mesh)
  t = time.time()
  probs = predict(eval_step, (variables,), splits['test'], size, batch, mesh)
  test = splits['test']
  per = [dict(id=test.ids[i], **metrics.image_metrics(probs[i], test.labels[i] & 1, None,
                                                       threshold=c.eval.threshold))
         for i in range(len(test))]
  report.write_report(out, per, images=[x.astype(np.float32) / 255 for x in test.images],
                      gts=[(x & 1).astype(np.float32) for x in test.labels],
                      probs=[probs[i] for i in range(len(test))], ids=test.ids,
                      threshold=c.eval.threshold, overlays=False)
  run = {'device': str(jax.devices()[0].device_kind), 'jax': jax.__version__,
         'model': c.model.name, 'dtype': args.dtype, 'batch': batch, 'input': size,
         'steps_planned': num_steps, 'steps_done': step, 'epochs_done': step * batch / n_train,
         'selected_step': best['step'], 'val_dice': best['dice'],
         'first_step_s': t_compile, 'train_s': train_s,
         'images_per_s_incl_eval': step * batch / train_s, 'test_eval_s': time.time() - t,
         'total_s': time.time() - t_start, 'stage': 'stage 1 (coarse); no refinement',
         'command': ' '.join(sys.argv)}
  (out / 'run.json').write_text(json.dumps(run, indent=1) + '\n')
  print((out / 'metrics.md').read_text())
  print(json.dumps(run, indent=1))


if __name__ == '__main__':
  main()
