"""JAX's multi-controller runtime for the entry points: one process per host, every host the same code.

``train.py --multihost`` and ``evaluate.py --multihost`` call `initialize` first.
It connects this process to the others through ``jax.distributed`` (JAX's own
coordinator service; there is no launcher of ours):

- On Cloud TPU VMs and under SLURM nothing needs setting: JAX reads the slice's
  metadata or SLURM's variables (``SLURM_JOB_NODELIST``, ``SLURM_PROCID``,
  ...) itself.
- Elsewhere (several GPU hosts, several processes on one machine) set
  ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0, reachable from
  every process), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (0 ..
  ``JAX_NUM_PROCESSES - 1``) on every process. Either all three or none.

On CPU the processes' devices talk through gloo (``jax_cpu_collectives_implementation``),
which is what lets several processes on one machine act as the hosts of a
cluster, with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` giving
each process N devices: that is how ``tests/test_multihost.py`` tests the
multi-host code paths on one machine (its harness: ``tests/_cluster.py``).

After `initialize`, `jax.devices()` lists every process's devices,
`jax.process_index()` / `jax.process_count()` say who is who, and `barrier`
waits for every process. `workdir_lock` keeps other runs out of a workdir:
process 0 holds its lock, and every process learns whether it got it.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from typing import Iterator

import jax
import numpy as np
from jax.experimental import multihost_utils

from mssjax import fileio
from mssjax.errors import ParameterError

LOCK_FILE = ".lock"
"""The file in a workdir whose advisory lock the run writing the workdir holds (`workdir_lock`)."""

ENV_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
"""The variables that name the cluster where JAX cannot find it itself (all three, or none)."""

CPU_COLLECTIVES = "gloo"
"""The CPU collectives implementation used between processes (``jax_cpu_collectives_implementation``)."""


def cluster_from_env(environ: dict[str, str] | None = None) -> dict[str, str | int] | None:
  """``jax.distributed.initialize`` arguments from `ENV_VARIABLES`, or None where none is set.

  Raises:
    ParameterError: only some are set, or the numbers are not integers with
      ``0 <= JAX_PROCESS_ID < JAX_NUM_PROCESSES``.
  """
  environ = os.environ if environ is None else environ
  present = [name for name in ENV_VARIABLES if environ.get(name, "").strip()]
  if not present:
    return None
  if len(present) < len(ENV_VARIABLES):
    missing = [name for name in ENV_VARIABLES if name not in present]
    raise ParameterError(f"{', '.join(present)} set but {', '.join(missing)} not: set all of "
                         f"{', '.join(ENV_VARIABLES)}, or none (Cloud TPU, SLURM)")
  numbers = {}
  for name in ENV_VARIABLES[1:]:
    value = environ[name].strip()
    if not value.isdigit():
      raise ParameterError(f"{name}={value!r} must be a non-negative integer")
    numbers[name] = int(value)
  count, index = numbers["JAX_NUM_PROCESSES"], numbers["JAX_PROCESS_ID"]
  if count < 1 or index >= count:
    raise ParameterError(f"JAX_PROCESS_ID={index} must be below JAX_NUM_PROCESSES={count} (and that at least 1)")
  return {"coordinator_address": environ["JAX_COORDINATOR_ADDRESS"].strip(), "num_processes": count,
          "process_id": index}


def initialize(*, initialization_timeout: int = 300) -> None:
  """Joins this process to the others (`jax.distributed.initialize`); call once, before any JAX work.

  The cluster comes from `ENV_VARIABLES` when they are set, else from JAX's
  own detection (Cloud TPU, SLURM, Open MPI, Kubernetes). CPU collectives go
  through gloo, so CPU-only processes can run sharded computations together.

  Args:
    initialization_timeout: seconds to wait for every process to connect.

  Raises:
    ParameterError: the variables are set only in part or badly, or none is
      set and JAX finds no cluster.
  """
  cluster = cluster_from_env()
  jax.config.update("jax_cpu_collectives_implementation", CPU_COLLECTIVES)
  if jax.distributed.is_initialized():
    return
  try:
    jax.distributed.initialize(**(cluster or {}), initialization_timeout=int(initialization_timeout))
  except ValueError as error:
    if cluster is not None:
      raise
    raise ParameterError(f"no cluster found ({error}): set {', '.join(ENV_VARIABLES)} on every process, or "
                         "run on Cloud TPU / under SLURM, or leave out --multihost") from error


def is_leader() -> bool:
  """True on the process that writes shared outputs (process 0)."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier ``name`` (a no-op with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


@contextlib.contextmanager
def workdir_lock(workdir: str | os.PathLike) -> Iterator[None]:
  """Holds ``workdir``'s lock (`LOCK_FILE`, created with the folder) for the block, on process 0.

  Every process of a run calls it at the same point; process 0 takes the lock
  and tells the others whether it got it, so all of them fail together. The
  lock is the operating system's (`mssjax.fileio.FileLock`): a run that dies,
  even by ``kill -9``, leaves no stale lock.

  Raises:
    ParameterError: another run holds the lock; the message names the
      workdir and the holder (``pid PID on HOST``).
  """
  lock = fileio.FileLock(pathlib.Path(workdir) / LOCK_FILE)
  holder = lock.acquire() if is_leader() else None
  held = holder is not None
  if jax.process_count() > 1:
    held = bool(multihost_utils.broadcast_one_to_all(np.int32(held)))
  if held:
    raise ParameterError(f"workdir={str(workdir)!r} is in use by another run ({holder or 'seen by process 0'}, "
                         f"holding {lock.path}): wait for it to end, or use another workdir")
  try:
    yield
  finally:
    lock.release()


__all__ = ["CPU_COLLECTIVES", "ENV_VARIABLES", "LOCK_FILE", "barrier", "cluster_from_env", "initialize", "is_leader",
           "workdir_lock"]
