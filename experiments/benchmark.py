r"""Train-step and inference speed of a recipe, with the losses of a fixed batch.

  python experiments/benchmark.py --out bench.json                      # the CPU recipe
  python experiments/benchmark.py --config octa500_3m --out paper.json  # the paper model
  python experiments/benchmark.py --out ref.json --platform_reference   # plain layers

For the config (default `octa500_3m:cpu`, the README's CPU recipe) at its
batch and crop size, in this process, on synthetic vessel-like batches:

* losses: the loss of the first 5 steps on one fixed batch from the seeded
  initial state (a refactor that keeps the function keeps these to 1e-5);
* compile_s, train_step_s (median of --steps steady-state steps after 2
  warm-up steps) and p20_step_s, images_per_s;
* model_gflops_per_step: XLA's cost analysis of the train step lowered with
  the reference formulation (the model's own layers), achieved GFLOP/s and
  MFU against a float32 (CPU) or bfloat16 (GPU) matmul timed in the same
  process (`matmul_gflops`; the machine's speed, for comparing wall times);
* infer_s: stage 1 + refinement on one 304x304 image (padded), batch 1.

`--platform_reference` runs the plain layers and XLA's default options
instead of the CPU formulations (models/formulation.py), for A/B figures. The train
step is the package's own (`cosnet_jax.train.steps.build_train_step`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform as platform_lib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:   # `python experiments/benchmark.py` from anywhere
  sys.path.insert(0, str(ROOT))


def synthetic_batch(b: int, hw: tuple[int, int], seed: int = 0) -> dict:
  """A fixed batch of vessel-like images: [b, h, w, 1] float32 arrays."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:hw[0], :hw[1]]
  mask = np.stack([(np.abs(np.sin(xx / (5 + i)) + np.cos(yy / (7 + i))) < 0.3)
                   for i in range(b)])[..., None].astype(np.float32)
  img = np.clip(rng.uniform(size=mask.shape) * 0.3 + mask * 0.6, 0, 1).astype(np.float32)
  return {'image': img, 'mask': mask, 'thick': mask, 'thin': mask,
          'valid': np.ones_like(mask)}


def matmul_gflops(backend: str, repeats: int = 5) -> float:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  n = 2048 if backend == 'cpu' else 8192
  dtype = jnp.float32 if backend == 'cpu' else jnp.bfloat16
  a = jnp.ones((n, n), dtype)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  ts = []
  for _ in range(repeats):
    t = time.perf_counter()
    f(a).block_until_ready()
    ts.append(time.perf_counter() - t)
  return 2 * n ** 3 / statistics.median(ts) / 1e9


def cpu_name() -> str:
  try:
    for line in Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform_lib.processor() or 'unknown'


def run(config_name: str, steps: int, reference: bool) -> dict:
  # Imported here, after main's huge-page restart (glibc reads it at process start).
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from cosnet_jax import config_files, hugepages, models, sharding  # pylint: disable=g-import-not-at-top
  from cosnet_jax.inference import steps as eval_steps  # pylint: disable=g-import-not-at-top
  from cosnet_jax.models.formulation import formulation  # pylint: disable=g-import-not-at-top
  from cosnet_jax.train import compiled as compiled_lib, steps as steps_lib  # pylint: disable=g-import-not-at-top
  c = config_files.load(config_files.resolve(config_name))
  if reference:
    with c.unlocked():
      c.platform.update(grouped_conv='native', dense_group_width=0, fused_projection='off',
                        max_pool='reduce_window', xla_options='off')
  backend = jax.default_backend()
  mesh = sharding.make_mesh()
  b = int(c.train.batch_size)
  side = -(-max(c.data.crop_size, 32) // 32) * 32 if c.data.crop_size > 0 else 320
  hw = (side, side)
  num_steps = max(int(c.train.num_steps), 1)
  res = {'config': config_name, 'reference_formulation': reference, 'backend': backend,
         'device_kind': jax.devices()[0].device_kind, 'devices': jax.device_count(),
         'cpu': cpu_name(), 'cpu_count': os.cpu_count(), 'batch': b, 'train_hw': list(hw),
         'formulation': str(formulation(c.platform, backend)),
         'hugepages': hugepages.active(), 'jax': jax.__version__}
  res['matmul_gflops_before'] = matmul_gflops(backend)
  fns = compiled_lib.stage1_functions(c, mesh, num_steps)
  model, step = fns.model, fns.train_step
  state = fns.init(jax.random.PRNGKey(c.seed))
  batch = sharding.shard_batch(synthetic_batch(b, hw), mesh)
  # FLOPs of the model's own layers (not of the faster formulations).
  ref = models.build_cosnet(c.model, axis_name=sharding.AXIS)
  lowered = steps_lib.build_train_step(ref, c, mesh).lower(state, batch)
  cost = lowered.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  res['model_gflops_per_step'] = float(cost['flops']) / 1e9 * jax.device_count()
  t = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  res['compile_s'] = time.perf_counter() - t
  losses = []
  for _ in range(5):
    state, m = compiled(state, batch)
    losses.append(float(m['loss']))
  res['losses'] = losses
  ts = []
  for _ in range(steps):
    t = time.perf_counter()
    state, m = compiled(state, batch)
    jax.block_until_ready(m)
    ts.append(time.perf_counter() - t)
  res['train_step_s'] = statistics.median(ts)
  res['p20_step_s'] = sorted(ts)[len(ts) // 5]
  res['images_per_s'] = b / res['train_step_s']
  res['matmul_gflops_after'] = matmul_gflops(backend)
  mm = statistics.median([res['matmul_gflops_before'], res['matmul_gflops_after']])
  res['achieved_gflops'] = res['model_gflops_per_step'] / res['train_step_s']
  res['mfu'] = res['achieved_gflops'] / mm
  # Inference: stage 1 + refinement on one 304x304 image, padded to 320.
  refiner = models.build_refiner(c.refine.model, axis_name=sharding.AXIS)
  dummy = np.zeros((1, 320, 320, 1), np.float32)
  rvars = jax.jit(lambda k: refiner.init(k, dummy, dummy, dummy, train=False))(
      jax.random.key(1))
  mesh1 = sharding.make_mesh(jax.devices()[:1])
  predict = eval_steps.build_refine_eval_step(model, refiner, mesh1, c.platform)
  s1 = sharding.replicate({'params': state.params, 'batch_stats': state.batch_stats}, mesh1)
  s2 = sharding.replicate(jax.device_get(rvars), mesh1)
  ib = sharding.shard_batch({'image': synthetic_batch(1, (320, 320))['image']}, mesh1)
  jax.block_until_ready(predict(s1, s2, ib))
  its = []
  for _ in range(5):
    t = time.perf_counter()
    jax.block_until_ready(predict(s1, s2, ib))
    its.append(time.perf_counter() - t)
  res['infer_s'] = statistics.median(its)
  return res


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--config', default='octa500_3m:cpu', help='config file or shipped name[:arg]')
  ap.add_argument('--steps', type=int, default=30, help='timed steps')
  ap.add_argument('--out', required=True, help='JSON file to write')
  ap.add_argument('--platform_reference', action='store_true',
                  help='plain layers and XLA defaults instead of the CPU formulations')
  ap.add_argument('--nohugepages', action='store_true', help='no glibc huge pages')
  args = ap.parse_args(argv)
  if not args.nohugepages:
    from cosnet_jax import hugepages  # pylint: disable=g-import-not-at-top  (before jax)
    hugepages.reexec()
  res = run(args.config, args.steps, args.platform_reference)
  Path(args.out).write_text(json.dumps(res, indent=1) + '\n')
  for k in ('losses', 'compile_s', 'train_step_s', 'p20_step_s', 'images_per_s',
            'model_gflops_per_step', 'achieved_gflops', 'matmul_gflops_before', 'mfu',
            'infer_s', 'hugepages'):
    v = res[k]
    print(f'{k:24s} {v if not isinstance(v, float) else round(v, 4)}')


if __name__ == '__main__':
  main()
