"""A cluster of JAX processes on this machine, for the multi-host tests and benchmarks.

Each process gets CPU devices (``--xla_force_host_platform_device_count``) and
the coordinator on ``127.0.0.1``; the processes talk through gloo (see
`mssjax.distributed`). A test harness, not a launcher: on a real cluster each
host starts its own process (README, "Several devices and hosts").
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from typing import Iterator, Mapping, NamedTuple, Sequence


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


