r"""Where the CPU train step's time goes, op by op (issue 7: "profile first").

  python experiments/profile_step.py --out prof.json [--crop 96 --batch 8 --steps 5]
      [--set KEY=VALUE ...] [--model cpu] [--top 25]

Compiles the train step of a config (as `benchmark.py` does, synthetic
vessel-like batch), runs it under `jax.profiler.trace`, and reads the trace
back: XLA:CPU records one event per executed HLO instruction (a "thunk"),
named as in the compiled module. Each event is matched to its instruction in
`compiled.as_text()` and put in a class:

* conv fwd / conv input-grad / conv kernel-grad: `convolution` instructions;
  backward ones carry `transpose(jvp(...))` in their op_name, and a kernel
  gradient is the one whose window spans the image (window > 7x7);
* dot: `dot` instructions and fusions holding one (YNNPACK's dots);
* fusions by what their fused computation holds: reductions / pooling,
  layout changes (transposes), else element-wise; copies, sort,
  collectives, other.

For every class: total time per step, share of the summed op time, FLOPs per
step (convolutions and dots counted from their shapes: 2 x output elements x
contraction size), the GFLOP/s they ran at, and the GB/s moved (operand and
output sizes); the time per top-level flax module (from the op_name;
instructions that XLA creates without one, such as layout transposes, take
that of their fused body or of their first named producer; ops outside the
network split into per-pixel and other work by shape); and the heaviest
instructions with their shapes. The step's wall time is printed
beside the summed op time: XLA:CPU runs convolutions asynchronously on
Eigen's thread pool, so their events hold only the dispatch and their run
time shows as the gap between the two. `occupancy`: how long at least one,
and at least two, threads run instructions at once per step (independent
instructions, such as the two decoder branches', run side by side, so a
shorter instruction shortens the step only on the longer chain).
Imports only jax / flax / optax / numpy / ml_collections.
"""
from __future__ import annotations

import argparse
import collections
import gzip
import json
import math
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark  # noqa: E402  (same directory: config loading, synthetic batch)

# One HLO instruction line: `%name = type[dims]{layout} opcode(operands), attrs`.
_INSTR = re.compile(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\(?[^=]*?\)?)\s+([\w\-]+)\((.*)$')
# A computation header: `%fused_computation.3 (param_0: f32[..]) -> f32[..] {` / `ENTRY %main ...`.
_COMPUTATION = re.compile(r'^(?:ENTRY\s+)?%?([\w.\-]+)\s*\(.*\)\s*->.*\{\s*$')
_SHAPE = re.compile(r'[a-z]+\d*\[([\d,]*)\]')


def _dims(text: str) -> list[list[int]]:
  """All array shapes in `text`, in order: 'f32[8,96,96,16]{...}' -> [[8, 96, 96, 16]]."""
  return [[int(d) for d in m.group(1).split(',') if d] for m in _SHAPE.finditer(text)]


def parse_hlo(text: str) -> dict[str, dict]:
  """Instruction name -> {opcode, shape, operand shapes, attrs, op_name}, every computation.

  The compiled module prints operands by name only (`convolution(%a, %b)`), so
  their shapes are looked up from the instructions that define them.
  """
  out, operand_names, bodies = {}, {}, collections.defaultdict(set)
  members = collections.defaultdict(list)
  body_op_names = collections.defaultdict(collections.Counter)
  computation = ''
  for line in text.splitlines():
    head = _COMPUTATION.match(line)
    if head:
      computation = head.group(1)
      continue
    m = _INSTR.match(line)
    if not m:
      continue
    name, shape, opcode, rest = m.groups()
    bodies[computation].add(opcode)
    if opcode in ('dot', 'convolution'):
      members[computation].append(name)
    operands, _, attrs = rest.partition(')')
    op_name = re.search(r'op_name="([^"]*)"', rest)
    if op_name and op_name.group(1):
      body_op_names[computation][op_name.group(1)] += 1
    operand_names[name] = re.findall(r'%([\w.\-]+)', operands)
    out[name] = {'opcode': opcode, 'shape': _dims(shape), 'operands': _dims(operands),
                 'attrs': attrs, 'op_name': op_name.group(1) if op_name else '',
                 'calls': (re.search(r'calls=%?([\w.\-]+)', attrs) or [None, ''])[1]}
  for name, ins in out.items():
    ins['body'] = sorted(bodies.get(ins['calls'], ()))
    ins['inner'] = list(members.get(ins['calls'], ()))
    if not ins['operands'] and operand_names[name]:
      ins['operands'] = [out[o]['shape'][0] if o in out and out[o]['shape'] else []
                         for o in operand_names[name]]
  _infer_op_names(out, operand_names, body_op_names)
  return out


def _infer_op_names(hlo: dict[str, dict], operand_names: dict[str, list[str]],
                    body_op_names: dict[str, collections.Counter]) -> None:
  """Gives the instructions that XLA created (no op_name of their own: layout
  transposes, copies, the max-pool's select-and-scatter wrapper) the op_name
  of what they work for, so their time lands on a flax module, not 'unknown'.

  First the most common op_name inside the computation the instruction calls
  (a fusion whose root lost its metadata), else that of its first named
  operand. The module text defines every instruction before its users, so
  walking it in order names a producer before its consumers, and a chain of
  unnamed instructions (a transpose of a copy of an activation) ends at the
  layer that produced it. `op_name_from` records which: 'own', 'fused',
  'operand' or '' (none found)."""
  for ins in hlo.values():
    ins['op_name_from'] = 'own' if ins['op_name'] else ''
  for name, ins in hlo.items():    # definition order: producers first
    if ins['op_name']:
      continue
    if body_op_names.get(ins['calls']):
      ins['op_name'] = body_op_names[ins['calls']].most_common(1)[0][0]
      ins['op_name_from'] = 'fused'
      continue
    found = next((hlo[o]['op_name'] for o in operand_names.get(name, ())
                  if o in hlo and hlo[o]['op_name']), '')
    if found:
      ins['op_name'], ins['op_name_from'] = found, 'operand'


def conv_flops(ins: dict) -> float:
  """2 x output elements x (window elements x kernel input features) of a convolution."""
  labels = re.search(r'dim_labels=(\w+)_(\w+)->(\w+)', ins['attrs'])
  window = re.search(r'size=([\dx]+)', ins['attrs'])
  if not labels or len(ins['operands']) < 2 or not ins['shape']:
    return 0.0
  rhs = ins['operands'][1]
  i_dim = rhs[labels.group(2).index('i')]
  win = math.prod(int(w) for w in window.group(1).split('x')) if window else 1
  return 2.0 * math.prod(ins['shape'][0]) * win * i_dim


def dot_flops(ins: dict) -> float:
  """2 x output elements x contracted size of a dot (lhs contracting dims)."""
  m = re.search(r'lhs_contracting_dims=\{([\d,]*)\}', ins['attrs'])
  if not m or not ins['operands'] or not ins['shape']:
    return 0.0
  k = math.prod(ins['operands'][0][int(d)] for d in m.group(1).split(',') if d)
  return 2.0 * math.prod(ins['shape'][0]) * k


def instruction_flops(ins: dict, hlo: dict[str, dict]) -> float:
  """FLOPs of a convolution or dot, or of those inside a fusion (YNNPACK's dots)."""
  if ins['opcode'] == 'convolution':
    return conv_flops(ins)
  if ins['opcode'] == 'dot':
    return dot_flops(ins)
  return sum(instruction_flops(hlo[n], hlo) for n in ins.get('inner', ()) if n in hlo)


def classify(ins: dict) -> str:
  op = ins['opcode']
  if op == 'convolution':
    # A kernel gradient contracts over the image: its window spans the
    # activation (XLA often drops its op_name, so the window decides).
    window = re.search(r'size=([\dx]+)', ins['attrs'])
    size = max((int(w) for w in window.group(1).split('x')), default=1) if window else 1
    if size > 7:
      return 'conv kernel-grad'
    own = ins['op_name'] if ins.get('op_name_from', 'own') == 'own' else ''
    return 'conv input-grad' if 'transpose(' in own else 'conv fwd'
  if op == 'dot' or (op == 'fusion' and 'dot' in ins['body']):
    return 'dot (1x1 convs, up-sampling, contrast)'
  if op == 'fusion' and 'convolution' in ins['body']:
    return 'conv (fused)'
  if op == 'fusion':
    body = set(ins['body'])
    if body & {'reduce', 'reduce-window', 'select-and-scatter', 'scatter'}:
      return 'fusion: reduction / pool'
    if 'transpose' in body:
      return 'fusion: layout (transpose)'
    return 'fusion: element-wise'
  if op in ('copy', 'transpose'):
    return 'copy / transpose'
  if op == 'sort':
    return 'sort'
  if op in ('all-reduce', 'all-gather', 'reduce-scatter', 'collective-permute', 'all-to-all'):
    return 'collective'
  if op in ('reduce', 'reduce-window', 'select-and-scatter'):
    return 'reduce / pool'
  return 'other'


def module_of(op_name: str, shape: list[int] | None = None,
              image: tuple[int, int, int] | None = None) -> str:
  """The top-level flax module of an op_name path ('jit(f)/jvp(COSNet)/encoder/...'
  -> 'encoder'); ops without metadata -> 'unknown'. Ops outside the network
  are split by shape: with `image` = (batch, height, width) of the batch, one
  whose output has the image's height and width (or its pixel count) is
  per-pixel work (losses, anchor sampling), anything else per-parameter or
  per-anchor work (optimizer update, finite checks, parameter average, bank)."""
  if not op_name:
    return 'unknown'
  m = re.search(r'COSNet\)*/([\w\-]+)', op_name)
  if m:
    return m.group(1)
  if image and shape:
    b, h, w = image
    if (h in shape and w in shape) or h * w in shape or b * h * w in shape:
      return 'outside: per-pixel (losses, sampling)'
  return 'outside: other (optimizer, bank, anchors)'


def io_bytes(ins: dict) -> float:
  """Bytes read + written by an instruction, from its operand and output shapes (float32)."""
  return 4.0 * sum(math.prod(shape) for shape in ins['operands'] + ins['shape'][:1])


def summarize(events: dict[str, list[float]], hlo: dict[str, dict], steps: int,
              top: int = 25, image: tuple[int, int, int] | None = None) -> dict:
  """Per class and per instruction: time per step (ms), share, FLOPs, GFLOP/s."""
  classes = collections.defaultdict(lambda: {'ms': 0.0, 'gflop': 0.0, 'count': 0, 'gb': 0.0})
  modules = collections.defaultdict(float)
  rows = []
  for name, durs in events.items():
    ins = hlo[name]
    ms = sum(durs) / 1e3 / steps
    flops = instruction_flops(ins, hlo)
    cls = classify(ins)
    shape = ins['shape'][0] if ins['shape'] else []
    module = module_of(ins['op_name'], shape, image)
    gb = io_bytes(ins) / 1e9
    c = classes[cls]
    c['ms'] += ms
    c['gflop'] += flops / 1e9
    c['count'] += 1
    c['gb'] += gb
    modules[module] += ms
    rows.append({'name': name, 'class': cls, 'ms': ms, 'gflop': flops / 1e9,
                 'gb_per_s': gb / (ms / 1e3) if ms else 0.0, 'module': module,
                 'shape': shape,
                 'operands': ins['operands'][:2], 'op_name': ins['op_name'][-120:],
                 'op_name_from': ins.get('op_name_from', 'own')})
  total = sum(c['ms'] for c in classes.values())
  out_classes = {}
  for cls, c in sorted(classes.items(), key=lambda kv: -kv[1]['ms']):
    out_classes[cls] = dict(c, share=c['ms'] / total if total else 0.0,
                            gflops=(c['gflop'] / (c['ms'] / 1e3)) if c['ms'] and c['gflop'] else 0.0,
                            gb_per_s=(c['gb'] / (c['ms'] / 1e3)) if c['ms'] else 0.0)
  rows.sort(key=lambda r: -r['ms'])
  return {'op_ms_per_step': total, 'classes': out_classes, 'top': rows[:top],
          'modules_ms': dict(sorted(modules.items(), key=lambda kv: -kv[1]))}


def read_trace(trace_dir: str, names: set[str]
               ) -> tuple[dict[str, list[float]], list[tuple[float, float, int]]]:
  """The trace events whose name is an HLO instruction in `names`: their
  durations (us) by name, and every one as (start us, end us, thread id)."""
  files = sorted(Path(trace_dir).rglob('*.trace.json.gz'))
  if not files:
    raise FileNotFoundError(f'no *.trace.json.gz under {trace_dir} (profiler wrote nothing)')
  with gzip.open(files[-1]) as f:
    data = json.load(f)
  events = data['traceEvents'] if isinstance(data, dict) else data
  out = collections.defaultdict(list)
  intervals = []
  for e in events:
    if e.get('ph') == 'X' and e.get('name') in names:
      dur = float(e.get('dur', 0.0))
      out[e['name']].append(dur)
      start = float(e.get('ts', 0.0))
      intervals.append((start, start + dur, int(e.get('tid', 0))))
  return dict(out), intervals


def occupancy(intervals: list[tuple[float, float, int]], steps: int) -> dict[str, float]:
  """How the instructions overlap in time, per step (ms): while at least one
  runs, while two or more run at once, and their summed time. XLA:CPU runs
  independent instructions (e.g. the thick and thin branches) on different
  threads, so the step is shorter than their sum; the convolutions run on
  Eigen's pool outside these events, so time with none running is theirs
  or idle."""
  # Counted by thread, so that an event nested in another on the same thread
  # (if the runtime records one) is not taken for parallel work.
  points = sorted([(a, 1, tid) for a, _, tid in intervals] +
                  [(b, -1, tid) for _, b, tid in intervals], key=lambda p: (p[0], p[1]))
  any_us = two_us = 0.0
  per_thread: dict[int, int] = collections.Counter()
  last = None
  for t, delta, tid in points:
    if last is not None:
      busy = sum(1 for n in per_thread.values() if n > 0)
      if busy >= 1:
        any_us += t - last
      if busy >= 2:
        two_us += t - last
    per_thread[tid] += delta
    last = t
  summed = sum(b - a for a, b, _ in intervals)
  return {'one_or_more_ms': any_us / 1e3 / steps, 'two_or_more_ms': two_us / 1e3 / steps,
          'summed_ms': summed / 1e3 / steps,
          'threads': len({tid for _, _, tid in intervals})}


def leaf_names(hlo: dict[str, dict]) -> set[str]:
  """Instructions that do work: control flow times its whole body (counted
  through the children), and parameters / constants / tuples do none."""
  return {n for n, i in hlo.items() if i['opcode'] not in (
      'while', 'conditional', 'call', 'parameter', 'constant', 'tuple',
      'get-tuple-element', 'bitcast')}


def trace_ops(call, names: set[str], steps: int, warmup: int = 2
              ) -> tuple[dict[str, list[float]], list[float], dict[str, float]]:
  """Runs call() (one blocking step) `warmup` times, then `steps` times under
  the profiler; returns the events named in `names`, the step wall times and
  the events' `occupancy`."""
  import jax
  for _ in range(warmup):
    jax.block_until_ready(call())
  walls = []
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d, create_perfetto_trace=True):
      for _ in range(steps):
        t = time.perf_counter()
        jax.block_until_ready(call())
        walls.append(time.perf_counter() - t)
    events, intervals = read_trace(d, names)
  return events, walls, occupancy(intervals, steps)


def run(args) -> dict:
  import jax
  from jax.sharding import NamedSharding, PartitionSpec as P
  from cosnet_jax import models
  from cosnet_jax.train import state as state_lib
  from cosnet_jax.train import steps

  c = benchmark.load_config(args.model, args)
  mesh = steps.make_mesh()
  b = int(c.train.batch_size)
  hw = benchmark.train_hw(c)
  model = models.build_cosnet(c.model, axis_name=steps.AXIS)
  step = steps.build_train_step(model, c, mesh)
  create = lambda rng: state_lib.create_train_state(rng, model, c, hw, 1000)
  state = jax.jit(create, out_shardings=NamedSharding(mesh, P()))(jax.random.PRNGKey(0))
  batch = steps.shard_batch(benchmark.synthetic_batch(b, hw), mesh)
  compiled = step.lower(state, batch).compile()
  hlo = parse_hlo(compiled.as_text())
  leaves = leaf_names(hlo)
  holder = {'state': state}

  def one_step():
    holder['state'], metrics = compiled(holder['state'], batch)
    return metrics

  events, walls, overlap = trace_ops(one_step, leaves, args.steps)
  res = summarize(events, hlo, args.steps, args.top, (b, hw[0], hw[1]))
  res['occupancy'] = overlap
  res.update({'model': args.model, 'batch': b, 'train_hw': list(hw),
              'devices': len(jax.devices()), 'step_s_traced': statistics.median(walls),
              'sets': args.set or [], 'jax': jax.__version__,
              'matmul_gflops': benchmark.matmul_gflops(jax.devices()[0].platform)})
  return res


def print_report(res: dict) -> None:
  print(f"{res['model']}, {res['batch']} x {res['train_hw'][0]}x{res['train_hw'][1]}, "
        f"step {res['step_s_traced'] * 1e3:.0f} ms (traced), summed op time "
        f"{res['op_ms_per_step']:.0f} ms, matmul {res['matmul_gflops']:.0f} GFLOP/s")
  o = res['occupancy']
  print(f"instructions running: >= 1 for {o['one_or_more_ms']:.0f} ms, >= 2 for "
        f"{o['two_or_more_ms']:.0f} ms of the step, on {o['threads']} threads")
  print(f"{'class':40s} {'ms/step':>8s} {'share':>6s} {'GFLOP':>7s} {'GFLOP/s':>8s} "
        f"{'GB/s':>6s} {'ops':>5s}")
  for cls, c in res['classes'].items():
    print(f"{cls:40s} {c['ms']:8.1f} {c['share'] * 100:5.1f}% {c['gflop']:7.2f} "
          f"{c['gflops']:8.1f} {c['gb_per_s']:6.1f} {c['count']:5d}")
  print('by module (ms/step): ' + ', '.join(
      f'{k} {v:.1f}' for k, v in res['modules_ms'].items()))
  print('heaviest instructions:')
  for r in res['top']:
    rate = (f"{r['gflop'] / (r['ms'] / 1e3):6.1f} GFLOP/s" if r['gflop'] and r['ms']
            else f"{r['gb_per_s']:6.1f} GB/s")
    print(f"  {r['ms']:7.2f} ms  {r['class'][:26]:26s} {r['module'][:14]:14s} {str(r['shape']):22s} "
          f"{str(r['operands']):40s} {rate}")


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--out', required=True, help='JSON file to write')
  ap.add_argument('--model', default='cpu', choices=sorted(benchmark.CONFIGS))
  ap.add_argument('--steps', type=int, default=5, help='traced steps')
  ap.add_argument('--top', type=int, default=25, help='heaviest instructions listed')
  ap.add_argument('--batch', type=int, default=0, help='override config.train.batch_size')
  ap.add_argument('--crop', type=int, default=None, help='override config.data.crop_size')
  ap.add_argument('--set', action='append', metavar='KEY=VALUE', help='config override')
  args = ap.parse_args(argv)
  args.dtype, args.remat = '', None
  res = run(args)
  print_report(res)
  Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
  benchmark.hugepages.reexec_with_hugepages()  # before jax: cosnet_jax/hugepages.py
  main()
