"""Tracks per second for BSSEval v4 scoring and hpss_repet separation on 1 device, N forced CPU devices
and 2 processes x 2 devices, measured in the same run, with each process's peak memory.

Run (from the repository root; about 5 minutes on an idle 2-core CPU with the defaults):
  python benchmarks/multihost.py [--tracks 8] [--seconds 10] [--devices 8] [--repeats 2]

Each layout is a fresh set of processes (the devices of a JAX process are fixed when it starts):
``1 x 1`` (one process, one device), ``1 x N`` (one process, N devices forced with
``--xla_force_host_platform_device_count``) and ``2 x 2`` (two processes joined by a coordinator on
127.0.0.1, gloo collectives; `mssjax.distributed`). Every layout scores and separates the same
``--tracks`` generated songs of ``--seconds`` s in one call each: `mssjax.metrics.batched` and
`mssjax.sharded.separate_tracks` with the track axis over every device (with two processes each
passes its half of the tracks to a mesh of all four devices). A first call compiles; the median of
``--repeats`` further calls is timed (with two processes, the slower process's). Tracks per second
and the ratio to ``1 x 1`` are printed, then each process's peak resident memory (``VmHWM``).
Forced CPU devices share the machine's cores: on a 2-core CPU more than two devices cannot be faster
than two, and what the figures show there is the cost of the sharding, not a gain.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from timing import peak_memory_mb  # pylint: disable=wrong-import-position
sys.path.insert(0, str(REPO / "tests"))
import _cluster  # noqa: E402  # pylint: disable=wrong-import-position


def worker(args: argparse.Namespace) -> None:
  """One process of a layout: time scoring and separation of its tracks, print a JSON line."""
  from mssjax import distributed  # pylint: disable=import-outside-toplevel
  if int(os.environ.get("JAX_NUM_PROCESSES", "1")) > 1:
    distributed.initialize()
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from mssjax import TARGETS, separators, sharded  # pylint: disable=import-outside-toplevel
  from mssjax.data import generate  # pylint: disable=import-outside-toplevel
  from mssjax.metrics import batched  # pylint: disable=import-outside-toplevel

  share = range(jax.process_index(), args.tracks, jax.process_count())
  songs = [generate.generate_song(seed=i, seconds=args.seconds) for i in share]
  references = np.stack([np.stack([s[t] for t in TARGETS]).transpose(0, 2, 1) for s in songs])  # [T, 4, n, 2]
  mixtures = np.stack([s["mixture"] for s in songs])                                            # [T, 2, n]
  estimates = (0.8 * references + 0.05 * mixtures.transpose(0, 2, 1)[:, None]).astype(np.float32)
  mesh = sharded.track_mesh(jax.devices())
  separator = separators.get("hpss_repet")
  work = {"scoring": lambda: batched.bss_eval_v4_sharded(references, estimates, mesh=mesh),
          "separation": lambda: jax.block_until_ready(sharded.separate_tracks(separator, mixtures, mesh=mesh))}
  result = {"process": jax.process_index(), "devices": jax.device_count()}
  for name, fn in work.items():
    distributed.barrier(f"{name}.compile")
    start = time.perf_counter()
    fn()
    result[f"{name}_compile_s"] = time.perf_counter() - start
    times = []
    for _ in range(args.repeats):
      distributed.barrier(f"{name}.{len(times)}")
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
    result[f"{name}_s"] = statistics.median(times)
  result["peak_rss_mb"] = peak_memory_mb()
  distributed.barrier("done")
  print("RESULT " + json.dumps(result), flush=True)


def run_layout(args: argparse.Namespace, processes: int, devices: int) -> list[dict]:
  """The worker's results on ``processes`` processes of ``devices`` CPU devices each."""
  argv = [sys.executable, __file__, "--worker", f"--tracks={args.tracks}", f"--seconds={args.seconds}",
          f"--repeats={args.repeats}"]
  env = dict(os.environ, MSSJAX_COMPILATION_CACHE="0")
  if processes == 1:
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    out = [subprocess.run(argv, env=env, capture_output=True, text=True, timeout=args.timeout, check=False)]
  else:
    out = _cluster.run_local_cluster(argv, num_processes=processes, devices_per_process=devices,
                                        timeout=args.timeout, env=env)
  results = []
  for i, process in enumerate(out):
    if process.returncode != 0:
      raise RuntimeError(f"layout {processes} x {devices}, process {i} failed:\n{process.stderr[-3000:]}")
    line = [l for l in process.stdout.splitlines() if l.startswith("RESULT ")][-1]
    results.append(json.loads(line.removeprefix("RESULT ")))
  return results


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--tracks", type=int, default=8, help="generated songs scored and separated per call")
  parser.add_argument("--seconds", type=float, default=10.0, help="length of each song")
  parser.add_argument("--devices", type=int, default=8, help="forced CPU devices of the one-process layout")
  parser.add_argument("--repeats", type=int, default=2, help="timed calls after the compiling one")
  parser.add_argument("--timeout", type=float, default=1200, help="seconds per layout")
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    worker(args)
    return
  print(f"{args.tracks} tracks of {args.seconds:g} s, stereo 44.1 kHz; {os.cpu_count()} CPU cores")
  layouts = {"1 x 1": (1, 1), f"1 x {args.devices}": (1, args.devices), "2 x 2": (2, 2)}
  results = {name: run_layout(args, *layout) for name, layout in layouts.items()}
  print(f"{'processes x devices':<20} {'scoring tracks/s':>17} {'ratio':>6} {'hpss_repet tracks/s':>20} "
        f"{'ratio':>6} {'peak RSS / process':>19}")
  base = {}
  for name, per_process in results.items():
    row = [f"{name:<20}"]
    for work, width in (("scoring", 17), ("separation", 20)):
      rate = args.tracks / max(r[f"{work}_s"] for r in per_process)
      base.setdefault(work, rate)
      row += [f"{rate:>{width}.3f}", f"{rate / base[work]:>5.2f}x"]
    memory = " / ".join(f"{r['peak_rss_mb']:.0f}" for r in per_process)
    row.append(f"{memory:>16} MB")
    print(" ".join(row))
  print("compile (first call) s: " + "; ".join(
      f"{name}: scoring {max(r['scoring_compile_s'] for r in rs):.1f}, "
      f"hpss_repet {max(r['separation_compile_s'] for r in rs):.1f}" for name, rs in results.items()))


if __name__ == "__main__":
  main()
