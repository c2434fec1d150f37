r"""Checks a dataset before training: every image / label pair of every split: `cosnet-verify`.

  cosnet-verify --config folder:cpu --config.data.root=/path/to/folder
  python -m cosnet_jax.verify --config configs/octa500_3m.py --config.data.root=DIR

Lists every problem at once (unpaired files, unreadable or truncated files,
non-binary labels, image / label size mismatches, an id in two splits) with
the file names and a count, then the warnings (colour or 16-bit images,
empty labels, identical images in two splits). A clean dataset prints one
line: pairs per split, image sizes, vessel fraction. Exit status 1 when a
problem was found. Training runs the same check at its start.
"""
import sys

from absl import flags
from ml_collections import config_flags

from cosnet_jax import cli
from cosnet_jax.data import datasets, integrity, layouts, mixture, source
from cosnet_jax.data import splits as splits_lib
from cosnet_jax.errors import UserError

FLAGS = flags.FLAGS
MAX_WARNINGS = 20


def define_flags():
  config_flags.DEFINE_config_file('config', None, 'Config file or shipped config name.',
                                  lock_config=True)
  flags.mark_flags_as_required(['config'])


def verify(data_cfg) -> tuple[list[str], list[str], list[str]]:
  """(problems, warnings, summary lines) of every dataset of `config.data`."""
  problems, warnings, summaries = [], [], []
  for key, cfg in mixture.sources(data_cfg):
    base, _ = datasets.parse_name(cfg.name)
    if base == 'synthetic_octa':
      summaries.append(f'{key}: generated (synthetic_octa), nothing to check')
      continue
    scan_problems: list = []
    files = layouts.scan(cfg, scan_problems)
    report = integrity.check(files, key, scan_problems)
    problems += report.problems
    warnings += report.warnings
    summaries.append(f'{report.summary} [{cfg.name} in {layouts.require_root(cfg)}]')
    if not report.problems:
      views = source.views(cfg)
      if cfg.val_split and views.held_out:
        n = len(views.members[splits_lib.base_names(cfg.val_split)[0]])
        summaries.append(f'{key}: split {cfg.val_split!r} held out of train ({n} images, '
                         f'data.holdout_fraction={cfg.holdout_fraction}, '
                         f'seed {cfg.holdout_seed})')
      for split in (cfg.val_split, cfg.test_split):
        if split and not source.has_split(cfg, split):
          summaries.append(f'{key}: split {split!r} absent')
  return problems, warnings, summaries


def main(argv):
  if len(argv) > 1:
    raise UserError(f'unexpected arguments: {argv[1:]}')
  problems, warnings, summaries = verify(FLAGS.config.data)
  for p in problems:
    print(f'problem: {p}')
  for w in warnings[:MAX_WARNINGS]:
    print(f'warning: {w}')
  if len(warnings) > MAX_WARNINGS:
    print(f'warning: ... and {len(warnings) - MAX_WARNINGS} more warnings')
  for s in summaries:
    print(s)
  if problems:
    print(f'{len(problems)} problem(s) found', file=sys.stderr)
    sys.exit(1)
  print(f'OK ({len(warnings)} warning(s))' if warnings else 'OK')


def cli_main():
  cli.run(main, define_flags, check_config_keys=True)


if __name__ == '__main__':
  cli_main()
