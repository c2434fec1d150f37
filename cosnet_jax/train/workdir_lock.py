"""One training run per workdir: an exclusive lock on WORKDIR/.lock.

The lock is an `fcntl.flock` on the file, which the kernel releases when the
holding process ends however it ends; the file also records the holder (host,
PID, start time) for the message a second run gets. A record left by a killed
run (its flock gone) is taken over with one log line. Multi-host: the
primary process (process 0) holds the lock, and every process learns whether
it got it before any of them writes.
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import pathlib
import socket

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from cosnet_jax.errors import UserError

LOCK_FILE = '.lock'


class WorkdirInUseError(UserError):
  """Another run holds the workdir (the message names it)."""


def _holder(path: pathlib.Path) -> dict:
  try:
    return json.loads(path.read_text() or '{}')
  except (OSError, ValueError):
    return {}


def _describe(holder: dict) -> str:
  if not holder:
    return 'another process'
  return (f"PID {holder.get('pid')} on host {holder.get('host')}, running since "
          f"{holder.get('started')}")


def _in_use(workdir: pathlib.Path, holder: dict) -> WorkdirInUseError:
  return WorkdirInUseError(
      f'workdir {workdir} is in use by {_describe(holder)} (its lock {workdir / LOCK_FILE}); '
      'wait for that run, stop it, or use another --workdir')


def check_free(workdir: pathlib.Path) -> None:
  """Raises WorkdirInUseError when a live run holds `workdir`. Writes nothing."""
  path = workdir / LOCK_FILE
  if not path.is_file():
    return
  with open(path) as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise _in_use(workdir, _holder(path)) from None
    fcntl.flock(f, fcntl.LOCK_UN)


class WorkdirLock:
  """Holds WORKDIR/.lock from `acquire` until `release` (or the process ends)."""

  def __init__(self, workdir: pathlib.Path):
    self.workdir = pathlib.Path(workdir)
    self._file = None

  def acquire(self) -> None:
    """Takes the lock (process 0) and tells every process the outcome.

    Raises:
      WorkdirInUseError on every process when a live run holds it.
    """
    error = None
    if jax.process_index() == 0:
      try:
        self._take()
      except WorkdirInUseError as e:
        error = e
    if jax.process_count() > 1:
      failed = multihost_utils.broadcast_one_to_all(np.int32(error is not None))
      if int(failed) and error is None:
        error = WorkdirInUseError(f'workdir {self.workdir} is in use by another run '
                                  '(see process 0)')
    if error is not None:
      raise error

  def _take(self) -> None:
    path = self.workdir / LOCK_FILE
    f = open(path, 'a+')   # pylint: disable=consider-using-with  (held until release)
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.close()
      raise _in_use(self.workdir, _holder(path)) from None
    previous = _holder(path)
    if previous:
      logging.warning('workdir %s: taking over the lock of %s, which is no longer running',
                      self.workdir, _describe(previous))
    f.seek(0)
    f.truncate()
    f.write(json.dumps({'host': socket.gethostname(), 'pid': os.getpid(),
                        'started': datetime.datetime.now().isoformat(timespec='seconds')}))
    f.flush()
    self._file = f

  def release(self) -> None:
    """Clears the record and lets the lock go."""
    if self._file is None:
      return
    try:
      self._file.seek(0)
      self._file.truncate()
      self._file.flush()
    except OSError:
      pass
    fcntl.flock(self._file, fcntl.LOCK_UN)
    self._file.close()
    self._file = None
