"""Training losses from the separation metrics: SDR, SI-SDR, multi-resolution STFT, and BSSEval v4.

Every function is pure, jit-able and batched over leading axes, and takes
museval's layout: ``references`` and ``estimates`` ``[..., n_sources, n_samples,
n_channels]``. The metric functions return dB (higher is better; a loss is
their negative); `multi_resolution_stft` returns a distance (lower is better).

- `sdr`: museval's SDR of the whole signal (``museval.evaluate`` with ``win =
  hop = n_samples``). In the v4 images mode museval splits the estimate into
  the true image ``s``, spatial distortion, interference and artifacts, and the
  three errors add up to ``estimate - s`` exactly (``e_artif = estimate - s -
  e_spat - e_interf``), so SDR is ``10 log10(|s|^2 / |estimate - s|^2)``: no
  distortion filters, exact and cheap (tests/test_losses.py checks it against
  museval).
- `si_sdr`: scale-invariant SDR (Le Roux et al. 2019).
- `multi_resolution_stft`: spectral convergence plus log-magnitude distance
  over several FFT sizes (Yamamoto et al. 2020; auraloss's and Demucs's
  ``MultiResolutionSTFTLoss``), through `mssjax.spectral.stft`.
- `bss_eval_v4`: the framewise SDR, ISR, SIR and SAR exactly as
  `mssjax.metrics.bss_eval_v4` computes them, differentiable with respect to
  the estimates (and the references).

How `bss_eval_v4` differentiates the distortion filters:

1. The filters solve ``T x = y``: ``T``, the block-Toeplitz Gram matrix of
   delayed references, depends on the references only; ``y``, their
   correlations with the estimates, is linear in the estimates.
2. The cotangent of ``y`` is therefore one more solve with ``T`` (symmetric):
   ``y_bar = T^-1 x_bar``, by the same block Levinson recursion
   (`mssjax.metrics.toeplitz.solve_block_toeplitz`), in a ``jax.custom_vjp``
   (``gradient="adjoint"``, the default). The references' cotangent, ``T_bar =
   -y_bar x^T`` summed along each block diagonal, is one cross-correlation over
   the block index (an FFT).
3. ``gradient="autodiff"`` instead lets JAX differentiate through the
   recursion's loop: the same gradient (to rounding), but it stores every
   step's predictors, compiles about twice as long, and needs x64 enabled
   globally (`mssjax.metrics.toeplitz`'s loops index with 64-bit integers
   there, whose gradient scatters do not lower outside x64).

The correlations, the filter layout and the windowed decomposition follow
`mssjax.metrics.bss_eval` step for step (the tests hold the values to it);
they are restated here with 32-bit index arithmetic, because the gradient of
a gather is a scatter, and a scatter with 64-bit indices does not lower in a
program compiled without x64 (a float32 training step). The filter fit runs
in float64 inside ``jax.enable_x64(True)``, forward and backward, as the
metric's does (the Gram matrices of music have condition numbers near 1e15),
whatever the global setting; the gradient comes back in the estimates' dtype.
Silent windows are NaN as there, with a zero (not NaN) gradient.

References:
  E. Vincent, R. Gribonval and C. Fevotte, "Performance measurement in blind
  audio source separation", IEEE TASLP 14(4), 2006.
  F.-R. Stoter, A. Liutkus and N. Ito, "The 2018 Signal Separation Evaluation
  Campaign", LVA/ICA 2018.
  J. Le Roux, S. Wisdom, H. Erdogan and J. R. Hershey, "SDR - half-baked or
  well done?", ICASSP 2019.
  R. Yamamoto, E. Song and J.-M. Kim, "Parallel WaveGAN", ICASSP 2020.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.fft
from jax.typing import ArrayLike

from mssjax import spectral
from mssjax.errors import ParameterError, check_choice, check_positive_int
from mssjax.metrics import bss_eval, correlations, toeplitz

GRADIENTS = ("adjoint", "autodiff")
"""How `bss_eval_v4` differentiates the filter solve (``gradient=``)."""


class BSSEvalV4(NamedTuple):
  """`bss_eval_v4`'s metrics, each ``[..., n_sources, n_frames]`` in dB."""
  sdr: jax.Array
  isr: jax.Array
  sir: jax.Array
  sar: jax.Array


def _check_pair(references: jax.Array, estimates: jax.Array) -> None:
  if references.shape != estimates.shape:
    raise ParameterError(f"references.shape={references.shape} and estimates.shape={estimates.shape} must match")
  if references.ndim < 3:
    raise ParameterError(f"references.ndim={references.ndim} must be at least 3 "
                         "([..., n_sources, n_samples, n_channels])")


def _db(num: jax.Array, den: jax.Array, eps: float) -> jax.Array:
  """``10 log10((num + eps) / (den + eps))``; with ``eps = 0``, museval's ``_safe_db`` (+inf where den is 0)."""
  if eps:
    return 10 * jnp.log10((num + eps) / (den + eps))
  return jnp.where(den == 0, jnp.inf, 10 * jnp.log10(num / jnp.where(den == 0, 1, den)))


def sdr(references: ArrayLike, estimates: ArrayLike, *, eps: float = 0.0) -> jax.Array:
  """museval's SDR of the whole signal, per source (Vincent et al. 2006, v4 images mode).

  Equal to ``museval.evaluate(references, estimates, win=n_samples,
  hop=n_samples)[0][:, 0]`` (see the module docstring for why no filters are
  needed), except that museval refuses silent sources where this returns a
  number.

  Args:
    references: true source images ``[..., n_sources, n_samples, n_channels]``.
    estimates: their estimates, the same shape.
    eps: added to both energies (0: museval's, +inf where the error is exactly
      zero; a training loss wants a small positive value, which keeps the
      gradient finite).

  Returns:
    ``[..., n_sources]`` in dB.
  """
  references, estimates = jnp.asarray(references), jnp.asarray(estimates)
  _check_pair(references, estimates)
  signal = jnp.sum(jnp.square(references), axis=(-2, -1))
  error = jnp.sum(jnp.square(estimates - references), axis=(-2, -1))
  return _db(signal, error, eps)


def si_sdr(references: ArrayLike, estimates: ArrayLike, *, zero_mean: bool = False, eps: float = 0.0
           ) -> jax.Array:
  """Scale-invariant SDR per source (Le Roux et al. 2019).

  The reference is scaled by ``alpha = <estimate, reference> / |reference|^2``
  (one factor for all channels of a source), and SI-SDR is ``10 log10(|alpha
  s|^2 / |estimate - alpha s|^2)``.

  Args:
    references: ``[..., n_sources, n_samples, n_channels]``.
    estimates: the same shape.
    zero_mean: subtract each channel's mean over time first.
    eps: added to the energies (and to ``|s|^2`` in ``alpha``), as in `sdr`.

  Returns:
    ``[..., n_sources]`` in dB.
  """
  references, estimates = jnp.asarray(references), jnp.asarray(estimates)
  _check_pair(references, estimates)
  if zero_mean:
    references = references - jnp.mean(references, axis=-2, keepdims=True)
    estimates = estimates - jnp.mean(estimates, axis=-2, keepdims=True)
  energy = jnp.sum(jnp.square(references), axis=(-2, -1), keepdims=True)
  alpha = jnp.sum(estimates * references, axis=(-2, -1), keepdims=True) / (energy + eps)
  target = alpha * references
  return _db(jnp.sum(jnp.square(target), axis=(-2, -1)), jnp.sum(jnp.square(estimates - target), axis=(-2, -1)),
             eps)


def multi_resolution_stft(references: ArrayLike, estimates: ArrayLike, *,
                          fft_sizes: Sequence[int] = (1024, 2048, 512),
                          hop_lengths: Sequence[int] = (120, 240, 50),
                          win_lengths: Sequence[int] = (600, 1200, 240), eps: float = 1e-8) -> jax.Array:
  """Multi-resolution STFT distance per source (Yamamoto et al. 2020; auraloss, Demucs).

  At each resolution, spectral convergence ``| |S| - |S_hat| |_F / | |S| |_F``
  plus the mean absolute difference of log magnitudes, the magnitudes being
  ``sqrt(max(|X|^2, eps))``; the sum is averaged over resolutions. The
  defaults are auraloss's ``MultiResolutionSTFTLoss`` (Hann windows). The
  STFT is `mssjax.spectral.stft` (centred frames, zero padding, where
  auraloss pads by reflection).

  Args:
    references: ``[..., n_sources, n_samples, n_channels]``.
    estimates: the same shape.
    fft_sizes, hop_lengths, win_lengths: one entry per resolution.
    eps: the floor of the squared magnitudes (auraloss's 1e-8).

  Returns:
    ``[..., n_sources]`` (the channels share one spectral-convergence ratio, as
    auraloss's batch does); 0 for identical signals.

  Raises:
    ParameterError: the three sequences differ in length or are empty.
  """
  references, estimates = jnp.asarray(references), jnp.asarray(estimates)
  _check_pair(references, estimates)
  fft_sizes, hop_lengths, win_lengths = tuple(fft_sizes), tuple(hop_lengths), tuple(win_lengths)
  if not fft_sizes or not len(fft_sizes) == len(hop_lengths) == len(win_lengths):
    raise ParameterError(f"fft_sizes={fft_sizes}, hop_lengths={hop_lengths} and win_lengths={win_lengths} "
                         "must be non-empty and of equal length")
  # [..., n_sources, n_channels, n_samples] for the STFT.
  x, x_hat = jnp.swapaxes(references, -1, -2), jnp.swapaxes(estimates, -1, -2)
  total = 0.0
  for n_fft, hop_length, win_length in zip(fft_sizes, hop_lengths, win_lengths):
    spec = functools.partial(spectral.stft, n_fft=n_fft, hop_length=hop_length, win_length=win_length)
    mag, mag_hat = (jnp.sqrt(jnp.maximum(jnp.square(jnp.abs(spec(v))), eps)) for v in (x, x_hat))
    axes = (-3, -2, -1)
    convergence = jnp.sqrt(jnp.sum(jnp.square(mag - mag_hat), axis=axes) / jnp.sum(jnp.square(mag), axis=axes))
    log_distance = jnp.mean(jnp.abs(jnp.log(mag) - jnp.log(mag_hat)), axis=axes)
    total = total + convergence + log_distance
  return total / len(fft_sizes)


# --- BSSEval v4 -------------------------------------------------------------------------------------


def _solve_adjoint(blocks: jax.Array, y: jax.Array, degenerate: jax.Array) -> jax.Array:
  """`toeplitz.solve_block_toeplitz` (batched ``[S, ...]``) with its adjoint as the gradient."""
  return _solve_vjp(blocks, y, degenerate)


@jax.custom_vjp
def _solve_vjp(blocks, y, degenerate):
  return toeplitz.solve_block_toeplitz(blocks, y, degenerate)


def _solve_fwd(blocks, y, degenerate):
  x = toeplitz.solve_block_toeplitz(blocks, y, degenerate)
  return x, (blocks, x, degenerate)


def _solve_bwd(residuals, x_bar):
  blocks, x, degenerate = residuals
  # T^T is block Toeplitz with blocks R'_k = R_{-k}^T (T itself for a Gram matrix).
  transposed = jnp.swapaxes(blocks[:, ::-1], -1, -2)
  y_bar = toeplitz.solve_block_toeplitz(transposed, x_bar, degenerate)
  # T_bar = -y_bar x^T; block k (lag k - N + 1) sums it along one block diagonal:
  # -sum_j y_bar[j + k] x[j]^T, a cross-correlation over the block index.
  n_blocks = x.shape[1]
  n_fft = 2 * n_blocks
  spectrum = jnp.einsum("sfpr,sfqr->sfpq", jnp.fft.rfft(y_bar, n=n_fft, axis=1),
                        jnp.conj(jnp.fft.rfft(x, n=n_fft, axis=1)))
  circular = jnp.fft.irfft(spectrum, n=n_fft, axis=1)            # [S, 2N, m, m], lag k at k mod 2N
  blocks_bar = -jnp.concatenate([circular[:, n_blocks + 1:], circular[:, :n_blocks]], axis=1)
  return blocks_bar.astype(blocks.dtype), y_bar, None


_solve_vjp.defvjp(_solve_fwd, _solve_bwd)


def _solve_autodiff(blocks: jax.Array, y: jax.Array, degenerate: jax.Array) -> jax.Array:
  return toeplitz.solve_block_toeplitz(blocks, y, degenerate)


def _blocks(signal: jax.Array, start: jax.Array, n_blocks: int, length: int, hop: int) -> jax.Array:
  """Float64 blocks ``[S * C, n_blocks, length]`` of ``signal[s, start + b * hop : ... + length, c]``, zero outside."""
  n_src, n_samples, n_ch = signal.shape
  idx = (start + hop * jnp.arange(n_blocks, dtype=jnp.int32)[:, None]
         + jnp.arange(length, dtype=jnp.int32)[None, :])
  inside = (idx >= 0) & (idx < n_samples)
  values = signal[:, jnp.clip(idx, 0, n_samples - 1), :]                   # [S, nb, len, C]
  values = jnp.where(inside[None, :, :, None], values, 0).astype(jnp.float64)
  return jnp.moveaxis(values, 3, 1).reshape(n_src * n_ch, n_blocks, length)


def _correlations(x: jax.Array, ys: tuple[jax.Array, ...], max_lag: int, blocks_per_step: int = 64
                  ) -> jax.Array:
  """Blockwise-FFT cross-correlations (overlap-save), with 32-bit indices.

  ``out[p, q, k + max_lag] = sum_n x[p, n + k] y[q, n]`` for ``|k| <= max_lag``
  (``[S * C, sum S_i * C_i, 2 * max_lag + 1]``). The indices are int32 so that
  the gradient's scatters lower outside the x64 context (a 64-bit index
  scatter does not).

  Not `mssjax.metrics.correlations.correlations`, though it gives the same values:
  that route (every signal transformed once, pairs accumulated block by block
  in a ``fori_loop`` of gathers) is the faster forward pass, but its gradient
  is a scatter per block. With it (made int32), ``value_and_grad`` of the SIR
  of two 6 s four-source tracks took 3.37 s warm and 21.6 s to compile against
  0.76 s and 10.0 s with this einsum (512 taps: 4.14 s against 1.32 s).
  """
  n_samples = x.shape[1]
  n_fft = max(correlations.CORRELATION_FFT, 1 << int(np.ceil(np.log2(8 * max_lag + 2))))
  block = n_fft - 2 * max_lag
  n_blocks = -(-n_samples // block)
  per_step = min(blocks_per_step, n_blocks)
  n_steps = -(-n_blocks // per_step)

  def step(acc, i):
    start = i * (per_step * block)
    x_spec = jnp.fft.rfft(_blocks(x, start - max_lag, per_step, block + 2 * max_lag, block), n=n_fft, axis=-1)
    y_spec = jnp.concatenate([jnp.fft.rfft(_blocks(y, start, per_step, block, block), n=n_fft, axis=-1)
                              for y in ys])
    return acc + jnp.einsum("pbf,qbf->fpq", x_spec, jnp.conj(y_spec)), None

  n_x, n_y = x.shape[0] * x.shape[2], sum(y.shape[0] * y.shape[2] for y in ys)
  acc = jnp.zeros((n_fft // 2 + 1, n_x, n_y), jnp.complex128)
  cross, _ = jax.lax.scan(step, acc, jnp.arange(n_steps, dtype=jnp.int32))
  return jnp.fft.irfft(jnp.transpose(cross, (1, 2, 0)), n=n_fft, axis=-1)[..., :2 * max_lag + 1]


def _projection_filters(refs: jax.Array, ests: jax.Array, filters_len: int, gradient: str
                        ) -> tuple[jax.Array, jax.Array]:
  """`mssjax.metrics.bss_eval`'s Levinson filters (same layout), with a differentiable solve.

  Args:
    refs, ests: float64 ``[n_sources, n_samples, n_channels]``.
    filters_len: taps ``L``.
    gradient: "adjoint" or "autodiff".

  Returns:
    ``filters_all [n_est, n_sources, n_channels, L, n_channels]`` and ``filters_own
    [n_est, n_channels, L, n_channels]``.
  """
  solve = _solve_adjoint if gradient == "adjoint" else _solve_autodiff
  n_src, _, n_ch = refs.shape
  lag = filters_len - 1
  corr = _correlations(refs, (refs, ests), lag)
  rr, re = corr[:, :n_src * n_ch], corr[:, n_src * n_ch:]
  src = jnp.arange(n_src, dtype=jnp.int32)  # int32 indices throughout: see `_correlations`
  cov = rr[:, :, lag].reshape(n_src, n_ch, n_src, n_ch)[src, :, src, :]
  eig = jnp.linalg.eigvalsh(jax.lax.stop_gradient(cov))
  degenerate = eig[:, 0] <= 1e-12 * eig[:, -1]
  blocks = jnp.transpose(rr, (2, 1, 0))
  blocks = blocks.at[lag].add(toeplitz.EPS * jnp.eye(n_src * n_ch, dtype=blocks.dtype))
  y = jnp.transpose(re[:, :, lag - jnp.arange(filters_len, dtype=jnp.int32)], (2, 0, 1))
  x = solve(blocks[None], y[None], jnp.any(degenerate)[None])[0]          # [L, (i, ci), (j, cj)]
  filters_all = jnp.transpose(x.reshape(filters_len, n_src, n_ch, n_src, n_ch), (3, 1, 2, 0, 4))
  blocks_own = blocks.reshape(-1, n_src, n_ch, n_src, n_ch)[:, src, :, src, :]      # [S, 2L-1, C, C]
  y_own = y.reshape(filters_len, n_src, n_ch, n_src, n_ch)[:, src, :, src, :]       # [S, L, C, C]
  x_own = solve(blocks_own, y_own, degenerate)
  return filters_all, jnp.transpose(x_own, (0, 2, 1, 3))


def bss_eval_v4(references: ArrayLike, estimates: ArrayLike, *, window: int = 44100, hop: int = 44100,
                filters_len: int = 512, framewise_dtype: str = "float32", frames_batch: int = 16,
                gradient: str = "adjoint") -> BSSEvalV4:
  """BSSEval v4 image metrics, framewise, differentiable (Vincent et al. 2006; Stoter et al. 2018).

  The values are `mssjax.metrics.bss_eval_v4`'s with ``solver="levinson"`` (and
  so museval's ``evaluate(..., mode="v4")``): filters fitted once on the whole
  signal, metrics in windows of ``window`` samples every ``hop``, NaN in a
  window where any reference or estimate is silent. Unlike the metric function
  nothing is checked on the values (they may be traced): a source silent
  throughout gives NaN, and so does its gradient.

  Args:
    references: ``[..., n_sources, n_samples, n_channels]``; leading axes are
      tracks (mapped one after another, as the metric does).
    estimates: the same shape; the gradient flows to them (and to the references).
    window, hop: the windows in samples; ``window >= n_samples`` is one window
      over the whole signal.
    filters_len: distortion-filter taps (museval's 512).
    framewise_dtype: "float32" or "float64" for the windowed part (the filter
      fit is float64 always).
    frames_batch: windows processed at once.
    gradient: "adjoint" (the default: the solve's gradient is one more solve,
      a ``jax.custom_vjp``) or "autodiff" (JAX differentiates the recursion;
      needs ``jax_enable_x64`` on globally).

  Returns:
    a `BSSEvalV4` of ``[..., n_sources, n_frames]`` arrays in dB, float64 where
    x64 is enabled, else float32.

  Raises:
    ParameterError: shapes differ, are not at least 3-D, are shorter than
      ``filters_len``, or a setting is not valid.
  """
  references, estimates = jnp.asarray(references), jnp.asarray(estimates)
  _check_pair(references, estimates)
  for name, value in (("window", window), ("hop", hop), ("filters_len", filters_len),
                      ("frames_batch", frames_batch)):
    check_positive_int(name, value)
  check_choice("framewise_dtype", framewise_dtype, bss_eval.FRAMEWISE_DTYPES)
  check_choice("gradient", gradient, GRADIENTS)
  if gradient == "autodiff" and not jax.config.jax_enable_x64:
    raise ParameterError('gradient="autodiff" needs jax_enable_x64 on (the recursion\'s 64-bit loop indices do '
                         'not lower otherwise); use gradient="adjoint"')
  lead, (n_src, n_samples, n_ch) = references.shape[:-3], references.shape[-3:]
  if n_samples < filters_len:
    raise ParameterError(f"n_samples={n_samples} must be at least filters_len={filters_len}")
  settings = _Settings(frame_len=min(window, n_samples), hop=hop,
                       n_frames=bss_eval.n_frames_bss(n_samples, window=window, hop=hop), filters_len=filters_len,
                       framewise_dtype=framewise_dtype, frames_batch=frames_batch, gradient=gradient)
  out_dtype = jnp.result_type(references.dtype, estimates.dtype, jnp.float32)
  flat = lambda x: x.reshape((-1, n_src, n_samples, n_ch))
  metrics = _metrics_x64(settings, flat(references), flat(estimates))
  with jax.enable_x64(True):
    metrics = [m.astype(out_dtype).reshape(lead + (n_src, settings.n_frames)) for m in metrics]
  return BSSEvalV4(*metrics)


def _framewise_metrics(refs: jax.Array, ests: jax.Array, filters_all: jax.Array, filters_own: jax.Array, *,
                       frame_len: int, hop: int, n_frames: int, dtype: jnp.dtype, frames_batch: int
                       ) -> tuple[jax.Array, ...]:
  """`mssjax.metrics.bss_eval`'s windowed decomposition, with int32 indices and NaN-free gradients.

  In each window the references are filtered (zero-padded by ``filters_len - 1``
  samples, as museval's ``_project``) and the energies read in the frequency
  domain (Parseval). Silent windows are NaN, as there; their logarithms are
  taken of ones instead, so that the gradient there is zero, not NaN.

  Returns:
    SDR, ISR, SIR, SAR, each ``[n_sources, n_frames]`` float64.
  """
  n_src, _, n_ch = refs.shape
  filters_len = filters_own.shape[-2]
  n_fft = scipy.fft.next_fast_len(frame_len + filters_len - 1, real=True)
  n_bins = n_fft // 2 + 1
  spec_all = jnp.fft.rfft(jnp.moveaxis(filters_all.astype(dtype), -2, -1), n=n_fft, axis=-1)
  spec_all = spec_all.reshape(n_src, n_src * n_ch, n_ch, n_bins)
  spec_own = jnp.fft.rfft(jnp.moveaxis(filters_own.astype(dtype), -2, -1), n=n_fft, axis=-1)
  weights = np.full((n_bins,), 2.0)
  weights[0] = 1.0
  if n_fft % 2 == 0:
    weights[-1] = 1.0
  weights = jnp.asarray(weights / n_fft, dtype)
  offsets = jnp.arange(frame_len, dtype=jnp.int32)

  def energy(z):  # [B, S, C, K] -> [B, S]
    return jnp.sum((z.real ** 2 + z.imag ** 2) * weights, axis=(-2, -1)).astype(jnp.float64)

  def frames(starts):
    idx = starts[:, None] + offsets[None, :]
    r = jnp.transpose(refs[:, idx, :], (1, 0, 3, 2)).astype(dtype)    # [B, S, C, W]
    e = jnp.transpose(ests[:, idx, :], (1, 0, 3, 2)).astype(dtype)
    r_spec, e_spec = jnp.fft.rfft(r, n=n_fft, axis=-1), jnp.fft.rfft(e, n=n_fft, axis=-1)
    proj_all = jnp.sum(r_spec.reshape(r.shape[0], 1, n_src * n_ch, 1, n_bins) * spec_all[None], axis=2)
    proj_own = jnp.sum(r_spec[:, :, :, None, :] * spec_own[None], axis=2)
    r64, e64 = r.astype(jnp.float64), e.astype(jnp.float64)
    s_true = jnp.sum(r64 ** 2, axis=(2, 3))
    silent = (jnp.any(jnp.all(jnp.sum(r, axis=2) == 0, axis=-1), axis=1)
              | jnp.any(jnp.all(jnp.sum(e, axis=2) == 0, axis=-1), axis=1))[:, None]   # [B, 1]

    def db(num, den):
      return jnp.where(silent, jnp.nan, _db(jnp.where(silent, 1.0, num), jnp.where(silent, 1.0, den), 0.0))

    return jnp.stack([db(s_true, jnp.sum((e64 - r64) ** 2, axis=(2, 3))),
                      db(s_true, energy(proj_own - r_spec)),
                      db(energy(proj_own), energy(proj_all - proj_own)),
                      db(energy(proj_all), energy(e_spec - proj_all))], axis=1)            # [B, 4, S]

  batch = min(frames_batch, n_frames)
  n_steps = -(-n_frames // batch)
  index = jnp.arange(n_steps * batch, dtype=jnp.int32)
  starts = jnp.where(index < n_frames, index * hop, 0).reshape(n_steps, batch)
  out = jax.lax.map(frames, starts).reshape(n_steps * batch, 4, n_src)[:n_frames]
  out = jnp.transpose(out, (1, 2, 0))
  return out[0], out[1], out[2], out[3]


class _Settings(NamedTuple):
  """`_bss_eval_tracks`'s static settings."""
  frame_len: int
  hop: int
  n_frames: int
  filters_len: int
  framewise_dtype: str
  frames_batch: int
  gradient: str


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _metrics_x64(settings, references, estimates):
  """`_bss_eval_tracks` traced with x64 enabled, forward and backward.

  The backward pass is traced after the caller's ``jax.enable_x64`` context
  has closed, where float64 arrays would be truncated; this rule runs it
  inside one.
  """
  with jax.enable_x64(True):
    return _bss_eval_tracks(references, estimates, **settings._asdict())


def _metrics_fwd(settings, references, estimates):
  with jax.enable_x64(True):
    return jax.vjp(functools.partial(_bss_eval_tracks, **settings._asdict()), references, estimates)


def _metrics_bwd(settings, pullback, cotangents):
  del settings
  with jax.enable_x64(True):
    return pullback(cotangents)


_metrics_x64.defvjp(_metrics_fwd, _metrics_bwd)


@functools.partial(jax.jit, static_argnames=(
    "frame_len", "hop", "n_frames", "filters_len", "framewise_dtype", "frames_batch", "gradient"))
def _bss_eval_tracks(references, estimates, *, frame_len, hop, n_frames, filters_len, framewise_dtype,
                     frames_batch, gradient):
  """``[T, S, n, C]`` twice -> 4 x ``[T, S, n_frames]`` float64, tracks one after another."""
  def one_track(args):
    refs, ests = (x.astype(jnp.float64) for x in args)
    filters_all, filters_own = _projection_filters(refs, ests, filters_len, gradient)
    return _framewise_metrics(
        refs, ests, filters_all, filters_own, frame_len=frame_len, hop=hop, n_frames=n_frames,
        dtype=jnp.dtype(framewise_dtype), frames_batch=frames_batch)
  return jax.lax.map(one_track, (references, estimates))
