"""Why a training run stops early: signals, a time or step budget, a non-finite loss.

Each ends the run with the state checkpointed (or, for a non-finite loss, the
last good checkpoint kept), and the same command resumes it.
"""
from __future__ import annotations

import contextlib
import signal
import time

from absl import logging


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN/Inf loss; the message names the step."""


class RunSliceDone(Exception):
  """max_steps_per_run / time_budget_s reached; the state is checkpointed."""


class StopFlag:
  """Set by SIGTERM / SIGINT; the loop checkpoints and stops after the step.

  Inside `immediate(...)` (work with nothing to checkpoint, such as the final
  report) a signal stops the process at once instead, with the reason.
  """

  def __init__(self):
    self.requested = False
    self.signal = None
    self._previous = {}
    self._during = None

  @property
  def signal_name(self) -> str:
    return signal.Signals(self.signal).name if self.signal else 'a signal'

  @contextlib.contextmanager
  def immediate(self, during: str):
    """Within the block, a signal raises KeyboardInterrupt naming it and `during`."""
    if self.requested:
      raise KeyboardInterrupt(f'stopped by {self.signal_name} before {during}')
    self._during = during
    try:
      yield
    finally:
      self._during = None
    # The handler's raise is lost where it lands in a callback (a gc or weakref
    # one: 'Exception ignored'); the flag it set is not, so stop here.
    if self.requested:
      raise KeyboardInterrupt(f'stopped by {self.signal_name} during {during}')

  def install(self):
    self.requested, self.signal, self._during = False, None, None
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not in the main thread (e.g. some test runners)
        pass

  def uninstall(self):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    self.requested, self.signal = True, signum
    if self._during is not None:
      raise KeyboardInterrupt(f'stopped by {self.signal_name} during {self._during}')
    logging.warning('%s: saving a checkpoint and stopping', self.signal_name)


STOP = StopFlag()


class Clock:
  """Wall time of this process's run, for train.time_budget_s (<= 0: no budget)."""

  def __init__(self, budget_s: float):
    self.start = time.time()
    self.budget = float(budget_s)

  def out_of_time(self) -> bool:
    return self.budget > 0 and time.time() - self.start >= self.budget
