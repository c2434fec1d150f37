"""Exceptions raised by the data layer; every message names the offending file or folder."""
from cosnet_jax.errors import UserError


class DataError(UserError, ValueError):
  """Base class of all data-layer errors."""


class ImageReadError(DataError):
  """An image or label file is missing, truncated, corrupt or of an unsupported kind."""


class DatasetNotFoundError(DataError, FileNotFoundError):
  """The dataset folder (``config.data.root``) is missing, empty or has the wrong layout."""


class PairingError(DataError):
  """An image has no label, a label has no image, or two files share one id."""


class LabelValueError(DataError):
  """A label image is not binary (accepted: values within {0, 1} or within {0, 255})."""


class ShapeMismatchError(DataError):
  """An image and its label(s) differ in size."""


class DataIntegrityError(DataError):
  """One or more image / label pairs failed the integrity check (all are listed)."""
