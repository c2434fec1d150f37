"""The shipped recipes (installed as the package `cosnet_jax.configs`).

Each file is one recipe with `get_config(arg)`; its launch line is in its
docstring. `--config NAME[:ARG]` (e.g. `octa500_3m:cpu`) finds a file here
from any working directory; a path works too.
"""
