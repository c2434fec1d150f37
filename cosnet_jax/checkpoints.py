"""Orbax checkpoints of a training stage: the latest ones and the best one.

Layout: `<workdir>/checkpoints/<stage>/{latest,best}/<step>/`, written
atomically by orbax (a temporary folder renamed when complete), plus
`best.json` with the validation score of the best checkpoint. The whole train
state is saved: params, BatchNorm statistics, optimizer state, both memory
banks, step and RNG. The data-iterator position is the step itself (the input
pipeline is a pure function of (seed, step)).
"""

import json
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp


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

  def save_latest(self, step: int, state: Any) -> None:
    if step in self.latest.all_steps():
      return
    self.latest.save(step, args=ocp.args.StandardSave(self._host(state)))
    self.latest.wait_until_finished()

  def save_best(self, step: int, state: Any, score: float, metric: str) -> None:
    if step not in self.best.all_steps():
      self.best.save(step, args=ocp.args.StandardSave(self._host(state)))
      self.best.wait_until_finished()
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

  def restore(self, target: Any, which: str | int = 'latest') -> tuple[Any, int]:
    """Restores onto `target` (a state with the right shapes and shardings)."""
    mgr, step = self.resolve(which)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return mgr.restore(step, args=ocp.args.StandardRestore(abstract)), step

  def restore_raw(self, which: str | int = 'latest') -> tuple[Any, int]:
    """Restores as host numpy arrays without a target (for inference)."""
    mgr, step = self.resolve(which)
    return mgr.restore(step, args=ocp.args.StandardRestore()), step

  def close(self) -> None:
    self.latest.close()
    self.best.close()
