"""Deterministic, resumable, per-process sharded train / eval batches (numpy).

Training stream of process p (of P), local batch b = global_batch_size // P:
  * p owns the split positions p, p + P, p + 2P, ... (n_p examples; the shards
    of all processes partition the split exactly);
  * slot j of step k is its stream position q = k * b + j; epoch e = q // n_p
    uses the permutation drawn from (seed, p, e); the example is
    shard[perm_e[q % n_p]];
  * its augmentation is drawn from (seed, k, p * b + j).
So batch k is a pure function of (seed, k) (and p, P): starting at step k gives
exactly the batches of an uninterrupted run from step k on. Batches are built
by a thread pool (``num_workers``) and prefetched by a background thread
(``prefetch``); neither changes the values.
"""
import collections
import concurrent.futures
import queue
import threading
import weakref
from typing import Iterator, Optional

import numpy as np

from cosnet_jax.data import augment as augment_lib
from cosnet_jax.data import source
from cosnet_jax.data.errors import DataError


def _process(process_index, process_count):
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} not in [0, {process_count})')
  return int(process_index), int(process_count)


def check_batch_size(global_batch_size: int, process_count: int, what: str = 'batch size'
                     ) -> int:
  """Returns the per-process batch size; raises if the devices cannot split it evenly."""
  import jax  # pylint: disable=g-import-not-at-top
  n_dev = jax.device_count()
  if global_batch_size <= 0 or global_batch_size % n_dev:
    raise ValueError(
        f'The global {what} {global_batch_size} must be a positive multiple of the '
        f'number of devices jax.device_count() = {n_dev}, so that every device gets '
        f'the same number of examples (e.g. use {max(n_dev, global_batch_size // n_dev * n_dev)}).')
  if global_batch_size % process_count:
    raise ValueError(f'The global {what} {global_batch_size} must be a multiple of the '
                     f'process count {process_count}.')
  return global_batch_size // process_count


def _unpack(labels: np.ndarray) -> dict:
  """bit-packed uint8 [...] -> mask / thick / thin float32 [..., 1]."""
  return {k: ((labels >> bit) & 1).astype(np.float32)[..., None]
          for bit, k in enumerate(('mask', 'thick', 'thin'))}


class TrainIterator:
  """Infinite iterator of training batches (see module doc); ``batch(k)`` is pure."""

  def __init__(self, data_cfg, arrays: source.SplitArrays, *, local_batch_size: int,
               seed: int, start_step: int, process_index: int, out_hw: tuple[int, int],
               rows: Optional[tuple[int, int]] = None):
    if len(arrays) == 0:
      raise DataError(f'Process {process_index} has no training example '
                      f'(split {data_cfg.train_split!r} of {data_cfg.name!r})')
    self._cfg = data_cfg
    self._arrays = arrays
    self._b = local_batch_size
    lo, hi = (0, self._b) if rows is None else (int(rows[0]), int(rows[1]))
    if not 0 <= lo < hi <= self._b:
      raise ValueError(f'rows {rows!r}: expected 0 <= start < stop <= {self._b}')
    self._rows = (lo, hi)
    self._seed = int(seed)
    self._p = process_index
    self.out_hw = tuple(out_hw)
    self._step = int(start_step)
    self._perms = collections.OrderedDict()
    self._perm_lock = threading.Lock()
    workers = max(int(data_cfg.num_workers), 1)
    self._pool = concurrent.futures.ThreadPoolExecutor(workers) if workers > 1 else None
    self._queue = None
    self._thread = None
    self._stop = threading.Event()

  def _perm(self, epoch: int) -> np.ndarray:
    with self._perm_lock:
      perm = self._perms.get(epoch)
      if perm is None:
        rng = np.random.default_rng(np.random.SeedSequence([self._seed, 1, self._p, epoch]))
        perm = rng.permutation(len(self._arrays))
        self._perms[epoch] = perm
        while len(self._perms) > 4:
          self._perms.popitem(last=False)
      return perm

  def example_indices(self, step: int) -> np.ndarray:
    """Positions in this process's shard used by batch ``step`` ([b] int)."""
    n = len(self._arrays)
    q = step * self._b + np.arange(self._b)
    return np.array([self._perm(int(e))[int(r)] for e, r in zip(q // n, q % n)])

  def _one(self, step: int, j: int, i: int):
    a = self._arrays
    rng = np.random.default_rng(
        np.random.SeedSequence([self._seed, 2, step, self._p * self._b + j]))
    return augment_lib.augment(a.images[i], a.labels[i], a.vessel_index[i], rng,
                               self._cfg, self.out_hw)

  def batch(self, step: int) -> dict:
    """Batch number ``step`` (pure function of seed and step).

    Returns:
      dict: 'image', 'mask', 'thick', 'thin', 'valid' float32 [r, h, w, 1]:
      rows [start, stop) of the b-row batch (r = b unless ``rows`` was given).
    """
    lo, hi = self._rows
    idx = self.example_indices(step)
    args = [(step, j, int(idx[j])) for j in range(lo, hi)]
    if self._pool is not None:
      outs = list(self._pool.map(lambda a: self._one(*a), args))
    else:
      outs = [self._one(*a) for a in args]
    batch = {'image': np.stack([o[0] for o in outs])[..., None]}
    batch.update(_unpack(np.stack([o[1] for o in outs])))
    batch['valid'] = np.stack([o[2] for o in outs])[..., None]
    return batch

  @staticmethod
  def _producer(ref, start: int, out: queue.Queue, stop: threading.Event):
    """Fills ``out`` with batches start, start+1, ...; holds the iterator only
    through the weak reference ``ref`` so that dropping it stops the thread."""
    step = start
    try:
      while not stop.is_set():
        it = ref()
        if it is None:
          return
        item = it.batch(step)
        del it
        while not stop.is_set():
          try:
            out.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        step += 1
    except BaseException as e:  # pylint: disable=broad-except
      out.put(e)

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    prefetch = int(self._cfg.prefetch)
    if prefetch <= 0:
      out = self.batch(self._step)
      self._step += 1
      return out
    if self._thread is None:
      self._queue = queue.Queue(maxsize=prefetch)
      self._thread = threading.Thread(
          target=TrainIterator._producer,
          args=(weakref.ref(self), self._step, self._queue, self._stop), daemon=True)
      self._thread.start()
    item = self._queue.get()
    if isinstance(item, BaseException):
      raise item
    self._step += 1
    return item

  def close(self):
    """Stops the prefetch thread and the worker pool."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=5)
    if self._pool is not None:
      self._pool.shutdown(wait=False)

  def __del__(self):
    try:
      self._stop.set()
      if self._pool is not None:
        self._pool.shutdown(wait=False)
    except Exception:  # pylint: disable=broad-except
      pass


def make_train_iterator(data_cfg, *, global_batch_size: int, seed: int, start_step: int = 0,
                        process_index: Optional[int] = None,
                        process_count: Optional[int] = None,
                        rows: Optional[tuple[int, int]] = None) -> TrainIterator:
  """Infinite iterator of this process's training batches.

  Each batch: 'image' float32 [b, h, w, 1] in [0, 1] (CLAHE applied if on),
  'mask', 'thick', 'thin' float32 [b, h, w, 1] in {0, 1}, 'valid' float32
  [b, h, w, 1] (0 = padding / rotated in from outside), with b =
  global_batch_size // process_count and (h, w) = dataset_info()['train_size'].

  ``rows=(start, stop)`` builds only those rows of each b-row batch, with the
  values they have in the full batch (same example, same augmentation draw).
  The train loop uses it with process_count=1 (the one global stream) so that
  each process builds only its own rows of the global batch.

  Raises:
    ValueError: if global_batch_size is not a multiple of jax.device_count().
  """
  p, n_proc = _process(process_index, process_count)
  b = check_batch_size(global_batch_size, n_proc, 'batch size')
  info = source.dataset_info(data_cfg)
  arrays = source.load_split(data_cfg, data_cfg.train_split, p, n_proc)
  return TrainIterator(data_cfg, arrays, local_batch_size=b, seed=seed,
                       start_step=start_step, process_index=p, out_hw=info['train_size'],
                       rows=rows)


def make_eval_batches(data_cfg, split: str, *, batch_size: int,
                      process_index: Optional[int] = None,
                      process_count: Optional[int] = None) -> Iterator[dict]:
  """Batches of whole images of this process's shard of ``split``.

  ``batch_size`` is global (per process: batch_size // process_count). Images
  are padded bottom / right with zeros to dataset_info()['eval_size'] (the
  largest image rounded up to pad_multiple); 'valid' is 0 on padding. Every
  process yields the same number of batches; missing slots are dummies with
  valid = 0 and id ''.

  Each batch: 'image', 'mask', 'thick', 'thin', 'valid' float32 [b, H, W, 1],
  'id' str [b], 'height', 'width' int32 [b] (original size).
  """
  p, n_proc = _process(process_index, process_count)
  b = check_batch_size(batch_size, n_proc, 'eval batch size')
  info = source.dataset_info(data_cfg)
  oh, ow = info['eval_size']
  arrays = source.load_split(data_cfg, split, p, n_proc)
  n_total = len(source.data_source(data_cfg, split))
  per_process = -(-n_total // n_proc)
  n_batches = -(-per_process // b)

  def gen():
    for k in range(n_batches):
      image = np.zeros((b, oh, ow), np.float32)
      labels = np.zeros((b, oh, ow), np.uint8)
      valid = np.zeros((b, oh, ow), np.float32)
      ids = np.full((b,), '', dtype=object)
      hs = np.zeros((b,), np.int32)
      ws = np.zeros((b,), np.int32)
      for j in range(b):
        i = k * b + j
        if i >= len(arrays):
          continue
        img = arrays.images[i]
        h, w = img.shape
        image[j, :h, :w] = img.astype(np.float32) / np.float32(255.0)
        labels[j, :h, :w] = arrays.labels[i]
        valid[j, :h, :w] = 1.0
        ids[j] = arrays.ids[i]
        hs[j], ws[j] = h, w
      out = {'image': image[..., None]}
      out.update(_unpack(labels))
      out.update(valid=valid[..., None], id=ids.astype(str), height=hs, width=ws)
      yield out

  return gen()
