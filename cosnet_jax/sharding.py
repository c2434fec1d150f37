"""The device mesh, batch sharding and the data-parallel jit used by training and evaluation.

Every step is written for ONE device's slice of the global batch under the
named mesh axis `AXIS` (pmap semantics) and mapped over a 1-D ('data',) mesh
of all devices of all processes with `jax.shard_map`, then jit-compiled with
the backend's compiler options (`compilation.compiler_options`).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cosnet_jax import compilation

AXIS = 'data'


def make_mesh(devices=None) -> Mesh:
  """1-D ('data',) mesh over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(list(devices), (AXIS,))


def backend(mesh: Mesh) -> str:
  """The platform of the mesh's devices ('cpu', 'gpu', 'tpu')."""
  return mesh.devices.flat[0].platform


def data_parallel(fn: Callable, mesh: Mesh, in_specs, out_specs, *, donate=(),
                  mode: str = 'train', platform_cfg) -> Callable:
  """jit(shard_map(fn)) over `mesh` with the platform's compiler options.

  mode: 'train' for steps that take gradients, 'infer' for eval-mode passes
  (compilation.compiler_options). check_vma=False: replicated outputs (state,
  metrics) are made identical by the steps' explicit psum / all_gather
  collectives, as under pmap.
  """
  mapped = jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                         check_vma=False)
  options = compilation.compiler_options(platform_cfg, backend(mesh), mode)
  return jax.jit(mapped, donate_argnums=donate, compiler_options=options)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a host-identical pytree on every device of the mesh (replicated).

  Built from host numpy per process, which is valid across processes (a
  device_put of a committed jax array onto a multi-process sharding is not).
  """
  sharding = NamedSharding(mesh, P())

  def put(x):
    x = jax.device_get(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])
  return jax.tree.map(put, tree)


def shard_batch(local_batch: dict, mesh: Mesh) -> dict:
  """Per-process numpy batch -> global arrays sharded over the 'data' axis."""
  sharding = NamedSharding(mesh, P(AXIS))
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in local_batch.items()}


def eval_batch_size(requested: int) -> int:
  """Rounds a requested eval batch up to a multiple of the device count."""
  n = jax.device_count()
  return max(n, -(-requested // n) * n)
