"""Input-pipeline throughput: training batches of augmented crops, images / second.

Usage:
  python experiments/bench_input.py [--dataset synthetic_octa] [--root DIR]
      [--crop 304] [--batch 8] [--workers 2] [--steps 30] [--tfds_dir DIR]

Default: the synthetic dataset at 400x400 (so 304x304 crops are real crops),
random crops favouring vessels, rotation +-10 deg, flips, intensity jitter,
CLAHE done once at load. Reports the one-time load (decode + CLAHE) and the
steady-state rate of (a) building batches on the calling thread and (b) the
prefetching iterator. Pin the process to 2 cores with ``taskset -c 0,1`` to
reproduce the 2-core figure.
"""
import argparse
import os
import tempfile
import time

os.environ.setdefault('JAX_PLATFORMS', 'cpu')

from cosnet_jax.data import source  # pylint: disable=g-import-not-at-top
from cosnet_jax.data.config import default_data_config
from cosnet_jax.data.pipeline import make_train_iterator


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument('--dataset', default='synthetic_octa')
  ap.add_argument('--root', default='')
  ap.add_argument('--tfds_dir', default='')
  ap.add_argument('--train_split', default='train')
  ap.add_argument('--crop', type=int, default=304)
  ap.add_argument('--pad_multiple', type=int, default=16)
  ap.add_argument('--batch', type=int, default=8)
  ap.add_argument('--workers', type=int, default=2)
  ap.add_argument('--steps', type=int, default=30)
  ap.add_argument('--synthetic_size', type=int, default=400)
  ap.add_argument('--synthetic_train', type=int, default=32)
  args = ap.parse_args()

  cfg = default_data_config()
  cfg.name, cfg.root, cfg.train_split = args.dataset, args.root, args.train_split
  cfg.tfds_dir = args.tfds_dir or os.path.join(tempfile.gettempdir(), 'cosnet_bench_tfds')
  cfg.crop_size, cfg.pad_multiple, cfg.num_workers = args.crop, args.pad_multiple, args.workers
  cfg.synthetic.update(num_train=args.synthetic_train, num_val=0, num_test=0,
                       size=args.synthetic_size)

  t0 = time.perf_counter()
  info = source.dataset_info(cfg)
  t1 = time.perf_counter()
  it = make_train_iterator(cfg, global_batch_size=args.batch, seed=0,
                           process_index=0, process_count=1)
  t2 = time.perf_counter()
  print(f'dataset {cfg.name}: {info["num_examples"]}, image {info["image_size"]}, '
        f'batch {args.batch} x {it.out_hw}, workers {args.workers}, '
        f'cpus available {len(os.sched_getaffinity(0))}')
  print(f'prepare/open: {t1 - t0:.2f} s; load + CLAHE of the train split: {t2 - t1:.2f} s')

  it.batch(0)  # warm-up
  t, c = time.perf_counter(), time.process_time()
  for k in range(1, args.steps + 1):
    it.batch(k)
  n = args.steps * args.batch
  direct = n / (time.perf_counter() - t)
  cpu_ms = 1000 * (time.process_time() - c) / n
  print(f'batch(k) on the calling thread: {direct:.1f} images/s '
        f'(CPU time {cpu_ms:.1f} ms / image, i.e. ~{1000 / cpu_ms:.0f} images/s per '
        'uncontended core)')

  next(it)
  t = time.perf_counter()
  for _ in range(args.steps):
    next(it)
  pref = args.steps * args.batch / (time.perf_counter() - t)
  it.close()
  print(f'prefetching iterator:           {pref:.1f} images/s')


if __name__ == '__main__':
  main()
