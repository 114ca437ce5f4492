"""The running median's two kernels against the window's length: compile time, peak memory, run time.

Run (from the repository root; about 2 minutes on a laptop CPU):
  python benchmarks/median_filter.py
  python benchmarks/median_filter.py --sizes 17 45 91 --network-max 91

On a ``[2, 2049, 1292]`` float32 spectrogram (30 s of stereo 44.1 kHz audio at
STFT 4096 / 1024, one chunk of the classical recipes), the harmonic (time)
filter of HPSS: the sorting network (`mssjax.median._sorted_windows`) and
the radix bisection (`mssjax.median._bisect_windows`), each in a fresh
subprocess, so the peak RSS (``resource.getrusage``) is that of one compile
and one run. ``median_filter`` itself takes the network up to
``median._NETWORK_MAX_SIZE`` values and the bisection above; the network's
compile grows so fast with the window (151 values: killed at 8 GB after
156 s, issue #36) that it is measured only up to ``--network-max``.
"""

import argparse
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent

CODE = """
import functools, resource, sys, time
import jax, jax.numpy as jnp, numpy as np
from mssjax import median as median_module
size, kernel = int(sys.argv[1]), sys.argv[2]
S = jnp.asarray(np.abs(np.random.default_rng(0).standard_normal((2, 2049, 1292), dtype=np.float32)))

@jax.jit
def median(x):
  padded = jnp.pad(x, [(0, 0), (0, 0), (size // 2, size - 1 - size // 2)], mode="symmetric")
  if kernel == "network":
    return median_module._sorted_windows(padded, size, 2, {})[size // 2]
  return median_module._bisect_windows(padded, size, 2)

base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
compiled = median.lower(S).compile()
compile_s = time.perf_counter() - start
compiled(S).block_until_ready()
runs = []
for _ in range(3):
  start = time.perf_counter()
  compiled(S).block_until_ready()
  runs.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{kernel:<9} {size:5d} {compile_s:9.1f} s {(peak - base) / 1024:8.0f} MiB {sorted(runs)[1] * 1e3:8.0f} ms")
"""


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", type=int, nargs="+", default=[17, 31, 45, 63, 91, 151, 301])
  parser.add_argument("--network-max", type=int, default=63, help="the longest window to time the network on")
  args = parser.parse_args()
  print(f"{'kernel':<9} {'size':>5} {'compile':>11} {'peak RSS':>12} {'run':>11}  (run: median of 3)")
  for size in args.sizes:
    for kernel in ("network", "bisection"):
      if kernel == "network" and size > args.network_max:
        continue
      subprocess.run([sys.executable, "-c", CODE, str(size), kernel], check=True, cwd=REPO)


if __name__ == "__main__":
  main()
