"""Orbax checkpoints of a training stage: the latest ones and the best one.

Layout: `<workdir>/checkpoints/<stage>/{latest,best}/<step>/`, written
atomically by orbax (a temporary folder renamed when complete), plus
`best.json` with the validation score of the best checkpoint. The whole train
state is saved: params, BatchNorm statistics, optimizer state, both memory
banks, step and RNG. The data-iterator position is the step itself (the input
pipeline is a pure function of (seed, step)).

Faults: a checkpoint that cannot be restored (a truncated file, a missing
metadata file) is moved to `<stage>/damaged/` with one warning naming it, and
the next newest one is restored instead; with none left, one error names the
folder. A save that fails (disk full, no permission) raises one
`CheckpointWriteError` naming the folder and the OS error, and its partial
folder is removed: the last finished checkpoint stays intact.
"""

import contextlib
import datetime
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp
from absl import logging

from cosnet_jax.errors import CheckpointNotFoundError, UserError


class CheckpointWriteError(UserError):
  """A checkpoint could not be written (the message names the folder and the OS error).

  The command exits at once after saying so: the failed save's threads would
  otherwise go on printing tracebacks while the interpreter shuts down.
  """
  exit_at_once = True


def _root_cause(e: BaseException) -> BaseException:
  """The innermost OSError of an exception's chain (orbax wraps them), else `e`."""
  seen, found, cur = set(), e, e
  while cur is not None and id(cur) not in seen:
    seen.add(id(cur))
    if isinstance(cur, OSError):
      found = cur
    cur = cur.__cause__ or cur.__context__
  return found


def _reason(e: BaseException) -> str:
  """The OS error behind a failure in words ('No space left on device'), else its text."""
  cause = _root_cause(e)
  if isinstance(cause, OSError) and cause.errno:
    return cause.strerror or os.strerror(cause.errno)
  text = ' '.join(str(cause).split())
  code = re.search(r"os_error_code='?(\d+)", text)     # TensorStore's wording
  if code:
    return os.strerror(int(code.group(1)))
  return (text if len(text) <= 160 else text[:157] + '...') if text else type(cause).__name__


@contextlib.contextmanager
def _stderr_kept_unless_failed():
  """Holds what is written to file descriptor 2 (also by C++ threads) during the
  block: replayed if the block succeeds, dropped if it raises. A failed orbax
  save makes its threads print hundreds of tracebacks; the one-line error the
  caller raises says what happened."""
  sys.stderr.flush()
  try:
    held = tempfile.TemporaryFile()
  except OSError:
    held = open(os.devnull, 'w+b')   # pylint: disable=consider-using-with
  saved = os.dup(2)
  os.dup2(held.fileno(), 2)
  ok = False
  try:
    yield
    ok = True
  finally:
    if not ok:   # let the failed save's threads finish printing into `held`
      quiet_since, size, deadline = time.time(), -1, time.time() + 5.0
      while time.time() - quiet_since < 1.0 and time.time() < deadline:
        time.sleep(0.1)
        now = os.fstat(held.fileno()).st_size
        if now != size:
          quiet_since, size = time.time(), now
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    if ok:
      held.seek(0)
      text = held.read()
      if text:
        os.write(2, text)
    held.close()


class StageCheckpoints:
  """Latest-N and best-1 checkpoint managers for one training stage."""

  def __init__(self, directory: str | pathlib.Path, keep_latest: int = 2):
    self.directory = pathlib.Path(directory).absolute()
    def manager(sub, keep):
      options = ocp.CheckpointManagerOptions(
          max_to_keep=keep, create=True, enable_async_checkpointing=False)
      return ocp.CheckpointManager(self.directory / sub, options=options)
    self.latest = manager('latest', keep_latest)
    self.best = manager('best', 1)
    self._best_file = self.directory / 'best.json'

  # --------------------------------------------------------------- saving
  @staticmethod
  def _host(state: Any) -> Any:
    """Single process: the state as host numpy arrays before saving.

    Orbax saves replicated jax.Arrays leaf by leaf through its device-to-host
    machinery, slowly per leaf (experiments/README.md, "Performance").
    Restoring onto a sharded target gives jax.Arrays
    with the target's shardings either way. Several processes keep jax.Arrays
    (orbax then coordinates which process writes what).
    """
    return jax.device_get(state) if jax.process_count() == 1 else state

  def _save(self, mgr: ocp.CheckpointManager, step: int, state: Any) -> None:
    """mgr.save + wait, a failure as one CheckpointWriteError (partial folder removed)."""
    try:
      with _stderr_kept_unless_failed():
        mgr.save(step, args=ocp.args.StandardSave(self._host(state)))
        mgr.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except  (orbax wraps the OS error)
      for tmp in pathlib.Path(mgr.directory).glob(f'{step}.orbax-checkpoint-tmp*'):
        shutil.rmtree(tmp, ignore_errors=True)
      raise CheckpointWriteError(
          f'could not write checkpoint {step} in {mgr.directory}: {_reason(e)}; the last '
          'finished checkpoint is kept: free space or fix the folder, then run the same '
          'command again') from e

  def save_latest(self, step: int, state: Any) -> None:
    if step in self.latest.all_steps():
      return
    self._save(self.latest, step, state)

  def save_best(self, step: int, state: Any, score: float, metric: str) -> None:
    if step not in self.best.all_steps():
      self._save(self.best, step, state)
    if jax.process_index() == 0:
      tmp = self._best_file.with_suffix('.tmp')
      tmp.write_text(json.dumps({'step': step, 'metric': metric, 'score': score}))
      tmp.replace(self._best_file)

  def best_score(self) -> float | None:
    if self._best_file.exists() and self.best.latest_step() is not None:
      return float(json.loads(self._best_file.read_text())['score'])
    return None

  # ------------------------------------------------------------- restoring
  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def resolve(self, which: str | int = 'latest') -> tuple[ocp.CheckpointManager, int]:
    """Maps 'latest' | 'best' | a step number to (manager, step).

    Raises:
      FileNotFoundError naming the folder when there is no such checkpoint.
    """
    if which == 'best':
      step = self.best.latest_step()
      if step is None:  # no validation split: the latest is the selection
        return self.resolve('latest')
      return self.best, step
    if which == 'latest':
      step = self.latest.latest_step()
      if step is None:
        raise FileNotFoundError(f'no checkpoint in {self.directory}')
      return self.latest, step
    step = int(which)
    for mgr in (self.latest, self.best):
      if step in mgr.all_steps():
        return mgr, step
    raise FileNotFoundError(
        f'no checkpoint for step {step} in {self.directory} (have latest '
        f'{list(self.latest.all_steps())}, best {list(self.best.all_steps())})')

  def _set_aside(self, mgr: ocp.CheckpointManager, step: int, error: BaseException) -> None:
    """Moves a damaged step folder to <stage>/damaged/ (kept, not deleted)."""
    source = pathlib.Path(mgr.directory) / str(step)
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    target = self.directory / 'damaged' / f'{source.parent.name}-{step}-{stamp}'
    if jax.process_index() == 0:
      target.parent.mkdir(parents=True, exist_ok=True)
      shutil.move(str(source), str(target))
    mgr.reload()
    logging.warning('checkpoint %s is damaged (%s); kept aside as %s, restoring the one '
                    'before it', source, _reason(error), target)

  def _candidates(self, which: str | int) -> list[tuple[ocp.CheckpointManager, int]]:
    """The checkpoints `which` may fall back to, newest first ('best': the best
    ones, then the latest ones; a step number: that step only)."""
    if not isinstance(which, str):
      return [self.resolve(which)]
    managers = (self.best, self.latest) if which == 'best' else (self.latest,)
    return [(mgr, step) for mgr in managers for step in sorted(mgr.all_steps(), reverse=True)]

  def _restore_intact(self, which: str | int, restore: Callable) -> tuple[Any, int]:
    """restore(manager, step) of the newest intact checkpoint `which` resolves to.

    Those newer than it that fail are set aside as damaged. When none can be
    read nothing is moved: all failing at once is a changed package or config
    far more often than damage.
    """
    try:
      candidates = self._candidates(which)
      if not candidates:
        self.resolve(which)   # raises, naming the folder
    except FileNotFoundError as e:
      damaged = self.directory / 'damaged'
      extra = f' (damaged ones kept aside in {damaged})' if damaged.is_dir() else ''
      raise CheckpointNotFoundError(f'no intact checkpoint: {e}{extra}') from None
    failed = []
    for mgr, step in candidates:
      try:
        with _stderr_kept_unless_failed():
          result = restore(mgr, step)
      except Exception as e:  # pylint: disable=broad-except  (any damage orbax reports)
        if not isinstance(which, str):
          raise CheckpointNotFoundError(
              f'checkpoint {step} in {self.directory} cannot be read: {_reason(e)}') from None
        failed.append((mgr, step, e))
        continue
      for mgr_failed, step_failed, error in failed:
        self._set_aside(mgr_failed, step_failed, error)
      return result, step
    _, step, error = failed[0]
    raise CheckpointNotFoundError(
        f'no intact checkpoint in {self.directory}: none of its {len(failed)} can be read '
        f'(step {step}: {_reason(error)}); none was moved: if the package or the run\'s '
        'config changed since they were written, restore with the version that wrote them')

  def restore(self, target: Any, which: str | int = 'latest') -> tuple[Any, int]:
    """Restores onto `target` (a state with the right shapes and shardings)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return self._restore_intact(which, lambda mgr, step: mgr.restore(
        step, args=ocp.args.StandardRestore(abstract)))

  def restore_raw(self, which: str | int = 'latest') -> tuple[Any, int]:
    """Restores as host numpy arrays without a target (for inference)."""
    return self._restore_intact(which, lambda mgr, step: mgr.restore(
        step, args=ocp.args.StandardRestore()))

  def close(self) -> None:
    self.latest.close()
    self.best.close()
