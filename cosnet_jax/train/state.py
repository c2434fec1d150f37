"""Train states and optimizers for the two training stages.

Stage 1 carries everything a COSNet step mutates: parameters, BatchNorm
statistics, Adam state, the two memory banks (thick / thin branch) and the RNG.
Stage 2 (refinement) carries only the refiner's parameters and statistics; the
frozen stage-1 variables are passed to its step as a separate argument, so they
get no optimizer state and no gradient.

Both may carry `ema_params`, an exponential moving average of the parameters
(`optimizer.ema_decay > 0`; None otherwise, which keeps the checkpoints of
runs without it unchanged). Where it exists it is what validation, model
selection, stage 2 and inference use: an average over recent steps'
weights (about 1 / (1 - decay) of them) instead of the last step's, which smooths the step-to-step
swings of a short, high-learning-rate schedule. BatchNorm statistics are
running averages already and are used as they are.
"""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from cosnet_jax.contrast import MemoryBank, init_memory_bank
from cosnet_jax.errors import ConfigError


class TrainState(train_state.TrainState):
  """Stage-1 state: params + opt state (base class) and the extra pytrees."""
  batch_stats: Any
  bank_thick: MemoryBank
  bank_thin: MemoryBank
  rng: jax.Array
  ema_params: Any = None


class RefineState(train_state.TrainState):
  """Stage-2 state: refiner params + opt state, refiner BatchNorm statistics."""
  batch_stats: Any
  rng: jax.Array
  ema_params: Any = None


def ema_decay_at(decay: float, step: jax.Array) -> jax.Array:
  """The decay applied after step `step` (1-based): min(decay, (1+t)/(10+t)).

  The warm-up keeps the first steps' near-random weights from dominating the
  average of a short run (after t steps the init's weight is ~9/(9+t)).
  """
  t = jnp.asarray(step, jnp.float32)
  return jnp.minimum(jnp.float32(decay), (1.0 + t) / (10.0 + t))


def update_ema(state, decay: float):
  """state after `apply_gradients` -> the same with its average moved.

  ema <- d * ema + (1 - d) * params, d = ema_decay_at(decay, state.step).
  A state without `ema_params` (decay 0) is returned as it is.
  """
  if decay <= 0 or state.ema_params is None:
    return state
  d = ema_decay_at(decay, state.step)
  ema = jax.tree.map(lambda e, p: (d * e + (1.0 - d) * p).astype(e.dtype),
                     state.ema_params, state.params)
  return state.replace(ema_params=ema)


def restart_ema(state):
  """The average restarted at the current params (after loading weights)."""
  if state.ema_params is None:
    return state
  return state.replace(ema_params=jax.tree.map(jnp.copy, state.params))


def inference_params(state) -> Any:
  """The parameters to validate / select / predict with: the average if kept."""
  return state.params if state.ema_params is None else state.ema_params


def _ema_init(opt_cfg: ml_collections.ConfigDict, params: Any) -> Any:
  decay = float(opt_cfg.ema_decay)
  if not 0.0 <= decay < 1.0:
    raise ConfigError(f'optimizer.ema_decay={decay}: expected 0 (off) or a value in (0, 1)')
  return jax.tree.map(jnp.copy, params) if decay > 0 else None


def learning_rate_schedule(opt_cfg: ml_collections.ConfigDict,
                           num_steps: int) -> optax.Schedule:
  """Poly decay lr * (1 - step / num_steps) ** power, with optional warm-up.

  The authors decay per epoch; decaying per step is the same curve sampled
  finer and does not depend on the dataset size.
  """
  decay = optax.polynomial_schedule(
      init_value=opt_cfg.learning_rate, end_value=0.0,
      power=opt_cfg.poly_power,
      transition_steps=max(num_steps - opt_cfg.warmup_steps, 1))
  if opt_cfg.warmup_steps <= 0:
    return decay
  warmup = optax.linear_schedule(0.0, opt_cfg.learning_rate, opt_cfg.warmup_steps)
  return optax.join_schedules([warmup, decay], [opt_cfg.warmup_steps])


def make_optimizer(opt_cfg: ml_collections.ConfigDict,
                   num_steps: int) -> optax.GradientTransformation:
  """Adam with coupled L2 weight decay, as torch.optim.Adam(weight_decay=..).

  `opt_cfg.name == 'adamw'` selects decoupled weight decay instead.
  """
  schedule = learning_rate_schedule(opt_cfg, num_steps)
  parts = []
  if opt_cfg.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(opt_cfg.grad_clip_norm))
  if opt_cfg.name == 'adam':
    if opt_cfg.weight_decay > 0:
      parts.append(optax.add_decayed_weights(opt_cfg.weight_decay))
    parts += [optax.scale_by_adam(), optax.scale_by_learning_rate(schedule)]
  elif opt_cfg.name == 'adamw':
    parts.append(optax.adamw(schedule, weight_decay=opt_cfg.weight_decay))
  else:
    raise ValueError(
        f"config optimizer.name={opt_cfg.name!r}: expected 'adam' or 'adamw'")
  return optax.chain(*parts)


def _STEP0() -> jax.Array:  # pylint: disable=invalid-name
  # A strongly typed int32 step: `.create` stores a Python 0, which jit sees as
  # a weak type, while a restored checkpoint holds a plain int32; the
  # mismatch made every resumed run compile its train step again.
  return jnp.zeros((), jnp.int32)


def create_train_state(rng: jax.Array, model, config: ml_collections.ConfigDict,
                       image_shape: tuple[int, int], num_steps: int,
                       tx: optax.GradientTransformation | None = None) -> TrainState:
  """Initialises stage 1. Pure in `rng`: every process builds the same state.

  Args:
    rng: PRNG key.
    model: the COSNet module (`models.build_cosnet`).
    config: full config.
    image_shape: (h, w) of a training input, multiples of 32.
    num_steps: total stage-1 steps (for the schedule).
    tx: the optimizer (default: `make_optimizer(config.optimizer, num_steps)`);
      passing the same object again keeps jitted steps from recompiling.
  """
  del image_shape  # the variables do not depend on it; a small dummy is cheaper
  k_model, k_thick, k_thin, k_state = jax.random.split(rng, 4)
  dummy = jnp.zeros((1, 32, 32, 1), jnp.float32)
  variables = model.init(k_model, dummy, train=False, with_embeddings=True)
  bank_kwargs = dict(num_classes=2, queue_len=config.contrast.queue_len,
                     dim=config.model.embed_dim)
  return TrainState.create(
      apply_fn=model.apply,
      params=variables['params'],
      batch_stats=variables.get('batch_stats', {}),
      tx=tx or make_optimizer(config.optimizer, num_steps),
      bank_thick=init_memory_bank(k_thick, **bank_kwargs),
      bank_thin=init_memory_bank(k_thin, **bank_kwargs),
      rng=k_state,
      ema_params=_ema_init(config.optimizer, variables['params'])).replace(step=_STEP0())


def create_refine_state(rng: jax.Array, refiner, config: ml_collections.ConfigDict,
                        image_shape: tuple[int, int], num_steps: int,
                        tx: optax.GradientTransformation | None = None) -> RefineState:
  """Initialises stage 2 (the refinement module only)."""
  del image_shape
  k_model, k_state = jax.random.split(rng)
  dummy = jnp.zeros((1, 32, 32, 1), jnp.float32)
  variables = refiner.init(k_model, dummy, dummy, dummy, train=False)
  return RefineState.create(
      apply_fn=refiner.apply,
      params=variables['params'],
      batch_stats=variables.get('batch_stats', {}),
      tx=tx or make_optimizer(config.refine.optimizer, num_steps),
      rng=k_state,
      ema_params=_ema_init(config.refine.optimizer, variables['params'])
  ).replace(step=_STEP0())
