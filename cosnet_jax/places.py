"""Where a command writes: checked before any work, so a bad place fails in one line.

`writable_folder(path, what)` accepts a folder that exists and can be written,
or one that can be created (its nearest existing parent is a writable
folder); `writable_file(path, what)` the same for a file's folder. Neither
creates anything. `what` names the flag or field in the message.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import shutil

from absl import logging

from cosnet_jax.errors import UserError


def _nearest_existing(path: pathlib.Path) -> pathlib.Path:
  p = path
  while not p.exists() and not p.is_symlink() and p != p.parent:
    p = p.parent
  return p


def writable_folder(path: str | os.PathLike, what: str) -> pathlib.Path:
  """`path` as a Path, or a UserError naming `what`, the path and why it cannot be used."""
  p = pathlib.Path(path).expanduser().absolute()
  if p.exists() and not p.is_dir():
    raise UserError(f'{what} {p}: a file, not a folder')
  base = _nearest_existing(p)
  if base.is_symlink() and not base.exists():
    raise UserError(f'{what} {p}: {base} is a broken link')
  if not base.is_dir():
    raise UserError(f'{what} {p}: {base} is a file, not a folder')
  if not os.access(base, os.W_OK | os.X_OK):
    why = ('a read-only file system' if _read_only(base) else 'no permission to write')
    raise UserError(f'{what} {p}: cannot write in {base} ({why})')
  return p


def writable_file(path: str | os.PathLike, what: str) -> pathlib.Path:
  p = pathlib.Path(path).expanduser().absolute()
  if p.is_dir():
    raise UserError(f'{what} {p}: a folder; give the file to write')
  writable_folder(p.parent, what)
  return p


def _read_only(path: pathlib.Path) -> bool:
  try:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
  except OSError:
    return False


# Below this much free space a training run says so at its start (a paper-size
# run's checkpoints take about 2 GB; the CPU model's 40 MB).
LOW_SPACE_BYTES = 2 * 1024 ** 3


def warn_if_little_space(path: str | os.PathLike) -> None:
  """One warning line when the file system of `path` has little space left."""
  try:
    free = shutil.disk_usage(path).free
  except OSError:
    return
  if free < LOW_SPACE_BYTES:
    logging.warning('only %.0f MB free on the file system of %s: checkpoints may not fit',
                    free / 1e6, path)


@contextlib.contextmanager
def naming(path: str | os.PathLike):
  """An OSError raised inside (a full disk while writing, say) names `path`."""
  try:
    yield
  except OSError as e:
    if e.filename is None and e.errno is not None:
      raise OSError(e.errno, e.strerror or os.strerror(e.errno), os.fspath(path)) from e
    raise
