"""Training losses from the separation metrics: SDR, SI-SDR, multi-resolution STFT, and BSSEval v4's terms.

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
- `bss_eval_terms`: BSSEval v4's SDR, ISR, SIR and SAR of the whole signal,
  from the metric itself (`mssjax.metrics.bss_eval_v4` with
  ``differentiable=True``, whose module docstring says how the distortion
  filters are differentiated).

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
from typing import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from mssjax import spectral
from mssjax.errors import ParameterError
from mssjax.metrics import bss_eval


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


def bss_eval_terms(references: ArrayLike, estimates: ArrayLike, *, filters_len: int = 512
                   ) -> dict[str, jax.Array]:
  """BSSEval v4's SDR, ISR, SIR and SAR of the whole signal per source, differentiable (Vincent et al. 2006).

  `mssjax.metrics.bss_eval_v4` with ``differentiable=True`` and one window over
  the whole signal: the distortion filters fitted on it and the four metrics of
  that window. NaN where a reference or an estimate is silent, with a zero
  gradient; the values are not checked (they may be traced).

  Args:
    references: ``[n_sources, n_samples, n_channels]``, or a leading batch of tracks.
    estimates: the same shape.
    filters_len: distortion-filter taps (museval's 512).

  Returns:
    dict with "SDR", "ISR", "SIR", "SAR", each ``[..., n_sources]`` in dB, in the
    inputs' dtype.
  """
  n_samples = jnp.shape(references)[-2]
  out = bss_eval.bss_eval_v4(references, estimates, window=n_samples, hop=n_samples, filters_len=filters_len,
                             differentiable=True)
  return {name: value[..., 0] for name, value in out.items()}
