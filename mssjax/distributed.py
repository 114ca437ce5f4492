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
multi-host code paths on one machine.

After `initialize`, `jax.devices()` lists every process's devices,
`jax.process_index()` / `jax.process_count()` say who is who, and `barrier`
waits for every process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from typing import Iterator, Mapping, NamedTuple, Sequence

import jax
from jax.experimental import multihost_utils

from mssjax.errors import ParameterError

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


# --- several processes on this machine (tests, benchmarks) -----------------------------------------


def free_port() -> int:
  """A TCP port on 127.0.0.1 that nothing listens on now."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return int(s.getsockname()[1])


def local_cluster_env(*, process_id: int, num_processes: int, port: int, devices_per_process: int,
                      environ: Mapping[str, str] | None = None) -> dict[str, str]:
  """The environment of process ``process_id`` of a cluster on this machine (CPU devices).

  ``devices_per_process`` CPU devices each (``--xla_force_host_platform_device_count``),
  the coordinator on ``127.0.0.1:port``.
  """
  env = dict(os.environ if environ is None else environ)
  flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
  env.update(JAX_PLATFORMS="cpu", JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(num_processes),
             JAX_PROCESS_ID=str(process_id),
             XLA_FLAGS=" ".join(flags + [f"--xla_force_host_platform_device_count={devices_per_process}"]))
  return env


class LocalProcess(NamedTuple):
  """One finished process of `run_local_cluster`."""
  returncode: int
  stdout: str
  stderr: str


@contextlib.contextmanager
def local_cluster(argv: Sequence[str], *, num_processes: int, devices_per_process: int,
                  cwd: str | os.PathLike | None = None, env: Mapping[str, str] | None = None
                  ) -> Iterator[list[subprocess.Popen]]:
  """Starts ``argv`` as the ``num_processes`` processes of a cluster on this machine; ends them on exit.

  Every process gets `local_cluster_env` (a fresh port each time) and writes
  its output to temporary files (the ``out_file`` / ``err_file`` attributes of
  the yielded `subprocess.Popen` s; `read_output` reads them). Leaving the
  block kills every process still running: no child outlives it.

  This is a test harness for one machine, not a launcher: on a real cluster
  each host starts its own process (see README, "Several devices and hosts").
  """
  port = free_port()
  processes = []
  try:
    for index in range(num_processes):
      out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
      processes.append(subprocess.Popen(
          list(argv), cwd=cwd, stdout=out, stderr=err, text=True,
          env=local_cluster_env(process_id=index, num_processes=num_processes, port=port,
                                devices_per_process=devices_per_process, environ=env)))
      processes[-1].out_file, processes[-1].err_file = out, err
    yield processes
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
    for process in processes:
      process.wait()


def read_output(process: subprocess.Popen) -> LocalProcess:
  """A finished `local_cluster` process's return code and output."""
  texts = []
  for f in (process.out_file, process.err_file):
    f.seek(0)
    texts.append(f.read())
    f.close()
  return LocalProcess(process.returncode, *texts)


def run_local_cluster(argv: Sequence[str], *, num_processes: int, devices_per_process: int, timeout: float,
                      cwd: str | os.PathLike | None = None, env: Mapping[str, str] | None = None
                      ) -> list[LocalProcess]:
  """Runs ``argv`` as a cluster of ``num_processes`` processes on this machine (`local_cluster`).

  Returns:
    one `LocalProcess` per process, in process order.

  Raises:
    TimeoutError: not all finished within ``timeout`` seconds (all are killed).
  """
  deadline = time.monotonic() + timeout
  with local_cluster(argv, num_processes=num_processes, devices_per_process=devices_per_process, cwd=cwd,
                     env=env) as processes:
    for process in processes:
      try:
        process.wait(timeout=max(deadline - time.monotonic(), 0.01))
      except subprocess.TimeoutExpired as error:
        for other in processes:
          other.kill()
          other.wait()
        tails = "\n".join(f"--- process {i}:\n{read_output(p).stderr[-2000:]}" for i, p in enumerate(processes))
        raise TimeoutError(f"{list(argv)[:4]} did not finish within {timeout} s on {num_processes} "
                           f"processes\n{tails}") from error
    return [read_output(p) for p in processes]


__all__ = ["CPU_COLLECTIVES", "ENV_VARIABLES", "LocalProcess", "barrier", "cluster_from_env", "free_port",
           "initialize", "is_leader", "local_cluster", "local_cluster_env", "read_output", "run_local_cluster"]
