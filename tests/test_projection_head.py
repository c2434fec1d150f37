"""The fused training-mode projection head against the layer-by-layer one."""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from cosnet_jax.models.heads import ProjectionHead
from cosnet_jax.models import formulation

KEY = jax.random.PRNGKey(0)


def _random_variables(layered_vars, seed=1):
  """The init's variables with random BN scales / biases / statistics and biases."""
  rng = np.random.default_rng(seed)
  def draw(path, leaf):
    name = path[-1].key
    if name in ('scale', 'var'):
      return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), jnp.float32)
    if name in ('bias', 'mean'):
      return jnp.asarray(0.3 * rng.standard_normal(leaf.shape), jnp.float32)
    return leaf
  return jax.tree_util.tree_map_with_path(draw, layered_vars)


@pytest.fixture(scope='module')
def setup():
  rng = np.random.default_rng(0)
  # Post-ReLU-like input with a non-zero mean, as the decoders give.
  x = np.maximum(rng.standard_normal((4, 12, 10, 6)) + 0.3, 0).astype(np.float32)
  layered = ProjectionHead(8, fused=False)
  fused = ProjectionHead(8, fused=True)
  variables = _random_variables(layered.init(KEY, x, train=False))
  return x, layered, fused, variables


def test_same_variables_either_way(setup):
  x, layered, fused, _ = setup
  a = layered.init(KEY, x, train=True)
  b = fused.init(KEY, x, train=True)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(u, v)


def _loss(module, variables, x, target):
  out, updates = module.apply(variables, x, train=True, mutable=['batch_stats'])
  return jnp.sum(out * target), (out, updates)


def test_training_output_gradients_and_statistics_match(setup):
  x, layered, fused, variables = setup
  target = np.random.default_rng(2).standard_normal((4, 12, 10, 8)).astype(np.float32)
  grad = lambda m: jax.jit(jax.value_and_grad(
      lambda v, x: _loss(m, v, x, target), argnums=(0, 1), has_aux=True))
  (loss_l, (out_l, upd_l)), (g_l, gx_l) = grad(layered)(variables, x)
  (loss_f, (out_f, upd_f)), (g_f, gx_f) = grad(fused)(variables, x)
  np.testing.assert_allclose(loss_f, loss_l, rtol=1e-5)
  np.testing.assert_allclose(out_f, out_l, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(out_f, axis=-1), 1.0, rtol=1e-5)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(upd_f),
                          jax.tree.leaves(upd_l)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=str(path))
  # Every parameter gradient. Those of b2 and beta1 are exactly zero in the
  # fused form (BN2 removes whatever reaches every pixel alike) and rounding
  # noise of the loss's scale in the layers.
  noise = 1e-6 * float(np.abs(loss_l)) + 1e-6
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g_f['params']),
                          jax.tree.leaves(g_l['params'])):
    atol = 2e-4 * float(np.abs(b).max()) + noise
    np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=str(path))
  for name in ('conv2', 'bn1'):
    np.testing.assert_array_equal(g_f['params'][name]['bias'], 0.0)
  np.testing.assert_allclose(gx_f, gx_l, rtol=0, atol=2e-4 * float(np.abs(gx_l).max()))


def test_eval_mode_is_the_layers(setup):
  x, layered, fused, variables = setup
  np.testing.assert_array_equal(fused.apply(variables, x, train=False),
                                layered.apply(variables, x, train=False))


def test_cross_replica_statistics_under_shard_map(setup):
  x, _, _, variables = setup
  assert jax.device_count() == 4
  mesh = jax.make_mesh((4,), ('data',), axis_types=(jax.sharding.AxisType.Auto,))
  apply = lambda m: lambda v, x: m.apply(v, x, train=True, mutable=['batch_stats'])
  out, updates = jax.jit(apply(ProjectionHead(8, fused=False)))(variables, x)
  sharded = jax.jit(jax.shard_map(apply(ProjectionHead(8, axis_name='data', fused=True)),
                                  mesh=mesh, in_specs=(P(), P('data')),
                                  out_specs=(P('data'), P())))
  out_s, updates_s = sharded(variables, x)
  np.testing.assert_allclose(out_s, out, rtol=1e-4, atol=1e-5)
  for a, b in zip(jax.tree.leaves(updates_s), jax.tree.leaves(updates)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  jaxpr = str(jax.make_jaxpr(jax.shard_map(
      apply(ProjectionHead(8, axis_name='data', fused=True)), mesh=mesh,
      in_specs=(P(), P('data')), out_specs=(P('data'), P())))(variables, x))
  # Both moments in one collective (the layers: one per BN).
  assert len(re.findall(r"psum\w*\[axes=\('data',\)", jaxpr)) == 1


def test_bfloat16_heads_run_the_layers(setup):
  x, _, _, variables = setup
  out, _ = ProjectionHead(8, dtype=jnp.bfloat16, fused=True).apply(
      variables, x, train=True, mutable=['batch_stats'])
  ref, _ = ProjectionHead(8, dtype=jnp.bfloat16, fused=False).apply(
      variables, x, train=True, mutable=['batch_stats'])
  np.testing.assert_array_equal(out, ref)


def test_formulation_decides_the_default():
  assert ProjectionHead(8).fused is None
  assert ProjectionHead(8, formulation=formulation.CPU).formulation.fused_projection
  assert not ProjectionHead(8).formulation.fused_projection
