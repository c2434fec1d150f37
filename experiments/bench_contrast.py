"""Times the contrastive part of a train step at the paper size.

Per branch: Otsu -> anchor sampling -> pixel contrastive loss (value and
gradient wrt the embedding map) -> select_for_enqueue -> enqueue, jitted,
for B=8, 320x320 (304 padded), D=256, bank [2, 400, 256].

  python experiments/bench_contrast.py [--batch 8] [--size 320] [--dim 256]
      [--branches 2] [--iters 5] [--cpu_preset] [--breakdown]

Prints milliseconds per call (median of --iters after one warm-up) and, as a
floor, the time of a trivial loss whose gradient also writes the whole map.
"""
import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from cosnet_jax import contrast


def make_inputs(rng, batch, size, dim, valid_size):
  k_e, k_p, k_l = jax.random.split(rng, 3)
  embed = contrast.l2_normalize(
      jax.random.normal(k_e, (batch, size, size, dim), jnp.float32))
  yy, xx = jnp.meshgrid(jnp.arange(size), jnp.arange(size), indexing='ij')
  valid = ((yy < valid_size) & (xx < valid_size)).astype(jnp.float32)
  valid = jnp.broadcast_to(valid[None, :, :, None], (batch, size, size, 1))
  # ~15% vessel pixels; prob correlated with the label plus noise.
  label = (jax.random.uniform(k_l, (batch, size, size, 1)) < 0.15)
  prob = jnp.clip(0.7 * label + 0.5 * jax.random.uniform(k_p, label.shape),
                  0.0, 1.0)
  return embed, prob, label.astype(jnp.float32) * valid, valid


def build_step(cfg, branches):
  def one_branch(embed, prob, label, valid, bank, rng):
    k_anchor, k_enq = jax.random.split(rng)
    keys = jax.random.split(k_anchor, embed.shape[0])

    def loss_fn(e):
      s, n, _ = contrast.contrast_branch_loss(e, prob, label, valid, bank,
                                              keys, cfg)
      return s / jnp.maximum(n, 1.0)

    loss, grad = jax.value_and_grad(loss_fn)(embed)
    items = contrast.select_for_enqueue(
        embed, contrast.branch_labels(label), valid[..., 0] > 0.5, k_enq,
        num_classes=cfg.num_classes, pixels_per_image=cfg.pixels_per_image)
    bank = contrast.update_memory_bank(bank, items, cfg)
    return loss, grad, bank

  @jax.jit
  def step(embeds, prob, label, valid, banks, rng):
    out = []
    for b in range(branches):
      out.append(one_branch(embeds[b], prob, label, valid, banks[b],
                            jax.random.fold_in(rng, b)))
    return out

  @jax.jit
  def floor(embeds):
    return [jax.grad(lambda e: jnp.sum(e * 0.5))(e) for e in embeds]

  return step, floor


def breakdown(cfg, embed, prob, label, valid, bank, iters):
  """ms of each piece of one branch, jitted separately."""
  keys = jax.random.split(jax.random.PRNGKey(3), embed.shape[0])
  lab = contrast.branch_labels(label)
  val = valid[..., 0] > 0.5
  p = prob[..., 0]
  kw = dict(num_classes=cfg.num_classes, max_samples=cfg.max_samples,
            max_views=cfg.max_views, min_pixels=cfg.min_pixels)
  otsu = jax.jit(contrast.otsu_threshold)
  pred = (p > otsu(p, val)[:, None, None]).astype(jnp.int32)

  def sample(e):
    return contrast.compact_anchors(
        contrast.sample_anchors(e, lab, pred, val, keys, **kw),
        cfg.max_samples)

  anchors = jax.jit(sample)(embed)
  cset = contrast.bank_contrast_set(bank)

  def loss_of_feat(f):
    return contrast.pixel_contrast_loss(
        anchors.replace(feat=f), *cset, temperature=cfg.temperature,
        base_temperature=cfg.base_temperature)[0]

  select = jax.jit(lambda e: contrast.select_for_enqueue(
      e, lab, val, jax.random.PRNGKey(0), num_classes=cfg.num_classes,
      pixels_per_image=cfg.pixels_per_image))
  items = select(embed)
  return {
      'otsu': time_fn(otsu, p, val, iters=iters),
      'sample_anchors+compact': time_fn(jax.jit(sample), embed, iters=iters),
      'loss+grad wrt anchors': time_fn(jax.jit(jax.grad(loss_of_feat)),
                                       anchors.feat, iters=iters),
      'grad scatter into map': time_fn(jax.jit(jax.grad(
          lambda e: jnp.sum(sample(e).feat))), embed, iters=iters),
      'select_for_enqueue': time_fn(select, embed, iters=iters),
      'enqueue': time_fn(jax.jit(contrast.enqueue), bank, items, iters=iters),
  }


def time_fn(fn, *args, iters):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(iters):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times) * 1e3


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--size', type=int, default=320)
  parser.add_argument('--valid_size', type=int, default=304)
  parser.add_argument('--dim', type=int, default=256)
  parser.add_argument('--branches', type=int, default=2)
  parser.add_argument('--iters', type=int, default=5)
  parser.add_argument('--breakdown', action='store_true',
                      help='also time each piece of one branch')
  parser.add_argument('--cpu_preset', action='store_true',
                      help="configs/cpu.py's contrast settings (fewer anchors) "
                           'instead of the paper defaults')
  args = parser.parse_args()

  cfg = contrast.default_contrast_config()
  if args.cpu_preset:
    from cosnet_jax.train.config import base_config, cpu_overrides  # pylint: disable=g-import-not-at-top
    cfg = cpu_overrides(base_config()).contrast
  rng = jax.random.PRNGKey(0)
  embeds, prob, label, valid = [], None, None, None
  for b in range(args.branches):
    e, prob, label, valid = make_inputs(jax.random.PRNGKey(1), args.batch,
                                        args.size, args.dim, args.valid_size)
    embeds.append(e)
  banks = [contrast.init_memory_bank_from_config(jax.random.PRNGKey(b), cfg,
                                                 args.dim)
           for b in range(args.branches)]
  step, floor = build_step(cfg, args.branches)

  t0 = time.perf_counter()
  jax.block_until_ready(step(embeds, prob, label, valid, banks, rng))
  compile_s = time.perf_counter() - t0
  ms = time_fn(step, embeds, prob, label, valid, banks, rng, iters=args.iters)
  floor_ms = time_fn(floor, embeds, iters=args.iters)
  print(f'device={jax.devices()[0].device_kind} batch={args.batch} '
        f'size={args.size} dim={args.dim} branches={args.branches}')
  print(f'contrast (otsu+sample+loss+grad+enqueue): {ms:.1f} ms '
        f'(first call incl. compile {compile_s:.1f} s)')
  print(f'floor (gradient map of a trivial loss): {floor_ms:.1f} ms')
  if args.breakdown:
    parts = breakdown(cfg, embeds[0], prob, label, valid, banks[0], args.iters)
    for name, t in parts.items():
      print(f'  one branch, {name}: {t:.2f} ms')


if __name__ == '__main__':
  main()
