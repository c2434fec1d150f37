"""The data-parallel steps: replica consistency, device-count invariance,
NaN guard, frozen stage 1 in the refinement step."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from cosnet_jax import sharding
from cosnet_jax import contrast as contrast_lib
from cosnet_jax import models
from cosnet_jax.train import state as state_lib
from cosnet_jax.train import steps as steps_lib
from cosnet_jax.train import compiled
from tiny_config import tiny_config as _tiny_run_config
from cosnet_jax.models import formulation

SIZE = 32
BATCH = 4


def tiny_config(weight=0.05):
  c = _tiny_run_config("")
  c.contrast.weight = weight
  # tiny_run's optimizer: the contrast tests reuse its compiled functions.
  c.optimizer.learning_rate = 3e-3
  return c


def make_batch(seed=0):
  rng = np.random.RandomState(seed)
  img = rng.rand(BATCH, SIZE, SIZE, 1).astype(np.float32)
  thick = (img > 0.75).astype(np.float32)
  thin = (img > 0.6).astype(np.float32)
  valid = np.ones_like(img)
  valid[:, -4:] = 0  # padded rows must not count
  return dict(image=img, mask=np.maximum(thick, thin), thick=thick, thin=thin,
              valid=valid)


# Plain SGD for the device-count comparison: Adam's first updates are
# lr * sign(g), so float noise in a near-zero gradient component flips a whole
# lr-sized step and step 2 then starts from visibly different weights. With SGD
# the update is proportional to the gradient and step 2 checks the update itself.
_SGD = optax.sgd(0.05)


def init_state(config, mesh, model, num_steps=10, tx=None):
  """A fresh replicated initial state (donated by the step, so never reused).

  The init is compiled once per optimizer and kept on the host: the variables
  do not depend on the device count or the contrast weight.
  """
  return sharding.replicate(_host_init(config, model, num_steps, tx), mesh)


_INITS = {}


def _host_init(config, model, num_steps, tx):
  key = (id(tx), num_steps, config.model.name, config.contrast.queue_len)
  if key not in _INITS:
    mesh = sharding.make_mesh(jax.devices()[:1])
    create = lambda r: state_lib.create_train_state(r, model, config, (SIZE, SIZE),
                                                    num_steps, tx=tx)
    state = models.compile_init(jax.jit(create, out_shardings=NamedSharding(mesh, P())),
                                jax.random.PRNGKey(0))(jax.random.PRNGKey(0))
    _INITS[key] = jax.device_get(state)
  return _INITS[key]


TINY_RUN_STEPS = 6   # tests/tiny_config.py's train.num_steps (the lr schedule)


def _contrast_setup():
  """tiny_run's config, compiled step and initial state (4 devices, contrast on).

  Same config, mesh and schedule as the test run's tiny_run, so the compile
  caches (train/compiled.py) hand back the functions it compiled.
  """
  config = tiny_config(0.05)
  mesh = sharding.make_mesh()
  fns = compiled.stage1_functions(config, mesh, TINY_RUN_STEPS)
  return config, mesh, fns.model, fns.train_step


def _contrast_state(config, mesh):
  return compiled.stage1_functions(config, mesh, TINY_RUN_STEPS).init(
      jax.random.PRNGKey(config.seed))


@functools.lru_cache(maxsize=None)
def _setup(ndev, weight):
  config = tiny_config(weight)
  mesh = sharding.make_mesh(jax.devices()[:ndev])
  model = models.build_cosnet(config.model, axis_name=sharding.AXIS)
  return config, mesh, model, steps_lib.build_train_step(model, config, mesh)


def run_steps(ndev, weight, n=2, tx=None):
  """n steps from the initial state; returns (host states after each step, metrics)."""
  config, mesh, model, step = _setup(ndev, weight)
  state = init_state(config, mesh, model, tx=tx)
  states, metrics = [], []
  for i in range(n):
    state, m = step(state, sharding.shard_batch(make_batch(i), mesh))
    metrics.append(jax.device_get(m))
    states.append(jax.device_get(state))
  return states, metrics


def test_banks_and_params_identical_on_every_replica():
  assert jax.device_count() == 4
  config, mesh, model, step = _contrast_setup()
  state = _contrast_state(config, mesh)
  init_queue = np.asarray(state.bank_thick.segment_queue)
  metrics = []
  for i in range(2):
    state, m = step(state, sharding.shard_batch(make_batch(i), mesh))
    metrics.append(jax.device_get(m))
  assert all(m['finite'] == 1 for m in metrics)
  assert metrics[-1]['anchors_thick'] > 0
  for leaf in jax.tree.leaves(state):
    shards = [np.asarray(s.data) for s in leaf.addressable_shards]
    for s in shards[1:]:
      np.testing.assert_array_equal(s, shards[0])
  # The bank was written: pointers moved and queues differ from the init.
  assert int(jnp.sum(state.bank_thick.pixel_ptr)) > 0 or int(
      jnp.sum(state.bank_thick.pixel_filled)) > 0
  assert not np.allclose(np.asarray(state.bank_thick.segment_queue), init_queue)


def test_one_and_four_devices_give_the_same_step():
  # Segmentation only: the contrastive anchors depend on an Otsu threshold of
  # near-constant maps at init, which float reduction order can flip.
  s1, m1 = run_steps(1, 0.0, tx=_SGD)
  s4, m4 = run_steps(4, 0.0, tx=_SGD)
  # Step 1: same loss, same gradient (norm), hence the same SGD update of
  # every parameter and the same BatchNorm statistics: this checks the
  # backward pass of cross-replica BatchNorm and the gradient psum. (BatchNorm
  # over the 4 pooled split-attention vectors amplifies float-order noise to
  # a few 1e-4 of the gradient norm; a missing cross-replica term would be
  # percents.)
  np.testing.assert_allclose(m1[0]['loss'], m4[0]['loss'], rtol=1e-5)
  np.testing.assert_allclose(m1[0]['grad_norm'], m4[0]['grad_norm'], rtol=1e-3)
  # SGD moves each weight by lr * g (lr 0.05): 1e-5 is 2e-4 of a gradient.
  for a, b in zip(jax.tree.leaves(s1[0].params), jax.tree.leaves(s4[0].params)):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
  for a, b in zip(jax.tree.leaves(s1[0].batch_stats), jax.tree.leaves(s4[0].batch_stats)):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
  # Step 2 starts from those parameters: the same loss. (Its gradient norm is
  # not compared: after one lr-0.05 step, BatchNorm over the 4 pooled vectors
  # divides by near-zero variances and turns float-order noise into percents
  # of the norm, while the loss agrees to 1e-6.)
  np.testing.assert_allclose(m1[1]['loss'], m4[1]['loss'], rtol=1e-5)


@pytest.mark.parametrize('in_batch', [False, True])
def test_contrast_term_is_independent_of_device_count(in_batch):
  config = tiny_config()
  ccfg = config.contrast
  ccfg.in_batch = in_batch
  rng = np.random.RandomState(3)
  d = 8
  embed = rng.randn(BATCH, SIZE, SIZE, d).astype(np.float32)
  embed /= np.linalg.norm(embed, axis=-1, keepdims=True)
  prob = rng.rand(BATCH, SIZE, SIZE, 1).astype(np.float32)
  target = (rng.rand(BATCH, SIZE, SIZE, 1) > 0.7).astype(np.float32)
  valid = np.ones_like(target)
  bank = contrast_lib.init_memory_bank(jax.random.PRNGKey(1), num_classes=2,
                                       queue_len=ccfg.queue_len, dim=d)

  def per_device(e, p, t, v, bank):
    keys = steps_lib._image_keys(jax.random.PRNGKey(7), e.shape[0])
    part, n = steps_lib._branch_contrast(e, p, t, v, bank, keys, ccfg)
    return jax.lax.psum(part, sharding.AXIS), n

  out = {}
  for ndev in (1, 4):
    mesh = sharding.make_mesh(jax.devices()[:ndev])
    f = jax.jit(jax.shard_map(per_device, mesh=mesh,
                              in_specs=(P('data'),) * 4 + (P(),),
                              out_specs=(P(), P()), check_vma=False))
    out[ndev] = jax.device_get(f(embed, prob, target, valid, bank))
  assert out[1][1] == out[4][1] > 0
  np.testing.assert_allclose(out[1][0], out[4][0], rtol=1e-5)


def test_non_finite_loss_leaves_state_unchanged():
  config, mesh, model, step = _contrast_setup()
  state = _contrast_state(config, mesh)
  before = jax.device_get(state)
  bad = make_batch()
  bad['image'][0, 0, 0, 0] = np.nan
  new, m = step(state, sharding.shard_batch(bad, mesh))
  assert float(m['finite']) == 0.0
  after = jax.device_get(new)
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    np.testing.assert_array_equal(a, b)


def test_refine_step_trains_only_the_refiner():
  config, mesh, model, _ = _contrast_setup()
  s1 = _contrast_state(config, mesh)
  stage1 = {'params': s1.params, 'batch_stats': s1.batch_stats}
  stage1_before = jax.device_get(stage1)
  refiner, tx, step, _ = compiled.stage2_functions(config, mesh, config.refine.num_steps)
  create = lambda r: state_lib.create_refine_state(r, refiner, config, (SIZE, SIZE),
                                                   config.refine.num_steps, tx)
  rstate = models.compile_init(jax.jit(create, out_shardings=NamedSharding(mesh, P())),
                               jax.random.PRNGKey(2))(jax.random.PRNGKey(2))
  params_before = jax.device_get(rstate.params)
  rstate, m = step(rstate, stage1, sharding.shard_batch(make_batch(), mesh))
  assert np.isfinite(float(m['loss']))
  changed = [not np.allclose(a, b) for a, b in zip(
      jax.tree.leaves(params_before), jax.tree.leaves(jax.device_get(rstate.params)))]
  assert any(changed)
  for a, b in zip(jax.tree.leaves(stage1_before), jax.tree.leaves(jax.device_get(stage1))):
    np.testing.assert_array_equal(a, b)
  # Stage-2 state carries no optimizer state for stage 1.
  n_opt = sum(x.size for x in jax.tree.leaves(rstate.opt_state))
  n_refiner = sum(x.size for x in jax.tree.leaves(rstate.params))
  assert n_opt <= 2 * n_refiner + 10


def _one_step_per_platform(settings, weight, hlo_op):
  """One SGD step from the same state under each `config.platform` setting.

  settings: {name: {platform field: value}}. Returns {name: (metrics, params,
  batch_stats)} and {name: count of `hlo_op` in the lowered step} (to check
  that each formulation was traced).
  """
  out, counts = {}, {}
  for name, fields in settings.items():
    config = tiny_config(weight)
    config.platform.update(fields)
    mesh = sharding.make_mesh()
    form = formulation.formulation(config.platform, sharding.backend(mesh))
    model = models.build_cosnet(config.model, axis_name=sharding.AXIS, formulation=form)
    step = steps_lib.build_train_step(model, config, mesh)
    # The step applies the state's apply_fn: this formulation's model.
    state = init_state(config, mesh, model, tx=_SGD).replace(apply_fn=model.apply)
    batch = sharding.shard_batch(make_batch(0), mesh)
    counts[name] = step.lower(state, batch).as_text().count(hlo_op)
    state, m = step(state, batch)
    out[name] = jax.device_get((m, state.params, state.batch_stats))
  return out, counts


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason='XLA:CPU options')
def test_cpu_conv_kernels_give_the_same_step():
  """The CPU compiler options (convolutions on XLA's own kernels, not
  YNNPACK) change the speed, not the step: same loss, gradient and update."""
  out, _ = _one_step_per_platform({'auto': {}, 'off': {'xla_options': 'off'}}, 0.0, 'x')
  _assert_same_step(out['auto'], out['off'])


def _assert_same_step(a, b, metric_keys=('loss',)):
  (m, params, stats), (m_ref, params_ref, stats_ref) = a, b
  for key in metric_keys:
    np.testing.assert_allclose(m[key], m_ref[key], rtol=1e-5, err_msg=key)
  np.testing.assert_allclose(m['grad_norm'], m_ref['grad_norm'], rtol=1e-3)
  for u, v in zip(jax.tree.leaves((params, stats)), jax.tree.leaves((params_ref, stats_ref))):
    np.testing.assert_allclose(u, v, atol=1e-5, rtol=1e-4)


def test_dense_grouped_convs_give_the_same_step():
  """Narrow grouped convs as one block-diagonal dense conv (platform.dense_group_width,
  for XLA:CPU speed) and per-group slices change the formulation, not the step:
  same loss, gradient and update as lax's grouped conv."""
  out, n_convs = _one_step_per_platform({
      'dense': {'grouped_conv': 'slices', 'dense_group_width': 4},
      'slices': {'grouped_conv': 'slices', 'dense_group_width': 0},
      'native': {'grouped_conv': 'native'}}, 0.0, 'stablehlo.convolution')
  assert n_convs['dense'] < n_convs['slices'], n_convs   # the dense path ran
  assert n_convs['native'] < n_convs['slices'], n_convs
  _assert_same_step(out['dense'], out['slices'])
  _assert_same_step(out['native'], out['slices'])


def test_fused_projection_heads_give_the_same_step():
  """The training-mode projection heads as one matmul (platform.fused_projection,
  models/heads.py) change the formulation, not the step: same loss, gradient,
  update and BN statistics as conv -> BN -> conv -> BN -> conv, with the
  contrastive loss on (so the embeddings reach the loss)."""
  out, n_dots = _one_step_per_platform({'on': {'fused_projection': 'on'},
                                        'off': {'fused_projection': 'off'}},
                                       0.5, 'stablehlo.dot_general')
  assert n_dots['on'] != n_dots['off'], n_dots   # the fused path ran
  m = out['on'][0]
  assert float(m['contrast_thick']) > 0 and float(m['contrast_thin']) > 0
  _assert_same_step(out['on'], out['off'], ('loss', 'seg_thick', 'seg_thin',
                                            'contrast_thick', 'contrast_thin'))


def test_strided_max_pool_gives_the_same_step():
  """The stem's max pool as nine strided maxima (platform.max_pool='strided') and as
  reduce_window give the same step."""
  out, n_rw = _one_step_per_platform({'strided': {'max_pool': 'strided'},
                                      'rw': {'max_pool': 'reduce_window'}}, 0.0,
                                     'reduce_window')
  assert n_rw['strided'] < n_rw['rw'], n_rw
  _assert_same_step(out['strided'], out['rw'])
