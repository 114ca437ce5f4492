"""BSSEval v4 (SDR, ISR, SIR, SAR) in JAX, matching museval's ``evaluate``.

The algorithm is museval's ``bss_eval(..., framewise_filters=False,
bsseval_sources_version=False)`` (the SiSEC 2018 "v4" images version):

1. Distortion filters of ``filters_len`` taps are fitted once on the whole
   track: the least-squares projection of each estimate on the span of delayed
   versions of all references (``C``, one ``n_sources * n_channels *
   filters_len`` Gram system) and of its own reference only (``Cj``).
2. The track is cut in windows of ``window`` samples every ``hop`` samples (a
   trailing partial window is dropped). In each window the references are
   filtered (zero-padded by ``filters_len - 1`` samples, as museval does) and
   the estimate is split into the true image, spatial distortion, interference
   and artifacts, giving SDR, ISR, SIR and SAR in dB.
3. A window where any reference or any estimate is silent (its channel sum is
   zero at every sample) is NaN for every source.

What museval does and what this module does instead: museval solves the same
4096 x 4096 system with a fresh LU per source, computes each correlation with a
whole-track FFT and convolves every window in a Python loop. Here all
correlations come from one blockwise FFT pass (`mssjax.metrics.correlations`:
cross-spectra summed over blocks, one inverse FFT at the end, short FFTs for the
pairs across block boundaries); the Gram matrix, a Gram matrix of delayed
signals, is block Toeplitz (8 x 8 blocks over 512 lags for four stereo
sources), so one block Levinson recursion solves it for every source in
``O(L^2)`` block operations instead of a dense ``O(L^3)`` factorisation (LU and
Cholesky remain as options; `mssjax.metrics.toeplitz` holds the solvers and
benchmarks/metrics.py times the stages and the solvers against museval); and
the windows are processed in vectorised batches whose energies are read in the
frequency domain (Parseval), so memory stays bounded by ``frames_batch``
windows whatever the track length.

Precision: the filter fit (correlations and solve) runs in float64 inside a
``jax.enable_x64(True)`` context, because the Gram matrix of band-limited music
is ill-conditioned; the global JAX setting is left untouched. The windowed
part runs in ``framewise_dtype`` (float32 by default: measured against museval
it agrees as well as float64, since the filter fit dominates the error).

Gradients (``differentiable=True``, for training losses): the same steps on
traced arrays, differentiable with respect to the estimates and the references,
with three differences, each for the gradient's sake:

1. The filters solve ``T x = y``: ``T``, the block Toeplitz Gram matrix of
   delayed references, depends on the references only; ``y``, their
   correlations with the estimates, is linear in the estimates. The cotangent
   of ``y`` is therefore one more solve with ``T``, by the same block Levinson
   recursion (`mssjax.metrics.toeplitz.solve_block_toeplitz` with
   ``adjoint=True``, a ``jax.custom_vjp``), and that of the references is one
   cross-correlation over the block index. The null directions of exactly mono
   references are constants of the references' values.
2. The correlations take the overlap-save route of
   `mssjax.metrics.correlations` (``differentiable=True``), whose gradient is
   cheaper than that of the forward pass's gathers.
3. Nothing is checked on the values (they may be traced) and the inputs are
   read as arrays, not in place: a source silent throughout gives NaN, and so
   does its gradient. Indices are 32-bit throughout, since the gradient of a
   gather is a scatter, and a scatter with 64-bit indices does not lower in a
   program compiled without x64 (a float32 training step); the fit runs in
   float64 inside ``jax.enable_x64(True)`` forward and backward whatever the
   global setting, and the gradient comes back in the inputs' dtype.

Silent windows are NaN with a zero (not NaN) gradient in either mode.

References:
  E. Vincent, R. Gribonval and C. Fevotte, "Performance measurement in blind
  audio source separation", IEEE TASLP 14(4), 2006.
  F.-R. Stoter, A. Liutkus and N. Ito, "The 2018 Signal Separation Evaluation
  Campaign", LVA/ICA 2018.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.fft
from jax.typing import ArrayLike

from mssjax.errors import ParameterError, check_choice, check_positive_int
from mssjax.metrics import correlations, toeplitz, track_input

METRICS = ("SDR", "ISR", "SIR", "SAR")
"""The four BSSEval image metrics, in the order of museval's outputs."""

SOLVERS = ("levinson", "lu", "cholesky")
"""The Gram-system solvers `bss_eval_v4` offers (``solver=``)."""

FRAMEWISE_DTYPES = ("float32", "float64")
"""The dtypes of the windowed part (``framewise_dtype=``)."""


def n_frames_bss(n_samples: int, *, window: int, hop: int) -> int:
  """Number of evaluation windows museval uses (a trailing partial one is dropped).

  Args:
    n_samples: track length in samples.
    window: window length in samples.
    hop: hop length in samples.

  Returns:
    ``floor((n_samples - window + hop) / hop)`` if ``window < n_samples``, else 1
    (one window over the whole track).
  """
  if window < n_samples:
    return int((n_samples - window + hop) // hop)
  return 1


def pad_or_truncate(references: np.ndarray, estimates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """museval's ``pad_or_truncate``: fit the estimates to the references' length.

  Args:
    references: ``[..., n_sources, n_samples, n_channels]``.
    estimates: ``[..., n_sources, m_samples, n_channels]``.

  Returns:
    ``(references, estimates)`` with the estimates cut or zero-padded at the end
    to ``n_samples``.
  """
  n, m = references.shape[-2], estimates.shape[-2]
  if m > n:
    return references, estimates[..., :n, :]
  if m < n:
    pad = [(0, 0)] * estimates.ndim
    pad[-2] = (0, n - m)
    return references, np.pad(estimates, pad)
  return references, estimates


def _validate(references, estimates, window, hop, filters_len):
  """Checks shapes, values and settings; raises ParameterError (museval raises ValueError too)."""
  _validate_shapes(references, estimates, window, hop, filters_len)
  for name, x in (("references", references), ("estimates", estimates)):
    # A NaN or an inf makes the sum non-finite; so can an overflow of finite values (near 3e38
    # in float32): only then is every value checked. Summed in the input's own dtype: 0.020 s
    # per 339 MB float32 array, against 0.052 s for a float64 sum and 0.026 s for np.isfinite
    # (which also fills an 85 MB mask).
    with np.errstate(over="ignore", invalid="ignore"):  # overflows of huge finite values are not errors
      if not np.isfinite(np.sum(x)) and not np.all(np.isfinite(x)):
        raise ParameterError(f"{name} contain non-finite values (NaN or inf)")
      silent = _silent_signals(x)
    if np.any(silent):
      idx = [tuple(int(v) for v in i) for i in np.argwhere(silent)]
      raise ParameterError(
          f"{name} {idx} (index as [track,] source) are silent throughout: every window would be "
          "NaN and the projection is undefined (museval raises ValueError here too)")


def _validate_shapes(references, estimates, window, hop, filters_len):
  """The checks of `_validate` that read no values (for traced inputs too)."""
  for name, value in (("window", window), ("hop", hop), ("filters_len", filters_len)):
    check_positive_int(name, value)
  if references.shape != estimates.shape:
    raise ParameterError(
        f"references.shape={references.shape} and estimates.shape={estimates.shape} must match "
        "(use mssjax.metrics.pad_or_truncate to fit estimates to the references' length)")
  if references.ndim not in (3, 4):
    raise ParameterError(
        f"references.ndim={references.ndim} must be 3 ([n_sources, n_samples, n_channels]) "
        "or 4 (a leading batch of tracks of equal length)")
  n_sources, n_samples, n_channels = references.shape[-3:]
  if min(n_sources, n_samples, n_channels) == 0:
    raise ParameterError(f"references.shape={references.shape} must not be empty")
  if n_samples < filters_len:
    raise ParameterError(f"n_samples={n_samples} must be at least filters_len={filters_len}")


def _silent_signals(x, chunk=65536):
  """``[..., n_sources]`` bool: the channel sum of ``x [..., n_sources, n_samples, n_channels]`` is zero throughout.

  Read in chunks of samples until every signal has shown a non-zero sample (music does
  within the first chunk), so the usual cost is one chunk, not the whole track.
  """
  silent = np.ones(x.shape[:-2], bool)
  for start in range(0, x.shape[-2], chunk):
    part = x[..., start:start + chunk, :]
    # Channel sum by a loop over the (few) channels: whole-array adds instead of
    # numpy's slow reduction over a short, strided last axis.
    channel_sum = part[..., 0].copy()
    for c in range(1, x.shape[-1]):
      channel_sum += part[..., c]
    silent &= ~np.any(channel_sum, axis=-1)
    if not np.any(silent):
      break
  return silent


def bss_eval_v4(references: ArrayLike, estimates: ArrayLike, *, window: int = 44100, hop: int = 44100,
                filters_len: int = 512, framewise_dtype: str = "float32", frames_batch: int = 16,
                solver: str = "levinson", refine_steps: int | None = None, differentiable: bool = False
                ) -> dict[str, np.ndarray] | dict[str, jax.Array]:
  """BSSEval v4 image metrics, framewise, as ``museval.evaluate(..., mode="v4")``.

  Args:
    references: true source images ``[n_sources, n_samples, n_channels]`` (museval's
      layout), or ``[batch, n_sources, n_samples, n_channels]`` for several tracks of
      equal length (vmapped).
    estimates: estimated images, the same shape as ``references``.
    window: window length in samples (44100 = 1 s, SiSEC's setting).
    hop: hop between windows in samples.
    filters_len: number of taps of the distortion filters.
    framewise_dtype: "float32" (default) or "float64" for the windowed part (the
      filter fit is always float64); both agree with museval to the same ~1e-3 dB,
      the error being dominated by the ill-conditioned filter fit.
    frames_batch: windows processed at once, at most (bounds the memory; short tracks take fewer).
    solver: "levinson" (default: the block Levinson recursion on the block
      Toeplitz Gram matrix, ``O(L^2)`` block operations instead of a dense
      factorisation's ``O(L^3)``; on real tracks its relative residual is
      ~2e-13 against LU's ~1e-13, and it is as close to museval as LU), "lu"
      (museval's own solver, dense) or "cholesky" (dense; half LU's flops;
      benchmarks/metrics.py times the solvers). The Gram matrices of music have condition numbers
      near 1e15, so every solver's answer carries rounding error: on the
      hardest previews museval's own SIR moves by up to 0.05 dB when its Gram
      matrix is perturbed by 1e-16 relative, and by 0.02 dB when its LU runs in
      scipy's LAPACK instead of numpy's (benchmarks/metrics.py --agreement).
    refine_steps: iterative-refinement steps after the solve, for "levinson"
      and "cholesky" (the residual in float64, a cheap matrix-vector product).
      Default: 0 for "levinson" (refinement lowers the residual but does not
      bring the metrics closer to museval's), 2 for "cholesky" (plain Cholesky
      was 0.012 dB from museval on one noisy case, LU 0.006; refined, as LU).
      Ignored by "lu".
    differentiable: a function of traced arrays with a gradient, for training
      losses (see the module docstring): the same values (to rounding), jax arrays
      out, no check of the values, and ``solver="levinson"`` only.

  Returns:
    dict with "SDR", "ISR", "SIR", "SAR", each ``[n_sources, n_frames]``
    (``[batch, n_sources, n_frames]`` for batched input) in dB: float64 numpy arrays,
    or with ``differentiable=True`` jax arrays in the inputs' dtype (float32 or
    float64); NaN in windows where any reference or estimate is silent; +inf where
    museval gives inf (an exactly zero error).

  Raises:
    ParameterError: shapes differ or are not 3-D/4-D, values are not finite, a
      reference or an estimate is silent throughout (neither checked with
      ``differentiable=True``), a setting is not a positive integer or not one of
      the choices.
  """
  if differentiable:
    references, estimates = jnp.asarray(references), jnp.asarray(estimates)
    _validate_shapes(references, estimates, window, hop, filters_len)
    if solver != "levinson":
      raise ParameterError(f'solver={solver!r} has no gradient here; differentiable=True takes solver="levinson"')
  else:
    references, estimates = np.asarray(references), np.asarray(estimates)
    _validate(references, estimates, window, hop, filters_len)
  static = _settings(references.shape[-2], window=window, hop=hop, filters_len=filters_len,
                     framewise_dtype=framewise_dtype, frames_batch=frames_batch, solver=solver,
                     refine_steps=refine_steps)
  batched = references.ndim == 4
  if not batched:
    references, estimates = references[None], estimates[None]
  out = dict(zip(METRICS, (_traced if differentiable else _in_place)(references, estimates, static)))
  return out if batched else {k: v[0] for k, v in out.items()}


def _settings(n_samples, *, window, hop, filters_len, framewise_dtype, frames_batch, solver, refine_steps):
  """The jitted core's static settings (`_STATIC` but ``differentiable``), the remaining ones checked."""
  if refine_steps is None:
    refine_steps = 2 if solver == "cholesky" else 0
  if not isinstance(refine_steps, (int, np.integer)) or isinstance(refine_steps, bool) or refine_steps < 0:
    raise ParameterError(f"refine_steps={refine_steps!r} must be a non-negative integer")
  check_positive_int("frames_batch", frames_batch)
  check_choice("framewise_dtype", framewise_dtype, FRAMEWISE_DTYPES)
  check_choice("solver", solver, SOLVERS)
  return dict(frame_len=min(window, n_samples), hop=hop, n_frames=n_frames_bss(n_samples, window=window, hop=hop),
              filters_len=filters_len, framewise_dtype=framewise_dtype, frames_batch=frames_batch, solver=solver,
              refine_steps=int(refine_steps))


def _in_place(references, estimates, static):
  """The metric of numpy ``[batch, n_sources, n_samples, n_channels]`` inputs: 4 float64 numpy arrays."""
  with jax.enable_x64(True):
    # float32 input stays float32 in memory, in the caller's layout; blocks and windows are cast
    # where they are used. One C-contiguous track is read in place (`track_input.aligned_split`:
    # no copy, and none of the 2 x 339 MB of fresh pages a 4-minute track's copies touched, whose
    # faults cost 0.4-1.4 s of system time per call on a VM); anything else is copied once
    # (`track_input.host_buffer`).
    dtype = np.float32 if references.dtype == np.float32 and estimates.dtype == np.float32 else np.float64
    split = [track_input.aligned_split(x, dtype) for x in (references, estimates)]
    if references.shape[0] == 1 and all(parts is not None for parts in split):
      refs, ests = ([jax.device_put(part) for part in parts] for parts in split)
      out = _bss_eval_split(refs, ests, shape=references.shape, **static)
    else:
      out = _bss_eval_batch(jax.device_put(track_input.host_buffer(references, dtype)),
                            jax.device_put(track_input.host_buffer(estimates, dtype)), **static)
    return [np.asarray(v, np.float64) for v in out]


def _traced(references, estimates, static):
  """The metric of jax ``[batch, n_sources, n_samples, n_channels]`` inputs, differentiable: 4 arrays of their dtype."""
  dtype = jnp.result_type(references.dtype, estimates.dtype, jnp.float32)
  out = _bss_eval_x64(tuple(static.items()) + (("differentiable", True),), references, estimates)
  with jax.enable_x64(True):  # float64 arrays outside the context would be truncated first
    return [v.astype(dtype) for v in out]


_STATIC = ("frame_len", "hop", "n_frames", "filters_len", "framewise_dtype", "frames_batch", "solver",
           "refine_steps", "differentiable")


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _bss_eval_x64(static, references, estimates):
  """`_bss_eval_batch` of traced inputs (``static``: its settings as pairs) with x64 enabled, forward and backward.

  The backward pass is traced after the caller's ``jax.enable_x64`` context has
  closed, where float64 arrays would be truncated; this rule runs it inside one.
  """
  with jax.enable_x64(True):
    return _bss_eval_batch(references, estimates, **dict(static))


def _bss_eval_x64_fwd(static, references, estimates):
  with jax.enable_x64(True):
    return jax.vjp(functools.partial(_bss_eval_batch, **dict(static)), references, estimates)


def _bss_eval_x64_bwd(static, pullback, cotangents):
  del static
  with jax.enable_x64(True):
    return pullback(cotangents)


_bss_eval_x64.defvjp(_bss_eval_x64_fwd, _bss_eval_x64_bwd)


@functools.partial(jax.jit, static_argnames=("shape",) + _STATIC)
def _bss_eval_split(refs, ests, *, shape, **static):
  """`_bss_eval_batch` of one track given as the parts of `track_input.aligned_split` of each input."""
  refs = track_input.FlatSignal(*refs, shape=shape[1:])
  ests = track_input.FlatSignal(*ests, shape=shape[1:])
  return tuple(out[None] for out in _one_track(refs, ests, **static))


@functools.partial(jax.jit, static_argnames=_STATIC)
def _bss_eval_batch(references, estimates, **static):
  """Jitted core: ``[batch, n_sources, n_samples, n_channels]`` twice -> 4 x [batch, n_sources, n_frames].

  Tracks are mapped one after another (``lax.map``), which bounds the memory and
  keeps the solves unbatched.
  """
  if references.shape[0] == 1:  # one track: no loop, whose slicing copied the inputs (0.4 s at 4 minutes)
    return tuple(out[None] for out in _one_track(references[0], estimates[0], **static))
  return jax.lax.map(lambda args: _one_track(*args, **static), (references, estimates))


def _one_track(refs, ests, *, frame_len, hop, n_frames, filters_len, framewise_dtype, frames_batch, solver,
               refine_steps, differentiable=False):
  """SDR, ISR, SIR, SAR ``[n_sources, n_frames]`` of one track, ``[n_sources, n_samples, n_channels]`` each."""
  filters_all, filters_own = _projection_filters(refs, ests, filters_len, solver, refine_steps, differentiable)
  return _framewise_metrics(refs, ests, filters_all, filters_own, frame_len=frame_len, hop=hop,
                            n_frames=n_frames, dtype=jnp.dtype(framewise_dtype), frames_batch=frames_batch,
                            differentiable=differentiable)


def _projection_filters(refs, ests, filters_len, solver="levinson", refine_steps=0, differentiable=False):
  """museval's ``C`` and ``Cj`` filters from whole-track correlations (float64).

  Args:
    refs: ``[n_sources, n_samples, n_channels]``.
    ests: ``[n_sources, n_samples, n_channels]``.
    filters_len: taps ``L``.
    solver: "levinson", "lu" or "cholesky".
    refine_steps: refinement steps of "levinson" and "cholesky".
    differentiable: the correlations' and the Levinson solve's routes for gradients.

  Returns:
    ``filters_all [n_est, n_sources, n_channels, L, n_channels]``: estimate ``j``
    projected on all references (museval's ``C[j]``), and ``filters_own
    [n_est, n_channels, L, n_channels]``: on its own reference (``Cj[j, j, 0]``).
  """
  n_src, _, n_ch = refs.shape
  lag = filters_len - 1
  corr = correlations.correlations(refs, ests, lag, differentiable=differentiable)
  rr, re = corr[:, :n_src * n_ch], corr[:, n_src * n_ch:]
  src = np.arange(n_src, dtype=np.int32)  # 32-bit gathers (see the module docstring's Gradients)
  # Channels of one reference linearly dependent at lag 0 (mono stems): a singular system.
  cov = rr[:, :, lag].reshape(n_src, n_ch, n_src, n_ch)[src, :, src, :]
  eig, directions = jnp.linalg.eigh(jax.lax.stop_gradient(cov))  # ascending; [S, C], [S, C, C]
  null = eig <= 1e-12 * eig[:, -1:]                            # [S, C]: directions without signal
  degenerate = null[:, 0]
  if solver == "levinson":
    # In lag-major order (a, p) the Gram matrix is block Toeplitz: block (a, b) is
    # R_{a-b}[p, q] = rr[q, p, a - b + lag]; the right-hand side is y[a, p, e] = re[p, e, lag - a].
    blocks = jnp.transpose(rr, (2, 1, 0))
    blocks = blocks.at[lag].add(toeplitz.EPS * jnp.eye(n_src * n_ch, dtype=blocks.dtype))
    y = jnp.transpose(re[:, :, lag::-1], (2, 0, 1))
    # A reference with linearly dependent channels (an exactly mono stem) makes the system singular
    # along the null directions of its channel covariance: solved in channel coordinates turned to
    # its eigenvectors, those directions decoupled (the minimum-norm least-squares solution, which
    # museval's lstsq fallback gives, without a dense SVD). Other sources keep their coordinates.
    rotation = jnp.where(degenerate[:, None, None], directions, jnp.eye(n_ch, dtype=directions.dtype))
    rotation_all = jnp.einsum("ij,iab->iajb", jnp.eye(n_src, dtype=rotation.dtype), rotation)
    x = toeplitz.solve_with_null_directions(blocks, y, rotation_all.reshape(n_src * n_ch, n_src * n_ch),
                                            null.reshape(-1), refine_steps, adjoint=differentiable)
    # x: [L, (i, ci), (j, cj)]
    filters_all = jnp.transpose(x.reshape(filters_len, n_src, n_ch, n_src, n_ch), (3, 1, 2, 0, 4))
    # Own-source systems: each source's channels only.
    blocks_own = blocks.reshape(-1, n_src, n_ch, n_src, n_ch)[:, src, :, src, :]      # [S, 2L-1, C, C]
    y_own = y.reshape(filters_len, n_src, n_ch, n_src, n_ch)[:, src, :, src, :]       # [S, L, C, C]
    x_own = toeplitz.solve_with_null_directions(blocks_own, y_own, rotation, null, refine_steps,
                                                adjoint=differentiable)              # [S, L, C, C]
    filters_own = jnp.transpose(x_own, (0, 2, 1, 3))
    return filters_all, filters_own
  # Gram[(p, a), (q, b)] = sum_n x_p[n - a] x_q[n - b] = rr[q, p, a - b].
  a = jnp.arange(filters_len)
  toeplitz_idx = a[:, None] - a[None, :] + lag
  gram = jnp.transpose(rr[:, :, toeplitz_idx], (1, 2, 0, 3))
  size = n_src * n_ch * filters_len
  gram = gram.reshape(size, size) + toeplitz.EPS * jnp.eye(size, dtype=gram.dtype)
  # D[(p, a), e] = sum_n x_p[n - a] y_e[n] = re[p, e, -a].
  rhs = re[:, :, lag - a]
  rhs = jnp.transpose(rhs, (0, 2, 1)).reshape(size, n_src * n_ch)
  c_all = toeplitz.solve_gram(gram, rhs, jnp.any(degenerate), solver, refine_steps)
  c_all = c_all.reshape(n_src, n_ch, filters_len, n_src, n_ch)
  filters_all = jnp.moveaxis(c_all, 3, 0)
  # Own-source systems: the diagonal blocks of the Gram matrix.
  blk = n_ch * filters_len
  g4 = gram.reshape(n_src, blk, n_src, blk)
  gram_own = g4[jnp.arange(n_src), :, jnp.arange(n_src), :]
  rhs_own = rhs.reshape(n_src, blk, n_src, n_ch)[jnp.arange(n_src), :, jnp.arange(n_src), :]
  c_own = jax.lax.map(lambda a: toeplitz.solve_gram(*a, solver, refine_steps), (gram_own, rhs_own, degenerate))
  filters_own = c_own.reshape(n_src, n_ch, filters_len, n_ch)
  return filters_all, filters_own


def _sums(terms, axes, differentiable=False):
  """The sums of several arrays of one shape over ``axes``, as one variadic ``lax.reduce``.

  XLA fuses the terms' arithmetic into that single loop; separate sums were each split into a
  partial pass over a materialised input, or sent to YNNPACK after a copy. ``differentiable``:
  separate sums, whose gradient is a much smaller program than the variadic reduction's.
  """
  if differentiable:
    return tuple(jnp.sum(term, axis=axes) for term in terms)
  zeros = tuple(jnp.zeros((), term.dtype) for term in terms)
  return jax.lax.reduce(tuple(terms), zeros, lambda a, b: tuple(x + y for x, y in zip(a, b)), axes)


def _safe_db(num, den):
  """museval's ``_safe_db``: 10 log10(num / den), +inf where den == 0."""
  return jnp.where(den == 0, jnp.inf, 10 * jnp.log10(num / jnp.where(den == 0, 1, den)))


def _framewise_metrics(refs, ests, filters_all, filters_own, *, frame_len, hop, n_frames, dtype,
                       frames_batch, differentiable=False):
  """Metrics of every window, ``frames_batch`` windows at a time.

  In each window the references are filtered with zero padding of ``filters_len -
  1`` samples (museval's ``_project``); the convolutions and energies are taken in
  the frequency domain with an FFT long enough for no wrap-around (Parseval).
  Silent windows are NaN; their logarithms are taken of ones instead, so that the
  gradient there is zero, not NaN. ``differentiable``: 32-bit sample indices (see
  the module docstring's Gradients).

  Returns:
    SDR, ISR, SIR, SAR, each ``[n_sources, n_frames]`` float64.
  """
  n_src, n_samples, n_ch = refs.shape
  filters_len = filters_own.shape[-2]
  n_fft = scipy.fft.next_fast_len(frame_len + filters_len - 1, real=True)  # smallest 2^a 3^b 5^c >= n
  n_bins = n_fft // 2 + 1
  # Filter spectra [j, (i, ci), d, K] and [j, ci, d, K]: reference channel -> output channel d.
  spec_all = jnp.fft.rfft(jnp.moveaxis(filters_all.astype(dtype), -2, -1), n=n_fft, axis=-1)
  spec_all = spec_all.reshape(n_src, n_src * n_ch, n_ch, n_bins)
  spec_own = jnp.fft.rfft(jnp.moveaxis(filters_own.astype(dtype), -2, -1), n=n_fft, axis=-1)
  weights = jnp.full((n_bins,), 2.0, dtype).at[0].set(1.0)
  if n_fft % 2 == 0:
    weights = weights.at[-1].set(1.0)
  weights = weights / n_fft
  weights64 = weights.astype(jnp.float64)
  offsets = jnp.arange(frame_len, dtype=jnp.int32)

  def energies(*spectra):  # [B, S, C, K] each -> [B, S] float64 each, Parseval
    # One variadic reduction, accumulated in float64: per-spectrum sums were each split by XLA
    # into a partial reduce-window pass over a materialised |z|^2.
    return _sums([(jnp.real(z) ** 2 + jnp.imag(z) ** 2).astype(jnp.float64) * weights64 for z in spectra], (2, 3),
                 differentiable)

  def time_sums(r, e):  # [B, S, C, W] twice -> [B, S, 4] float64
    """Per window and source: sum r^2 and sum (e - r)^2 (SDR, in float64 as museval), and the
    sums of the squared channel sums of r and of e, zero exactly where museval's silence test
    holds (the channel sum is zero throughout). One variadic reduction, which XLA fuses with
    the reads: separate sums and a max went to XLA's YNNPACK kernels, each after a copy of its
    input, and a sum over a stack of the terms materialised the stack."""
    r64, e64 = r.astype(jnp.float64), e.astype(jnp.float64)
    terms = [r64[:, :, 0] ** 2, (e64[:, :, 0] - r64[:, :, 0]) ** 2]
    r_sum, e_sum = r[:, :, 0], e[:, :, 0]
    for c in range(1, n_ch):  # adds, not a reduction over the short channel axis
      terms = [terms[0] + r64[:, :, c] ** 2, terms[1] + (e64[:, :, c] - r64[:, :, c]) ** 2]
      r_sum, e_sum = r_sum + r[:, :, c], e_sum + e[:, :, c]
    terms += [r_sum.astype(jnp.float64) ** 2, e_sum.astype(jnp.float64) ** 2]
    return jnp.stack(_sums(terms, (2,), differentiable), axis=-1)

  batch = frames_batch
  while batch > 2 and 4 * batch > n_frames:  # short tracks: the gathered first and last batches small
    batch //= 2                              # (7 windows: 0.024 s in batches of 2, 0.037 s in one of 7)
  batch = min(batch, n_frames)
  n_steps = -(-n_frames // batch)
  adjacent = hop == frame_len or n_frames == 1  # a batch of windows is one contiguous range

  def read(signal, starts, inside):  # [B, S, C, W]
    if adjacent:
      take = track_input.slice_range if inside else track_input.take_range
      values = take(signal, starts[0], batch * frame_len).reshape(n_src, batch, frame_len, n_ch)
    else:
      values = track_input.take(signal, starts[:, None] + offsets[None, :])
    return jnp.transpose(values, (1, 0, 3, 2)).astype(dtype)

  def frames(_, step, inside):
    index = step * batch + jnp.arange(batch, dtype=step.dtype)
    starts = index * hop
    if not adjacent:  # windows past the last (dropped below) read the first: every index in range
      starts = jnp.where(index < n_frames, starts, 0)
    r, e = read(refs, starts, inside), read(ests, starts, inside)
    r_spec = jnp.fft.rfft(r, n=n_fft, axis=-1)          # [B, S, C, K]
    e_spec = jnp.fft.rfft(e, n=n_fft, axis=-1)
    flat = r_spec.reshape(r.shape[0], 1, n_src * n_ch, 1, n_bins)
    proj_all = jnp.sum(flat * spec_all[None], axis=2)                       # [B, S, C, K]
    proj_own = jnp.sum(r_spec[:, :, :, None, :] * spec_own[None], axis=2)   # [B, S, C, K]
    sums = time_sums(r, e)
    silent = jnp.any((sums[..., 2] == 0) | (sums[..., 3] == 0), axis=1)[:, None]   # [B, 1]

    def db(num, den):  # NaN where silent, from the logarithm of ones: a zero gradient there
      return jnp.where(silent, jnp.nan, _safe_db(jnp.where(silent, 1.0, num), jnp.where(silent, 1.0, den)))

    s_true = sums[..., 0]
    own_true, own, interference, projection, artifacts = energies(
        proj_own - r_spec, proj_own, proj_all - proj_own, proj_all, e_spec - proj_all)
    return None, jnp.stack([db(s_true, sums[..., 1]), db(s_true, own_true), db(own, interference),
                            db(projection, artifacts)], axis=1)             # [B, 4, S]

  steps = np.arange(n_steps, dtype=np.int32 if differentiable else np.int64)
  inside = track_input.slices_inside(steps.astype(np.int64) * batch * hop, batch * frame_len, n_samples) & adjacent
  _, out = track_input.split_scan(frames, None, steps, inside)
  out = out.reshape(n_steps * batch, 4, n_src)[:n_frames]
  out = jnp.transpose(out, (1, 2, 0))                                        # [4, S, T]
  return out[0], out[1], out[2], out[3]
