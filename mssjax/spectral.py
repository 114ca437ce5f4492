"""The shared spectral core: STFT / iSTFT, magnitude and phase, masks, filters.

Every method in mssjax (HPSS, REPET-SIM, NMF, the U-Net, the oracles) goes
through these functions. They are pure, batched over any leading dimensions
(shapes follow librosa: ``[..., n_samples]`` for audio and
``[..., n_bins, n_frames]`` for spectrograms), jit-able with their keyword
settings static, and differentiable.

``stft`` and ``istft`` reproduce ``librosa.stft`` / ``librosa.istft`` (librosa
0.10+ defaults: zero padding when ``center=True``, periodic window padded to
``n_fft``, window-sum-square normalisation in the inverse). The window is
centred and the inverse's normaliser computed as ``librosa.util.pad_center``
and ``librosa.filters.window_sumsquare`` do, bit for bit (tests/test_spectral.py
checks it), by two small numpy functions here: librosa's load numba on first
use, a cost every process would pay before its first STFT.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from mssjax import errors
from mssjax.errors import ParameterError, check_positive_int

__all__ = [
    "stft",
    "istft",
    "magphase",
    "softmask",
    "ratio_masks",
    "binary_masks",
    "band_mask",
    "fft_frequencies",
    "n_frames_for",
]


def _periodic_hann(n):
  """``scipy.signal.get_window("hann", n)`` bit for bit, computed as scipy does (general cosine on n + 1 points)."""
  fac = np.linspace(-np.pi, np.pi, n + 1)
  win = np.zeros(n + 1)
  for k, a in enumerate((0.5, 0.5)):
    win += a * np.cos(k * fac)
  return win[:-1]


@functools.lru_cache(maxsize=64)
def _window_cached(window, win_length, n_fft):
  if window == "hann" and win_length > 1:
    # The default window without importing scipy.signal (about 1 s of every process's start-up).
    win = _periodic_hann(win_length)
  else:
    import scipy.signal  # pylint: disable=import-outside-toplevel
    win = scipy.signal.get_window(window, win_length, fftbins=True)
  return pad_center(np.asarray(win, dtype=np.float64), size=n_fft)


def _get_window(window, win_length, n_fft):
  """The analysis window as float64 numpy ``[n_fft]`` (static, built at trace time)."""
  win_length = n_fft if win_length is None else win_length
  check_positive_int("win_length", win_length)
  if win_length > n_fft:
    raise ParameterError(f"win_length={win_length} must be at most n_fft={n_fft}")
  if isinstance(window, str) or (isinstance(window, tuple) and isinstance(window[0], str)):
    try:
      return _window_cached(window, win_length, n_fft)
    except ValueError as e:
      raise ParameterError(f"window={window!r} is not a window scipy.signal.get_window knows: {e}") from e
  win = np.asarray(window, dtype=np.float64)
  if win.ndim != 1 or win.shape[0] != win_length:
    raise ParameterError(
        f"window array of shape {win.shape} must be one-dimensional of length win_length={win_length}")
  return pad_center(win, size=n_fft)


def _hashable_window(window, win_length):
  """Array windows become tuples of floats so that jit can treat them as static."""
  if isinstance(window, str) or (isinstance(window, tuple) and window and isinstance(window[0], str)):
    return window, win_length
  win = np.asarray(window, dtype=np.float64)
  if win.ndim != 1:
    raise ParameterError(f"window array of shape {win.shape} must be one-dimensional")
  return tuple(win.tolist()), (win.shape[0] if win_length is None else win_length)


def _check_stft_settings(n_fft, hop_length, win_length):
  check_positive_int("n_fft", n_fft)
  check_positive_int("hop_length", hop_length)
  if n_fft < 2:
    raise ParameterError(f"n_fft={n_fft} must be at least 2")
  if win_length is not None:
    check_positive_int("win_length", win_length)


def n_frames_for(n_samples: int, *, n_fft: int = 4096, hop_length: int = 1024, center: bool = True) -> int:
  """Number of STFT frames `stft` gives for ``n_samples`` samples (``n_frames`` of its output)."""
  padded = n_samples + 2 * (n_fft // 2) if center else n_samples
  return 1 + (padded - n_fft) // hop_length


def _frame(x, win, hop_length):
  """Windowed frames ``[..., n] -> [..., n_frames, n_fft]``, built from blocks of ``hop_length``.

  Whole blocks are sliced and each is multiplied by its part of the window,
  then one stack builds the frames: no gather of frame indices and no
  concatenation (benchmarks/spectral.py times the transforms).
  """
  n_fft = win.shape[0]
  n = x.shape[-1]
  n_frames = 1 + (n - n_fft) // hop_length
  r = -(-n_fft // hop_length)  # blocks of hop_length per frame
  n_blocks = n_frames - 1 + r
  total = n_blocks * hop_length
  lead = [(0, 0)] * (x.ndim - 1)
  if total > n:
    x = jnp.pad(x, lead + [(0, total - n)])
  if r * hop_length > n_fft:
    win = jnp.pad(win, (0, r * hop_length - n_fft))
  blocks = x[..., :total].reshape(x.shape[:-1] + (n_blocks, hop_length))
  parts = [blocks[..., j:j + n_frames, :] * win[j * hop_length:(j + 1) * hop_length] for j in range(r)]
  frames = jnp.stack(parts, axis=-2).reshape(x.shape[:-1] + (n_frames, r * hop_length))
  return frames[..., :n_fft] if r * hop_length > n_fft else frames


def _overlap_add(frames, hop_length):
  """``[..., n_frames, n_fft] -> [..., n_fft + hop_length * (n_frames - 1)]``."""
  n_frames, n_fft = frames.shape[-2:]
  r = -(-n_fft // hop_length)
  if r * hop_length > n_fft:
    frames = jnp.pad(frames, [(0, 0)] * (frames.ndim - 1) + [(0, r * hop_length - n_fft)])
  frames = frames.reshape(frames.shape[:-1] + (r, hop_length))
  n_blocks = n_frames - 1 + r
  lead = [(0, 0)] * (frames.ndim - 3)
  out = 0
  for j in range(r):
    part = frames[..., :, j, :]
    out = out + jnp.pad(part, lead + [(j, n_blocks - n_frames - j), (0, 0)])
  out = out.reshape(out.shape[:-2] + (n_blocks * hop_length,))
  return out[..., :n_fft + hop_length * (n_frames - 1)]


# On CPU the transforms loop over blocks of frames of about this many bytes of
# float32 frames: each step's buffers stay in cache and no whole-signal
# intermediate is allocated (fresh multi-megabyte buffers cost a page fault per
# 4 KiB; benchmarks/spectral.py times this path against the whole-signal one,
# block_frames=0). Other platforms transform the whole signal in one go.
_CPU_BLOCK_BYTES = 3 << 19


def _block_frames(lead_shape, n_fft, n_frames, block_frames):
  """Frames per loop step, or 0 for one whole-signal transform."""
  if block_frames is None:
    block_frames = max(4, _CPU_BLOCK_BYTES // (4 * n_fft * max(1, math.prod(lead_shape))))
  return 0 if block_frames >= n_frames else block_frames


def _stft_whole(x, win, hop_length):
  n_fft = win.shape[0]
  return jnp.swapaxes(jnp.fft.rfft(_frame(x, win, hop_length), n=n_fft, axis=-1), -1, -2)


def _stft_blocked(x, win, hop_length, block):
  """`_stft_whole` as a loop over blocks of ``block`` frames (the last block ends at the last frame)."""
  n_fft = win.shape[0]
  n_frames = 1 + (x.shape[-1] - n_fft) // hop_length
  segment = n_fft + hop_length * (block - 1)
  out = jnp.zeros(x.shape[:-1] + (n_fft // 2 + 1, n_frames), jnp.promote_types(x.dtype, jnp.complex64))

  def step(b, out):
    first = jnp.minimum(b * block, n_frames - block)
    xs = jax.lax.dynamic_slice_in_dim(x, first * hop_length, segment, axis=-1)
    return jax.lax.dynamic_update_slice_in_dim(out, _stft_whole(xs, win, hop_length), first, axis=-1)

  return jax.lax.fori_loop(0, -(-n_frames // block), step, out)


@functools.partial(
    jax.jit, static_argnames=("n_fft", "hop_length", "win_length", "window", "center", "block_frames"))
def _stft(x, *, n_fft, hop_length, win_length, window, center, block_frames):
  win = jnp.asarray(_get_window(window, win_length, n_fft), dtype=x.dtype)
  if center:
    pad = n_fft // 2
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)])
  n_frames = 1 + (x.shape[-1] - n_fft) // hop_length
  block = _block_frames(x.shape[:-1], n_fft, n_frames, block_frames)
  if not block:
    return _stft_whole(x, win, hop_length)
  return jax.lax.platform_dependent(
      x, cpu=functools.partial(_stft_blocked, win=win, hop_length=hop_length, block=block),
      default=functools.partial(_stft_whole, win=win, hop_length=hop_length))


def stft(x: ArrayLike, *, n_fft: int = 4096, hop_length: int = 1024, win_length: int | None = None,
         window: str | tuple | ArrayLike = "hann", center: bool = True,
         block_frames: int | None = None) -> jax.Array:
  """Short-time Fourier transform, as `librosa.stft` (zero padding).

  Args:
    x: real audio ``[..., n_samples]`` (float32; integers are converted).
    n_fft: FFT size in samples.
    hop_length: samples between frames.
    win_length: window length (default ``n_fft``), zero-padded to ``n_fft``.
    window: a `scipy.signal.get_window` name or a ``[win_length]`` array.
    center: pad ``n_fft // 2`` zeros on both sides so frame ``t`` is centred
      at sample ``t * hop_length``.
    block_frames: on CPU, frames transformed per loop step (default: about
      1.5 MiB of frames); 0 transforms the whole signal at once. Results are
      the same either way; other platforms always transform the whole signal.

  Returns:
    complex64 ``[..., 1 + n_fft // 2, n_frames]``.

  Raises:
    ParameterError: bad settings, or a signal shorter than ``n_fft`` with
      ``center=False``.
  """
  _check_stft_settings(n_fft, hop_length, win_length)
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.complexfloating):
    raise ParameterError(f"stft input must be real, got dtype {x.dtype}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  if x.ndim < 1:
    raise ParameterError("stft input must have at least one dimension [..., n_samples]")
  n = x.shape[-1] + (2 * (n_fft // 2) if center else 0)
  if n < n_fft:
    raise ParameterError(
        f"signal of length {x.shape[-1]} is shorter than n_fft={n_fft} (center={center})")
  if block_frames is not None and block_frames != 0:
    check_positive_int("block_frames", block_frames)
  window, win_length = _hashable_window(window, win_length)
  return _stft(x, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window, center=center,
               block_frames=block_frames)


def pad_center(data: np.ndarray, *, size: int) -> np.ndarray:
  """``data [n]`` zero-padded on both sides to ``[size]``, as `librosa.util.pad_center`."""
  lpad = (size - data.shape[-1]) // 2
  return np.pad(data, (lpad, size - data.shape[-1] - lpad))


def window_sumsquare(window: np.ndarray, *, n_frames: int, hop_length: int) -> np.ndarray:
  """Sum of the squared ``window [n_fft]`` over ``n_frames`` hops, float64 ``[n_fft + hop (n_frames - 1)]``.

  As `librosa.filters.window_sumsquare` with an array window of length
  ``n_fft`` (the same sums in the same order, so the same bits), in
  ``ceil(n_fft / hop)`` vectorised additions instead of one per frame.
  """
  n_fft = window.shape[0]
  squared = np.asarray(window, np.float64) ** 2
  n_segments = -(-n_fft // hop_length)
  padded = np.zeros(n_segments * hop_length)
  padded[:n_fft] = squared
  out = np.zeros(hop_length * (n_frames + n_segments))
  for k in reversed(range(n_segments)):  # frames in increasing order at every sample, as librosa adds them
    out[k * hop_length:(k + n_frames) * hop_length] += np.tile(padded[k * hop_length:(k + 1) * hop_length],
                                                               n_frames)
  return out[:n_fft + hop_length * (n_frames - 1)]


@functools.lru_cache(maxsize=64)
def _istft_normaliser(window, win_length, n_fft, hop_length, n_frames, start, length):
  """The synthesis window ``[n_fft]`` and the inverse window sum-square ``[length]`` (numpy, static)."""
  win = _get_window(window, win_length, n_fft)
  wss = window_sumsquare(win, n_frames=n_frames, hop_length=hop_length)
  wss = wss[start:start + length]
  if wss.shape[0] < length:
    wss = np.pad(wss, (0, length - wss.shape[0]))
  tiny = np.finfo(np.float32).tiny
  inv = np.where(wss > tiny, 1.0 / np.where(wss > tiny, wss, 1.0), 1.0)
  return win, inv


def _istft_frames(Z, win, n_fft, real_dtype):
  frames = jnp.fft.irfft(jnp.swapaxes(Z, -1, -2), n=n_fft, axis=-1)
  return frames.astype(real_dtype) * win


def _istft_whole(Z, win, hop_length, real_dtype):
  return _overlap_add(_istft_frames(Z, win, win.shape[0], real_dtype), hop_length)


def _istft_blocked(Z, win, hop_length, real_dtype, block):
  """`_istft_whole` as a loop over blocks of ``block`` frames, each added into the output."""
  n_fft = win.shape[0]
  n_frames = Z.shape[-1]
  segment = n_fft + hop_length * (block - 1)
  y = jnp.zeros(Z.shape[:-2] + (n_fft + hop_length * (n_frames - 1),), real_dtype)

  def step(b, y):
    first = jnp.minimum(b * block, n_frames - block)
    zb = jax.lax.dynamic_slice_in_dim(Z, first, block, axis=-1)
    # The last block ends at the last frame; frames it shares with the block
    # before were added already.
    zb = jnp.where(first + jnp.arange(block) >= b * block, zb, 0)
    part = _overlap_add(_istft_frames(zb, win, n_fft, real_dtype), hop_length)
    start = first * hop_length
    old = jax.lax.dynamic_slice_in_dim(y, start, segment, axis=-1)
    return jax.lax.dynamic_update_slice_in_dim(y, old + part, start, axis=-1)

  return jax.lax.fori_loop(0, -(-n_frames // block), step, y)


@functools.partial(
    jax.jit,
    static_argnames=("n_fft", "hop_length", "win_length", "window", "center", "length", "block_frames"))
def _istft(Z, *, n_fft, hop_length, win_length, window, center, length, block_frames):
  n_frames = Z.shape[-1]
  start = n_fft // 2 if center else 0
  full = n_fft + hop_length * (n_frames - 1)
  if length is None:
    length = full - 2 * start
  win, inv = _istft_normaliser(window, win_length, n_fft, hop_length, n_frames, start, length)
  real_dtype = jnp.finfo(Z.dtype).dtype
  win = jnp.asarray(win, dtype=real_dtype)
  block = _block_frames(Z.shape[:-2], n_fft, n_frames, block_frames)
  if block:
    y = jax.lax.platform_dependent(
        Z, cpu=functools.partial(_istft_blocked, win=win, hop_length=hop_length, real_dtype=real_dtype,
                                 block=block),
        default=functools.partial(_istft_whole, win=win, hop_length=hop_length, real_dtype=real_dtype))
  else:
    y = _istft_whole(Z, win, hop_length, real_dtype)
  y = y[..., start:start + length]
  if y.shape[-1] < length:
    y = jnp.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, length - y.shape[-1])])
  return y * jnp.asarray(inv, dtype=real_dtype)


def istft(Z: ArrayLike, *, n_fft: int | None = None, hop_length: int = 1024, win_length: int | None = None,
          window: str | tuple | ArrayLike = "hann", center: bool = True, length: int | None = None,
          block_frames: int | None = None) -> jax.Array:
  """Inverse STFT by weighted overlap-add, as `librosa.istft`.

  Args:
    Z: complex ``[..., 1 + n_fft // 2, n_frames]``.
    n_fft: FFT size; default ``2 * (n_bins - 1)``.
    hop_length, win_length, window, center: as in `stft`.
    length: if given, the output is trimmed or zero-padded to exactly
      ``length`` samples (use the input length to invert `stft` exactly).
    block_frames: as in `stft`.

  Returns:
    float32 ``[..., n_samples]`` (``length`` samples if given).

  Raises:
    ParameterError: bad settings, or a bin count that does not match ``n_fft``.
  """
  Z = jnp.asarray(Z)
  if Z.ndim < 2:
    raise ParameterError(f"istft input must be [..., n_bins, n_frames], got shape {Z.shape}")
  if not jnp.issubdtype(Z.dtype, jnp.complexfloating):
    Z = Z.astype(jnp.complex64)
  n_fft = 2 * (Z.shape[-2] - 1) if n_fft is None else n_fft
  _check_stft_settings(n_fft, hop_length, win_length)
  if Z.shape[-2] != 1 + n_fft // 2:
    raise ParameterError(f"istft input has {Z.shape[-2]} bins; n_fft={n_fft} needs {1 + n_fft // 2}")
  if length is not None:
    check_positive_int("length", length)
    padded = length + 2 * (n_fft // 2) if center else length
    n_frames = min(Z.shape[-1], math.ceil(padded / hop_length))
    Z = Z[..., :n_frames]
  if block_frames is not None and block_frames != 0:
    check_positive_int("block_frames", block_frames)
  window, win_length = _hashable_window(window, win_length)
  return _istft(Z, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                center=center, length=length, block_frames=block_frames)


def magphase(Z: ArrayLike, *, power: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """Splits a complex spectrogram into ``(magnitude ** power, phase)``, as librosa.

  ``phase`` is the unit-modulus complex ``exp(1j * angle(Z))`` (1 where
  ``Z == 0``), so ``Z == magnitude * phase``.

  Args:
    Z: complex spectrogram ``[..., n_bins, n_frames]`` (any shape).
    power: exponent of the magnitude.

  Returns:
    ``(magnitude, phase)``, real and complex, each shaped as ``Z``.
  """
  mag = jnp.abs(Z)
  zero = mag == 0
  phase = jnp.where(zero, 1.0 + 0j, Z / jnp.where(zero, 1.0, mag))
  return mag ** power, phase


def softmask(X: ArrayLike, X_ref: ArrayLike, *, power: float = 1.0, split_zeros: bool = False) -> jax.Array:
  """Robust soft mask ``X**p / (X**p + X_ref**p)``, as `librosa.util.softmask`.

  Args:
    X, X_ref: non-negative arrays of the same shape (e.g. ``[..., n_bins, n_frames]``).
    power: exponent; ``jnp.inf`` gives the hard mask ``X > X_ref``.
    split_zeros: where both are zero, 0.5 if True else 0.

  Returns:
    the mask, same shape and floating dtype as ``X``.
  """
  if not power > 0:
    raise ParameterError(f"power={power} must be strictly positive")
  X = jnp.asarray(X)
  X_ref = jnp.asarray(X_ref)
  if X.shape != X_ref.shape:
    raise ParameterError(f"shape mismatch: X {X.shape} and X_ref {X_ref.shape}")
  dtype = X.dtype if jnp.issubdtype(X.dtype, jnp.floating) else jnp.float32
  X, X_ref = X.astype(dtype), X_ref.astype(dtype)
  if np.isinf(power):
    return (X > X_ref).astype(dtype)
  Z = jnp.maximum(X, X_ref)
  bad = Z < jnp.finfo(dtype).tiny
  Z = jnp.where(bad, 1.0, Z)
  mask = (X / Z) ** power
  ref = (X_ref / Z) ** power
  mask = mask / jnp.where(bad, 1.0, mask + ref)
  return jnp.where(bad, 0.5 if split_zeros else 0.0, mask).astype(dtype)


def ratio_masks(magnitudes: ArrayLike, *, power: float = 2.0, axis: int = 0) -> jax.Array:
  """Ratio masks over several sources that sum to one along ``axis``.

  ``mask_j = |S_j|**power / sum_k |S_k|**power``; where every source is
  (numerically) zero each mask is ``1 / n_sources``.

  Args:
    magnitudes: non-negative ``[n_sources, ...]`` (or sources on ``axis``).
    power: 1 for the IRM1 (magnitude) ratio, 2 for Wiener-like (power) ratios.
    axis: the source axis.

  Returns:
    the masks, shaped as ``magnitudes``, summing to one along ``axis``.
  """
  if not power > 0:
    raise ParameterError(f"power={power} must be strictly positive")
  m = jnp.asarray(magnitudes)
  # Scale by the largest magnitude first so large powers cannot overflow.
  scale = jnp.max(m, axis=axis, keepdims=True)
  tiny = jnp.finfo(m.dtype).tiny
  safe = jnp.where(scale > tiny, scale, 1.0)
  p = (m / safe) ** power
  total = jnp.sum(p, axis=axis, keepdims=True)
  n = m.shape[axis]
  return jnp.where(scale > tiny, p / jnp.where(scale > tiny, total, 1.0), 1.0 / n)


def binary_masks(magnitudes: ArrayLike, *, axis: int = 0) -> jax.Array:
  """One-hot masks: 1 for the loudest source in each bin (ties: first), else 0.

  Args:
    magnitudes: ``[n_sources, ...]`` (or sources on ``axis``).
    axis: the source axis.

  Returns:
    float masks shaped as ``magnitudes``.
  """
  m = jnp.asarray(magnitudes)
  winner = jnp.argmax(m, axis=axis)
  n = m.shape[axis]
  onehot = jax.nn.one_hot(winner, n, dtype=m.dtype if jnp.issubdtype(m.dtype, jnp.floating) else jnp.float32)
  return jnp.moveaxis(onehot, -1, axis)


def fft_frequencies(*, sample_rate: float = 44100, n_fft: int = 4096) -> np.ndarray:
  """Centre frequency in Hz of each STFT bin, numpy ``[1 + n_fft // 2]`` (as librosa)."""
  check_positive_int("n_fft", n_fft)
  errors.check_finite("sample_rate", sample_rate, minimum=0, strict=True)
  return np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)


def band_mask(*, sample_rate: float = 44100, n_fft: int = 4096, low_hz: float | None = None,
              high_hz: float | None = None) -> jax.Array:
  """A 0/1 float32 mask ``[n_bins, 1]`` that keeps bins with ``low_hz <= f < high_hz``.

  ``None`` leaves that side open. The trailing axis broadcasts over frames, so
  ``S * band_mask(...)`` filters a ``[..., n_bins, n_frames]`` spectrogram.
  """
  freqs = fft_frequencies(sample_rate=sample_rate, n_fft=n_fft)
  for name, v in (("low_hz", low_hz), ("high_hz", high_hz)):
    if v is not None:
      errors.check_finite(name, v, minimum=0)
  if low_hz is not None and high_hz is not None and not low_hz < high_hz:
    raise ParameterError(f"low_hz={low_hz} must be below high_hz={high_hz}")
  keep = np.ones_like(freqs, dtype=bool)
  if low_hz is not None:
    keep &= freqs >= low_hz
  if high_hz is not None:
    keep &= freqs < high_hz
  return jnp.asarray(keep.astype(np.float32)[:, None])


_MEL_STEP_HZ = 200.0 / 3  # Slaney's mel scale: linear below 1 kHz ...
_MEL_LOG_HZ = 1000.0
_MEL_LOG_MEL = _MEL_LOG_HZ / _MEL_STEP_HZ
_MEL_LOG_STEP = np.log(6.4) / 27.0  # ... logarithmic above


def _hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
  """Slaney's mel scale, as librosa's ``hz_to_mel`` (``htk=False``) computes it."""
  frequencies = np.atleast_1d(np.asarray(frequencies, dtype=np.float64))
  mels = frequencies / _MEL_STEP_HZ
  log = frequencies >= _MEL_LOG_HZ
  mels[log] = _MEL_LOG_MEL + np.log(frequencies[log] / _MEL_LOG_HZ) / _MEL_LOG_STEP
  return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
  """The inverse of `_hz_to_mel`, as librosa's ``mel_to_hz`` (``htk=False``) computes it."""
  mels = np.atleast_1d(np.asarray(mels, dtype=np.float64))
  frequencies = _MEL_STEP_HZ * mels
  log = mels >= _MEL_LOG_MEL
  frequencies[log] = _MEL_LOG_HZ * np.exp(_MEL_LOG_STEP * (mels[log] - _MEL_LOG_MEL))
  return frequencies


def mel_filters(*, sample_rate: float = 44100, n_fft: int = 4096, n_mels: int = 128) -> np.ndarray:
  """Triangular mel filters from 0 Hz to Nyquist, float32 ``[n_mels, 1 + n_fft // 2]``.

  As ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)``
  (Slaney's mel scale and area normalisation), computed in the same order
  so that the filters' supports (``> 0``) agree bin for bin (tests/test_model_bs_roformer.py
  checks it): the band layout of Mel-RoFormer (Wang et al. 2023).
  """
  check_positive_int("n_mels", n_mels)
  fftfreqs = fft_frequencies(sample_rate=sample_rate, n_fft=n_fft)
  mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0)[0], _hz_to_mel(float(sample_rate) / 2)[0], n_mels + 2))
  fdiff = np.diff(mel_f)
  ramps = np.subtract.outer(mel_f, fftfreqs)
  weights = np.zeros((n_mels, len(fftfreqs)), dtype=np.float32)
  for i in range(n_mels):
    weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
  weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
  return weights
