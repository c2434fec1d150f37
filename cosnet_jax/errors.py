"""Errors meant for the person at the command line, not for a traceback.

Every command (`cosnet_jax.cli`) prints a `UserError` as one line
(`error: <message>`) and exits non-zero; any other exception is a bug and
keeps its traceback. The first line of a message names the file, folder or
config key; further lines (if any) are details.
"""


class UserError(Exception):
  """Bad input: a missing or malformed file, folder, flag or config value."""
  # True: the command exits right after the message, skipping interpreter
  # shutdown (where the failed work's background threads would still print).
  exit_at_once = False


class ConfigError(UserError, ValueError):
  """A config key or value the program cannot use (the message names the key)."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
  """A workdir without a usable checkpoint (the message names the folder)."""


class ModelFileError(UserError, ValueError):
  """A model file that is missing, truncated, foreign or of another format version."""
