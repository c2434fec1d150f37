"""The parameter average (optimizer.ema_decay): its update against a NumPy
reference (a stage-2 state), and a real tiny stage-1 run that keeps it in its
checkpoints, selects and predicts with it, and refuses to resume with it
switched off."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cosnet_jax.evaluation import inference
from cosnet_jax.train import config_checks
from cosnet_jax.train import loop
from cosnet_jax.train import state as state_lib
from cosnet_jax.train.checkpoint import StageCheckpoints
from tiny_config import tiny_config


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


def test_tiny_run_selects_and_predicts_with_the_average(tfds_dir, tmp_path):
  # Stage 1 only and no contrast: a smaller program to compile (the update
  # itself is tested above; stage 2 uses the same two helpers).
  config = tiny_config(tfds_dir, steps=3, refine_steps=0)
  config.contrast.weight = 0.0
  config.optimizer.ema_decay = 0.5
  config.eval.final_split = ''
  workdir = tmp_path / 'run'
  loop.train_and_evaluate(config, str(workdir))
  ckpt = StageCheckpoints(workdir / 'checkpoints' / 'stage1')
  raw, _ = ckpt.restore_raw('best')           # validated at step 3
  ckpt.close()
  diffs = [np.max(np.abs(np.asarray(a) - np.asarray(b))) for a, b in
           zip(jax.tree.leaves(raw['ema_params']), jax.tree.leaves(raw['params']))]
  assert max(diffs) > 0                # the average lags the trained weights
  s1, s2, _ = inference.load_variables(workdir, 'best')
  assert s2 is None
  for a, b in zip(jax.tree.leaves(s1['params']), jax.tree.leaves(raw['ema_params'])):
    np.testing.assert_array_equal(a, b)
  # Switching the average off changes the saved state: resuming is refused.
  config.optimizer.ema_decay = 0.0
  with pytest.raises(config_checks.ConfigError, match='optimizer.ema_decay'):
    loop.train_and_evaluate(config, str(workdir))
