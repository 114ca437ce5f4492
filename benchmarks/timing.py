"""The one timer of the benchmark scripts: interleaved rounds, JAX results awaited, medians reported.

Every script in benchmarks/ times through `time_calls` (or `time_call` for one function):

1. Warm-up: every function is called ``warmup`` times first (jit compilation, caches, fresh
   memory). These times are kept apart in `Timing.warmup_times`, so a script can report the
   compile time as the first call less the median.
2. Rounds: in each round every function runs once, in the order given, so a change of load on a
   shared machine hits all of them alike. A function may take fewer rounds than the others (a
   slow reference run once): it drops out of the later rounds.
3. The clock stops only once `jax.block_until_ready` has returned on the call's result; without
   it, asynchronous dispatch would time the launch alone. Results that hold no JAX arrays pass
   through untouched.

The statistic every script reports is the **median** of the rounds: unlike the mean, one stray
slow round (a neighbour's job, a page fault) does not move it, and unlike the minimum it describes
a typical run rather than the luckiest one. `Timing.min` stays beside it for the scripts that also
print the best run. Ratios (`format_ratio`) are reference median / mssjax median: above 1, mssjax
is the faster.

    timings = time_calls({"mssjax": lambda: mssjax.hpss(S), "librosa": lambda: librosa.decompose.hpss(S)},
                         rounds=5)
    print(format_ratio("HPSS", timings))   # "HPSS   mssjax X s, librosa Y s, ratio Zx", Z = Y / X
"""

from collections.abc import Callable, Mapping
import dataclasses
import statistics
import time
from typing import Any

import jax

UNITS = {"s": (1.0, "7.3f"), "ms": (1e3, "8.1f")}


@dataclasses.dataclass(frozen=True)
class Timing:
  """Wall-clock times in seconds of one function's calls.

  Attributes:
    times: the timed rounds, in order.
    warmup_times: the warm-up calls before them; under jit the first one compiles.
    result: what the last call returned (after `jax.block_until_ready`).
  """
  times: tuple[float, ...]
  warmup_times: tuple[float, ...]
  result: Any = dataclasses.field(repr=False)

  @property
  def median(self) -> float:
    """The median of the rounds: the statistic the benchmarks report."""
    return statistics.median(self.times)

  @property
  def min(self) -> float:
    """The fastest round."""
    return min(self.times)

  @property
  def first(self) -> float:
    """The first call (warm-up or, without one, the first round): compilation included."""
    return (self.warmup_times or self.times)[0]


def _counts(value: int | Mapping[str, int], names, *, what: str, least: int) -> dict[str, int]:
  """``value`` for every name; a mapping must give exactly the names of the functions."""
  counts = dict(value) if isinstance(value, Mapping) else dict.fromkeys(names, value)
  if set(counts) != set(names):
    raise ValueError(f"{what} names {sorted(counts)} must be the function names {sorted(names)}")
  for name, count in counts.items():
    if not isinstance(count, int) or count < least:
      raise ValueError(f"{what}={count} for {name!r} must be an integer >= {least}")
  return counts


def _timed_call(fn: Callable[[], Any]) -> tuple[Any, float]:
  start = time.perf_counter()
  out = jax.block_until_ready(fn())
  return out, time.perf_counter() - start


def time_calls(fns: Mapping[str, Callable[[], Any]], *, rounds: int | Mapping[str, int],
               warmup: int | Mapping[str, int] = 1) -> dict[str, Timing]:
  """Times functions of no arguments in interleaved rounds.

  Args:
    fns: ``{name: fn}``; they run in this order within each warm-up pass and each round.
    rounds: timed calls of every function (>= 1), or ``{name: rounds}`` naming every function.
    warmup: untimed-for-the-median calls of every function before the rounds (>= 0), or
      ``{name: warmup}`` naming every function.

  Returns:
    ``{name: Timing}`` in the order of ``fns``.

  Raises:
    ValueError: a count below its bound, or a mapping whose names are not those of ``fns``.
  """
  rounds = _counts(rounds, fns, what="rounds", least=1)
  warmup = _counts(warmup, fns, what="warmup", least=0)
  times = {name: ([], []) for name in fns}  # (warm-up, rounds)
  results = {}
  for kind, counts in enumerate((warmup, rounds)):
    for i in range(max(counts.values(), default=0)):
      for name, fn in fns.items():
        if i < counts[name]:
          results[name], seconds = _timed_call(fn)
          times[name][kind].append(seconds)
  return {name: Timing(tuple(timed), tuple(warm), results[name]) for name, (warm, timed) in times.items()}


def time_call(fn: Callable[[], Any], *, rounds: int, warmup: int = 1) -> Timing:
  """`time_calls` of a single function; ``rounds=1, warmup=0`` times one first call."""
  return time_calls({"fn": fn}, rounds=rounds, warmup=warmup)["fn"]


def format_time(seconds: float, *, unit: str = "s") -> str:
  """``seconds`` in ``unit`` ("s" or "ms") at a fixed width, so that lines align."""
  if unit not in UNITS:
    raise ValueError(f"unit={unit!r} must be one of {sorted(UNITS)}")
  scale, spec = UNITS[unit]
  return f"{seconds * scale:{spec}} {unit}"


def format_ratio(label: str, timings: Mapping[str, Timing], *, ours: str = "mssjax", unit: str = "s",
                 with_min: bool = False, width: int = 32) -> str:
  """One line ``"label  mssjax X s, librosa Y s, ratio Zx"`` of medians.

  Args:
    label: what was timed, padded to ``width``.
    timings: ``{name: Timing}``, ``ours`` among them; every other entry is a reference, printed
      in order, each followed by its ratio reference median / ours median (above 1: ours is faster).
    ours: the name of the timing the ratios divide by.
    unit: "s" or "ms".
    with_min: also print ``(min ...)`` after each median taken over more than one round.
    width: the label's column width.

  Returns:
    The line, without a newline.
  """
  if ours not in timings:
    raise ValueError(f"ours={ours!r} must be one of {list(timings)}")
  def entry(name):
    t = timings[name]
    best = f" (min {format_time(t.min, unit=unit).strip()})" if with_min and len(t.times) > 1 else ""
    return f"{name} {format_time(t.median, unit=unit)}{best}"
  parts = [entry(ours)]
  for name, t in timings.items():
    if name != ours:
      parts.append(f"{entry(name)}, ratio {t.median / timings[ours].median:6.2f}x")
  return f"{label:<{width}} " + ", ".join(parts)


def peak_memory_mb() -> float:
  """This process's own peak resident memory (``VmHWM``; ``ru_maxrss`` where /proc is absent).

  Not ``ru_maxrss`` on Linux: the kernel carries the high-water mark across fork + exec, so a
  child reads at least its parent's resident size (a child of a 3 GB parent read 3097 MB by
  ``ru_maxrss``, 10 MB by ``VmHWM``).
  """
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return float(line.split()[1]) / 1024
  except OSError:
    pass
  import resource  # pylint: disable=import-outside-toplevel
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
