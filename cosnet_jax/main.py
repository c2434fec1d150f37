r"""Trains COSNet (both stages) and evaluates it: `cosnet-train`.

  cosnet-train --config synthetic --workdir runs/quickstart
  cosnet-train --config octa500_3m:cpu --workdir runs/o3m \
      --config.data.root=/path/to/OCTA500_3M
  python -m cosnet_jax.main --config configs/octa500_3m.py:cpu --workdir runs/o3m ...

`--config` is a config file or the name of a shipped one (configs/), with an
optional argument after ':'; `--config.a.b=v` overrides a field. Running the
same command again resumes. Multi-host: start one process per host with the
same flags plus `--coordinator_address=HOST:PORT --num_processes=N
--process_id=I` (or let `jax.distributed.initialize()` read a cluster
environment such as SLURM with `--distributed`).
"""
import sys

import jax
from absl import flags, logging
from ml_collections import config_flags

from cosnet_jax import cli, hugepages
from cosnet_jax.errors import UserError
from cosnet_jax.train import loop

FLAGS = flags.FLAGS


def define_flags():
  config_flags.DEFINE_config_file(
      'config', None, 'Config file or shipped config name (configs/), e.g. '
      "'octa500_3m:cpu'.", lock_config=True)
  flags.DEFINE_string('workdir', None, 'Folder for checkpoints, logs and reports.')
  flags.DEFINE_bool('distributed', False,
                    'Call jax.distributed.initialize() from the cluster environment.')
  flags.DEFINE_string('coordinator_address', None, 'host:port of process 0.')
  flags.DEFINE_integer('num_processes', None, 'Number of processes (hosts).')
  flags.DEFINE_integer('process_id', None, "This process's index.")
  flags.DEFINE_bool('hugepages', True, 'On CPU, restart once with glibc huge pages '
                    '(a faster train step; cosnet_jax/hugepages.py).')
  flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments: {argv[1:]}')
  if FLAGS.coordinator_address or FLAGS.distributed:
    kwargs = {}
    if FLAGS.coordinator_address:
      kwargs = dict(coordinator_address=FLAGS.coordinator_address,
                    num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
    jax.distributed.initialize(**kwargs)
  logging.info('JAX process %d / %d, devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  try:
    result = loop.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except loop.NonFiniteLossError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(3)
  except loop.RunSliceDone as e:
    print(f'paused: {e}', file=sys.stderr)
    sys.exit(0)
  except KeyboardInterrupt as e:
    print(f'stopped: {e}', file=sys.stderr)
    sys.exit(130)
  if jax.process_index() == 0:
    for rep in result['reports']:
      print(rep['text'])
      print(f"report: {rep['out_dir']}")


def _restart_with_hugepages(argv):
  if cli.wants(argv, 'hugepages') is not False:
    hugepages.reexec()


def cli_main():
  cli.run(main, define_flags, check_config_keys=True, before_main=_restart_with_hugepages)


if __name__ == '__main__':
  cli_main()
