"""Platform choices (models/formulation.py, compilation.py, hugepages.py): the CPU choices are picked by backend and config, change no
numbers (whole model and compiled options), and huge pages re-execute once."""
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cosnet_jax import compilation, hugepages, models
from cosnet_jax import config as config_lib
from cosnet_jax.errors import ConfigError
from cosnet_jax.models import formulation
from cosnet_jax.models import conv_bn
from cosnet_jax.models import config as model_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
GLIBC = (2, 36)


def test_formulation_by_backend_and_config():
  cfg = config_lib.platform_config()
  assert formulation.formulation(cfg, 'cpu') == formulation.CPU
  assert formulation.formulation(cfg, 'gpu') == formulation.REFERENCE
  assert formulation.formulation(None, 'tpu') == formulation.REFERENCE
  cfg.fused_projection = 'off'
  cfg.max_pool = 'reduce_window'
  f = formulation.formulation(cfg, 'cpu')
  assert not f.fused_projection and not f.strided_max_pool
  assert f.grouped_conv == 'slices' and f.dense_group_width == 4
  cfg.grouped_conv, cfg.dense_group_width = 'native', 0
  assert formulation.formulation(cfg, 'cpu') == formulation.REFERENCE
  cfg = config_lib.platform_config()
  cfg.grouped_conv, cfg.dense_group_width, cfg.fused_projection = 'slices', 8, 'on'
  f = formulation.formulation(cfg, 'gpu')
  assert f.grouped_conv == 'slices' and f.dense_group_width == 8 and f.fused_projection
  cfg.max_pool = 'fast'
  with pytest.raises(ConfigError, match=r"config.platform.max_pool='fast'"):
    formulation.formulation(cfg, 'cpu')


def test_compiler_options_by_backend_mode_and_config():
  cfg = config_lib.platform_config()
  assert compilation.compiler_options(cfg, 'gpu') is None
  assert compilation.compiler_options(cfg, 'cpu') == compilation.CPU_COMPILER_OPTIONS['train']
  assert compilation.compiler_options(cfg, 'cpu', 'infer') == compilation.CPU_COMPILER_OPTIONS['infer']
  with pytest.raises(ValueError, match='mode'):
    compilation.compiler_options(cfg, 'cpu', 'eval')
  cfg.xla_options = 'off'
  assert compilation.compiler_options(cfg, 'cpu') is None
  assert compilation.init_compiler_options('gpu') is None


def test_no_environment_read_in_models():
  for f in (ROOT / 'cosnet_jax' / 'models').glob('*.py'):
    text = f.read_text()
    assert 'os.environ' not in text and 'getenv' not in text, f
    assert not re.search(r'^\s*global ', text, re.M), f


@pytest.mark.parametrize('groups, c_in, c_out', [(4, 16, 32), (4, 32, 32), (2, 12, 8)])
def test_grouped_conv_formulations_agree(groups, c_in, c_out):
  x = jax.random.normal(jax.random.key(0), (2, 12, 12, c_in))
  forms = [formulation.REFERENCE, formulation.CPU,
           formulation.Formulation(grouped_conv='slices', dense_group_width=0)]
  layers = [conv_bn.conv(c_out, 3, groups=groups, use_bias=True, formulation=f) for f in forms]
  variables = layers[0].init(jax.random.key(1), x)
  variables = jax.tree.map(lambda v: v + 0.1, variables)   # a non-zero bias too
  outs = []
  for layer in layers:
    f = lambda v, x: jnp.sum(layer.apply(v, x) ** 2)
    outs.append((layer.apply(variables, x), jax.grad(f)(variables, x)))
  for y, g in outs[1:]:
    np.testing.assert_allclose(y, outs[0][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(outs[0][1])):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_cpu_and_reference_models_compute_the_same(monkeypatch):
  """The whole COSNet (train mode: fused heads, strided pool, grouped convs).

  Run in float64: in float32 the Gram-matrix BN statistics and other
  summation orders move single gradient entries by up to 1e-3 of the largest
  one, which would hide a real difference; in float64 the two formulations
  agree to 1e-11.
  """
  monkeypatch.setattr(model_config, 'DTYPES', tuple(model_config.DTYPES) + ('float64',))
  with jax.enable_x64(True):
    cfg = config_lib.model_config('cosnet_tiny')
    cfg.dtype = 'float64'
    ref = models.build_cosnet(cfg, formulation=formulation.REFERENCE)
    cpu = models.build_cosnet(cfg, formulation=formulation.CPU)
    x = jax.random.uniform(jax.random.key(0), (2, 64, 64, 1), dtype=jnp.float64)
    variables = models.init_variables(ref, jax.random.key(1), x[:1], train=False,
                                      with_embeddings=True)
    variables = jax.tree.map(lambda a: a.astype(jnp.float64), variables)

    def run(model):
      def loss(params):
        out, new = model.apply({'params': params, 'batch_stats': variables['batch_stats']},
                               x, train=True, with_embeddings=True, mutable=['batch_stats'])
        return (jnp.mean(out['thick_logits'] ** 2) + jnp.mean(out['embed_thin'][..., 0])), new
      (value, new), grads = jax.value_and_grad(loss, has_aux=True)(variables['params'])
      return value, new, grads
    a, b = run(ref), run(cpu)
  assert jax.tree.leaves(a[2])[0].dtype == np.float64
  np.testing.assert_allclose(a[0], b[0], rtol=1e-12)
  for part in (1, 2):
    leaves = [np.asarray(x) for x in jax.tree.leaves(a[part])]
    scale = max(np.abs(x).max() for x in leaves)
    for u, v in zip(leaves, jax.tree.leaves(b[part])):
      np.testing.assert_allclose(u, v, rtol=1e-8, atol=1e-9 * scale)


def _ynn_fused_ops(hlo_text: str) -> set:
  """Op names inside the fused computations that XLA:CPU hands to YNNPACK."""
  bodies = dict(re.findall(r'^%?(\S+) [^\n]*\{\n(.*?)\n\}', hlo_text, re.M | re.S))
  ops = set()
  for call in re.findall(r'calls=%([^,\s]+),[^\n]*backend_config=\{"fusion_config":'
                         r'\{"kind":"__ynn_fusion"', hlo_text):
    ops |= set(re.findall(r'= \S+ (\w+)\(', bodies.get(call, '')))
  return ops


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason='XLA:CPU options')
def test_cpu_options_keep_convolutions_and_reductions_where_measured():
  conv = lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  # YNNPACK takes a convolution only from about this size up (compiled, not run):
  big = [jnp.zeros((8, 96, 96, 32)), jnp.zeros((3, 3, 32, 32))]
  train = compilation.compiler_options(None, 'cpu', 'train')
  infer = compilation.compiler_options(None, 'cpu', 'infer')
  assert 'convolution' in _ynn_fused_ops(jax.jit(conv).lower(*big).compile().as_text())
  assert 'convolution' not in _ynn_fused_ops(
      jax.jit(conv, compiler_options=train).lower(*big).compile().as_text())

  def f(x, k):   # a forward of the model's kinds: conv, pooled attention, dot
    y = jax.nn.relu(conv(x, k))
    att = jax.nn.softmax(jnp.mean(y, axis=(1, 2), keepdims=True), axis=-1)
    return (y * att).reshape(-1, y.shape[-1]) @ jnp.ones((y.shape[-1], 8))
  x = jax.random.normal(jax.random.key(0), (1, 32, 32, 16))
  k = jax.random.normal(jax.random.key(1), (3, 3, 16, 16)) * 0.1
  train_ops = _ynn_fused_ops(jax.jit(f, compiler_options=train).lower(x, k).compile().as_text())
  ours = jax.jit(f, compiler_options=infer).lower(x, k).compile()
  infer_ops = _ynn_fused_ops(ours.as_text())
  assert 'reduce' in train_ops and 'reduce' not in infer_ops
  assert 'convolution' not in infer_ops and 'dot' in infer_ops
  np.testing.assert_allclose(ours(x, k), jax.jit(f)(x, k), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('environ, glibc, thp, cpu, expected', [
    ({}, GLIBC, 'madvise', True, 'glibc.malloc.hugetlb=1'),
    ({}, GLIBC, 'always', True, 'glibc.malloc.hugetlb=1'),
    ({'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2'}, GLIBC, 'madvise', True,
     'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1'),
    # the user's own hugetlb choice (even 0) wins: no re-exec, no loop
    ({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=0'}, GLIBC, 'madvise', True, None),
    ({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=1'}, GLIBC, 'madvise', True, None),
    ({}, GLIBC, 'madvise', False, None),      # an accelerator backend
    ({}, GLIBC, 'never', True, None),         # THP off in the kernel
    ({}, GLIBC, None, True, None),            # no THP (or not Linux)
    ({}, (2, 34), 'madvise', True, None),     # glibc before the tunable
    ({}, None, 'madvise', True, None),        # musl, macOS
])
def test_hugepages_tunables(environ, glibc, thp, cpu, expected):
  assert hugepages.tunables(environ, glibc, thp, cpu) == expected


def test_hugepages_state_and_thp_mode(tmp_path):
  assert hugepages.active({'GLIBC_TUNABLES': 'a=1:glibc.malloc.hugetlb=1'})
  assert not hugepages.active({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=0'})
  assert not hugepages.active({})
  sysfs = tmp_path / 'enabled'
  sysfs.write_text('always [madvise] never\n')
  assert hugepages.thp_mode(str(sysfs)) == 'madvise'
  assert hugepages.thp_mode(str(tmp_path / 'missing')) is None


_CHILD = r'''
import os, sys
sys.path.insert(0, {root!r})
from cosnet_jax import hugepages
print('argv', sys.argv[1:], flush=True)
hugepages.reexec()
import numpy as np
a = np.ones(256 * 2**20 // 8)          # 256 MB, one malloc'd mapping, touched
huge_kb = 0
with open('/proc/self/smaps_rollup') as f:
  for line in f:
    if line.startswith('AnonHugePages:'):
      huge_kb = int(line.split()[1])
print('tunables', os.environ.get('GLIBC_TUNABLES', ''))
print('huge_mb', huge_kb // 1024, float(a.sum()))
'''


@pytest.mark.skipif(
    hugepages.glibc_version() is None or hugepages.glibc_version() < hugepages.MIN_GLIBC
    or hugepages.thp_mode() not in ('always', 'madvise')
    or not os.path.exists('/proc/self/smaps_rollup'),
    reason='needs Linux with glibc >= 2.35 and transparent huge pages')
@pytest.mark.slow
def test_reexec_gives_huge_pages_and_says_so():
  env = {k: v for k, v in os.environ.items() if k != 'GLIBC_TUNABLES'}
  env['JAX_PLATFORMS'] = 'cpu'
  out = subprocess.run([sys.executable, '-c', _CHILD.format(root=str(ROOT)), 'x', '--y=1'],
                       env=env, capture_output=True, text=True, timeout=120, check=True)
  # re-executed once, with the same arguments, the tunable set, one line logged
  assert out.stdout.count("argv ['x', '--y=1']") == 2, out.stdout
  assert 'tunables glibc.malloc.hugetlb=1' in out.stdout
  assert out.stderr.count('restarting with GLIBC_TUNABLES') == 1
  assert '--nohugepages' in out.stderr
  huge_mb = int(out.stdout.split('huge_mb ')[1].split()[0])
  assert huge_mb >= 128, out.stdout   # most of the 256 MB array is on 2 MB pages
