r"""Paper configuration on OCTA-500 3M on one accelerator, with nothing but
jax / flax / optax / numpy / scipy / scikit-image / matplotlib / ml_collections.

  python experiments/gpu_paper_octa500.py --data_root ../shared/data/OCTA500_3M \
      --out runs/gpu_paper [--epochs 300] [--refine_epochs 300] \
      [--time_budget 330] [--refine_time_budget 120] [--dtype bfloat16] \
      [--set refine.optimizer.weight_decay=0.0] [--stage1_out F | --stage1_from F]

For machines without tensorflow_datasets, clu or orbax (the lent GPU machines):
it reads the flat `{train,val,test}/{image,label}` folders directly into the
data layer's SplitArrays and uses the project's own TrainIterator (same CLAHE,
augmentation and batches), train steps (`train.steps.build_train_step`: the
ResNeSt-50 COSNet with the global memory bank; `build_refine_step`: the
refinement stage with stage 1 frozen) and metrics. Model selection on val
(Dice of the stage's output, every --eval_every steps); the selected weights
are kept in host memory, not checkpointed. Stage 2 starts from the selected
stage-1 weights. Reports on test, in the layout of cosnet_jax.evaluate:
metrics.json (final output: 'refined', or 'coarse' with --refine_epochs 0),
metrics_coarse.json, metrics.md, roc.png, plus history.jsonl and run.json.
`--time_budget` / `--refine_time_budget` (seconds from the stage's first
step, compilation included) stop a stage early (the steps done are recorded)
so the script ends inside a fixed device lease.

`--stage1_out F` writes the selected stage-1 variables (flax msgpack); a later
command on the same machine can start from them with `--stage1_from F`
(stage 1 is then only validated, not trained), so several stage-2 settings
(`--set refine.…=v`, as the trainer's `--config.refine.…=v`) share one
stage 1 across the per-command time limit.
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
sys.path.insert(0, str(ROOT / 'experiments'))
from benchmark import apply_sets  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
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


def image_scores(probs: dict, arrays, threshold) -> list[dict]:
  """Per-image metrics ({'id', 'dice', ...}) of {index: [h, w] probabilities}."""
  from cosnet_jax.evaluation import metrics  # pylint: disable=g-import-not-at-top
  return [dict(id=arrays.ids[i], **metrics.image_metrics(
      probs[i], arrays.labels[i] & 1, None, threshold=threshold)) for i in sorted(probs)]


def relative_change(params, params0) -> float:
  """||params - params0|| / ||params0|| over all leaves (global L2 norms)."""
  import jax  # pylint: disable=g-import-not-at-top
  diff = sum(float(np.sum((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
             for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params0)))
  norm = sum(float(np.sum(np.asarray(b, np.float64) ** 2)) for b in jax.tree.leaves(params0))
  return float(np.sqrt(diff / max(norm, 1e-30)))


def load_stage1(path: str, template: dict, model_name: str) -> dict:
  """Stage-1 variables stored by --stage1_out, checked against `template`.

  flax's from_bytes restores into the template's tree but not its shapes, so a
  file of another model size would only fail later, inside the model; here
  every leaf's path and shape must match.
  """
  import flax.serialization  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  why = ''
  try:
    stored = flax.serialization.from_bytes(template, pathlib.Path(path).read_bytes())
  except (ValueError, KeyError, TypeError) as e:
    why = f'{type(e).__name__}: {e}'
  else:
    want = jax.tree_util.tree_flatten_with_path(template)[0]
    got = jax.tree_util.tree_flatten_with_path(stored)[0]
    for (kw, w), (kg, g) in zip(want, got):
      if kw != kg or np.shape(w) != np.shape(g):
        why = (f'{jax.tree_util.keystr(kg)} has shape {np.shape(g)}, expected '
               f'{np.shape(w)} at {jax.tree_util.keystr(kw)}')
        break
    if len(want) != len(got):
      why = why or f'{len(got)} arrays, expected {len(want)}'
  if why:
    raise SystemExit(f'--stage1_from {path}: not stage-1 variables of {model_name} ({why})')
  return stored


def train_stage(name, step_fn, state, it, num_steps, *, eval_every, time_budget,
                validate, hist, validate_start=False):
  """Runs `step_fn(state, batch) -> (state, metrics)` for up to num_steps.

  Calls validate(step, state) every eval_every steps, at the end and when
  time_budget (seconds since the first step was launched, compile included)
  runs out. A non-finite loss stops the stage (the step functions keep the
  last finite state; it is validated, so what was selected is kept and the
  run still reports). With validate_start the state is validated before the
  first step too (stage 2: the refiner's identity start competes, as
  `refine.select_start` in the main trainer). Returns (state, steps done,
  seconds, first-step seconds, 'non-finite loss before step N' or None).
  """
  import jax  # pylint: disable=g-import-not-at-top
  if validate_start:
    validate(0, state)
  t0 = time.time()
  t_first, pending, step = None, [], 0
  while step < num_steps:
    state, m = step_fn(state, next(it))
    step += 1
    pending.append(m)
    if step == 1:
      jax.block_until_ready(m)
      t_first = time.time() - t0
      print(f'[{name}] first step (compile) {t_first:.1f} s', flush=True)
    out_of_time = time.time() - t0 > time_budget
    if step % 50 == 0 or step == num_steps or out_of_time:
      ms = jax.device_get(pending)
      pending = []
      if any(x['finite'] < 1 for x in ms):
        failure = f'non-finite loss before step {step}'
        print(f'[{name}] {failure}: stopping this stage, keeping the selected '
              f'weights', flush=True)
        validate(step, state)
        return state, step, time.time() - t0, t_first, failure
      hist.write(json.dumps({'stage': name, 'step': step,
                             'loss': float(np.mean([x['loss'] for x in ms])),
                             'elapsed_s': time.time() - t0}) + '\n')
      hist.flush()
    if step % eval_every == 0 or step == num_steps or out_of_time:
      validate(step, state)
    if out_of_time:
      print(f'[{name}] time budget reached at step {step}/{num_steps}', flush=True)
      break
  return state, step, time.time() - t0, t_first, None


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--data_root', required=True)
  ap.add_argument('--out', required=True)
  ap.add_argument('--epochs', type=float, default=100, help='stage-1 epochs')
  ap.add_argument('--refine_epochs', type=float, default=0,
                  help='stage-2 (refinement) epochs; 0 skips stage 2')
  ap.add_argument('--eval_every', type=int, default=250)
  ap.add_argument('--time_budget', type=float, default=1e9,
                  help='seconds of stage-1 training (compile included)')
  ap.add_argument('--refine_time_budget', type=float, default=1e9,
                  help='seconds of stage-2 training (compile included)')
  ap.add_argument('--dtype', default='bfloat16')
  ap.add_argument('--model', default='', help='override config.model.name (tests)')
  ap.add_argument('--workers', type=int, default=8)
  ap.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                  help='config override (repeatable), e.g. refine.optimizer.weight_decay=0.0')
  ap.add_argument('--stage1_out', default='',
                  help='write the selected stage-1 variables here (msgpack)')
  ap.add_argument('--stage1_from', default='',
                  help='start from these stage-1 variables instead of training stage 1')
  args = ap.parse_args(argv)

  import flax.serialization  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from jax.sharding import NamedSharding, PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from cosnet_jax import models  # pylint: disable=g-import-not-at-top
  from cosnet_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from cosnet_jax.evaluation import report  # pylint: disable=g-import-not-at-top
  from cosnet_jax.models.config import default_model_config  # pylint: disable=g-import-not-at-top
  from cosnet_jax.train import state as state_lib, steps  # pylint: disable=g-import-not-at-top

  t_start = time.time()
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  c = load_config(args.dtype)
  if args.model:
    c.model = default_model_config(args.model)
    c.model.dtype = args.dtype
  try:
    apply_sets(c, args.set)
  except ValueError as e:
    raise SystemExit(str(e)) from None
  c.data.num_workers = args.workers
  if args.stage1_from and not pathlib.Path(args.stage1_from).is_file():
    raise SystemExit(f'--stage1_from {args.stage1_from}: no such file')
  c.data.prefetch = 4
  root = pathlib.Path(args.data_root)
  splits = {s: read_split(root, s, c.data) for s in ('train', 'val', 'test')}
  size = -(-max(max(i.shape) for i in splits['train'].images) // 32) * 32
  n_train = len(splits['train'])
  batch, batch2 = int(c.train.batch_size), int(c.refine.batch_size)
  num_steps = max(1, int(round(args.epochs * n_train / batch)))
  num_steps2 = int(round(args.refine_epochs * n_train / batch2))
  print(f'devices {jax.devices()}; train {n_train} val {len(splits["val"])} test '
        f'{len(splits["test"])}; {num_steps} + {num_steps2} steps of {batch} x {size}^2, '
        f'{c.model.name} {args.dtype}', flush=True)

  mesh = steps.make_mesh()
  replicated = NamedSharding(mesh, P())
  hist = open(out / 'history.jsonl', 'w')

  def iterator(batch_size, seed):
    it = pipeline.TrainIterator(c.data, splits['train'], local_batch_size=batch_size,
                                seed=seed, start_step=0, process_index=0,
                                out_hw=(size, size))
    return it, (steps.shard_batch(b, mesh) for b in it)

  def selector(name, predict_fn, key, extra=None):
    """validate(step, state): val Dice of output `key`; keeps the best weights.

    extra(variables, probs) -> {name: float}: more read-outs for the history
    line (stage 2: how far the refiner has moved from its identity start).
    """
    best = {'dice': -1.0, 'step': 0, 'vars': None}

    def validate(step, state):
      variables = {'params': state.params, 'batch_stats': state.batch_stats}
      fn, fn_vars = predict_fn(variables)
      probs = predict(fn, fn_vars, splits['val'], size, batch, mesh, key)
      dice = float(np.mean([r['dice'] for r in image_scores(
          probs, splits['val'], c.eval.threshold)]))
      more = extra(variables, probs) if extra else {}
      hist.write(json.dumps({'stage': name, 'step': step, 'val/dice': dice, **more}) + '\n')
      hist.flush()
      print(f'[{name}] step {step}: val dice {dice:.4f}'
            + ''.join(f', {k} {v:.3g}' for k, v in more.items()), flush=True)
      if dice > best['dice']:
        best.update(dice=dice, step=step, vars=jax.device_get(variables))
    return best, validate

  # ---- stage 1: COSNet with the global memory bank
  model = models.build_cosnet(c.model, axis_name=steps.AXIS)
  tx = state_lib.make_optimizer(c.optimizer, num_steps)
  create = lambda r: state_lib.create_train_state(r, model, c, (size, size), num_steps, tx)
  state = models.init_fast(jax.jit(create, out_shardings=replicated),
                           jax.random.PRNGKey(c.seed))
  train_step = steps.build_train_step(model, c, mesh)
  eval_step = steps.build_eval_step(model, mesh)
  best1, validate1 = selector('stage1', lambda v: (eval_step, (v,)), 'coarse')
  if args.stage1_from:
    # The stored variables replace the fresh ones (same tree: same config);
    # validated once so that run.json reports their val Dice.
    stored = load_stage1(args.stage1_from, jax.device_get(
        {'params': state.params, 'batch_stats': state.batch_stats}), c.model.name)
    validate1(0, state.replace(params=steps.replicate(stored['params'], mesh),
                               batch_stats=steps.replicate(stored['batch_stats'], mesh)))
    done1, train1_s, first1_s, fail1 = 0, 0.0, None, None
  else:
    it, batches = iterator(batch, c.seed)
    state, done1, train1_s, first1_s, fail1 = train_stage(
        'stage1', train_step, state, batches, num_steps, eval_every=args.eval_every,
        time_budget=args.time_budget, validate=validate1, hist=hist)
    it.close()
  del state
  if args.stage1_out:
    pathlib.Path(args.stage1_out).write_bytes(flax.serialization.to_bytes(best1['vars']))
  stage1_vars = steps.replicate(best1['vars'], mesh)

  # ---- stage 2: refinement, stage 1 frozen at its selected weights
  run2 = {}
  if num_steps2 > 0:
    refiner = models.build_refiner(c.refine.model, axis_name=steps.AXIS)
    tx2 = state_lib.make_optimizer(c.refine.optimizer, num_steps2)
    create2 = lambda r: state_lib.create_refine_state(r, refiner, c, (size, size),
                                                      num_steps2, tx2)
    state2 = jax.jit(create2, out_shardings=replicated)(jax.random.PRNGKey(c.seed + 1))
    refine_step = steps.build_refine_step(model, refiner, c, mesh)
    refine_eval = steps.build_refine_eval_step(model, refiner, mesh)
    # Why these read-outs: on the paper model the refiner stayed at its identity
    # start (H100 run); they show whether its weights or its output moved at all.
    params0 = jax.device_get(state2.params)
    val_coarse = predict(eval_step, (stage1_vars,), splits['val'], size, batch, mesh)

    last_conv = f'conv{len(c.refine.model.channels) + 1}'

    def refiner_moved(variables, probs):
      params = jax.device_get(variables['params'])
      return {'refiner_rel_change': relative_change(params, params0),
              # the one layer that moves the output off the identity (its
              # kernel starts at zero; the hidden convs feed BatchNorm)
              'refiner_last_kernel_norm': float(np.linalg.norm(
                  np.asarray(params[last_conv]['kernel'], np.float64))),
              'val_mean_abs_refined_minus_coarse': float(np.mean(
                  [np.abs(probs[i] - val_coarse[i]).mean() for i in probs]))}

    best2, validate2 = selector('stage2', lambda v: (refine_eval, (stage1_vars, v)),
                                'refined', extra=refiner_moved)
    it, batches = iterator(batch2, c.seed + 1)
    state2, done2, train2_s, first2_s, fail2 = train_stage(
        'stage2', lambda s, b: refine_step(s, stage1_vars, b), state2, batches, num_steps2,
        eval_every=args.eval_every, time_budget=args.refine_time_budget,
        validate=validate2, hist=hist,
        validate_start=bool(c.refine.get('select_start', True)))
    it.close()
    run2 = {'refine_steps_planned': num_steps2, 'refine_steps_done': done2,
            'refine_epochs_done': done2 * batch2 / n_train,
            'refine_selected_step': best2['step'], 'refine_val_dice': best2['dice'],
            'refine_first_step_s': first2_s, 'refine_train_s': train2_s,
            'refine_failure': fail2}

  # ---- test: the selected weights of each stage
  t = time.time()
  test = splits['test']
  score = lambda probs: image_scores(probs, test, c.eval.threshold)
  coarse_probs = predict(eval_step, (stage1_vars,), test, size, batch, mesh)
  coarse = score(coarse_probs)
  kwargs = dict(images=[x.astype(np.float32) / 255 for x in test.images],
                gts=[(x & 1).astype(np.float32) for x in test.labels], ids=test.ids,
                threshold=c.eval.threshold, overlays=False)
  if num_steps2 > 0:
    refine_vars = steps.replicate(best2['vars'], mesh)
    refined_probs = predict(refine_eval, (stage1_vars, refine_vars), test, size, batch,
                            mesh, key='refined')
    report.write_report(out, score(refined_probs),
                        probs=[refined_probs[i] for i in range(len(test))],
                        coarse=coarse, coarse_probs=[coarse_probs[i] for i in range(len(test))],
                        **kwargs)
  else:
    report.write_report(out, coarse, probs=[coarse_probs[i] for i in range(len(test))],
                        label='coarse', **kwargs)
  run = {'device': str(jax.devices()[0].device_kind), 'jax': jax.__version__,
         'model': c.model.name, 'dtype': args.dtype, 'batch': batch, 'input': size,
         'steps_planned': num_steps, 'steps_done': done1,
         'epochs_done': done1 * batch / n_train,
         'selected_step': best1['step'], 'val_dice': best1['dice'],
         'first_step_s': first1_s, 'train_s': train1_s,
         'images_per_s_incl_eval': done1 * batch / train1_s if train1_s else None,
         'failure': fail1, 'stage1_from': args.stage1_from or None,
         'config_sets': list(args.set), **run2,
         'test_eval_s': time.time() - t, 'total_s': time.time() - t_start,
         'stage': ('stage 1 + refinement' if num_steps2 > 0
                   else 'stage 1 (coarse); no refinement'),
         'command': ' '.join(sys.argv)}
  hist.close()
  (out / 'run.json').write_text(json.dumps(run, indent=1) + '\n')
  print((out / 'metrics.md').read_text())
  print(json.dumps(run, indent=1))


if __name__ == '__main__':
  main()
