r"""Trains COSNet (both stages) and evaluates it.

  python -m cosnet_jax.main --config configs/synthetic.py --workdir runs/quickstart
  python -m cosnet_jax.main --config configs/octa500_3m.py --workdir runs/o3m \
      --config.data.root=../shared/data/OCTA500_3M --config.train.num_steps=2000

Multi-host: start one process per host with the same flags plus
`--coordinator_address=HOST:PORT --num_processes=N --process_id=I` (or let
`jax.distributed.initialize()` read a cluster environment such as SLURM with
`--distributed`).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file (configs/*.py); override fields with --config.a.b=v.',
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Folder for checkpoints, logs and reports.')
flags.DEFINE_bool('distributed', False,
                  'Call jax.distributed.initialize() from the cluster environment.')
flags.DEFINE_string('coordinator_address', None, 'host:port of process 0.')
flags.DEFINE_integer('num_processes', None, 'Number of processes (hosts).')
flags.DEFINE_integer('process_id', None, 'This process\'s index.')
flags.DEFINE_string('compilation_cache', None,
                    "XLA compilation cache folder ('' = off; default "
                    "$COSNET_COMPILATION_CACHE or ~/.cache/cosnet_jax/xla).")
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  import jax  # pylint: disable=g-import-not-at-top
  from cosnet_jax import compilation_cache  # pylint: disable=g-import-not-at-top
  compilation_cache.enable(FLAGS.compilation_cache)
  if FLAGS.coordinator_address or FLAGS.distributed:
    kwargs = {}
    if FLAGS.coordinator_address:
      kwargs = dict(coordinator_address=FLAGS.coordinator_address,
                    num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
    jax.distributed.initialize(**kwargs)
  logging.info('JAX process %d / %d, local devices %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  from cosnet_jax.train import loop  # pylint: disable=g-import-not-at-top
  try:
    result = loop.train_and_evaluate(_CONFIG.value, FLAGS.workdir)
  except loop.NonFiniteLossError as e:
    logging.error('%s', e)
    print(f'error: {e}', file=sys.stderr)
    sys.exit(3)
  except loop.RunSliceDone as e:
    print(f'paused: {e}', file=sys.stderr)
    sys.exit(0)
  except KeyboardInterrupt as e:
    print(f'stopped: {e}', file=sys.stderr)
    sys.exit(130)
  final = result.get('final')
  if final and jax.process_index() == 0:
    print(final['text'])


def run():
  from cosnet_jax.train import config_checks  # pylint: disable=g-import-not-at-top
  try:
    config_checks.check_override_keys(sys.argv[1:])
  except config_checks.ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  app.run(main)


if __name__ == '__main__':
  # Only as a command (re-executing a caller's own script would run it twice),
  # and before jax is imported: glibc reads its huge-page tunable at start-up.
  from cosnet_jax import hugepages  # pylint: disable=g-import-not-at-top
  hugepages.reexec_with_hugepages()
  run()
