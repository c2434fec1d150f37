"""Pure per-device step functions and their data-parallel, jitted wrappers.

Every step is written for ONE device's slice of the global batch under the
named mesh axis `AXIS` (pmap semantics), then mapped over a 1-D ('data',) mesh
of all devices of all processes with `jax.shard_map` and jit-compiled
(`sharding.data_parallel`). The eval-mode passes are in inference/steps.py.

Why the losses are built from global sums: each device divides its local loss
sum by the psum of the counts over all devices, and the gradients are psummed.
The result is the gradient of the loss of the whole global batch, so (together
with cross-replica BatchNorm and per-image PRNG keys derived from the image's
global index) a step computes the same numbers on 1 device or on N devices.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
from jax import lax
from jax.sharding import PartitionSpec as P

from cosnet_jax import contrast as contrast_lib
from cosnet_jax import sharding
from cosnet_jax.models.cosnet import frozen_maps
from cosnet_jax.sharding import AXIS
from cosnet_jax.train import state as state_lib
from cosnet_jax.train.state import RefineState, TrainState

_BRANCHES = ('thick', 'thin')


def _image_keys(rng: jax.Array, local_batch: int) -> jax.Array:
  """One PRNG key per image, from the image's index in the GLOBAL batch.

  Returns: [local_batch] keys.
  """
  first = lax.axis_index(AXIS) * local_batch
  return jax.vmap(lambda i: jax.random.fold_in(rng, i))(first + jnp.arange(local_batch))


def _global_mean_part(local_sum, local_count):
  """local_sum / psum(count): summed over devices this is the global mean."""
  total = lax.psum(local_count, AXIS)
  return local_sum / jnp.maximum(total, 1e-12)


def _seg_loss_part(logits, target, valid, kind):
  """Segmentation loss of one branch as this device's share of the global mean.

  Args:
    logits, target, valid: [b, h, w, 1].
  """
  local_weight = jnp.sum(valid)
  local_mean = contrast_lib.segmentation_loss(logits, target, valid, kind)
  return _global_mean_part(local_mean * local_weight, local_weight)


def _branch_contrast(embed, prob, target, valid, bank, keys, ccfg):
  """Pixel-contrast loss of one branch as this device's share of the global mean.

  Args:
    embed: [b, h, w, D] L2-normalised embeddings (gradient flows to anchors).
    prob, target, valid: [b, h, w, 1].
    bank: the branch's MemoryBank.
    keys: [b] per-image PRNG keys.
  Returns:
    (loss part, global number of valid anchors).
  """
  loss_sum, count, _ = contrast_lib.contrast_branch_loss(
      embed, prob, target, valid, bank, keys, ccfg, axis_name=AXIS)
  return _global_mean_part(loss_sum, count), lax.psum(count, AXIS)


def _enqueue(bank, embed, target, valid, keys, ccfg):
  """Adds this step's embeddings of the GLOBAL batch to a memory bank.

  Each device selects its images' class means and pixels (small, fixed shape),
  the selections are all-gathered, and every replica applies the same writes,
  so the banks stay bit-identical on all devices.
  """
  labels = (target[..., 0] > 0.5).astype(jnp.int32)
  select = functools.partial(contrast_lib.select_for_enqueue, num_classes=2,
                             pixels_per_image=ccfg.pixels_per_image)
  items = jax.vmap(lambda e, l, v, k: select(e[None], l[None], v[None], k))(
      lax.stop_gradient(embed), labels, valid[..., 0] > 0, keys)
  # [b, 1, ...] -> [b, ...] per leaf, then gather over devices.
  items = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), items)
  items = jax.tree.map(lambda x: lax.all_gather(x, AXIS, tiled=True), items)
  return contrast_lib.enqueue(
      bank, items, classes=tuple(int(c) for c in ccfg.enqueue_classes))


def train_step(state: TrainState, batch: dict[str, jax.Array], *, model,
               config: ml_collections.ConfigDict):
  """One stage-1 step on this device's slice of the batch.

  Args:
    state: replicated TrainState.
    batch: `image`, `thick`, `thin`, `mask`, `valid`, each [b, h, w, 1].
  Returns:
    (new state, metrics dict of global scalars).
  """
  ccfg = config.contrast
  use_contrast = ccfg.weight > 0
  rng = jax.random.fold_in(state.rng, state.step)
  k_sample, k_enqueue = jax.random.split(rng)
  b = batch['image'].shape[0]
  keys = {br: _image_keys(jax.random.fold_in(k_sample, i), b)
          for i, br in enumerate(_BRANCHES)}
  valid = batch['valid']

  def loss_fn(params):
    outputs, new_vars = state.apply_fn(
        {'params': params, 'batch_stats': state.batch_stats}, batch['image'],
        train=True, with_embeddings=use_contrast, mutable=['batch_stats'])
    terms = {}
    for br in _BRANCHES:
      terms[f'seg_{br}'] = _seg_loss_part(outputs[f'{br}_logits'], batch[br],
                                          valid, ccfg.seg_loss)
    total = terms['seg_thick'] + terms['seg_thin']
    if use_contrast:
      banks = {'thick': state.bank_thick, 'thin': state.bank_thin}
      for br in _BRANCHES:
        part, n = _branch_contrast(outputs[f'embed_{br}'], outputs[br], batch[br],
                                   valid, banks[br], keys[br], ccfg)
        terms[f'contrast_{br}'], terms[f'anchors_{br}'] = part, n
      total = total + ccfg.weight * (terms['contrast_thick'] +
                                     ccfg.thin_weight * terms['contrast_thin'])
    return total, (outputs, new_vars, terms)

  (loss, (outputs, new_vars, terms)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  grads = lax.psum(grads, AXIS)
  metrics = {k: (lax.psum(v, AXIS) if not k.startswith('anchors') else v)
             for k, v in terms.items()}
  metrics['loss'] = lax.psum(loss, AXIS)

  new_state = state.apply_gradients(grads=grads,
                                    batch_stats=new_vars['batch_stats'])
  new_state = state_lib.update_ema(new_state, config.optimizer.ema_decay)
  if use_contrast and ccfg.use_memory and not ccfg.freeze_memory_bank:
    ek = {br: _image_keys(jax.random.fold_in(k_enqueue, i), b)
          for i, br in enumerate(_BRANCHES)}
    new_state = new_state.replace(
        bank_thick=_enqueue(state.bank_thick, outputs['embed_thick'],
                            batch['thick'], valid, ek['thick'], ccfg),
        bank_thin=_enqueue(state.bank_thin, outputs['embed_thin'],
                           batch['thin'], valid, ek['thin'], ccfg))
  # A non-finite loss leaves the state untouched (the host then stops), so
  # the state that gets checkpointed is always the last good one.
  ok = jnp.isfinite(metrics['loss'])
  new_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old),
                           new_state, state)
  metrics['finite'] = ok.astype(jnp.float32)
  metrics['grad_norm'] = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads)))
  return new_state, metrics


def _prob_loss(prob, target, valid, kind):
  """Valid-weighted mean loss on probabilities (the refiner has no logits).

  Args:
    prob, target, valid: [b, h, w, 1].
    kind: 'mse' (the authors') or 'bce'.
  """
  if kind == 'mse':
    per_pixel = (prob - target) ** 2
  elif kind == 'bce':
    p = jnp.clip(prob, 1e-6, 1 - 1e-6)
    per_pixel = -(target * jnp.log(p) + (1 - target) * jnp.log1p(-p))
  else:
    raise ValueError(f"config refine.loss={kind!r}: expected 'mse' or 'bce'")
  return jnp.sum(per_pixel * valid) / jnp.maximum(jnp.sum(valid), 1e-12)


def refine_step(state: RefineState, stage1_vars, batch, *, model, refiner,
                config: ml_collections.ConfigDict):
  """One stage-2 step: trains the refiner only; stage 1 is frozen.

  The target is the full vessel mask (`mask`); loss = the configured
  segmentation loss on the refined probabilities (MSE, as the authors).
  """
  thick, thin, _ = frozen_maps(model, stage1_vars, batch['image'])
  valid = batch['valid']

  def loss_fn(params):
    refined, new_vars = state.apply_fn(
        {'params': params, 'batch_stats': state.batch_stats}, batch['image'],
        thick, thin, train=True, mutable=['batch_stats'])
    w = jnp.sum(valid)
    local = _prob_loss(refined, batch['mask'], valid, config.refine.loss)
    return _global_mean_part(local * w, w), new_vars

  (loss, new_vars), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads = lax.psum(grads, AXIS)
  loss = lax.psum(loss, AXIS)
  new_state = state.apply_gradients(grads=grads, batch_stats=new_vars['batch_stats'])
  new_state = state_lib.update_ema(new_state, config.refine.optimizer.ema_decay)
  ok = jnp.isfinite(loss)
  new_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, state)
  return new_state, {'loss': loss, 'finite': ok.astype(jnp.float32)}


# ----------------------------------------------------------------- wrappers


def build_train_step(model, config, mesh):
  """jit(shard_map(train_step)): (state, batch) -> (state, metrics); donates state."""
  fn = functools.partial(train_step, model=model, config=config)
  return sharding.data_parallel(fn, mesh, (P(), P(AXIS)), (P(), P()), donate=(0,),
                                platform_cfg=config.platform)


def build_refine_step(model, refiner, config, mesh):
  """jit(shard_map(refine_step)): (state, stage-1 vars, batch) -> (state, metrics)."""
  fn = functools.partial(refine_step, model=model, refiner=refiner, config=config)
  return sharding.data_parallel(fn, mesh, (P(), P(), P(AXIS)), (P(), P()), donate=(0,),
                                platform_cfg=config.platform)
