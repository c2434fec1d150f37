"""Split expressions ('train', 'train+val', 'train[:20]', 'train[10%:]') and hold-outs.

A split expression names base splits of a dataset, each optionally sliced by
example position (integers, or percentages of the split's size, as TFDS
slices), joined by '+'. `resolve` turns one into the (base split, position)
pairs it selects, in order.

`holdout(ids, fraction, seed)` is the one validation hold-out of a dataset
that ships no validation split: the same ids for the same listing, fraction
and seed, whatever the machine.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np

from cosnet_jax.data.datasets import natural_key
from cosnet_jax.data.errors import DataError

_PART = re.compile(r'^\s*([A-Za-z0-9_.-]+)\s*(?:\[\s*([^\]:]*)\s*:\s*([^\]]*)\s*\])?\s*$')


@dataclasses.dataclass(frozen=True)
class SplitPart:
  """One '+'-term of a split expression: `name[start:stop]` (None = open end)."""
  name: str
  start: str | None = None
  stop: str | None = None


def parse(expr: str) -> list[SplitPart]:
  """'train[:20]+val' -> [SplitPart('train', None, '20'), SplitPart('val')].

  Raises:
    DataError naming the expression when a term is malformed.
  """
  parts = []
  for term in str(expr).split('+'):
    m = _PART.match(term)
    if not m:
      raise DataError(f'Split expression {expr!r}: cannot read {term.strip()!r} '
                      "(expected e.g. 'train', 'train[:20]', 'train[10%:]', 'train+val')")
    name, start, stop = m.group(1), m.group(2), m.group(3)
    if start is None:
      parts.append(SplitPart(name))
    else:
      parts.append(SplitPart(name, start or None, stop or None))
  return parts


def base_names(expr: str) -> list[str]:
  """The base split names of an expression ('a+b[:10]' -> ['a', 'b'])."""
  return [p.name for p in parse(expr)]


def _bound(text: str | None, n: int, default: int, expr: str) -> int:
  if text is None:
    return default
  try:
    if text.endswith('%'):
      value = int(round(float(text[:-1]) * n / 100.0))
    else:
      value = int(text)
  except ValueError:
    raise DataError(f'Split expression {expr!r}: bad slice bound {text!r}') from None
  if value < 0:
    value += n
  return min(max(value, 0), n)


def resolve(expr: str, sizes: dict[str, int]) -> list[tuple[str, int]]:
  """(base split, position) pairs selected by `expr`, given each base split's size.

  Raises:
    DataError naming the missing split and the available ones.
  """
  out = []
  for part in parse(expr):
    if part.name not in sizes:
      raise DataError(f"Split {part.name!r} (of {expr!r}) is not in the dataset "
                      f"(available: {', '.join(sorted(sizes)) or 'none'})")
    n = sizes[part.name]
    lo = _bound(part.start, n, 0, expr)
    hi = _bound(part.stop, n, n, expr)
    out += [(part.name, i) for i in range(lo, max(lo, hi))]
  return out


def holdout(ids: list[str], fraction: float, seed: int | None) -> tuple[list[int], list[int]]:
  """Positions (kept, held out) of a deterministic validation hold-out of `ids`.

  seed None: every round(1 / fraction)-th id in natural order (ROSE's fixed
  val split: 10 % -> positions 9, 19, ...). An int seed: round(fraction * n)
  examples (at least 1, at most n - 1) drawn by a permutation seeded with it
  over the ids in sorted order (a folder without a val split). Both lists are
  in the original order.
  """
  n = len(ids)
  if n < 2:
    raise DataError(f'A validation hold-out needs at least 2 training images; found {n}')
  if seed is None:
    every = max(int(round(1.0 / fraction)), 2)
    order = sorted(range(n), key=lambda i: natural_key(ids[i]))
    held = {order[i] for i in range(n) if i % every == every - 1}
  else:
    k = min(max(int(round(fraction * n)), 1), n - 1)
    order = sorted(range(n), key=lambda i: ids[i])
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    held = {order[i] for i in rng.permutation(n)[:k].tolist()}
  return [i for i in range(n) if i not in held], sorted(held)
