"""What every command shares: one-line errors, config names, huge pages.

`run(main, flags_fn)` is the entry point of each command (`cosnet-train`,
`python -m cosnet_jax.main`, ...):

* on CPU it first restarts the command with glibc's huge pages
  (platform.hugepages_reexec; logged; `--nohugepages` turns it off);
* `--config NAME[:ARG]` naming a shipped recipe (configs/NAME.py) is found
  from any working directory; a path works as before;
* a `UserError` (bad file, folder, flag or config value: errors.py) is
  printed as `error: <message>` and the command exits with status 2, without
  a traceback unless `--traceback`; any other exception is a bug and keeps
  its traceback.
"""
from __future__ import annotations

import importlib.util
import pathlib
import sys
from typing import Callable, Sequence

from cosnet_jax.errors import UserError

__all__ = ["UserError", "run", "resolve_config", "configs_dir", "print_error"]

REPO_CONFIGS = pathlib.Path(__file__).resolve().parents[1] / 'configs'
EXIT_USER_ERROR = 2


def configs_dir() -> pathlib.Path:
  """The shipped recipes: the installed `cosnet_jax.configs`, else the checkout's configs/."""
  spec = importlib.util.find_spec('cosnet_jax.configs')
  if spec is not None and spec.submodule_search_locations:
    return pathlib.Path(list(spec.submodule_search_locations)[0])
  return REPO_CONFIGS


def resolve_config(value: str) -> str:
  """'octa500_3m:cpu' or 'configs/octa500_3m.py:cpu' -> an existing file path[:arg]."""
  file, sep, arg = value.partition(':')
  if pathlib.Path(file).is_file():
    return value
  name = pathlib.Path(file).name
  name = name[:-3] if name.endswith('.py') else name
  candidate = configs_dir() / f'{name}.py'
  if candidate.is_file() and name != '__init__':
    return f'{candidate}{sep}{arg}'
  known = sorted(p.stem for p in configs_dir().glob('*.py') if p.stem != '__init__')
  raise UserError(f'--config {value!r}: no such file, and no shipped config named '
                  f'{name!r} (shipped: {", ".join(known)})')


def _rewrite_config_flag(argv: list[str]) -> list[str]:
  out = list(argv)
  for i, arg in enumerate(out):
    if arg.startswith('--config='):
      out[i] = '--config=' + resolve_config(arg.split('=', 1)[1])
    elif arg == '--config' and i + 1 < len(out):
      out[i + 1] = resolve_config(out[i + 1])
  return out


def _wants(argv: Sequence[str], flag: str) -> bool | None:
  """True / False if `--flag` / `--noflag` (or =true/false) is in argv, else None."""
  for arg in argv:
    if arg in (f'--{flag}', f'--{flag}=true', f'--{flag}=1', f'--{flag}=True'):
      return True
    if arg in (f'--no{flag}', f'--{flag}=false', f'--{flag}=0', f'--{flag}=False'):
      return False
  return None


def print_error(e: BaseException, traceback: bool = False) -> None:
  if traceback:
    import traceback as tb  # pylint: disable=g-import-not-at-top
    tb.print_exception(e)
  lines = str(e).strip().splitlines() or [type(e).__name__]
  print(f'error: {lines[0]}', file=sys.stderr)
  for line in lines[1:12]:
    print(f'  {line.strip()}', file=sys.stderr)
  if len(lines) > 12:
    print(f'  ... ({len(lines) - 12} more lines)', file=sys.stderr)


def define_common_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_bool('traceback', False, 'Show the traceback of user errors too.')
  flags.DEFINE_bool('hugepages', True, 'On CPU, restart once with glibc huge pages '
                    '(a faster train step; see cosnet_jax/platform.py).')
  flags.DEFINE_string('compilation_cache', None,
                      "XLA compilation cache folder ('' = off; default "
                      "$COSNET_COMPILATION_CACHE or ~/.cache/cosnet_jax/xla).")


def run(main: Callable[[list[str]], None], define_flags: Callable[[], None] | None = None,
        *, check_config_keys: bool = False, hugepages: bool = True) -> None:
  """Runs `main` as a command (see the module docstring)."""
  argv = list(sys.argv)
  traceback = bool(_wants(argv, 'traceback'))
  if hugepages and _wants(argv, 'hugepages') is not False:
    from cosnet_jax import platform  # pylint: disable=g-import-not-at-top
    platform.hugepages_reexec()
  try:
    argv = _rewrite_config_flag(argv)
    if check_config_keys:
      from cosnet_jax.train import config_checks  # pylint: disable=g-import-not-at-top
      config_checks.check_override_keys(argv[1:])
  except UserError as e:
    print_error(e, traceback)
    sys.exit(EXIT_USER_ERROR)
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  define_common_flags()
  if define_flags is not None:
    define_flags()

  def wrapped(args):
    from cosnet_jax import compilation_cache, console  # pylint: disable=g-import-not-at-top
    console.setup(flags.FLAGS.verbosity)
    compilation_cache.enable(flags.FLAGS.compilation_cache)
    try:
      main(args)
    except UserError as e:
      print_error(e, flags.FLAGS.traceback)
      sys.exit(EXIT_USER_ERROR)

  sys.argv = argv
  try:
    app.run(wrapped, argv=argv)
  except flags.IllegalFlagValueError as e:   # e.g. a config file that raised on load
    print_error(e, traceback)
    sys.exit(EXIT_USER_ERROR)
