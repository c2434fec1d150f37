"""Parameter counts and FLOPs per image of each model size.

  python -m cosnet_jax.models.summary [--size 320] [--size 512] [--json]

Parameters come from `jax.eval_shape(model.init)`; FLOPs from XLA's cost
analysis of the lowered (not compiled) forward pass at batch 1
(`jax.jit(f).lower(abstract inputs).cost_analysis()`; a multiply-add counts
as 2 FLOPs). `infer` = thick/thin maps only (evaluation / prediction),
`train` = training-mode forward with both projection heads (the backward pass
costs roughly twice more).
"""
from __future__ import annotations

import argparse
import json
from typing import Any

import jax
import jax.numpy as jnp

from cosnet_jax.config import MODEL_PRESETS, model_config, refine_model_config
from cosnet_jax.models.cosnet import build_cosnet
from cosnet_jax.models.refiner import build_refiner


def _count(tree: Any) -> int:
  return int(sum(a.size for a in jax.tree.leaves(tree)))


def parameter_table(params: Any) -> tuple[str, int]:
  """(text table of every parameter array: path, shape, size; total count)."""
  rows = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    name = '/'.join(str(getattr(k, 'key', k)) for k in path)
    rows.append((name, 'x'.join(str(d) for d in leaf.shape) or 'scalar', int(leaf.size)))
  width = max((len(r[0]) for r in rows), default=4)
  total = sum(r[2] for r in rows)
  lines = [f'{"name":<{width}}  {"shape":>16}  {"size":>10}']
  lines += [f'{n:<{width}}  {s:>16}  {c:>10,d}' for n, s, c in rows]
  lines.append(f'{"total":<{width}}  {"":>16}  {total:>10,d}  ({len(rows)} arrays)')
  return '\n'.join(lines) + '\n', total


def _flops(fn, *args) -> float:
  # The models are built with the reference formulation (their own layers,
  # not the platform's faster forms), so the count is the model's FLOPs.
  cost = jax.jit(fn).lower(*args).cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax returned one dict per device
    cost = cost[0]
  return float(cost['flops'])


def model_figures(name: str, sizes: tuple[int, ...] = (320,)) -> dict[str, Any]:
  """{'params': {...}, 'gflops': {size: {'infer', 'train'}}} for preset `name`."""
  model = build_cosnet(model_config(name))
  x = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
  p = variables['params']
  params = {
      'total': _count(p),
      'encoder': _count(p['encoder']),
      'decoder_thick': _count(p['decoder_thick']),
      'decoder_thin': _count(p['decoder_thin']),
      'heads': _count({k: v for k, v in p.items() if k.startswith(('seg_', 'proj_'))}),
  }
  gflops = {}
  for size in sizes:
    img = jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32)
    infer = _flops(lambda v, x: model.apply(v, x, train=False), variables, img)
    train = _flops(lambda v, x: model.apply(v, x, train=True, with_embeddings=True,
                                            mutable=['batch_stats']), variables, img)
    gflops[size] = {'infer': infer / 1e9, 'train': train / 1e9}
  return {'params': params, 'gflops': gflops}


def refiner_figures(sizes: tuple[int, ...] = (320,)) -> dict[str, Any]:
  refiner = build_refiner(refine_model_config())
  x = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  variables = jax.eval_shape(lambda x: refiner.init(jax.random.key(0), x, x, x), x)
  gflops = {}
  for size in sizes:
    img = jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32)
    gflops[size] = {'infer': _flops(lambda v, x: refiner.apply(v, x, x, x), variables, img)
                    / 1e9}
  return {'params': {'total': _count(variables['params'])}, 'gflops': gflops}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--size', type=int, action='append',
                      help='square input size, a multiple of 32 (repeatable; default 320)')
  parser.add_argument('--model', action='append', choices=sorted(MODEL_PRESETS),
                      help='preset(s) to report (default: all)')
  parser.add_argument('--json', action='store_true', help='print JSON instead of a table')
  args = parser.parse_args(argv)
  sizes = tuple(args.size or (320,))
  names = args.model or ['cosnet_tiny', 'cosnet_small', 'cosnet_resnest50']
  results = {name: model_figures(name, sizes) for name in names}
  results['refiner'] = refiner_figures(sizes)
  if args.json:
    print(json.dumps(results, indent=2))
    return
  header = '| model | params | encoder | decoders | heads | ' + ' | '.join(
      f'GFLOP {s}² infer | GFLOP {s}² train fwd' for s in sizes) + ' |'
  print(header)
  print('|' + '---|' * (header.count('|') - 1))
  for name, r in results.items():
    p = r['params']
    parts = [p['encoder'], p['decoder_thick'] + p['decoder_thin'], p['heads']] \
        if 'encoder' in p else []
    cells = [name, f"{p['total']:,}"] + ([f'{n:,}' for n in parts] or ['-'] * 3)
    for s in sizes:
      g = r['gflops'][s]
      cells += [f"{g['infer']:.2f}", f"{g['train']:.2f}" if 'train' in g else '-']
    print('| ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
  main()
