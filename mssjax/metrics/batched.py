"""BSSEval v4 of many tracks of equal length in one jitted call, the track axis split over devices.

`bss_eval_v4_sharded` takes ``[tracks, sources, samples, channels]`` (the
original study's 30 s segments, ``mssjax.data prepare``'s output, generated
songs) and scores them as `mssjax.metrics.bss_eval_v4` scores a batch, with
one difference: the tracks are spread over the devices of a one-axis mesh
(`mssjax.sharded`), and each device runs `bss_eval`'s jitted per-batch core
(which maps its tracks one after another with ``lax.map``) on its own share.
No value crosses devices, so every track's numbers are those of scoring it
alone (tests/test_multihost.py checks them against `bss_eval_v4` one track
at a time). The mesh defaults to this process's devices.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh
from jax.typing import ArrayLike

from mssjax import sharded
from mssjax.errors import ParameterError, check_choice
from mssjax.metrics import bss_eval


def bss_eval_v4_sharded(references: ArrayLike, estimates: ArrayLike, *, mesh: Mesh | None = None,
                        window: int = 44100, hop: int = 44100, filters_len: int = 512,
                        framewise_dtype: str = "float32", frames_batch: int = 16, solver: str = "levinson",
                        refine_steps: int | None = None) -> dict[str, np.ndarray]:
  """BSSEval v4 image metrics of a batch of tracks, the tracks split over ``mesh``'s devices.

  Args:
    references: true source images ``[n_tracks, n_sources, n_samples, n_channels]``
      (this process's tracks).
    estimates: the estimates, the same shape.
    mesh: a one-axis mesh (`mssjax.sharded.track_mesh`; default: this process's devices).
    window, hop, filters_len, framewise_dtype, frames_batch, solver, refine_steps:
      as `mssjax.metrics.bss_eval_v4` (Vincent et al. 2006; Stöter et al. 2018).

  Returns:
    dict with "SDR", "ISR", "SIR", "SAR", each float64 ``[n_tracks, n_sources, n_frames]``
    in dB, equal to `bss_eval_v4` of each track alone.

  Raises:
    ParameterError: as `bss_eval_v4`, or the input is not 4-D.
  """
  references, estimates = np.asarray(references), np.asarray(estimates)
  if references.ndim != 4:
    raise ParameterError(f"references.ndim={references.ndim} must be 4 ([n_tracks, n_sources, n_samples, "
                         "n_channels]); use bss_eval_v4 for one track")
  bss_eval._validate(references, estimates, window, hop, filters_len)  # pylint: disable=protected-access
  check_choice("framewise_dtype", framewise_dtype, bss_eval.FRAMEWISE_DTYPES)
  check_choice("solver", solver, bss_eval.SOLVERS)
  if refine_steps is None:
    refine_steps = 2 if solver == "cholesky" else 0
  mesh = sharded.track_mesh() if mesh is None else mesh
  n_tracks, n_samples = references.shape[0], references.shape[-2]
  static = (("frame_len", min(window, n_samples)), ("hop", hop),
            ("n_frames", bss_eval.n_frames_bss(n_samples, window=window, hop=hop)), ("filters_len", filters_len),
            ("framewise_dtype", framewise_dtype), ("frames_batch", frames_batch), ("solver", solver),
            ("refine_steps", int(refine_steps)))
  with jax.enable_x64(True):
    dtype = np.float32 if references.dtype == np.float32 and estimates.dtype == np.float32 else np.float64
    inputs = [sharded.place_tracks(sharded.pad_tracks(x.astype(dtype, copy=False), sharded.local_device_count(mesh)),
                                   mesh) for x in (references, estimates)]
    out = _program(mesh, static)(*inputs)
    return {k: sharded.local_tracks(v).astype(np.float64)[:n_tracks] for k, v in zip(bss_eval.METRICS, out)}


@functools.lru_cache(maxsize=16)
def _program(mesh: Mesh, static: tuple) -> Callable:
  """`bss_eval`'s jitted core over ``mesh``: each device scores its own tracks."""
  core = functools.partial(bss_eval._bss_eval_batch, **dict(static))  # pylint: disable=protected-access
  return sharded.over_tracks(core, mesh, len(bss_eval.METRICS))


__all__ = ["bss_eval_v4_sharded"]
