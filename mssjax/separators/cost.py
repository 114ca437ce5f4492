"""The complexity of a separator: parameters, compute per second of audio, peak memory.

``complexity(separator)`` measures the program of one chunk
(`Separator.chunk_program`: the one `mssjax.separate` runs, compiled once per
length and kept, so that a measurement before a separation costs no second
compilation):

1. **Parameters**: `Separator.n_parameters` (0 for the classical recipes and the oracles).
2. **Compute**: XLA's cost analysis (``HloCostAnalysis``) of the chunk's
   program, divided by the chunk's seconds: FLOPs per second of audio. Its
   ``"flops"`` count the whole program as XLA sees it: the STFT and iSTFT,
   the network, the masks, the Wiener filter, the recipes' median filters.
   What XLA counts (checked on JAX 0.10's CPU backend): a matrix product
   ``2 m n k``; an FFT of ``N`` points ``8 N log2 N`` (counted on CPU too, by
   that formula, not by the kernel it calls: a 1024-point rfft is 81,920); a
   sort ``n log2 n``; every other elementwise operation one per element,
   comparisons and maxima included and complex ones too (a complex product
   is 6 real FLOPs, 1 to XLA). Transcendental functions (exp, log, sin,
   tanh...) are XLA's separate ``"transcendentals"`` count and are left
   out, as are gathers, slices, pads and copies (no FLOPs).
3. **Loops**: XLA counts the body of a loop once, whatever its trip count
   (a 10-step `jax.lax.scan` of a matrix product counts one product): an
   LSTM over 600 frames, NMF's iterations or test-time averaging's passes
   would count one step. So the traced program (``jaxpr``) is walked and each
   `jax.lax.scan` (`jax.lax.fori_loop` and `jax.lax.map` with static bounds
   are scans) adds ``length - 1`` more of its body, the body counted by the
   same analysis, nested loops recursively. A `jax.lax.while_loop` has no trip
   count to multiply by: it stays counted once, and `Complexity.loops_counted_once`
   says how many there are (none in the registered separators' defaults).
   The counts are those of the program before XLA's optimisations
   (``Lowered.cost_analysis``), so that the whole and its loops' bodies are
   counted alike on any backend (a backend that unrolls a loop while
   compiling would otherwise count it twice; the CPU compiler moves code
   into and out of loop bodies, so the compiled program's own count, loops
   once, differs from the lowered one's by under 3% for the U-Net and the
   oracles and by 16 to 39% for the classical recipes, under 5% of their
   per-iteration totals).
4. **Memory**: XLA's memory analysis of the compiled chunk: its temporaries,
   arguments (parameters included) and outputs, the figure
   `Separator.compiled_chunk` checks against the memory available.

A separator with ``chunk_seconds=None`` takes a whole song at once: it is
measured on ``DEFAULT_SECONDS`` of audio unless told another length.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.extend as jex

from mssjax.errors import ParameterError, check_finite
from mssjax.separators.base import Separator, memory_bytes

__all__ = ["Complexity", "complexity", "chunk_samples", "jaxpr_flops", "DEFAULT_SECONDS"]

DEFAULT_SECONDS = 10.0
"""The length a separator without a fixed chunk (``chunk_seconds=None``) is measured on (seconds)."""


class Complexity(NamedTuple):
  """What a separator costs.

  Attributes:
    n_parameters: trained parameters (0: classical recipes, oracles).
    flops_per_second: floating-point operations per second of audio at the separator's rate
      (XLA's count, loops counted per iteration; module docstring).
    memory_bytes: XLA's peak memory of one chunk's program (temporaries + arguments + outputs).
    seconds: the chunk length measured (seconds of audio).
    loops_counted_once: while loops without a static trip count, whose body is counted once.
  """

  n_parameters: int
  flops_per_second: float
  memory_bytes: int
  seconds: float
  loops_counted_once: int = 0


def chunk_samples(separator: Separator, seconds: float | None = None) -> int:
  """The chunk length measured: ``seconds``, else the separator's chunk, else `DEFAULT_SECONDS` (samples).

  Raises:
    ParameterError: ``seconds`` not positive and finite, or shorter than one sample.
  """
  if seconds is None:
    seconds = DEFAULT_SECONDS if separator.chunk_seconds is None else separator.chunk_seconds
  seconds = check_finite("seconds", seconds, minimum=0, strict=True)
  n = int(round(seconds * separator.sample_rate))
  if n < 1:
    raise ParameterError(f"seconds={seconds!r} must be at least one sample at {separator.sample_rate} Hz")
  return n


def complexity(separator: Separator, *, seconds: float | None = None, n_samples: int | None = None) -> Complexity:
  """Parameters, FLOPs per second of audio and peak memory of a separator (module docstring).

  Args:
    separator: any separator (oracles are measured with their references as inputs).
    seconds: the chunk length to measure; None: the separator's ``chunk_seconds``, or
      `DEFAULT_SECONDS` where it has none.
    n_samples: the chunk length in samples at ``separator.sample_rate`` instead of ``seconds``
      (the length a separation compiles, so that its program is the one measured).

  Returns:
    its `Complexity`. The chunk's program is compiled once (if `mssjax.separate`
    has not compiled that length already) and kept for the separation.

  Raises:
    ParameterError: a bad length, or a chunk the machine's memory cannot hold.
  """
  if n_samples is None:
    n_samples = chunk_samples(separator, seconds)
  elif seconds is not None:
    raise ParameterError(f"seconds={seconds!r} and n_samples={n_samples!r}: give one length, not both")
  program = separator.chunk_program(int(n_samples))
  flops, open_loops = jaxpr_flops(program.jaxpr, _flops(program.lowered))
  stats = program.compiled.memory_analysis()
  audio_seconds = n_samples / separator.sample_rate
  return Complexity(n_parameters=separator.n_parameters, flops_per_second=flops / audio_seconds,
                    memory_bytes=memory_bytes(stats) if stats is not None else 0, seconds=audio_seconds,
                    loops_counted_once=open_loops)


def _flops(stage: Any) -> float:
  """XLA's ``"flops"`` of a lowered or compiled program (its cost analysis is a dict, or a list of one per
  program in older JAX); 0 where the backend gives none."""
  analysis = stage.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  flops = float((analysis or {}).get("flops", 0.0))
  return flops if math.isfinite(flops) and flops > 0 else 0.0


def _body_flops(body: Any) -> float:
  """XLA's FLOPs of a loop body (a ``ClosedJaxpr``), each of its own loops counted once, as in the whole."""
  return _flops(jax.jit(jex.core.jaxpr_as_fun(body)).lower(*body.in_avals))


def _copies(length: int, unroll: int | bool) -> int:
  """Copies of a scan's body in its lowered program: ``unroll`` in the loop, and the ``length % unroll``
  remaining steps unrolled after it (all ``length`` where ``unroll`` is True or at least ``length``)."""
  unroll = length if unroll is True else max(int(unroll), 1)
  return length if unroll >= length else unroll + length % unroll


def _sub_jaxprs(params: dict) -> list[Any]:
  """The jaxprs an equation holds (a jit's, a cond's branches, a custom derivative's...)."""
  out = []
  for value in params.values():
    for item in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(item, (jex.core.ClosedJaxpr, jex.core.Jaxpr)):
        out.append(item)
  return out


def jaxpr_flops(jaxpr: Any, counted_once: float) -> tuple[float, int]:
  """FLOPs of a program with its loops counted per iteration.

  Args:
    jaxpr: the program (``ClosedJaxpr`` or ``Jaxpr``).
    counted_once: XLA's FLOPs of it, each loop body counted once.

  Returns:
    ``(flops, while_loops)``: ``counted_once`` plus, for each scan, ``length`` times its body
    (its own scans counted likewise) less the copies XLA counted (one, or those `_copies` unrolls); and the
    number of while loops without a static trip count (counted once).
  """
  extra, open_loops = 0.0, 0
  for eqn in getattr(jaxpr, "jaxpr", jaxpr).eqns:
    if eqn.primitive.name == "scan":
      body, length, unroll = eqn.params["jaxpr"], int(eqn.params["length"]), eqn.params["unroll"]
      copies = _copies(length, unroll)
      once = _body_flops(body)
      full, inner_open = jaxpr_flops(body, once)
      extra += length * full - copies * once
      open_loops += inner_open
      continue
    open_loops += eqn.primitive.name == "while"
    for sub in _sub_jaxprs(eqn.params):  # counted in counted_once: only its scans add
      sub_extra, sub_open = jaxpr_flops(sub, 0.0)
      extra += sub_extra
      open_loops += sub_open
  return counted_once + extra, open_loops
