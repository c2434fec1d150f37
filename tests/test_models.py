"""COSNet model: config presets, shapes, layers vs NumPy, cross-replica BN, refiner."""
from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
import pytest
from flax import traverse_util
from jax.sharding import PartitionSpec as P

from cosnet_jax import models
from cosnet_jax.models.cosnet import encoder_from_spec
from cosnet_jax.models.decoder import ResidualConvBlock, UpConv2x2
from cosnet_jax.models.heads import ProjectionHead
from cosnet_jax.models.resnest import Bottleneck
from cosnet_jax.models.refiner import neighbourhood_stack
from cosnet_jax.models.splat import SplitAttentionConv
from test_models_reference import splat as splat_reference
from cosnet_jax.models import conv_bn, formulation
from cosnet_jax import config as config_lib

KEY = jax.random.key(0)


def _model(name='cosnet_tiny', axis_name=None, **overrides):
  cfg = config_lib.model_config(name)
  cfg.update(overrides)
  return models.build_cosnet(cfg, axis_name=axis_name)


@functools.lru_cache(maxsize=None)
def _abstract_init(model, shape):
  """Shapes of model.init's variables (tracing only; cached per model and shape)."""
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  return jax.eval_shape(lambda x: model.init(KEY, x), x)


def _fake_variables(abstract, seed=0):
  """Random variables with the init's structure, without compiling the (slow) RNG init."""
  rng = np.random.default_rng(seed)
  out = {}
  for path, leaf in traverse_util.flatten_dict(abstract).items():
    shape, name = leaf.shape, path[-1]
    if name == 'kernel':
      fan_in = int(np.prod(shape[:-1]))
      value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif name in ('scale', 'var'):
      value = rng.uniform(0.5, 1.5, shape)
    else:  # bias, mean
      value = 0.1 * rng.standard_normal(shape)
    out[path] = jnp.asarray(value, leaf.dtype)
  return traverse_util.unflatten_dict(out)


# ---- config -----------------------------------------------------------------------------


def test_config_presets_and_overrides():
  cfg = config_lib.model_config()
  assert cfg.name == 'cosnet_small' and cfg.dtype == 'float32' and not cfg.remat
  assert cfg.pretrained == '' and cfg.embed_dim == 32
  spec = models.resolve_model_config(cfg)
  assert spec.stage_channels == (32, 64, 128, 256) and spec.stem_channels == 32
  cfg.name = 'cosnet_resnest50'  # the name selects the preset's sizes
  spec = models.resolve_model_config(cfg)
  assert spec.stage_blocks == (3, 4, 6, 3) and spec.stage_channels == (256, 512, 1024, 2048)
  assert spec.embed_dim == 32  # embed_dim is an ordinary field: always the config's value
  assert models.resolve_model_config(config_lib.model_config('cosnet_resnest50')).embed_dim == 256
  cfg.stage_blocks = (1, 2, 1, 1)  # explicit size fields override the preset
  assert models.resolve_model_config(cfg).stage_blocks == (1, 2, 1, 1)
  assert models.resolve_model_config(cfg).stem_width == 32
  with pytest.raises(ValueError, match='config.model.name'):
    config_lib.model_config('resnet9000')
  bad = config_lib.model_config('cosnet_tiny')
  bad.head_width = 6
  with pytest.raises(ValueError, match='head_width'):
    models.resolve_model_config(bad)
  bad = config_lib.model_config('cosnet_tiny')
  bad.dtype = 'float16'
  with pytest.raises(ValueError, match='config.model.dtype'):
    models.build_cosnet(bad)


# ---- shapes (abstract evaluation, no compile) -------------------------------------------


@pytest.mark.parametrize('name, hw', [('cosnet_tiny', (96, 128)), ('cosnet_small', (64, 64))])
def test_output_shapes(name, hw):
  model = _model(name)
  variables = _abstract_init(model, (1, 64, 64, 1))
  d = models.resolve_model_config(config_lib.model_config(name)).embed_dim
  x = jax.ShapeDtypeStruct((2, *hw, 1), jnp.float32)
  out, updates = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=True, with_embeddings=True,
                               mutable=['batch_stats']), variables, x)
  for key in ('thick_logits', 'thin_logits', 'thick', 'thin', 'coarse'):
    assert out[key].shape == (2, *hw, 1) and out[key].dtype == jnp.float32, key
  for key in ('embed_thick', 'embed_thin'):
    assert out[key].shape == (2, *hw, d) and out[key].dtype == jnp.float32, key
  assert jax.tree.structure(updates['batch_stats']) == jax.tree.structure(
      variables['batch_stats'])
  out = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
  assert 'embed_thick' not in out and set(out) == {
      'thick_logits', 'thin_logits', 'thick', 'thin', 'coarse'}


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  model = _model(dtype='bfloat16')
  variables = _abstract_init(model, (1, 64, 64, 1))
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(variables))
  x = jax.ShapeDtypeStruct((1, 64, 64, 1), jnp.float32)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, with_embeddings=True), variables, x)
  assert all(a.dtype == jnp.float32 for a in out.values())


def test_resnest50_shapes_and_parameter_count():
  model = _model('cosnet_resnest50')
  variables = _abstract_init(model, (1, 320, 320, 1))
  count = lambda tree: sum(a.size for a in jax.tree.leaves(tree))
  # ResNeSt-50 has 27,483,240 parameters, 2,049,000 of them in the ImageNet classifier.
  assert count(variables['params']['encoder']) == 27_483_240 - 2_049_000
  x = jax.ShapeDtypeStruct((1, 320, 320, 1), jnp.float32)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, with_embeddings=True), variables, x)
  assert out['coarse'].shape == (1, 320, 320, 1)
  assert out['embed_thick'].shape == (1, 320, 320, 256)


def test_encoder_feature_shapes_resnest50():
  spec = models.resolve_model_config(config_lib.model_config('cosnet_resnest50'))
  enc = encoder_from_spec(spec)
  x = jax.ShapeDtypeStruct((1, 320, 320, 3), jnp.float32)
  feats = jax.eval_shape(lambda x: enc.init_with_output(KEY, x, False)[0], x)
  assert [f.shape for f in feats] == [(1, 160, 160, 64), (1, 80, 80, 256), (1, 40, 40, 512),
                                      (1, 20, 20, 1024), (1, 10, 10, 2048)]


def test_rejects_bad_input_shapes():
  model = _model()
  variables = _abstract_init(model, (1, 64, 64, 1))
  with pytest.raises(ValueError, match='multiples of 32.*304x304'):
    jax.eval_shape(lambda v, x: model.apply(v, x), variables,
                   jax.ShapeDtypeStruct((1, 304, 304, 1), jnp.float32))
  with pytest.raises(ValueError, match=r'\[B, H, W, 1\]'):
    jax.eval_shape(lambda v, x: model.apply(v, x), variables,
                   jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))


def test_remat_keeps_parameter_names_and_differentiates():
  plain, remat = _model(), _model(remat=True)
  v_plain = _abstract_init(plain, (1, 64, 64, 1))
  v_remat = _abstract_init(remat, (1, 64, 64, 1))
  assert jax.tree.structure(v_plain) == jax.tree.structure(v_remat)

  def loss(params, stats, x):
    out, _ = remat.apply({'params': params, 'batch_stats': stats}, x, train=True,
                         with_embeddings=True, mutable=['batch_stats'])
    return jnp.mean(out['thick_logits']) + jnp.mean(out['embed_thin'])

  grads = jax.eval_shape(jax.grad(loss), v_remat['params'], v_remat['batch_stats'],
                         jax.ShapeDtypeStruct((2, 64, 64, 1), jnp.float32))
  assert jax.tree.structure(grads) == jax.tree.structure(v_remat['params'])


def test_full_res_skip_adds_exactly_its_parameters():
  """model.full_res_width=F: a 3x3 conv (1 -> F) + BN of the image, concatenated
  into rcb1 of both decoders (whose conv 3x3 and shortcut 1x1 gain F inputs)."""
  count = lambda v: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(v['params']))
  plain = _abstract_init(_model(), (1, 64, 64, 1))
  f, head = 4, 8                                   # cosnet_tiny: head_width 8
  skip_model = _model(full_res_width=f)
  skip = _abstract_init(skip_model, (1, 64, 64, 1))
  assert 'full_res_conv' not in plain['params']
  assert skip['params']['full_res_conv']['kernel'].shape == (3, 3, 1, f)
  assert count(skip) - count(plain) == 9 * f + 2 * f + 2 * (9 * f * head + f * head)
  out = jax.eval_shape(lambda v, x: skip_model.apply(v, x, with_embeddings=True),
                       skip, jax.ShapeDtypeStruct((2, 64, 64, 1), jnp.float32))
  assert out['coarse'].shape == (2, 64, 64, 1) and out['embed_thin'].shape[:3] == (2, 64, 64)
  with pytest.raises(ValueError, match='config.model.full_res_width'):
    _model(full_res_width=-1)


def test_no_stem_pool_runs_the_encoder_at_twice_the_resolution():
  """model.stem_pool=False: layer1..layer4 at H/2..H/16, the encoder's
  parameters unchanged (ImageNet weights still load), and each decoder loses
  exactly its H/2 up-sampling (x2 joins x0 without one)."""
  plain_model, hi_model = _model(), _model(stem_pool=False)
  plain = _abstract_init(plain_model, (1, 64, 64, 1))
  hi = _abstract_init(hi_model, (1, 64, 64, 1))
  assert jax.tree.structure(plain['params']['encoder']) == jax.tree.structure(
      hi['params']['encoder'])
  assert 'up2' in plain['params']['decoder_thick'] and 'up2' not in hi['params']['decoder_thick']
  assert 'up2' in plain['params']['decoder_thin'] and 'up2' not in hi['params']['decoder_thin']
  assert set(plain['params']['decoder_thick']) - set(hi['params']['decoder_thick']) == {'up2'}
  spec = models.resolve_model_config(dict(config_lib.model_config('cosnet_tiny'),
                                          stem_pool=False))
  enc = encoder_from_spec(spec)
  feats = jax.eval_shape(lambda v, x: enc.apply(v, x, False),
                         {'params': hi['params']['encoder'],
                          'batch_stats': hi['batch_stats']['encoder']},
                         jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32))
  assert [f.shape[1] for f in feats] == [32, 32, 16, 8, 4]
  out = jax.eval_shape(lambda v, x: hi_model.apply(v, x, with_embeddings=True),
                       hi, jax.ShapeDtypeStruct((2, 64, 64, 1), jnp.float32))
  assert out['coarse'].shape == (2, 64, 64, 1) and out['embed_thick'].shape[:3] == (2, 64, 64)
  bad = dict(config_lib.model_config('cosnet_tiny'), stem_pool='no')
  with pytest.raises(ValueError, match='config.model.stem_pool'):
    models.resolve_model_config(bad)


# ---- layers vs NumPy ---------------------------------------------------------------------


def _to_oihw(kernel):
  return np.asarray(kernel, np.float64).transpose(3, 2, 0, 1)


def test_split_attention_cardinality2_matches_numpy():
  """The decoder's SplAt (radix 2, cardinality 2, bias) == original-release PyTorch code."""
  layer = SplitAttentionConv(16, 3, radix=2, cardinality=2, use_bias=True)
  x = np.random.default_rng(0).standard_normal((2, 6, 5, 12)).astype(np.float32)
  abstract = jax.eval_shape(lambda x: layer.init(KEY, x, False), x)
  variables = _fake_variables(abstract, seed=1)
  out = jax.jit(lambda v, x: layer.apply(v, x, False))(variables, x)
  p, s = variables['params'], variables['batch_stats']
  sd = {}
  for name in ('conv', 'fc1', 'fc2'):
    sd[f'm.{name}.weight'] = _to_oihw(p[name]['kernel'])
    sd[f'm.{name}.bias'] = np.asarray(p[name]['bias'], np.float64)
  for name in ('bn0', 'bn1'):
    sd[f'm.{name}.weight'] = np.asarray(p[name]['scale'], np.float64)
    sd[f'm.{name}.bias'] = np.asarray(p[name]['bias'], np.float64)
    sd[f'm.{name}.running_mean'] = np.asarray(s[name]['mean'], np.float64)
    sd[f'm.{name}.running_var'] = np.asarray(s[name]['var'], np.float64)
  ref = splat_reference(x.transpose(0, 3, 1, 2).astype(np.float64), sd, 'm', channels=16,
                        radix=2, cardinality=2)
  assert sd['m.fc1.weight'].shape == (32, 8, 1, 1)  # inter = max(16*2//4, 32), groups 2
  np.testing.assert_allclose(np.asarray(out), ref.transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


def test_split_attention_batch_of_one_in_training_mode():
  layer = SplitAttentionConv(8, 3, radix=2)
  x = np.random.default_rng(0).standard_normal((1, 8, 8, 8)).astype(np.float32)
  variables = _fake_variables(jax.eval_shape(lambda x: layer.init(KEY, x, False), x))
  out, updates = jax.jit(lambda v, x: layer.apply(v, x, True, mutable=['batch_stats']))(
      variables, x)
  assert np.all(np.isfinite(out)) and np.abs(out).max() > 0
  # Statistics of the pooled vector over a batch of one: mean = the vector, var = 0.
  assert np.all(np.isfinite(jax.tree.leaves(updates)[0]))


def test_upconv_matches_transposed_conv():
  layer = UpConv2x2(5)
  x = np.random.default_rng(0).standard_normal((2, 3, 4, 6)).astype(np.float32)
  variables = _fake_variables(jax.eval_shape(lambda x: layer.init(KEY, x), x))
  out = np.asarray(jax.jit(layer.apply)(variables, x))
  k = np.asarray(variables['params']['kernel'])  # [p, q, c, o]
  b = np.asarray(variables['params']['bias'])
  ref = np.zeros((2, 6, 8, 5)) + b  # ConvTranspose2d(k=2, s=2): out[2i+p, 2j+q] += x[i, j] W
  for i in range(3):
    for j in range(4):
      for pp in range(2):
        for q in range(2):
          ref[:, 2 * i + pp, 2 * j + q] += x[:, i, j] @ k[pp, q]
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


# ---- compiled forward and cross-replica BatchNorm ---------------------------------------


def test_forward_outputs_are_consistent():
  """Compiled training-mode forward of cosnet_tiny (batch 2, 32x64)."""
  model = _model()
  variables = _fake_variables(_abstract_init(model, (1, 64, 64, 1)), seed=3)
  image = np.random.default_rng(4).uniform(size=(2, 32, 64, 1)).astype(np.float32)
  out, updates = jax.jit(lambda v, x: model.apply(
      v, x, train=True, with_embeddings=True, mutable=['batch_stats']))(variables, image)
  np.testing.assert_allclose(out['thick'], jax.nn.sigmoid(out['thick_logits']), atol=1e-6)
  np.testing.assert_allclose(out['thin'], jax.nn.sigmoid(out['thin_logits']), atol=1e-6)
  np.testing.assert_array_equal(out['coarse'], np.maximum(out['thick'], out['thin']))
  for key in ('embed_thick', 'embed_thin'):
    assert out[key].shape == (2, 32, 64, 8)
    np.testing.assert_allclose(np.linalg.norm(out[key], axis=-1), 1.0, atol=1e-5)
  assert all(np.all(np.isfinite(a)) for a in out.values())
  # Training mode moves the running statistics (momentum 0.9).
  old = variables['batch_stats']['encoder']['bn1']['mean']
  new = updates['batch_stats']['encoder']['bn1']['mean']
  assert not np.allclose(old, new)


def _data_mesh():
  assert jax.device_count() == 4
  return jax.make_mesh((4,), ('data',), axis_types=(jax.sharding.AxisType.Auto,))


def test_every_batchnorm_is_synchronised_over_axis_name():
  """Tracing the data-parallel training forward: one psum over 'data' per BN layer.

  With the CPU formulation the two BN layers of each fused projection head
  share one psum (its Gram matrix and mean; models/heads.py), so the two
  heads make 2 of the 4.
  """
  variables = _abstract_init(_model(), (1, 64, 64, 1))
  num_bn = len(jax.tree.leaves(variables['batch_stats'])) // 2
  assert num_bn == 54
  for form, expected in ((formulation.REFERENCE, num_bn), (formulation.CPU, num_bn - 2)):
    model = models.build_cosnet(config_lib.model_config('cosnet_tiny'), axis_name='data',
                                formulation=form)
    fn = jax.shard_map(
        lambda v, x: model.apply(v, x, train=True, with_embeddings=True,
                                 mutable=['batch_stats']),
        mesh=_data_mesh(), in_specs=(P(), P('data')), out_specs=(P('data'), P()))
    jaxpr = str(jax.make_jaxpr(fn)(variables, jax.ShapeDtypeStruct((8, 32, 32, 1), jnp.float32)))
    assert len(re.findall(r"psum\w*\[axes=\('data',\)", jaxpr)) == expected


class _BlocksForBN(nn.Module):
  """Bottleneck (stride 2, avg-down shortcut, split attention) -> RCB -> projection head."""
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train):
    x = Bottleneck(4, 2, axis_name=self.axis_name)(x, train)
    x = ResidualConvBlock(8, axis_name=self.axis_name)(x, train)
    return ProjectionHead(8, axis_name=self.axis_name)(x, train)


def test_cross_replica_batchnorm_under_shard_map_matches_global_batch():
  image = np.random.default_rng(4).standard_normal((8, 16, 16, 8)).astype(np.float32)
  plain = _BlocksForBN()
  variables = _fake_variables(jax.eval_shape(lambda x: plain.init(KEY, x, False), image))
  apply = lambda m: lambda v, x: m.apply(v, x, True, mutable=['batch_stats'])
  out, updates = jax.jit(apply(plain))(variables, image)
  mesh = _data_mesh()
  sharded = jax.jit(jax.shard_map(apply(_BlocksForBN('data')), mesh=mesh,
                                  in_specs=(P(), P('data')), out_specs=(P('data'), P())))
  out_s, updates_s = sharded(variables, image)
  np.testing.assert_allclose(out_s, out, rtol=1e-4, atol=1e-4)
  for a, b in zip(jax.tree.leaves(updates_s), jax.tree.leaves(updates)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  # Without the axis name each replica normalises with its own 2 images: different.
  local = jax.jit(jax.shard_map(apply(plain), mesh=mesh, in_specs=(P(), P('data')),
                                out_specs=(P('data'), P('data'))))
  out_l, _ = local(variables, image)
  assert np.abs(np.asarray(out_l) - np.asarray(out)).max() > 1e-2


# ---- refinement module -------------------------------------------------------------------


@pytest.fixture(scope='module')
def refiner_setup():
  refiner = models.build_refiner(config_lib.refine_model_config())
  rng = np.random.default_rng(7)
  maps = [rng.uniform(size=(2, 16, 24, 1)).astype(np.float32) for _ in range(3)]
  variables = models.init_variables(refiner, KEY, *maps)
  apply = jax.jit(lambda v, a, b, c: refiner.apply(v, a, b, c, train=False))
  return refiner, variables, maps, apply


def test_init_variables_equals_module_init():
  layer = SplitAttentionConv(8, 3, radix=2)
  x = np.random.default_rng(0).standard_normal((2, 8, 8, 8)).astype(np.float32)
  fast = models.init_variables(layer, KEY, x, train=False)
  ref = jax.jit(lambda k, x: layer.init(k, x, False))(KEY, x)
  assert jax.tree.structure(fast) == jax.tree.structure(ref)
  for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(ref)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # He-normal (fan-out) kernel of the 3x3 conv 8 -> 16 (2 groups): std sqrt(2 / (9 * 16)).
  assert 0.09 < float(np.std(fast['params']['conv']['kernel'])) < 0.15


def test_refiner_is_identity_at_init(refiner_setup):
  _, variables, (image, thick, thin), apply = refiner_setup
  out = apply(variables, image, thick, thin)
  sal = np.maximum(thick, thin)
  assert out.shape == (2, 16, 24, 1) and out.dtype == jnp.float32
  bound = 8 * np.exp(-config_lib.refine_model_config().center_logit)  # 3.6e-4
  assert np.abs(out - sal).max() <= bound
  np.testing.assert_allclose(out, sal, atol=bound)
  p = variables['params']
  assert set(p) == {'conv1', 'bn1', 'conv2', 'bn2', 'conv3'}
  assert p['conv1']['kernel'].shape == (3, 3, 3, 64)
  assert p['conv2']['kernel'].shape == (3, 3, 64, 128)
  assert p['conv3']['kernel'].shape == (3, 3, 128, 9)
  np.testing.assert_array_equal(p['conv3']['kernel'], 0)
  np.testing.assert_array_equal(p['conv3']['bias'], 10.0 * (np.arange(9) == 4))


def test_refiner_weights_select_neighbours(refiner_setup):
  """Weight k = one-hot picks sal at offset (k // 3 - 1, k % 3 - 1), zero outside."""
  _, variables, (image, thick, thin), apply = refiner_setup
  sal = np.maximum(thick, thin)
  padded = np.pad(sal, ((0, 0), (1, 1), (1, 1), (0, 0)))
  for k in (0, 5, 7):
    dy, dx = k // 3 - 1, k % 3 - 1
    params = jax.tree.map(lambda a: a, variables['params'])
    params['conv3'] = {'kernel': params['conv3']['kernel'],
                       'bias': jnp.asarray(60.0 * (np.arange(9) == k), jnp.float32)}
    out = apply({'params': params, 'batch_stats': variables['batch_stats']}, image, thick, thin)
    want = padded[:, 1 + dy:1 + dy + 16, 1 + dx:1 + dx + 24]
    np.testing.assert_allclose(out, want, atol=1e-6, err_msg=f'k={k}')


def test_refiner_output_stays_in_unit_interval(refiner_setup):
  _, variables, (image, thick, thin), apply = refiner_setup
  params = _fake_variables(variables['params'], seed=8)
  params['conv3']['kernel'] = params['conv3']['kernel'] * 20  # far from identity
  out = np.asarray(apply({'params': params, 'batch_stats': variables['batch_stats']},
                         image, thick, thin))
  sal = np.maximum(thick, thin)
  assert np.all(out >= 0) and np.all(out <= 1 + 1e-6)
  assert np.abs(out - sal).max() > 1e-2  # really aggregating
  # Convex combination of the 3x3 neighbourhood: within its min / max (zero padded).
  stack = np.asarray(neighbourhood_stack(jnp.asarray(sal), 3))
  assert np.all(out[..., 0] <= stack.max(-1) + 1e-6)
  assert np.all(out[..., 0] >= stack.min(-1) - 1e-6)


def test_refiner_rejects_mismatched_inputs(refiner_setup):
  refiner, variables, (image, thick, _), _ = refiner_setup
  with pytest.raises(ValueError, match='thin'):
    refiner.apply(variables, image, thick, thick[:, :8])


# ---- conv implementations and the summary command ---------------------------------------


@pytest.mark.parametrize('form_name', ['reference', 'slices', 'dense'])
@pytest.mark.parametrize('kernel, groups, stride', [(3, 4, 1), (3, 2, 2), (1, 1, 1), (1, 2, 1)])
def test_conv_matches_flax_conv(kernel, groups, stride, form_name):
  """Grouped (native, sliced, or block-diagonal dense for narrow groups) and 1x1
  (matmul) convs == nn.Conv with the same variables."""
  form = {'reference': formulation.REFERENCE,
          'slices': formulation.Formulation(grouped_conv='slices', dense_group_width=0),
          'dense': formulation.CPU}[form_name]
  layer = conv_bn.conv(16, kernel, stride=stride, groups=groups, use_bias=True,
                       formulation=form)
  pad = kernel // 2
  ref = nn.Conv(16, (kernel, kernel), strides=stride, padding=((pad, pad), (pad, pad)),
                feature_group_count=groups)
  x = np.random.default_rng(0).standard_normal((2, 8, 6, 8)).astype(np.float32)
  variables = _fake_variables(jax.eval_shape(lambda x: ref.init(KEY, x), x))
  assert jax.tree.map(lambda a: a.shape, variables) == jax.tree.map(
      lambda a: a.shape, jax.eval_shape(lambda x: layer.init(KEY, x), x))
  np.testing.assert_allclose(layer.apply(variables, x), ref.apply(variables, x),
                             rtol=1e-5, atol=1e-5)
  # The formulation shows in the lowered HLO: one convolution, or one per group.
  text = jax.jit(layer.apply).lower(variables, x).as_text()
  if groups > 1:
    one = form.grouped_conv == 'native' or 8 // groups <= form.dense_group_width
    assert text.count('convolution(') == (1 if one else groups)


def test_reference_formulation_counts_the_grouped_multiply_adds():
  """XLA's cost analysis of a narrow grouped conv counts the block-diagonal
  dense conv's zeros in the CPU formulation, not in the reference one (the
  model's FLOPs: benchmark MFU, summary)."""
  from cosnet_jax.models import conv_bn
  x = jax.ShapeDtypeStruct((1, 8, 8, 16), jnp.float32)

  def flops(form):
    layer = conv_bn.conv(16, 3, groups=4, formulation=form)
    variables = jax.eval_shape(lambda x: layer.init(KEY, x), x)
    return jax.jit(lambda v, x: layer.apply(v, x)).lower(variables, x).cost_analysis()['flops']
  # 2 x outputs x taps x 4 input channels, taps inside the zero padding not
  # counted by XLA: (22 / 24)^2 of 9 on an 8 x 8 image.
  grouped = 2 * 8 * 8 * 16 * 9 * 4 * (22 / 24) ** 2
  assert flops(formulation.CPU) == pytest.approx(4 * grouped, rel=0.02)
  assert flops(formulation.REFERENCE) == pytest.approx(grouped, rel=0.02)


def test_summary_figures():
  from cosnet_jax.models import summary
  fig = summary.model_figures('cosnet_tiny', (64,))
  model = _model()
  assert fig['params']['total'] == sum(
      a.size for a in jax.tree.leaves(_abstract_init(model, (1, 64, 64, 1))['params']))
  assert fig['params']['encoder'] + fig['params']['decoder_thick'] + fig['params'][
      'decoder_thin'] + fig['params']['heads'] == fig['params']['total']
  assert 0 < fig['gflops'][64]['infer'] < fig['gflops'][64]['train']
  # Refiner: 3x3 convs 3->64->128->9 at 32x32, 2 FLOPs per multiply-add (+ elementwise);
  # XLA does not count the taps on the zero padding: (3*32 - 2)^2 (pixel, tap) pairs.
  ref = summary.refiner_figures((32,))
  macs = (3 * 32 - 2) ** 2 * (3 * 64 + 64 * 128 + 128 * 9)
  assert ref['params']['total'] == 9 * (3 * 64 + 64 * 128 + 128 * 9) + 9 + 2 * (64 + 128)
  assert 2 * macs <= ref['gflops'][32]['infer'] * 1e9 <= 1.02 * 2 * macs
