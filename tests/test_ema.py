"""The parameter average (optimizer.ema_decay): its update against a NumPy
reference (a stage-2 state), and the stage-1 wiring: validation, checkpoints
and inference use it, and a resume with it switched off is refused."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cosnet_jax import sharding
from cosnet_jax.inference import trained as trained_lib
from cosnet_jax.train import loop
from cosnet_jax.train import state as state_lib
from tiny_config import tiny_config
from cosnet_jax.train import startup
from cosnet_jax.errors import ConfigError


def test_update_matches_numpy_reference_with_warmup():
  params = {'w': jnp.array([1.0, -2.0, 3.0]), 'b': jnp.array(0.5)}
  state = state_lib.RefineState.create(
      apply_fn=None, params=params, tx=optax.sgd(0.1), batch_stats={},
      rng=jax.random.PRNGKey(0), ema_params=jax.tree.map(jnp.copy, params))
  ref_p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  ref_e = {k: v.copy() for k, v in ref_p.items()}
  decay = 0.9
  for t in range(1, 6):
    grads = {'w': jnp.array([0.3, 0.1, -0.2]) * t, 'b': jnp.array(-1.0)}
    state = state_lib.update_ema(state.apply_gradients(grads=grads), decay)
    d = min(decay, (1 + t) / (10 + t))           # warm-up: 2/11, 3/12, ... then 0.9
    for k in ref_p:
      ref_p[k] = ref_p[k] - 0.1 * np.asarray(grads[k], np.float64)
      ref_e[k] = d * ref_e[k] + (1 - d) * ref_p[k]
    for k in ref_p:
      np.testing.assert_allclose(state.params[k], ref_p[k], rtol=1e-6)
      np.testing.assert_allclose(state.ema_params[k], ref_e[k], rtol=1e-6)
  assert state_lib.inference_params(state) is state.ema_params
  plain = state.replace(ema_params=None)
  assert state_lib.update_ema(plain, decay) is plain       # off: untouched
  assert state_lib.inference_params(plain) is plain.params


def test_bad_decay_is_named():
  config = tiny_config('')
  config.optimizer.ema_decay = 1.0
  with pytest.raises(ValueError, match='optimizer.ema_decay=1.0'):
    state_lib._ema_init(config.optimizer, {'w': jnp.zeros(2)})


def test_stage1_validates_saves_and_predicts_with_the_average(data_cache, tmp_path):
  # The loop's wiring without compiling a train step (the jitted step's use of
  # update_ema ran in the ema_0.99 experiment): a stage-1 state with an
  # average that differs from its params is validated, saved as best and
  # loaded for inference with the average; resuming with it off is refused.
  config = tiny_config(data_cache)
  config.optimizer.ema_decay = 0.5
  workdir = tmp_path / 'run'
  workdir.mkdir()
  plan = startup.plan(config)
  startup.write_run_files(config, workdir, plan)
  mesh = sharding.make_mesh()
  _, stage = loop.build_stage1(config, workdir, mesh, plan)
  state = stage.state
  assert state.ema_params is not None
  state = state.replace(ema_params=jax.tree.map(lambda p: p + 1.0, state.params))
  (variables,) = stage.eval_vars(state)
  for a, b in zip(jax.tree.leaves(variables['params']), jax.tree.leaves(state.ema_params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  stage.ckpt.save_latest(1, state)
  stage.ckpt.save_best(1, state, 0.5, 'dice')
  stage.ckpt.close()
  s1, s2, _ = trained_lib.load_variables(workdir, 'best')
  assert s2 is None
  for a, b in zip(jax.tree.leaves(s1['params']), jax.tree.leaves(state.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b) + 1.0)
  # Switching the average off changes the saved state: resuming is refused.
  config.optimizer.ema_decay = 0.0
  with pytest.raises(ConfigError, match='optimizer.ema_decay'):
    loop.train_and_evaluate(config, str(workdir))
