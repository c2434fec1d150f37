"""What every command shares: its --help, one-line errors, config names.

`run(main, define_flags)` is the entry point of each command (`cosnet-train`,
`python -m cosnet_jax.main`, ...):

* `--help` (or -h) prints the command's usage (its module docstring) and its
  own flags with their help, and exits 0; absl's `--helpfull` lists every
  library's flags too;
* `--config NAME[:ARG]` naming a shipped recipe (configs/NAME.py) is found
  from any working directory; a path works as before; an override of a key
  the config lacks is refused naming close matches;
* a `UserError` (bad file, folder, flag or config value: errors.py), a flag
  that does not parse, and a failed write (disk full, no permission: the path
  and the OS error) are printed as `error: <message>` and the command exits
  with status 2, without a traceback unless `--traceback`; any other
  exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import difflib
import errno
import inspect
import os
import re
import sys
import textwrap
import traceback as traceback_lib
from typing import Callable, Iterable, Sequence

from absl import app, flags

from cosnet_jax import compilation, config_files, console
from cosnet_jax import config as config_lib
from cosnet_jax.errors import ConfigError, UserError

EXIT_USER_ERROR = 2
HELP_FLAGS = ('-h', '--help', '--helpshort', '-?')
# OS errors that are the machine's state, not a bug: one line, exit 2.
PLACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT, errno.EIO)


def _rewrite_config_flag(argv: list[str]) -> list[str]:
  out = list(argv)
  for i, arg in enumerate(out):
    if arg.startswith('--config='):
      out[i] = '--config=' + config_files.resolve(arg.split('=', 1)[1])
    elif arg == '--config' and i + 1 < len(out):
      out[i + 1] = config_files.resolve(out[i + 1])
  return out


def wants(argv: Sequence[str], flag: str) -> bool | None:
  """True / False if `--flag` / `--noflag` (or =true/false) is in argv, else None."""
  for arg in argv:
    if arg in (f'--{flag}', f'--{flag}=true', f'--{flag}=1', f'--{flag}=True'):
      return True
    if arg in (f'--no{flag}', f'--{flag}=false', f'--{flag}=0', f'--{flag}=False'):
      return False
  return None


def check_override_keys(argv: Iterable[str]) -> None:
  """Rejects `--config.a.b=v` overrides whose key is not in the config.

  ml_collections fails on them with a bare AttributeError deep in flag
  parsing; this names the key and lists the valid ones instead.
  """
  argv = list(argv)
  path = None
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      path = arg.split('=', 1)[1]
    elif arg == '--config' and i + 1 < len(argv):
      path = argv[i + 1]
  if path is None:
    return
  valid = config_lib.flat_keys(config_files.load(path))
  for arg in argv:
    if arg.startswith('--config.'):
      key = arg[len('--config.'):].split('=', 1)[0]
      if key not in valid and not any(v.startswith(key + '.') for v in valid):
        raise ConfigError(f'unknown config key {key!r} (from {arg!r}); '
                          + _key_hint(key, valid))


def _key_hint(key: str, valid: list[str]) -> str:
  """'did you mean ...' and the keys of the key's section (one line)."""
  close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
  section = key.rpartition('.')[0]
  siblings = [v for v in valid if v.rpartition('.')[0] == section] if section else []
  parts = []
  if close:
    parts.append('did you mean ' + ' or '.join(repr(c) for c in close) + '?')
  if siblings:
    parts.append(f'keys of config.{section}: ' + ', '.join(
        s.rpartition('.')[2] for s in siblings))
  elif not close:
    sections = sorted({v.split('.')[0] for v in valid})
    parts.append('sections: ' + ', '.join(sections))
  return ' '.join(parts)


def print_error(e: BaseException, traceback: bool = False) -> None:
  if traceback:
    traceback_lib.print_exception(e)
  lines = str(e).strip().splitlines() or [type(e).__name__]
  print(f'error: {lines[0]}', file=sys.stderr)
  for line in lines[1:12]:
    print(f'  {line.strip()}', file=sys.stderr)
  if len(lines) > 12:
    print(f'  ... ({len(lines) - 12} more lines)', file=sys.stderr)


def os_error_line(e: OSError) -> str:
  """'PATH: No space left on device' (the path and the OS's words)."""
  where = e.filename or ''
  if e.filename2:
    where = f'{where} -> {e.filename2}'
  what = e.strerror or str(e)
  return f'{where}: {what}' if where else what


def define_common_flags() -> None:
  flags.DEFINE_bool('traceback', False, 'Show the traceback of errors too.')
  flags.DEFINE_string('compilation_cache', None,
                      "XLA compilation cache folder ('' = off; default "
                      "$COSNET_COMPILATION_CACHE or $XDG_CACHE_HOME/cosnet_jax/xla, ~/.cache/...).")


def define_spacing_flags() -> None:
  """--spacing_um / --fov_mm of the commands that take images (predict, measure)."""
  flags.DEFINE_float('spacing_um', None, "The images' pixel spacing in micrometres.")
  flags.DEFINE_float('fov_mm', None, "The images' field of view in mm across their width "
                     '(e.g. 3 or 6 for OCTA-500); sets the spacing of each image.')


def help_text(doc: str, names: Sequence[str]) -> str:
  """The command's usage (its docstring) and its own flags with their help."""
  lines = [textwrap.dedent(doc or '').strip(), '', 'flags:']
  for name in names:
    flag = flags.FLAGS[name]
    if flag.name != name:       # a short alias
      continue
    default = '' if flag.default in (None, '', []) else f" (default: {flag.default_as_str.strip(chr(39))})"
    if name == 'config':
      default = ''
    text = ' '.join((flag.help or '').split())
    lines.append(f'  --{name}: {text}{default}')
    if name == 'config':
      lines.append('  --config.a.b=VALUE: override one field of the config '
                   '(e.g. --config.data.root=DIR)')
  lines += ['  --verbosity=1: every library\'s log lines, not only this package\'s',
            '', 'Every flag of every library: --helpfull']
  return '\n'.join(lines)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a parse error as one `error:` line and exit 2."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    missing = re.findall(r'Flag --(\w+) must have a value other than None', str(e))
    message = (f'{", ".join("--" + m for m in missing)} '
               f'{"is" if len(missing) == 1 else "are"} required (see --help)'
               if missing else ' '.join(str(e).split()))
    print_error(UserError(message))
    sys.exit(EXIT_USER_ERROR)


def run(main: Callable[[list[str]], None], define_flags: Callable[[], None] | None = None,
        *, check_config_keys: bool = False, before_main: Callable[[list[str]], None] | None = None
        ) -> None:
  """Runs `main` as a command (see the module docstring).

  before_main: called with argv after --help was handled and before anything
  else (training's huge-page restart).
  """
  argv = list(sys.argv)
  traceback = bool(wants(argv, 'traceback'))
  known = set(flags.FLAGS)
  if define_flags is not None:
    define_flags()
  define_common_flags()
  if any(a in HELP_FLAGS for a in argv[1:]):
    doc = inspect.getmodule(main).__doc__
    print(help_text(doc, [n for n in flags.FLAGS if n not in known]))
    sys.exit(0)
  if before_main is not None:
    before_main(argv)
  try:
    argv = _rewrite_config_flag(argv)
    if check_config_keys:
      check_override_keys(argv[1:])
  except UserError as e:
    print_error(e, traceback)
    sys.exit(EXIT_USER_ERROR)

  def wrapped(args):
    console.setup(flags.FLAGS.verbosity)
    compilation.enable_cache(flags.FLAGS.compilation_cache)
    try:
      main(args)
    except UserError as e:
      print_error(e, flags.FLAGS.traceback)
      if e.exit_at_once:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_USER_ERROR)   # pylint: disable=protected-access
      sys.exit(EXIT_USER_ERROR)
    except OSError as e:
      if e.errno not in PLACE_ERRNOS:
        raise
      print_error(UserError(os_error_line(e)), flags.FLAGS.traceback)
      sys.exit(EXIT_USER_ERROR)

  sys.argv = argv
  try:
    app.run(wrapped, argv=argv, flags_parser=_parse_flags)
  except flags.IllegalFlagValueError as e:   # e.g. a config file that raised on load
    print_error(e, traceback)
    sys.exit(EXIT_USER_ERROR)
