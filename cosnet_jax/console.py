"""What the commands print: this package's progress lines, other libraries' warnings.

Without `--verbosity` (absl's flag, default 0) the console gets this
package's INFO lines in a short form ('14:02:03 [stage1] step 50/1500 ...')
and only WARNING and above from other libraries (orbax, tfds, jax, absl
plumbing); `--verbosity=1` shows everything, in absl's long format.
"""
from __future__ import annotations

import logging as py_logging
import os
import time

from absl import logging

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _ours(record: py_logging.LogRecord) -> bool:
  return (record.name.startswith('cosnet_jax')
          or os.path.abspath(record.pathname).startswith(_PACKAGE_DIR))


class _Filter(py_logging.Filter):
  def filter(self, record):
    return record.levelno >= py_logging.WARNING or _ours(record)


class _Short(py_logging.Formatter):
  def format(self, record):
    stamp = time.strftime('%H:%M:%S', time.localtime(record.created))
    level = '' if record.levelno < py_logging.WARNING else f'{record.levelname.lower()}: '
    return f'{stamp} {level}{record.getMessage()}'


def setup(verbosity: int = 0) -> None:
  """Installs the console filter and format (call after absl parsed the flags)."""
  handler = logging.get_absl_handler()
  if verbosity >= 1:
    return
  # TensorFlow (imported later by clu's event writer, where installed) prints
  # its C++ INFO lines at import unless told otherwise before it; the oneDNN
  # notice ignores the log level and is silenced only by turning oneDNN off,
  # which costs nothing here: TensorFlow only writes event files.
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
  logging.set_verbosity(logging.INFO)
  handler.addFilter(_Filter())
  handler.setFormatter(_Short())
