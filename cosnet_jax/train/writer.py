"""Where training scalars go: TensorBoard event files and workdir/history.jsonl.

Event files are written by clu's metric writer when TensorFlow is installed,
else by tensorboardX (no TensorFlow needed), else not at all (one warning;
history.jsonl is always written). `tensorboard --logdir WORKDIR` shows them.
Only process 0 writes.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any

from absl import logging


class _NoEvents:
  def write_scalars(self, step, scalars):
    del step, scalars

  def write_hparams(self, hparams):
    del hparams

  def flush(self):
    pass

  def close(self):
    pass


class _TensorboardX:
  """tensorboardX's SummaryWriter behind clu's writer interface."""

  def __init__(self, logdir: str):
    # Imported here: tensorboardX is optional (extra 'tensorboard').
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._w = SummaryWriter(logdir=logdir)

  def write_scalars(self, step, scalars):
    for k, v in scalars.items():
      self._w.add_scalar(k, float(v), int(step))

  def write_hparams(self, hparams):
    self._w.add_text('config', '\n'.join(f'    {k} = {v}' for k, v in sorted(hparams.items())))

  def flush(self):
    self._w.flush()

  def close(self):
    self._w.close()


def _clu_writer(logdir: str):
  try:   # optional: clu's writer needs TensorFlow
    import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import  (clu's writer needs it)
    from clu import metric_writers  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return metric_writers.create_default_writer(logdir, asynchronous=False)


def create(workdir: pathlib.Path, process_index: int = 0) -> 'Writer':
  """The writer of a run in `workdir` (events only on process 0)."""
  if process_index > 0:
    return Writer(workdir, _NoEvents(), write_history=False)
  events = _clu_writer(str(workdir))
  kind = 'clu'
  if events is None:
    try:
      events, kind = _TensorboardX(str(workdir)), 'tensorboardX'
    except ImportError:
      logging.warning('no TensorBoard event files (pip install tensorboardX for them); '
                      'scalars go to %s/history.jsonl', workdir)
      return Writer(workdir, _NoEvents())
  logging.info('TensorBoard event files by %s: tensorboard --logdir %s', kind, workdir)
  return Writer(workdir, events)


class Writer:
  """Scalars to the event files and, one JSON line per event, to history.jsonl."""

  def __init__(self, workdir: pathlib.Path, events: Any, write_history: bool = True):
    self._events = events
    self._history = pathlib.Path(workdir) / 'history.jsonl' if write_history else None

  def write_scalars(self, stage: str, step: int, scalars: dict) -> None:
    """Events get the tags '<stage>/<name>'; history.jsonl the names and 'stage'."""
    self._events.write_scalars(step, {f'{stage}/{k}': v for k, v in scalars.items()})
    if self._history is not None:
      with open(self._history, 'a') as f:
        f.write(json.dumps({'stage': stage, 'step': int(step),
                            **{k: float(v) for k, v in scalars.items()}}) + '\n')

  def write_hparams(self, hparams: dict) -> None:
    self._events.write_hparams(hparams)

  def flush(self) -> None:
    self._events.flush()

  def close(self) -> None:
    self._events.close()
