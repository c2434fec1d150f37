r"""Why does a trained run score what it scores? Read-outs of one workdir.

  python experiments/diagnose.py RUN_WORKDIR [--parts fit,threshold,contrast,tta,shift,bn,weights]
      [--out experiments/results/diagnose/NAME.json] [--train_images 30] [--bn_batches 25]

fit        mean per-image Dice (Otsu) of the final and the stage-1 output on
           the train, val and test splits: train ~ test means the model
           under-fits (capacity / resolution / steps), train >> test over-fits.
threshold  mean Dice on val for fixed thresholds 0.05..0.95 against per-image
           Otsu; the threshold chosen on val is then applied to test (the only
           fair use of test here).
contrast   the stage-1 memory bank and anchors of each branch, from the LATEST
           stage-1 checkpoint (the bank as training left it):
           - bank: mean cosine within each class and across classes, for the
             pixel and the segment queue;
           - anchors on val (+ `--train_images` train images) at full size:
             "hard" pixels per image and class (misclassified under the
             per-image Otsu threshold, as in training), the InfoNCE loss of hard
             and easy anchors against that bank (`pixel_contrast_loss`, the
             training loss), and the share of hard pixels on the 1-pixel band
             either side of the label border (against the share of all pixels
             of the class on it).
tta        mean per-image Dice (Otsu) on val and test of every output without
           and with each test-time augmentation mode ('hflip': 2 passes,
           'flips': 4, 'flips_shifts': 16; `cosnet_jax.evaluation.tta`),
           and the number of test images each mode improves; whether to use
           it is read off val.
shift      is the flip gain the averaging of the decoder's 2x2 stride-2
           up-sampling phases? A mirror of an even-sized image moves every
           pixel to the other phase of that grid; one-pixel shifts do the
           same without mirroring. Mean Dice of the final output on val and
           test (and per image) for one pass, the mean of 4 one-pixel shifts
           ((0,0), (0,1), (1,0), (1,1); content moved down / right, border
           rows and columns replicated, `evaluation.tta.shift_region`), the
           mean of the 4 flips, the 4 flips x those 4 shifts (the tta mode
           'flips_shifts'), the 4 flips x the shifts {0, 2}^2 (the stride-4
           phases) and the 16 shifts {0..3}^2 without flips, all through
           `Segmenter`.
bn         are stage 1's BatchNorm running statistics the cause of its val
           swings? For the best and each kept latest stage-1 checkpoint: mean
           Dice of the stage-1 output on val and test with the stored running
           statistics and with statistics recomputed from its weights (the
           mean of the per-batch statistics of `--bn_batches` training batches,
           the crops the run would have drawn next); and, per BN layer of the
           best checkpoint, the channels whose running variance is below BN's
           eps (there the normalisation divides by about sqrt(eps), so the
           output follows small changes of the estimate).
weights    how much of stage 1 is alive: per top-level module of the best
           stage-1 checkpoint, the share of conv / dense kernel weights with
           |w| < 1e-4 and of BN scales with |gamma| < 1e-3 (Adam with L2 in
           the gradient, `optimizer.name='adam'`, drives the weights that the
           loss does not hold up to zero at about the learning rate per step).
Nothing here trains or touches test for a decision: it reads checkpoints.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosnet_jax.evaluation import tta as tta_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.951, 0.05))
SAMPLES_PER_GROUP = 200   # anchors per (image, class, hard/easy) for the loss


def _dice(prob, mask, threshold) -> float:
  """Dice of one map, as `image_metrics` computes it, without its AUC and
  clDice (the threshold sweep needs only Dice, 20 times per image)."""
  from cosnet_jax.evaluation import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
  pred, _ = metrics_lib.binarize(prob, threshold)
  counts = {k: int(np.count_nonzero(v))
            for k, v in metrics_lib.confusion_maps(pred, mask).items()}
  return metrics_lib.scores_from_counts(**counts)['dice']


def _mean_dice(results, output, threshold) -> float:
  return float(np.mean([_dice(r[output], r['mask'], threshold) for r in results]))


def fit_and_threshold(workdir, parts, checkpoint) -> dict:
  """The 'fit' and 'threshold' read-outs (one prediction pass per split)."""
  from cosnet_jax import evaluate  # pylint: disable=g-import-not-at-top
  splits = []
  if 'fit' in parts:
    splits.append('train')
  splits += ['val', 'test']
  pred = evaluate.predict_splits(workdir, splits, checkpoint=checkpoint)
  outputs, res = pred['outputs'], pred['results']
  final = outputs[-1]
  out = {'checkpoint_steps': pred['steps'], 'final_output': final}
  if 'fit' in parts:
    out['fit'] = {o: {s: _mean_dice(res[s], o, 'otsu') for s in splits}
                  for o in outputs}
    out['fit']['num_images'] = {s: len(res[s]) for s in splits}
  if 'threshold' in parts:
    val = {o: {'otsu': _mean_dice(res['val'], o, 'otsu'),
               **{f'{t:.2f}': _mean_dice(res['val'], o, t) for t in THRESHOLDS}}
           for o in outputs}
    best = {o: max(THRESHOLDS, key=lambda t, o=o: val[o][f'{t:.2f}']) for o in outputs}
    out['threshold'] = {
        'val_dice': val, 'chosen_on_val': best,
        'test_dice_otsu': {o: _mean_dice(res['test'], o, 'otsu') for o in outputs},
        'test_dice_at_chosen': {o: _mean_dice(res['test'], o, best[o]) for o in outputs}}
  return out


def tta_readout(workdir, checkpoint) -> dict:
  """The 'tta' read-out (see the module docstring)."""
  from cosnet_jax import evaluate  # pylint: disable=g-import-not-at-top
  out = {}
  per_image = {}
  for mode in tta_lib.MODES:
    pred = evaluate.predict_splits(workdir, ['val', 'test'], checkpoint=checkpoint,
                                   tta=mode)
    res = pred['results']
    out[mode] = {o: {s: _mean_dice(res[s], o, 'otsu') for s in ('val', 'test')}
                 for o in pred['outputs']}
    per_image[mode] = {o: [_dice(r[o], r['mask'], 'otsu') for r in res['test']]
                       for o in pred['outputs']}
  for mode in tta_lib.MODES:
    if mode != 'none':
      out[mode]['test_images_better'] = {
          o: int(np.sum(np.array(d) > np.array(per_image['none'][o])))
          for o, d in per_image[mode].items()}
  return {'tta': out, 'tta_test_images': len(per_image['none']['coarse'])}


# The 'shift' read-out's averages: name -> passes; 'flips' and 'flips_shifts'
# are the package's modes of those names.
_P = tta_lib.Pass
SHIFT_MODES = {
    'one_pass': tta_lib.MODES['none'],
    'shifts': [_P(False, False, dy, dx) for dy in (0, 1) for dx in (0, 1)],
    'flips': tta_lib.MODES['flips'],
    'flips_shifts': tta_lib.MODES['flips_shifts'],
    'flips_shifts02': [p._replace(shift_y=dy, shift_x=dx) for p in tta_lib.MODES['flips']
                       for dy in (0, 2) for dx in (0, 2)],
    'shifts0123': [_P(False, False, dy, dx) for dy in range(4) for dx in range(4)],
}


def shift_readout(workdir, checkpoint) -> dict:
  """The 'shift' read-out (see the module docstring)."""
  from cosnet_jax import evaluate  # pylint: disable=g-import-not-at-top
  from cosnet_jax.evaluation import inference  # pylint: disable=g-import-not-at-top
  pred = evaluate.predict_splits(workdir, ['val', 'test'], checkpoint=checkpoint)
  seg = inference.Segmenter.from_workdir(workdir, checkpoint, tta='none')
  one = seg._probabilities  # preprocessed [H, W] -> probabilities [H, W]

  out, per_image = {}, {}
  for split in ('val', 'test'):
    res = pred['results'][split]
    dice = {k: [] for k in SHIFT_MODES}
    for r in res:
      cache = {}   # the modes share passes: each runs once per image
      for name, passes in SHIFT_MODES.items():
        for p in passes:
          if p not in cache:
            cache[p] = tta_lib.image_pass(one, r['image'], p)
        prob = np.mean([cache[p] for p in passes], axis=0)
        dice[name].append(_dice(prob, r['mask'], 'otsu'))
    out[split] = {k: float(np.mean(v)) for k, v in dice.items()}
    per_image[split] = dice
  return {'shift': out, 'shift_per_image': per_image, 'shift_output': seg.output_name}


def recompute_batch_stats(stats_of_batch, batches, momentum: float):
  """Mean over `batches` of each BatchNorm layer's batch statistics.

  Args:
    stats_of_batch: fn(batch) -> the `batch_stats` collection after ONE
      train-mode pass from all-zero running statistics, i.e. (1 - momentum)
      times that batch's mean and (biased) variance per layer.
    batches: iterable of model inputs.
    momentum: the layers' running-average momentum.
  Returns:
    A `batch_stats` pytree of numpy arrays: per layer the mean over batches
    of the batch means and of the batch variances ("precise BN").
  """
  import jax  # pylint: disable=g-import-not-at-top
  total, n = None, 0
  for x in batches:
    stats = jax.tree.map(lambda a: np.asarray(a, np.float64) / (1.0 - momentum),
                         stats_of_batch(x))
    total = stats if total is None else jax.tree.map(np.add, total, stats)
    n += 1
  if n == 0:
    raise ValueError('recompute_batch_stats: no batches')
  return jax.tree.map(lambda a: (a / n).astype(np.float32), total)


def bn_census(batch_stats, eps: float) -> dict:
  """Channels per BN layer and those with running variance below eps."""
  import jax  # pylint: disable=g-import-not-at-top
  layers = {}
  for path, var in jax.tree_util.tree_flatten_with_path(batch_stats)[0]:
    keys = [getattr(k, 'key', str(k)) for k in path]
    if keys[-1] != 'var':
      continue
    var = np.asarray(var)
    layers['/'.join(keys[:-1])] = {'channels': int(var.size),
                                   'below_eps': int(np.sum(var < eps))}
  return {'layers': layers,
          'channels': sum(v['channels'] for v in layers.values()),
          'below_eps': sum(v['below_eps'] for v in layers.values())}


def weight_census(params, kernel_tol: float = 1e-4, scale_tol: float = 1e-3) -> dict:
  """Per top-level module: kernel weights below kernel_tol, BN scales below scale_tol."""
  import jax  # pylint: disable=g-import-not-at-top
  out = {}
  for path, value in jax.tree_util.tree_flatten_with_path(params)[0]:
    keys = [getattr(k, 'key', str(k)) for k in path]
    kind = {'kernel': 'kernel', 'scale': 'scale'}.get(keys[-1])
    if kind is None:
      continue
    tol = kernel_tol if kind == 'kernel' else scale_tol
    v = np.abs(np.asarray(value))
    entry = out.setdefault(keys[0], {'kernel': [0, 0], 'scale': [0, 0]})
    entry[kind][0] += int(np.sum(v < tol))
    entry[kind][1] += int(v.size)
  total = {k: [sum(e[k][i] for e in out.values()) for i in (0, 1)] for k in ('kernel', 'scale')}
  share = lambda c: c[0] / c[1] if c[1] else None
  return {'kernel_tol': kernel_tol, 'scale_tol': scale_tol,
          'modules': {m: {'kernels_below': share(e['kernel']), 'kernels': e['kernel'][1],
                          'scales_below': share(e['scale']), 'scales': e['scale'][1]}
                      for m, e in sorted(out.items())},
          'kernels_below': share(total['kernel']), 'scales_below': share(total['scale'])}


def weights_readout(workdir) -> dict:
  """The 'weights' read-out (see the module docstring)."""
  from cosnet_jax.evaluation import inference  # pylint: disable=g-import-not-at-top
  from cosnet_jax.train.checkpoint import StageCheckpoints  # pylint: disable=g-import-not-at-top
  config = inference.load_run_config(workdir)
  ckpt = StageCheckpoints(pathlib.Path(workdir) / 'checkpoints' / 'stage1')
  try:
    raw, step = ckpt.restore_raw('best')
  finally:
    ckpt.close()
  out = weight_census(inference._variables(raw)['params'])  # pylint: disable=protected-access
  out.update(step=int(step), optimizer=str(config.optimizer.get('name', 'adam')),
             weight_decay=float(config.optimizer.weight_decay),
             learning_rate=float(config.optimizer.learning_rate))
  return out


def bn_readout(workdir, num_batches: int) -> dict:
  """The 'bn' read-out (see the module docstring)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from cosnet_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from cosnet_jax import models  # pylint: disable=g-import-not-at-top
  from cosnet_jax.evaluation import inference  # pylint: disable=g-import-not-at-top
  from cosnet_jax.models import conv_bn  # pylint: disable=g-import-not-at-top
  from cosnet_jax.train.checkpoint import StageCheckpoints  # pylint: disable=g-import-not-at-top
  config = inference.load_run_config(workdir)
  model = models.build_cosnet(config.model)
  from cosnet_jax.models import fast_conv  # pylint: disable=g-import-not-at-top
  # Eval-mode passes compile as `Segmenter` does (XLA's own reductions).
  forward = jax.jit(lambda v, x: model.apply(v, x, train=False)['coarse'],
                    compiler_options=fast_conv.xla_compiler_options(mode='infer'))

  @jax.jit
  def stats_of_batch(params, zeros, x):
    _, upd = model.apply({'params': params, 'batch_stats': zeros}, x, train=True,
                         mutable=['batch_stats'])
    return upd['batch_stats']

  splits = {s: list(data_lib.make_eval_batches(config.data, config.data[f'{s}_split'],
                                               batch_size=8)) for s in ('val', 'test')}

  def dice(variables, split):
    out = []
    for b in splits[split]:
      prob = np.asarray(forward(variables, jnp.asarray(b['image'])))
      for i, image_id in enumerate(b['id']):
        if image_id:
          h, w = int(b['height'][i]), int(b['width'][i])
          out.append(_dice(prob[i, :h, :w, 0], b['mask'][i, :h, :w, 0], 'otsu'))
    return float(np.mean(out))

  ckpt = StageCheckpoints(pathlib.Path(workdir) / 'checkpoints' / 'stage1')
  try:
    steps = ['best'] + [int(s) for s in sorted(ckpt.latest.all_steps())]
    out = {'batches': num_batches, 'checkpoints': []}
    for which in steps:
      raw, step = ckpt.restore_raw(which)
      stored = inference._variables(raw)  # pylint: disable=protected-access
      params = stored['params']
      zeros = jax.tree.map(jnp.zeros_like, raw['batch_stats'])
      it = data_lib.make_train_iterator(config.data, global_batch_size=8,
                                        seed=int(config.seed), start_step=int(step))
      batches = (jnp.asarray(next(it)['image']) for _ in range(num_batches))
      fresh = recompute_batch_stats(lambda x: stats_of_batch(params, zeros, x),
                                    batches, conv_bn.BN_MOMENTUM)
      recomputed = {'params': params, 'batch_stats': fresh}
      out['checkpoints'].append({
          'checkpoint': which if which == 'best' else 'latest', 'step': int(step),
          'stored': {s: dice(stored, s) for s in splits},
          'recomputed': {s: dice(recomputed, s) for s in splits}})
      if which == 'best':
        out['census'] = bn_census(raw['batch_stats'], conv_bn.BN_EPS)
  finally:
    ckpt.close()
  return out


def _border_band(gt: np.ndarray) -> np.ndarray:
  """bool [H, W]: pixels whose 4-neighbourhood holds the other class."""
  pad = np.pad(gt, 1, mode='edge')
  band = np.zeros_like(gt)
  for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
    band |= pad[dy:dy + gt.shape[0], dx:dx + gt.shape[1]] != gt
  return band


def _bank_stats(bank) -> dict:
  out = {'pixel_filled': np.asarray(bank.pixel_filled).tolist(),
         'segment_filled': np.asarray(bank.segment_filled).tolist()}
  for name in ('pixel_queue', 'segment_queue'):
    q = np.asarray(getattr(bank, name), np.float64)       # [C, L, D]
    out[name] = {'cos_within_background': float(np.mean(q[0] @ q[0].T)),
                 'cos_within_vessel': float(np.mean(q[1] @ q[1].T)),
                 'cos_across': float(np.mean(q[0] @ q[1].T))}
  return out


def contrast_readout(workdir, train_images: int) -> dict:
  """The 'contrast' read-out (see the module docstring)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from cosnet_jax import contrast as contrast_lib  # pylint: disable=g-import-not-at-top
  from cosnet_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from cosnet_jax import models  # pylint: disable=g-import-not-at-top
  from cosnet_jax.evaluation import inference  # pylint: disable=g-import-not-at-top
  from cosnet_jax.evaluation import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
  from cosnet_jax.train.checkpoint import StageCheckpoints  # pylint: disable=g-import-not-at-top

  workdir = pathlib.Path(workdir)
  config = inference.load_run_config(workdir)
  ccfg = config.contrast
  ckpts = StageCheckpoints(workdir / 'checkpoints' / 'stage1')
  try:
    raw, step = ckpts.restore_raw('latest')
  finally:
    ckpts.close()
  if 'bank_thick' not in raw:
    raise ValueError(f'{workdir}: the stage-1 checkpoint holds no memory bank')
  model = models.build_cosnet(config.model)
  variables = {'params': raw['params'], 'batch_stats': raw['batch_stats']}
  from cosnet_jax.models import fast_conv  # pylint: disable=g-import-not-at-top
  forward = jax.jit(lambda v, x: model.apply(v, x, train=False, with_embeddings=True),
                    compiler_options=fast_conv.xla_compiler_options(mode='infer'))
  classes = tuple(int(c) for c in ccfg.enqueue_classes)
  loss_fn = jax.jit(lambda a, f, l, v: contrast_lib.pixel_contrast_loss(
      a, f, l, v, temperature=ccfg.temperature,
      base_temperature=ccfg.base_temperature))
  rng = np.random.default_rng(0)
  out = {'stage1_step': int(step), 'temperature': float(ccfg.temperature),
         'weight': float(ccfg.weight), 'branches': {}}
  for branch in ('thick', 'thin'):
    bank = contrast_lib.MemoryBank(**{k: jnp.asarray(v)
                                      for k, v in raw[f'bank_{branch}'].items()})
    c_feat, c_lab, c_ok = contrast_lib.bank_contrast_set(bank, classes=classes)
    per_split = {}
    for split, limit in (('val', None), ('train', train_images)):
      acc = {k: [] for k in ('hard_bg', 'hard_vessel', 'loss_hard_bg', 'loss_hard_vessel',
                             'loss_easy_bg', 'loss_easy_vessel', 'hard_on_border',
                             'vessel_on_border', 'bg_on_border')}
      n = 0
      for batch in data_lib.make_eval_batches(config.data, split, batch_size=2,
                                              process_index=0, process_count=1):
        o = jax.device_get(forward(variables, jnp.asarray(batch['image'])))
        for i, image_id in enumerate(batch['id']):
          if not image_id or (limit is not None and n >= limit):
            continue
          h, w = int(batch['height'][i]), int(batch['width'][i])
          prob = o[branch][i, :h, :w, 0]
          emb = o[f'embed_{branch}'][i, :h, :w].reshape(h * w, -1)
          gt = batch[branch][i, :h, :w, 0] > 0.5
          pred, _ = metrics_lib.binarize(prob, 'otsu')
          band = _border_band(gt)
          for c, cname in ((0, 'bg'), (1, 'vessel')):
            is_c = gt if c else ~gt
            hard, easy = is_c & (pred != bool(c)), is_c & (pred == bool(c))
            acc[f'hard_{cname}'].append(int(hard.sum()))
            acc[f'{cname}_on_border'].append(float(band[is_c].mean()))
            for kind, m in (('hard', hard), ('easy', easy)):
              idx = np.flatnonzero(m)
              if not len(idx):
                continue
              idx = rng.choice(idx, min(len(idx), SAMPLES_PER_GROUP), replace=False)
              # Padded to a fixed row count (invalid rows add nothing), so the
              # loss compiles once rather than once per group size.
              feat = np.zeros((SAMPLES_PER_GROUP, emb.shape[-1]), np.float32)
              feat[:len(idx)] = emb[idx]
              anchors = contrast_lib.Anchors(
                  feat=jnp.asarray(feat),
                  label=jnp.full((SAMPLES_PER_GROUP,), c, jnp.int32),
                  valid=jnp.arange(SAMPLES_PER_GROUP) < len(idx))
              total, count = loss_fn(anchors, c_feat, c_lab, c_ok)
              acc[f'loss_{kind}_{cname}'].append(float(total / count))
          wrong = gt != pred
          if wrong.any():
            acc['hard_on_border'].append(float(band[wrong].mean()))
          n += 1
        if limit is not None and n >= limit:
          break
      per_split[split] = {'images': n, **{k: float(np.mean(v)) if v else None
                                          for k, v in acc.items()}}
    out['branches'][branch] = {'bank': _bank_stats(bank), 'anchors': per_split}
  return out


def _print(report: dict) -> None:
  if 'fit' in report:
    print('fit (mean per-image Dice, Otsu):')
    for o, row in report['fit'].items():
      if o != 'num_images':
        print(f'  {o:8s} ' + '  '.join(f'{s} {d:.4f}' for s, d in row.items()))
  if 'threshold' in report:
    t = report['threshold']
    for o in t['val_dice']:
      v, best = t['val_dice'][o], t['chosen_on_val'][o]
      print(f"threshold ({o}): val Otsu {v['otsu']:.4f}, best fixed "
            f"{best:.2f} -> val {v['%.2f' % best]:.4f}; "
            f"test Otsu {t['test_dice_otsu'][o]:.4f}, test at the val choice "
            f"{t['test_dice_at_chosen'][o]:.4f}")
  if 'tta' in report:
    n = report['tta_test_images']
    for mode, r in report['tta'].items():
      better = r.get('test_images_better', {})
      print(f'tta {mode:12s}: ' + '; '.join(
          f"{o} val {r[o]['val']:.4f} test {r[o]['test']:.4f}" +
          (f' (better on {better[o]}/{n} test images)' if o in better else '')
          for o in r if o != 'test_images_better'))
  if 'shift' in report:
    for split, r in report['shift'].items():
      print(f"shift ({report['shift_output']}, {split}): " +
            ', '.join(f'{k} {v:.4f}' for k, v in r.items()))
  if 'bn' in report:
    _print_bn(report['bn'])
  if 'weights' in report:
    _print_weights(report['weights'])
  if 'contrast' in report:
    c = report['contrast']
    print(f"contrast (stage-1 step {c['stage1_step']}, T {c['temperature']}):")
    for br, r in c['branches'].items():
      b = r['bank']
      print(f"  {br}: bank pixel queue cos within bg/vessel/across "
            f"{b['pixel_queue']['cos_within_background']:.3f} / "
            f"{b['pixel_queue']['cos_within_vessel']:.3f} / "
            f"{b['pixel_queue']['cos_across']:.3f}; segment queue "
            f"{b['segment_queue']['cos_within_background']:.3f} / "
            f"{b['segment_queue']['cos_within_vessel']:.3f} / "
            f"{b['segment_queue']['cos_across']:.3f}")
      for split, a in r['anchors'].items():
        f = lambda x: 'n/a' if x is None else f'{x:.3g}'
        print(f"    {split} ({a['images']} images): hard px/image bg {f(a['hard_bg'])}, "
              f"vessel {f(a['hard_vessel'])}; InfoNCE hard bg {f(a['loss_hard_bg'])}, "
              f"hard vessel {f(a['loss_hard_vessel'])}, easy bg {f(a['loss_easy_bg'])}, "
              f"easy vessel {f(a['loss_easy_vessel'])}; on the label border: hard "
              f"{f(a['hard_on_border'])}, vessel {f(a['vessel_on_border'])}, bg "
              f"{f(a['bg_on_border'])}")


def _print_bn(b: dict) -> None:
  print(f"bn (stage 1, statistics recomputed over {b['batches']} training batches):")
  for c in b['checkpoints']:
    print(f"  {c['checkpoint']} step {c['step']}: stored val {c['stored']['val']:.4f} "
          f"test {c['stored']['test']:.4f}; recomputed val {c['recomputed']['val']:.4f} "
          f"test {c['recomputed']['test']:.4f}")
  census = b.get('census')
  if census:
    print(f"  best checkpoint: {census['below_eps']} of {census['channels']} BN channels "
          'have running variance below eps')


def _print_weights(w: dict) -> None:
  share = lambda x: '-' if x is None else f'{x:.1%}'
  print(f"weights (best stage-1 step {w['step']}, {w['optimizer']}, weight decay "
        f"{w['weight_decay']:g}, lr {w['learning_rate']:g}): kernels |w| < "
        f"{w['kernel_tol']:g}: {share(w['kernels_below'])}; BN scales < "
        f"{w['scale_tol']:g}: {share(w['scales_below'])}")
  for m, e in w['modules'].items():
    print(f"  {m}: kernels {share(e['kernels_below'])} of {e['kernels']}, "
          f"scales {share(e['scales_below'])} of {e['scales']}")


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('workdir')
  p.add_argument('--parts', default='fit,threshold,contrast')
  p.add_argument('--checkpoint', default='best', help="for fit / threshold")
  p.add_argument('--train_images', type=int, default=30,
                 help='train images in the contrast read-out (besides val)')
  p.add_argument('--bn_batches', type=int, default=25,
                 help='training batches the bn read-out recomputes statistics over')
  p.add_argument('--out', default='', help='JSON file to write')
  args = p.parse_args(argv)
  parts = set(args.parts.split(','))
  unknown = parts - {'fit', 'threshold', 'contrast', 'tta', 'shift', 'bn', 'weights'}
  if unknown:
    raise SystemExit(f'--parts: unknown {sorted(unknown)}; '
                     'expected fit, threshold, contrast, tta, shift, bn, weights')
  workdir = pathlib.Path(args.workdir)
  if not (workdir / 'config.json').is_file():
    raise SystemExit(f'{workdir}: not a training workdir (no config.json)')
  report = {'workdir': str(workdir)}
  if parts & {'fit', 'threshold'}:
    report.update(fit_and_threshold(workdir, parts, args.checkpoint))
  if 'tta' in parts:
    report.update(tta_readout(workdir, args.checkpoint))
  if 'shift' in parts:
    report.update(shift_readout(workdir, args.checkpoint))
  if 'contrast' in parts:
    report['contrast'] = contrast_readout(workdir, args.train_images)
  if 'bn' in parts:
    report['bn'] = bn_readout(workdir, args.bn_batches)
  if 'weights' in parts:
    report['weights'] = weights_readout(workdir)
  _print(report)
  if args.out:
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + '\n')
    print(f'written to {path}')


if __name__ == '__main__':
  main()
