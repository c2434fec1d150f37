r"""Training / inference throughput and model FLOP utilisation (MFU) of COSNet.

  python experiments/benchmark.py --out bench.json [--quick]
  python experiments/benchmark.py --out gpu.json --models paper --dtype bfloat16

For each model (`cpu` = configs/cpu.py, `quickstart` = configs/synthetic.py,
`paper` = configs/default.py) at the config's batch and crop size, a fresh
subprocess measures:

* init_s / compile_s: jit of create_train_state, compile of the train step;
* train_step_s: median of >= 10 steady-state steps (after 2 warm-up steps) of
  `train.steps.build_train_step` on synthetic vessel-like batches;
* images_per_s, pixels_per_s;
* model_gflops_per_step: FLOPs of one train step from XLA's cost analysis of
  the UNOPTIMISED step lowered as the model defines its layers
  (`conv_bn.reference_formulation`: grouped convolutions as per-group slices,
  projection heads layer by layer), whatever formulation runs;
* achieved_gflops = model_gflops_per_step / train_step_s, and mfu =
  achieved_gflops / matmul_gflops, where matmul_gflops is a large float32
  (CPU) or bfloat16 (GPU) `jnp.dot` timed in the same process; on CPU each
  timed step is also paired with a matmul run just before it (`mfu_paired`,
  robust to other load on a shared machine);
* infer_s_per_image: stage 1 + refinement on one 304x304 image (padded to
  the network multiple), batch = device count;
* peak_rss_gb (ru_maxrss of the subprocess; includes compilation) and, on
  accelerators, the device's peak_bytes_in_use; xla_*_gb: XLA's buffer plan
  of the compiled step (`--compile_only` stops there: memory of a
  configuration too slow to step, e.g. the paper model at batch 8 on a CPU).

Full mode (not --quick) adds, for the CPU model: the time shares of data
loading (`make_train_iterator`, no prefetch), contrastive sampling + loss,
memory-bank enqueue and the optimizer update (from steps compiled without
those parts), and the train step on 1 / 2 / 4 simulated CPU devices
(separate processes with --xla_force_host_platform_device_count).

Imports only jax / flax / optax / numpy / ml_collections on the train path
(no clu, tfds, grain), so it runs on a bare accelerator machine; data-loading
timing is skipped when the data stack is missing.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python experiments/benchmark.py` from anywhere
  sys.path.insert(0, str(ROOT))
from cosnet_jax import hugepages  # noqa: E402  (no jax import: safe before re-exec)
CONFIGS = {'cpu': 'configs/cpu.py', 'quickstart': 'configs/synthetic.py',
           'paper': 'configs/default.py'}
GPU_PEAK_TFLOPS = {'H100': 989.0, 'H200': 989.0, 'A100': 312.0}   # dense bf16, spec
INFER_IMAGE = 304


# ----------------------------------------------------------------- helpers


def load_config(name: str, args) -> 'ml_collections.ConfigDict':
  """configs/<name>.py's get_config() with the command-line overrides applied."""
  path = ROOT / CONFIGS[name]
  spec = importlib.util.spec_from_file_location(f'bench_config_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  if args.dtype:
    c.model.dtype = args.dtype
    c.refine.model.dtype = args.dtype
  if args.remat is not None:
    c.model.remat = args.remat
  if args.batch:
    c.train.batch_size = args.batch
  if args.crop is not None:
    c.data.crop_size = args.crop
  apply_sets(c, args.set or [])
  return c


def apply_sets(c, items) -> None:
  """`--set a.b=v` overrides (v a Python literal, else a string), in order.

  A key that is not in the config is an error naming it, as in the trainer's
  `--config.a.b=v` flags.
  """
  for item in items:
    key, sep, text = item.partition('=')
    if not sep or not key:
      raise ValueError(f'--set {item!r}: expected key=value (a config field)')
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    *parents, leaf = key.split('.')
    node = c
    for i, name in enumerate(parents):
      if name not in node:
        raise ValueError(f'--set {item!r}: config has no field {".".join(parents[:i + 1])!r}')
      node = node[name]
    if leaf not in node:
      raise ValueError(f'--set {item!r}: config has no field {key!r}')
    node[leaf] = value


def train_hw(c) -> tuple[int, int]:
  """Spatial size of a training batch: crop (or the synthetic image) rounded up."""
  size = c.data.crop_size if c.data.crop_size > 0 else c.data.synthetic.size
  m = max(int(c.data.pad_multiple), 32)
  s = -(-int(size) // m) * m
  return s, s


def synthetic_batch(b: int, hw: tuple[int, int], seed: int = 0) -> dict:
  """Vessel-like random batch: image, mask, thick, thin, valid float32 [b, h, w, 1]."""
  import numpy as np
  rng = np.random.default_rng(seed)
  h, w = hw
  yy, xx = np.mgrid[:h, :w].astype(np.float32)
  out = {k: np.zeros((b, h, w, 1), np.float32) for k in ('image', 'mask', 'thick', 'thin')}
  for i in range(b):
    a, p, q = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi, 2), rng.uniform(5, 9)
    u = np.cos(a) * xx + np.sin(a) * yy
    v = -np.sin(a) * xx + np.cos(a) * yy
    thick = (np.abs(np.sin(u / (4 * q) + p[0])) < 0.12).astype(np.float32)
    thin = ((np.abs(np.sin(v / q + p[1])) < 0.05) & (thick == 0)).astype(np.float32)
    mask = np.maximum(thick, thin)
    out['thick'][i, ..., 0], out['thin'][i, ..., 0], out['mask'][i, ..., 0] = thick, thin, mask
    out['image'][i, ..., 0] = np.clip(0.2 + 0.6 * mask + 0.1 * rng.standard_normal((h, w)), 0, 1)
  out['valid'] = np.ones((b, h, w, 1), np.float32)
  return out


def _block(x):
  import jax
  return jax.block_until_ready(x)


def time_calls(fn, n: int, pair=None) -> tuple[list[float], list[float]]:
  """Wall times of n calls of fn() (blocking); with `pair`, the time of pair() just before each."""
  ts, ps = [], []
  for _ in range(n):
    if pair is not None:
      t = time.perf_counter()
      _block(pair())
      ps.append(time.perf_counter() - t)
    t = time.perf_counter()
    _block(fn())
    ts.append(time.perf_counter() - t)
  return ts, ps


def matmul_probe(platform: str):
  """(fn, flops): one large dot; f32 4096^2 on CPU, bf16 8192^2 on accelerators."""
  import jax
  import jax.numpy as jnp
  n, dtype = (4096, jnp.float32) if platform == 'cpu' else (8192, jnp.bfloat16)
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32).astype(dtype)
  f = jax.jit(lambda a, b: a @ b)
  _block(f(a, b))
  return (lambda: f(a, b)), 2.0 * n ** 3


def matmul_gflops(platform: str, repeats: int = 5) -> float:
  fn, flops = matmul_probe(platform)
  ts, _ = time_calls(fn, repeats)
  return flops / statistics.median(ts) / 1e9


def _flops(cost) -> float:
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost.get('flops', float('nan'))) if cost else float('nan')


def memory_plan(compiled) -> dict:
  """XLA's buffer plan of a compiled step: arguments, outputs, temporaries (GB)."""
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except
    return {}
  if m is None:
    return {}
  get = lambda k: float(getattr(m, k, 0) or 0) / 2**30
  return {'xla_argument_gb': get('argument_size_in_bytes'),
          'xla_output_gb': get('output_size_in_bytes'),
          'xla_temp_gb': get('temp_size_in_bytes'),
          'xla_alias_gb': get('alias_size_in_bytes')}


# ------------------------------------------------------------------ worker


def run_worker(args) -> dict:
  """Measures one model in this process; returns a dict (see module docstring)."""
  import jax
  import numpy as np
  from jax.sharding import NamedSharding, PartitionSpec as P
  from cosnet_jax import models
  from cosnet_jax.train import state as state_lib
  from cosnet_jax.train import steps

  platform = jax.devices()[0].platform
  c = load_config(args.model, args)
  mesh = steps.make_mesh()
  n_dev = len(jax.devices())
  b = int(c.train.batch_size)
  hw = train_hw(c)
  res = {'config': CONFIGS[args.model], 'platform': platform,
         'device_kind': jax.devices()[0].device_kind, 'devices': n_dev, 'batch': b,
         'train_hw': list(hw), 'model_name': c.model.name, 'dtype': c.model.dtype,
         'remat': bool(c.model.remat), 'xla_flags': os.environ.get('XLA_FLAGS', ''),
         'hugepages': hugepages.active(), 'jax': jax.__version__}
  mm_fn, mm_flops = matmul_probe(platform)
  mm_ts, _ = time_calls(mm_fn, 5)
  res['matmul_gflops_before'] = mm_flops / statistics.median(mm_ts) / 1e9

  def build_step(cfg, name='step'):
    model = models.build_cosnet(cfg.model, axis_name=steps.AXIS)
    return model, steps.build_train_step(model, cfg, mesh)

  model, step = build_step(c)
  t = time.perf_counter()
  create = lambda rng: state_lib.create_train_state(rng, model, c, hw, 1000)
  state = jax.jit(create, out_shardings=NamedSharding(mesh, P()))(jax.random.PRNGKey(0))
  _block(state)
  res['init_s'] = time.perf_counter() - t
  res['params'] = int(sum(np.prod(x.shape) for x in jax.tree.leaves(state.params)))
  batch = steps.shard_batch(synthetic_batch(b, hw), mesh)

  # Model FLOPs: unoptimised HLO with every grouped conv as per-group slices
  # (the block-diagonal dense formulation of the narrowest ones computes
  # zeros that are not the model's FLOPs) and the projection heads layer by
  # layer (the fused form's FLOPs differ slightly). A step of its own: lowering
  # `step` here would cache the slices' trace for the timed compile below.
  from cosnet_jax.models import conv_bn
  _, ref_step = build_step(c)
  with conv_bn.reference_formulation():
    lowered = ref_step.lower(state, batch)
  # XLA's cost analysis of the shard_map'd (SPMD) step counts ONE device's
  # share: times the device count for the whole step.
  res['model_gflops_per_step'] = _flops(lowered.cost_analysis()) / 1e9 * n_dev
  res['flops_source'] = ('XLA cost analysis of the unoptimised train-step HLO, grouped '
                         'convs as per-group slices, projection heads layer by layer '
                         '(conv_bn.reference_formulation)')

  t = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  res['compile_s'] = time.perf_counter() - t
  res['executed_gflops_per_step'] = _flops(compiled.cost_analysis()) / 1e9 * n_dev
  res.update(memory_plan(compiled))
  if args.compile_only:
    # Memory only (e.g. the paper model at batch 8 on a CPU, where 12 steps
    # would take an hour): XLA's buffer plan of the compiled step plus the
    # process's peak RSS so far (init and compilation included).
    res['xla_step_total_gb'] = sum(res.get(k, 0.0) for k in (
        'xla_argument_gb', 'xla_output_gb', 'xla_temp_gb')) - res.get('xla_alias_gb', 0.0)
    res['peak_rss_gb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return res

  holder = {'state': state}

  def one_step():
    holder['state'], metrics = compiled(holder['state'], batch)
    return metrics

  for _ in range(2):
    metrics = _block(one_step())
  res['loss_after_warmup'] = float(metrics['loss'])
  pair = mm_fn if (platform == 'cpu' and not args.no_pair) else None
  ts, ps = time_calls(one_step, args.steps, pair)
  step_s = statistics.median(ts)
  res['train_step_s'] = step_s
  res['train_step_s_all'] = ts
  res['images_per_s'] = b / step_s
  res['pixels_per_s'] = b * hw[0] * hw[1] / step_s
  res['achieved_gflops'] = res['model_gflops_per_step'] / step_s
  mm_ts, _ = time_calls(mm_fn, 5)
  res['matmul_gflops_after'] = mm_flops / statistics.median(mm_ts) / 1e9
  res['matmul_gflops'] = statistics.median(
      [res['matmul_gflops_before'], res['matmul_gflops_after']] +
      [mm_flops / p / 1e9 for p in ps])
  res['mfu'] = res['achieved_gflops'] / res['matmul_gflops']
  if ps:
    res['mfu_paired'] = statistics.median(
        res['model_gflops_per_step'] * p / (t_ * mm_flops / 1e9) for t_, p in zip(ts, ps))
  if platform != 'cpu':
    kind = jax.devices()[0].device_kind
    peak = next((v for k, v in GPU_PEAK_TFLOPS.items() if k in kind), None)
    if peak:
      res['peak_tflops_spec'] = peak
      res['mfu_vs_spec'] = res['achieved_gflops'] / (peak * 1e3)

  if not args.train_only:
    res.update(measure_inference(c, model, holder['state'], mesh))
    if args.shares:
      res['shares'] = measure_shares(args, c, mesh, holder['state'], batch, step_s,
                                     build_step)
  res['peak_rss_gb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  stats = getattr(jax.devices()[0], 'memory_stats', lambda: None)()
  if stats and 'peak_bytes_in_use' in stats:
    res['device_peak_gb'] = stats['peak_bytes_in_use'] / 2**30
  return res


def measure_inference(c, model, state, mesh) -> dict:
  """Stage 1 + refinement on 304x304 images (padded), batch = device count."""
  import jax
  import numpy as np
  from cosnet_jax import models
  from cosnet_jax.train import steps
  n_dev = mesh.devices.size
  m = max(int(c.data.pad_multiple), 32)
  s = -(-INFER_IMAGE // m) * m
  refiner = models.build_refiner(c.refine.model, axis_name=steps.AXIS)
  dummy = np.zeros((1, s, s, 1), np.float32)
  rvars = jax.jit(lambda k: refiner.init(k, dummy, dummy, dummy, train=False))(
      jax.random.key(1))
  predict = steps.build_refine_eval_step(model, refiner, mesh)
  svars = {'params': state.params, 'batch_stats': state.batch_stats}
  rvars = steps.replicate(jax.device_get(rvars), mesh)
  img = synthetic_batch(n_dev, (s, s))['image']
  batch = steps.shard_batch({'image': img}, mesh)
  t = time.perf_counter()
  compiled = predict.lower(svars, rvars, batch).compile()
  compile_s = time.perf_counter() - t
  _block(compiled(svars, rvars, batch))
  ts, _ = time_calls(lambda: compiled(svars, rvars, batch), 5)
  return {'infer_compile_s': compile_s, 'infer_input_hw': [s, s],
          'infer_s_per_image': statistics.median(ts) / n_dev}


def measure_shares(args, c, mesh, state, batch, step_s, build_step) -> dict:
  """Time shares of data loading, contrast (sampling + loss), enqueue, optimizer."""
  import jax
  out = {}

  def step_time(cfg):
    _, fn = build_step(cfg)
    compiled = fn.lower(state, batch).compile()
    holder = {'s': jax.tree.map(lambda x: x.copy() if hasattr(x, 'copy') else x, state)}

    def one():
      holder['s'], m = compiled(holder['s'], batch)
      return m
    _block(one())
    ts, _ = time_calls(one, max(args.steps // 2, 3))
    return statistics.median(ts)

  no_contrast = load_config(args.model, args)
  no_contrast.contrast.weight = 0.0
  frozen = load_config(args.model, args)
  frozen.contrast.freeze_memory_bank = True
  t_nc, t_fr = step_time(no_contrast), step_time(frozen)
  out['step_without_contrast_s'] = t_nc
  out['step_frozen_bank_s'] = t_fr
  out['contrast_sampling_loss'] = max(t_fr - t_nc, 0.0) / step_s
  out['enqueue'] = max(step_s - t_fr, 0.0) / step_s

  grads = jax.tree.map(lambda p: p * 1e-3, state.params)
  apply = jax.jit(lambda s, g: s.apply_gradients(grads=g))
  _block(apply(state, grads))
  ts, _ = time_calls(lambda: apply(state, grads), 5)
  out['optimizer_update'] = statistics.median(ts) / step_s
  out['optimizer_update_s'] = statistics.median(ts)
  out.update(measure_data_loading(c, step_s))
  out['method'] = ('contrast / enqueue: differences of steps compiled with '
                   'contrast.weight=0 / freeze_memory_bank=True; optimizer: '
                   'apply_gradients jitted alone; data: make_train_iterator '
                   'without prefetch, per batch, relative to the step')
  return out


def measure_data_loading(c, step_s) -> dict:
  try:
    from cosnet_jax import data
    make_train_iterator = data.make_train_iterator
  except (ImportError, AttributeError) as e:   # no data stack on this machine
    return {'data_loading_error': f'{type(e).__name__}: {e}'}
  cfg = c.data
  out = {}
  with tempfile.TemporaryDirectory() as tmp:
    try:
      cfg = cfg.copy_and_resolve_references()
      if not cfg.tfds_dir and cfg.name == 'synthetic_octa':
        cfg.tfds_dir = tmp
      cfg.prefetch = 0
      t = time.perf_counter()
      it = make_train_iterator(cfg, global_batch_size=int(c.train.batch_size), seed=0)
      next(it)
      out['data_first_batch_s'] = time.perf_counter() - t
      ts = []
      for _ in range(10):
        t = time.perf_counter()
        next(it)
        ts.append(time.perf_counter() - t)
      out['data_batch_s'] = statistics.median(ts)
      out['data_loading'] = out['data_batch_s'] / step_s
    except Exception as e:  # pylint: disable=broad-except
      out['data_loading_error'] = f'{type(e).__name__}: {e}'
  return out


# ------------------------------------------------------------ orchestrator


def _worker_cmd(args, model, extra=()) -> list[str]:
  cmd = [sys.executable, str(Path(__file__).resolve()), '--worker', '--model', model,
         '--steps', str(args.steps)]
  for flag in ('dtype', 'batch', 'crop'):
    v = getattr(args, flag)
    if v not in (None, ''):
      cmd += [f'--{flag}', str(v)]
  if args.remat is not None:
    cmd += ['--remat', str(args.remat)]
  for item in args.set or []:
    cmd += ['--set', item]
  if args.no_pair:
    cmd.append('--no_pair')
  if args.compile_only:
    cmd.append('--compile_only')
  return cmd + list(extra)


def run_subprocess(cmd, devices=None, timeout=None) -> dict:
  env = dict(os.environ)
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  flags = env.get('XLA_FLAGS', '')
  if devices:
    flags = ' '.join(f for f in flags.split()
                     if not f.startswith('--xla_force_host_platform_device_count'))
    flags = (flags + f' --xla_force_host_platform_device_count={devices}').strip()
    env['JAX_PLATFORMS'] = 'cpu'
  env['XLA_FLAGS'] = flags
  env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
  with tempfile.NamedTemporaryFile(suffix='.json') as f:
    try:
      proc = subprocess.run(cmd + ['--out', f.name], env=env, capture_output=True,
                            text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
      return {'error': f'timed out after {timeout} s'}
    if proc.returncode != 0:
      return {'error': f'exit {proc.returncode}', 'stderr_tail': proc.stderr[-3000:]}
    return json.loads(Path(f.name).read_text())


def print_table(result: dict) -> None:
  cols = [('train_step_s', 'step s', '{:.3f}'), ('images_per_s', 'img/s', '{:.2f}'),
          ('model_gflops_per_step', 'GFLOP/step', '{:.1f}'),
          ('achieved_gflops', 'GFLOP/s', '{:.1f}'), ('matmul_gflops', 'matmul', '{:.1f}'),
          ('mfu', 'MFU', '{:.1%}'), ('mfu_paired', 'MFU pair', '{:.1%}'),
          ('compile_s', 'compile s', '{:.1f}'), ('infer_s_per_image', 'infer s/img', '{:.3f}'),
          ('peak_rss_gb', 'RSS GB', '{:.2f}')]
  print(f'{"model":12s}' + ''.join(f'{h:>12s}' for _, h, _ in cols))
  for name, r in result['models'].items():
    if 'error' in r:
      print(f'{name:12s}  ERROR {r["error"]}')
      continue
    cells = [(fmt.format(r[k]) if isinstance(r.get(k), (int, float)) else '-')
             for k, _, fmt in cols]
    print(f'{name:12s}' + ''.join(f'{c:>12s}' for c in cells))
  if result.get('scaling'):
    print('devices  step s  speedup')
    base = None
    for n, r in sorted(result['scaling'].items(), key=lambda kv: int(kv[0])):
      s = r.get('train_step_s')
      base = base or s
      print(f'{n:>7}  ' + (f'{s:6.3f}  {base / s:6.2f}x' if s else r.get('error', '?')))
  for name, r in result['models'].items():
    if 'shares' in r:
      sh = r['shares']
      print(f'{name} shares of a step: ' + ', '.join(
          f'{k} {sh[k]:.1%}' for k in ('data_loading', 'contrast_sampling_loss', 'enqueue',
                                      'optimizer_update') if k in sh))


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--out', required=True, help='JSON file to write')
  ap.add_argument('--quick', action='store_true', help='CPU model only (< 5 min)')
  ap.add_argument('--models', default='', help='comma list of ' + ','.join(CONFIGS))
  ap.add_argument('--steps', type=int, default=10, help='timed steps (>= 10)')
  ap.add_argument('--dtype', default='', help="override config.model.dtype ('bfloat16')")
  ap.add_argument('--remat', type=lambda s: s.lower() in ('1', 'true', 'yes'), default=None)
  ap.add_argument('--batch', type=int, default=0, help='override config.train.batch_size')
  ap.add_argument('--crop', type=int, default=None, help='override config.data.crop_size')
  ap.add_argument('--set', action='append', metavar='KEY=VALUE',
                  help='config override, repeatable (e.g. model.head_width=32)')
  ap.add_argument('--scaling', default=None, help='device counts, e.g. 1,2,4 ("" = none)')
  ap.add_argument('--shares', action='store_true', help='time shares (full mode: on)')
  ap.add_argument('--no_shares', action='store_true', help='skip the time shares')
  ap.add_argument('--no_pair', action='store_true', help='no matmul before each step')
  ap.add_argument('--timeout', type=float, default=3600.0, help='per subprocess, s')
  ap.add_argument('--compile_only', action='store_true',
                  help='compile and report the memory plan; no steps, no inference')
  ap.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
  ap.add_argument('--train_only', action='store_true', help=argparse.SUPPRESS)
  ap.add_argument('--model', default='cpu', help=argparse.SUPPRESS)
  args = ap.parse_args(argv)
  if args.steps < 10 and not args.worker:
    print(f'note: --steps {args.steps} < 10, the median is less robust')

  if args.worker:
    Path(args.out).write_text(json.dumps(run_worker(args), indent=1))
    return

  models = ([m for m in args.models.split(',') if m] or
            (['cpu'] if args.quick else ['cpu', 'quickstart', 'paper']))
  for m in models:
    if m not in CONFIGS:
      ap.error(f'--models: unknown model {m!r}; expected some of {sorted(CONFIGS)}')
  scaling = args.scaling if args.scaling is not None else ('' if args.quick else '1,2,4')
  shares = (args.shares or not args.quick) and not args.no_shares
  result = {'models': {}, 'argv': sys.argv[1:], 'started': time.strftime('%Y-%m-%d %H:%M:%S')}
  for m in models:
    extra = ['--shares'] if (shares and m == models[0]) else []
    t = time.perf_counter()
    r = run_subprocess(_worker_cmd(args, m, extra), timeout=args.timeout)
    r['wall_s'] = time.perf_counter() - t
    result['models'][m] = r
    print(f'[{m}] done in {r["wall_s"]:.0f} s' + (f': {r["error"]}' if 'error' in r else ''),
          flush=True)
  if scaling:
    result['scaling'] = {}
    for n in [int(s) for s in scaling.split(',') if s]:
      cmd = _worker_cmd(args, models[0], ['--train_only'])
      result['scaling'][str(n)] = run_subprocess(cmd, devices=n, timeout=args.timeout)
      print(f'[scaling {n} devices] done', flush=True)
  mms = [r['matmul_gflops'] for r in result['models'].values() if 'matmul_gflops' in r]
  if mms:
    result['matmul_gflops'] = statistics.median(mms)
  Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  Path(args.out).write_text(json.dumps(result, indent=1))
  print_table(result)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  hugepages.reexec_with_hugepages()  # before jax: see cosnet_jax/hugepages.py
  main()
