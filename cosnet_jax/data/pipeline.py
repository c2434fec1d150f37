"""Deterministic, resumable, per-process sharded train / eval batches (numpy).

Training stream of process p (of P), local batch b = global_batch_size // P:
  * p owns the split positions p, p + P, p + 2P, ... (n_p examples; the shards
    of all processes partition the split exactly);
  * slot j of step k is its stream position q = k * b + j; epoch e = q // n_p
    uses the permutation drawn from (seed, p, e); the example is
    shard[perm_e[q % n_p]];
  * its augmentation is drawn from (seed, k, p * b + j).
So batch k is a pure function of (seed, k) (and p, P): starting at step k gives
exactly the batches of an uninterrupted run from step k on.

A mixture of datasets (`data.mix`) draws each slot's dataset with the
datasets' weights and then an example of it uniformly, both from (seed, k,
p * b + j): still a pure function of (seed, k). Batches are built
by a thread pool (``num_workers``) and prefetched by a background thread
(``prefetch``); neither changes the values.
"""
import collections
import concurrent.futures
import queue
import threading
import weakref
from typing import Iterator, Optional

import jax
import numpy as np
from PIL import Image

from cosnet_jax.data import augment as augment_lib
from cosnet_jax.data import mixture as mixture_lib
from cosnet_jax.data import source
from cosnet_jax.data.datasets import unpack_labels, vessel_mask
from cosnet_jax.data.errors import DataError


def _process(process_index, process_count):
  if process_index is None or process_count is None:
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} not in [0, {process_count})')
  return int(process_index), int(process_count)


def check_batch_size(global_batch_size: int, process_count: int, what: str = 'batch size'
                     ) -> int:
  """Returns the per-process batch size; raises if the devices cannot split it evenly."""
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


class TrainIterator:
  """Infinite iterator of training batches (see module doc); ``batch(k)`` is pure.

  `mixture`: [(data config, SplitArrays, weight, scale)] of every dataset
  (default: the one `arrays` of `data_cfg` at scale 1).
  """

  def __init__(self, data_cfg, arrays: Optional[source.SplitArrays], *, local_batch_size: int,
               seed: int, start_step: int, process_index: int, out_hw: tuple[int, int],
               rows: Optional[tuple[int, int]] = None, mixture: Optional[list] = None):
    mixture = mixture or [(data_cfg, arrays, 1.0, 1.0)]
    for cfg, arr, _, _ in mixture:
      if len(arr) == 0:
        raise DataError(f'Process {process_index} has no training example '
                        f'(split {cfg.train_split!r} of {cfg.name!r})')
    mixture = [m for m in mixture if m[2] > 0]
    self._cfg = data_cfg
    self._mixture = mixture
    self._weights = np.array([m[2] for m in mixture], np.float64)
    self._weights /= self._weights.sum()
    self._arrays = mixture[0][1]
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

  def draw(self, step: int, j: int) -> tuple[int, int]:
    """(dataset, example position) of slot j of batch `step`."""
    if len(self._mixture) == 1:
      return 0, int(self.example_indices(step)[j])
    rng = np.random.default_rng(
        np.random.SeedSequence([self._seed, 3, step, self._p * self._b + j]))
    d = int(rng.choice(len(self._mixture), p=self._weights))
    return d, int(rng.integers(len(self._mixture[d][1])))

  def _one(self, step: int, j: int, d: int, i: int):
    cfg, a, _, scale = self._mixture[d]
    rng = np.random.default_rng(
        np.random.SeedSequence([self._seed, 2, step, self._p * self._b + j]))
    return augment_lib.augment(a.images[i], a.labels[i], a.vessel_index[i], rng,
                               cfg, self.out_hw, scale)

  def batch(self, step: int) -> dict:
    """Batch number ``step`` (pure function of seed and step).

    Returns:
      dict: 'image', 'mask', 'thick', 'thin', 'valid' float32 [r, h, w, 1]:
      rows [start, stop) of the b-row batch (r = b unless ``rows`` was given).
    """
    lo, hi = self._rows
    args = [(step, j, *self.draw(step, j)) for j in range(lo, hi)]
    if self._pool is not None:
      outs = list(self._pool.map(lambda a: self._one(*a), args))
    else:
      outs = [self._one(*a) for a in args]
    batch = {'image': np.stack([o[0] for o in outs])[..., None]}
    batch.update(unpack_labels(np.stack([o[1] for o in outs])))
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
    except (AttributeError, RuntimeError):  # half-built, or at interpreter exit
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
  mixture, sizes = [], []
  for _, cfg in mixture_lib.sources(data_cfg):
    info = source.dataset_info(cfg)
    sizes.append(info['train_size'])
    mixture.append((cfg, source.load_split(cfg, cfg.train_split, p, n_proc),
                    float(cfg.weight), info['scale']))
  out_hw = tuple(max(s[i] for s in sizes) for i in range(2))
  return TrainIterator(data_cfg, None, local_batch_size=b, seed=seed,
                       start_step=start_step, process_index=p, out_hw=out_hw,
                       rows=rows, mixture=mixture)


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
  'id' str [b], 'height', 'width' int32 [b] (size fed to the network),
  'orig_height', 'orig_width' int32 [b] (size of the file), and 'original'
  [b] of (image float32 [h, w], mask float32 [h, w]) at the file's size.
  With a dataset spacing other than the model's (source.scale_factor) the
  image is resampled (bilinear) to round(h * scale) x round(w * scale) and
  its mask (nearest) with it; the maps are resampled back before scoring.
  """
  p, n_proc = _process(process_index, process_count)
  b = check_batch_size(batch_size, n_proc, 'eval batch size')
  info = source.dataset_info(data_cfg)
  oh, ow = info['eval_size']
  scale = info['scale']
  arrays = source.load_split(data_cfg, split, p, n_proc)
  n_total = source.split_num_examples(data_cfg, split)
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
      ohs = np.zeros((b,), np.int32)
      ows = np.zeros((b,), np.int32)
      original = [None] * b
      for j in range(b):
        i = k * b + j
        if i >= len(arrays):
          continue
        img = arrays.images[i].astype(np.float32) / np.float32(255.0)
        lab = arrays.labels[i]
        ohs[j], ows[j] = img.shape
        original[j] = (img, vessel_mask(lab).astype(np.float32))
        if scale != 1.0:
          img = resize(img, scale)
          lab = resize_nearest(lab, img.shape)
        h, w = img.shape
        image[j, :h, :w] = img
        labels[j, :h, :w] = lab
        valid[j, :h, :w] = 1.0
        ids[j] = arrays.ids[i]
        hs[j], ws[j] = h, w
      out = {'image': image[..., None]}
      out.update(unpack_labels(labels))
      out.update(valid=valid[..., None], id=ids.astype(str), height=hs, width=ws,
                 orig_height=ohs, orig_width=ows, original=original)
      yield out

  return gen()


def resize(image: np.ndarray, scale: float | None = None, shape=None) -> np.ndarray:
  """float32 [h, w] -> bilinear resampling to `shape` or round(h * scale) x round(w * scale)."""
  if shape is None:
    shape = tuple(max(int(round(s * scale)), 1) for s in image.shape)
  if tuple(shape) == image.shape:
    return np.asarray(image, np.float32)
  im = Image.fromarray(np.asarray(image, np.float32), mode='F')
  return np.asarray(im.resize((int(shape[1]), int(shape[0])), Image.BILINEAR), np.float32)


def resize_nearest(labels: np.ndarray, shape) -> np.ndarray:
  """Label map [h, w] -> nearest-neighbour resampling to `shape` (pixel centres)."""
  h, w = labels.shape
  ys = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.int64), h - 1)
  xs = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.int64), w - 1)
  return labels[ys[:, None], xs[None, :]]
