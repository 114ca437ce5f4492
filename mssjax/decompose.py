"""Spectrogram decompositions: median filtering, HPSS, REPET-SIM and NMF.

Pure functions over spectrograms ``[..., n_bins, n_frames]`` (as
``librosa.decompose``), jit-compiled with their settings static; batch over
tracks with `jax.vmap`. Parameters are checked before jit and raise
`mssjax.errors.ParameterError`.

The running median (`median_filter`, the harmonic and percussive filters of HPSS) and the
sorting networks of `nn_median` live in `mssjax.median`; `median_filter` is re-exported here.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from mssjax import spectral
from mssjax.errors import ParameterError, check_choice, check_finite, check_memory, check_positive_int
from mssjax.median import _median_filter, _sort_network, median_filter

__all__ = ["median_filter", "hpss", "nn_median", "repet_sim", "nmf", "nmf_memory", "beta_divergence"]


# ----------------------------------------------------------------------------
# Input checks (static: shapes, dtypes, and values only of concrete arrays).


def _is_concrete(x):
  return not isinstance(x, jax.core.Tracer)


def _check_spectrogram(S, name="S"):
  """Returns ``S`` as a jax array after checking shape, dtype and (if concrete) finiteness."""
  S = jnp.asarray(S)
  if S.ndim < 2:
    raise ParameterError(f"{name} must be [..., n_bins, n_frames], got shape {S.shape}")
  if not (jnp.issubdtype(S.dtype, jnp.floating) or jnp.issubdtype(S.dtype, jnp.complexfloating)):
    S = S.astype(jnp.float32)
  if S.size == 0:
    raise ParameterError(f"{name} of shape {S.shape} is empty")
  if _is_concrete(S) and not bool(jnp.all(jnp.isfinite(S))):
    raise ParameterError(f"{name} contains non-finite values (NaN or inf)")
  return S


def _pair(value, name):
  if isinstance(value, (tuple, list)):
    if len(value) != 2:
      raise ParameterError(f"{name}={value!r} must be a scalar or a pair")
    return tuple(value)
  return value, value


def _margins(margin, parts):
  """The two margins of ``margin`` (a scalar or a pair) as floats, each checked to be >= 1."""
  return tuple(check_finite(f"margin ({part})", m, minimum=1.0) for part, m in zip(parts, _pair(margin, "margin")))


def _split_phase(S):
  """``(magnitude, phase or None)``: complex input is split as `librosa.magphase`."""
  if jnp.issubdtype(S.dtype, jnp.complexfloating):
    return spectral.magphase(S)
  return S, None


# ----------------------------------------------------------------------------
# HPSS.


@functools.partial(jax.jit, static_argnames=("win_harm", "win_perc", "power", "margin_harm", "margin_perc"))
def _hpss_masks(S, *, win_harm, win_perc, power, margin_harm, margin_perc):
  harm = _median_filter(S, size=win_harm, axis=S.ndim - 1)
  perc = _median_filter(S, size=win_perc, axis=S.ndim - 2)
  split_zeros = margin_harm == 1 and margin_perc == 1
  mask_harm = spectral.softmask(harm, perc * margin_harm, power=power, split_zeros=split_zeros)
  mask_perc = spectral.softmask(perc, harm * margin_perc, power=power, split_zeros=split_zeros)
  return mask_harm, mask_perc


def hpss(S: ArrayLike, *, kernel_size: int | tuple[int, int] = 31, power: float = 2.0, mask: bool = False,
         margin: float | tuple[float, float] = 1.0) -> tuple[jax.Array, jax.Array]:
  """Median-filtering harmonic-percussive source separation, as `librosa.decompose.hpss`.

  Harmonic sounds are smooth across time and percussive ones across
  frequency (Fitzgerald 2010); a median filter along each axis estimates
  both, and soft masks with margins (Driedger, Mueller & Disch 2014) split
  ``S`` into ``H + P`` (``margin == 1``) or ``H + P + R``.

  Args:
    S: spectrogram ``[..., n_bins, n_frames]``, magnitude or complex.
    kernel_size: median filter length, or ``(harmonic, percussive)``: frames
      for the harmonic (time) filter, bins for the percussive (frequency) one.
    power: exponent of the soft masks (`mssjax.spectral.softmask`); ``jnp.inf``
      gives hard masks.
    mask: return the masks instead of the components.
    margin: margin ``>= 1``, or ``(harmonic, percussive)``.

  Returns:
    ``(harmonic, percussive)``, each shaped as ``S``: components (with the
    phase of ``S`` when it is complex) or masks in ``[0, 1]``.

  Raises:
    ParameterError: bad kernel sizes (or longer than ``S`` along their axis),
      margins below 1, a non-positive power, or non-finite ``S``.
  """
  S = _check_spectrogram(S)
  win_harm, win_perc = _pair(kernel_size, "kernel_size")
  margin_harm, margin_perc = _margins(margin, ("harmonic", "percussive"))
  check_positive_int("kernel_size (harmonic)", win_harm)
  check_positive_int("kernel_size (percussive)", win_perc)
  if win_harm > S.shape[-1]:
    raise ParameterError(f"harmonic kernel_size={win_harm} is longer than n_frames={S.shape[-1]}")
  if win_perc > S.shape[-2]:
    raise ParameterError(f"percussive kernel_size={win_perc} is longer than n_bins={S.shape[-2]}")
  if not power > 0:
    raise ParameterError(f"power={power} must be strictly positive")
  mag, phase = _split_phase(S)
  mask_harm, mask_perc = _hpss_masks(mag, win_harm=int(win_harm), win_perc=int(win_perc), power=float(power),
                                     margin_harm=margin_harm, margin_perc=margin_perc)
  if mask:
    return mask_harm, mask_perc
  if phase is None:
    return S * mask_harm, S * mask_perc
  return (mag * mask_harm) * phase, (mag * mask_perc) * phase


# ----------------------------------------------------------------------------
# REPET-SIM.


def _cosine_similarity(features):
  """``[n_features, n_frames] -> [n_frames, n_frames]``; silent frames have similarity 0."""
  norms = jnp.sqrt(jnp.sum(features * features, axis=0))
  unit = features / jnp.where(norms > 0, norms, 1.0)
  return jnp.matmul(unit.T, unit, precision=jax.lax.Precision.HIGHEST)


def _select_nearest(sim, n_neighbors, width, threshold):
  """The ``n_neighbors`` most similar frames at least ``width`` frames away: ``(indices, valid)``."""
  n = sim.shape[0]
  lag = jnp.abs(jnp.arange(n)[:, None] - jnp.arange(n)[None, :])
  scores = jnp.where(lag >= width, sim, -jnp.inf)
  values, indices = jax.lax.top_k(scores, n_neighbors)
  return indices, values > threshold


def _select_peaks(sim, n_neighbors, width, threshold):
  """Rafii & Pardo's choice: the highest similarity peaks, ``width`` frames apart, the frame included."""
  n = sim.shape[0]
  left = jnp.pad(sim[:, :-1], ((0, 0), (1, 0)), constant_values=-jnp.inf)
  right = jnp.pad(sim[:, 1:], ((0, 0), (0, 1)), constant_values=-jnp.inf)
  is_peak = (sim >= left) & (sim >= right) | jnp.eye(n, dtype=bool)
  scores = jnp.where(is_peak & (sim > threshold), sim, -jnp.inf)
  positions = jnp.arange(n)

  def pick(scores, _):
    best = jnp.argmax(scores, axis=1)
    ok = jnp.take_along_axis(scores, best[:, None], axis=1)[:, 0] > -jnp.inf
    scores = jnp.where(jnp.abs(positions[None, :] - best[:, None]) < width, -jnp.inf, scores)
    return scores, (best, ok)

  _, (indices, valid) = jax.lax.scan(pick, scores, None, length=n_neighbors)
  return indices.T, valid.T


def _masked_median(wires, count):
  """Median of the first ``count`` wires (per frame), as `np.median` (mean of the middle two).

  Args:
    wires: ``k`` arrays ``[n_rows, n_frames]``, the valid ones first.
    count: ``[n_frames]`` number of valid wires.

  Invalid wires are set to -inf and +inf in equal numbers (the extra one
  +inf), so the median always sits at one of the middle ranks of all ``k``
  wires: only those outputs of the sorting network are used, XLA prunes the
  rest, and the network fuses with the neighbour gathers into one pass over
  a cache-sized block of rows (no stacked intermediates; benchmarks/classical.py
  times the hpss_repet recipe that uses it).
  """
  k = len(wires)
  n_low = (k - count) // 2
  filled = [jnp.where(j < count, w, jnp.where(j - count < n_low, -jnp.inf, jnp.inf)) for j, w in enumerate(wires)]
  ranked = _sort_network(filled)
  lower = n_low + jnp.maximum(count - 1, 0) // 2
  upper = n_low + count // 2
  middle = range(max(0, (k - 3) // 2), min(k, k // 2 + 1))  # every rank lower/upper takes when count > 0
  lo = hi = ranked[middle[0]]
  for rank in middle[1:]:
    lo = jnp.where(lower == rank, ranked[rank], lo)
    hi = jnp.where(upper == rank, ranked[rank], hi)
  return 0.5 * (lo + hi)


@functools.partial(jax.jit, static_argnames=("n_neighbors", "width", "threshold", "selection"))
def _nn_median(S, *, n_neighbors, width, threshold, selection):
  n_frames = S.shape[-1]
  features = S.reshape(-1, n_frames)
  sim = _cosine_similarity(features)
  select = _select_peaks if selection == "peaks" else _select_nearest
  indices, valid = select(sim, n_neighbors, width, threshold)
  # Valid neighbours come first (ranked by similarity), so a count describes them.
  valid = jnp.cumprod(valid, axis=1).astype(bool)
  count = jnp.sum(valid, axis=1)
  n_features = features.shape[0]
  # Blocks of rows small enough (about 8 MB of neighbours) to stay in cache.
  block = max(1, min(n_features, (1 << 21) // (n_neighbors * n_frames)))
  n_blocks = -(-n_features // block)
  padded = jnp.pad(features, ((0, n_blocks * block - n_features), (0, 0)))

  def one_block(rows):
    med = _masked_median([rows[:, indices[:, j]] for j in range(n_neighbors)], count)
    return jnp.where(count > 0, med, rows)

  out = jax.lax.map(one_block, padded.reshape(n_blocks, block, n_frames))
  return out.reshape(-1, n_frames)[:n_features].reshape(S.shape)


_SELECTIONS = ("peaks", "nearest")


def _check_nn_settings(n_neighbors, width, threshold, selection):
  check_positive_int("n_neighbors", n_neighbors)
  check_positive_int("width", width)
  check_choice("selection", selection, _SELECTIONS)
  if not -1.0 <= threshold < 1.0:
    raise ParameterError(f"threshold={threshold} must be a cosine similarity in [-1, 1)")


def nn_median(S: ArrayLike, *, n_neighbors: int, width: int, threshold: float = -1.0,
              selection: str = "nearest") -> jax.Array:
  """Each frame replaced by the median of its most similar frames (cosine similarity).

  With ``selection="nearest"`` and the default threshold this is
  ``librosa.decompose.nn_filter(S, aggregate=np.median, metric="cosine",
  k=n_neighbors, width=width)``: the ``n_neighbors`` most similar frames at
  least ``width`` frames away. With ``selection="peaks"`` it is the choice of
  REPET-SIM (Rafii & Pardo 2012): the highest local maxima of the frame's
  similarity curve, the frame itself included, each at least ``width`` frames
  from the others. Frames with no neighbour above ``threshold`` are kept.
  All leading dimensions (channels) are features of one signal, as in librosa.

  Args:
    S: non-negative ``[..., n_bins, n_frames]``.
    n_neighbors: the most neighbours per frame (capped at ``n_frames - 1``).
    width: minimum distance in frames.
    threshold: neighbours need a similarity above this.
    selection: ``"nearest"`` or ``"peaks"``.

  Returns:
    the filtered spectrogram, shaped as ``S``.
  """
  S = _check_spectrogram(S)
  if jnp.issubdtype(S.dtype, jnp.complexfloating):
    raise ParameterError(f"nn_median needs a real (magnitude) spectrogram, got dtype {S.dtype}")
  _check_nn_settings(n_neighbors, width, threshold, selection)
  if S.shape[-1] < 2:
    raise ParameterError(f"nn_median needs at least 2 frames, got {S.shape[-1]}")
  n_neighbors = min(int(n_neighbors), S.shape[-1] - 1)
  if selection == "peaks":  # peaks ``width`` apart: no more than this many fit
    n_neighbors = min(n_neighbors, (S.shape[-1] - 1) // int(width) + 1)
  return _nn_median(S, n_neighbors=n_neighbors, width=int(width), threshold=float(threshold),
                    selection=selection)


def _seconds_to_frames(seconds, sample_rate, hop_length):
  return max(1, int(math.floor(seconds * sample_rate / hop_length)))


def repet_sim(S: ArrayLike, *, sample_rate: float = 44100, hop_length: int = 1024, n_neighbors: int = 100,
              min_distance: float = 1.0, threshold: float = 0.0, selection: str = "peaks", power: float = 1.0,
              margin: float | tuple[float, float] = 1.0, mask: bool = False) -> tuple[jax.Array, jax.Array]:
  """REPET-SIM: separate the repeating background from the non-repeating foreground.

  After Rafii & Pardo (2012), "Music/voice separation using the similarity
  matrix", ISMIR: frames are compared by cosine similarity; for each frame
  the most similar frames (up to ``n_neighbors``, similarity above
  ``threshold``, at least ``min_distance`` seconds apart) give by their median
  a repeating model ``W``, capped by the mixture (``W = min(W, S)``). The
  masks are soft masks of ``W`` against ``S - W``: with ``power=1`` and
  ``margin=1`` (the defaults) the background mask is the paper's ``W / S``.
  Larger margins as in librosa's vocal-separation example (background 2,
  foreground 10) leave a residual in neither part. The defaults follow the
  paper: threshold 0, 1 s, 100 frames.

  Args:
    S: spectrogram ``[..., n_bins, n_frames]``, magnitude or complex;
      leading dimensions (channels) share one similarity matrix.
    sample_rate: audio sample rate in Hz (to convert ``min_distance``).
    hop_length: STFT hop in samples (to convert ``min_distance``).
    n_neighbors: maximum number of repeating frames per frame.
    min_distance: minimum distance between repeating frames, in seconds.
    threshold: minimum cosine similarity of a repeating frame.
    selection: ``"peaks"`` (the paper) or ``"nearest"`` (librosa's
      ``nn_filter``: the most similar frames at least ``min_distance`` away).
    power: exponent of the soft masks.
    margin: ``>= 1``, or ``(background, foreground)``.
    mask: return the masks instead of the components.

  Returns:
    ``(background, foreground)`` components (with the phase of a complex
    ``S``) or masks, each shaped as ``S``.
  """
  S = _check_spectrogram(S)
  check_finite("sample_rate", sample_rate, minimum=0, strict=True)
  check_positive_int("hop_length", hop_length)
  check_finite("min_distance", min_distance, minimum=0, strict=True)
  margin_bg, margin_fg = _margins(margin, ("background", "foreground"))
  if not power > 0:
    raise ParameterError(f"power={power} must be strictly positive")
  mag, phase = _split_phase(S)
  model = nn_median(mag, n_neighbors=n_neighbors, width=_seconds_to_frames(min_distance, sample_rate, hop_length),
                    threshold=threshold, selection=selection)
  model = jnp.minimum(model, mag)
  split_zeros = margin_bg == 1 and margin_fg == 1
  mask_bg = spectral.softmask(model, margin_bg * (mag - model), power=power, split_zeros=split_zeros)
  mask_fg = spectral.softmask(mag - model, margin_fg * model, power=power, split_zeros=split_zeros)
  if mask:
    return mask_bg, mask_fg
  if phase is None:
    return S * mask_bg, S * mask_fg
  return (mag * mask_bg) * phase, (mag * mask_fg) * phase


# ----------------------------------------------------------------------------
# NMF.

_EPS = float(np.finfo(np.float32).eps)


def _mm_exponent(beta):
  """Fevotte & Idier (2011): the exponent that makes MU a majorise-minimise step."""
  if beta < 1:
    return 1.0 / (2.0 - beta)
  if beta > 2:
    return 1.0 / (beta - 1.0)
  return 1.0


def _update_W(V, W, H, beta):
  """One multiplicative update of ``W`` (scikit-learn's ``_multiplicative_update_w``)."""
  Ht = jnp.swapaxes(H, -1, -2)
  if beta == 2:
    num = V @ Ht
    den = W @ (H @ Ht)
  else:
    WH = W @ H
    WH_safe = jnp.maximum(WH, _EPS) if beta < 2 else WH
    num = (V * WH_safe ** (beta - 2)) @ Ht if beta != 1 else (V / WH_safe) @ Ht
    if beta == 1:
      den = jnp.sum(H, axis=-1)[..., None, :]
    else:
      WH = jnp.maximum(WH, _EPS) if beta < 1 else WH
      den = WH ** (beta - 1) @ Ht
  den = jnp.where(den == 0, _EPS, den)
  W = W * (num / den) ** _mm_exponent(beta)
  return jnp.where(W < np.finfo(np.float64).eps, 0.0, W) if beta < 1 else W


def _update_H(V, W, H, beta):
  """One multiplicative update of ``H`` (scikit-learn's ``_multiplicative_update_h``)."""
  Wt = jnp.swapaxes(W, -1, -2)
  if beta == 2:
    num = Wt @ V
    den = (Wt @ W) @ H
  else:
    WH = W @ H
    WH_safe = jnp.maximum(WH, _EPS) if beta < 2 else WH
    num = Wt @ (V * WH_safe ** (beta - 2)) if beta != 1 else Wt @ (V / WH_safe)
    if beta == 1:
      W_sum = jnp.sum(W, axis=-2)
      den = jnp.where(W_sum == 0, 1.0, W_sum)[..., :, None]
    else:
      WH = jnp.maximum(WH, _EPS) if beta < 1 else WH
      den = Wt @ WH ** (beta - 1)
  den = jnp.where(den == 0, _EPS, den)
  H = H * (num / den) ** _mm_exponent(beta)
  return jnp.where(H < np.finfo(np.float64).eps, 0.0, H) if beta <= 1 else H


@functools.partial(jax.jit, static_argnames=("beta", "n_iter", "update_W", "update_H"))
def _nmf(V, W, H, *, beta, n_iter, update_W, update_H):
  def step(_, WH):
    W, H = WH
    if update_W:
      W = _update_W(V, W, H, beta)
    if update_H:
      H = _update_H(V, W, H, beta)
    return W, H

  with jax.default_matmul_precision("highest"):
    return jax.lax.fori_loop(0, n_iter, step, (W, H))


def _random_init(V, n_components, key):
  """scikit-learn's ``init="random"``: ``sqrt(mean(V) / r) * |N(0, 1)|`` for both factors."""
  scale = jnp.sqrt(jnp.mean(V, axis=(-2, -1), keepdims=True) / n_components)
  key_W, key_H = jax.random.split(key)
  W = scale * jnp.abs(jax.random.normal(key_W, V.shape[:-1] + (n_components,), V.dtype))
  H = scale * jnp.abs(jax.random.normal(key_H, V.shape[:-2] + (n_components, V.shape[-1]), V.dtype))
  return W, H


def _check_factor(F, name, shape, dtype):
  F = jnp.asarray(F, dtype=dtype)
  try:
    F = jnp.broadcast_to(F, shape)
  except ValueError as e:
    raise ParameterError(f"{name} of shape {F.shape} does not fit the expected shape {shape}") from e
  if _is_concrete(F) and not bool(jnp.all(jnp.isfinite(F) & (F >= 0))):
    raise ParameterError(f"{name} must be finite and non-negative")
  return F


def nmf_memory(*, n_bins: int, n_frames: int, n_components: int, n_problems: int = 1, itemsize: int = 4) -> int:
  """Bytes `nmf` holds at once (an estimate from shapes): the factors, their products and ``W.T @ W``.

  The ``r x r`` Gram matrix of the Euclidean updates makes it grow with the
  square of the rank: 100000 components need 80 GB whatever the spectrogram.
  """
  r = n_components
  return itemsize * n_problems * (2 * r * r + 4 * r * (n_bins + n_frames) + 4 * n_bins * n_frames)


def nmf(V: ArrayLike, *, n_components: int, beta: float = 2.0, n_iter: int = 200, W: ArrayLike | None = None,
        H: ArrayLike | None = None, update_W: bool = True, update_H: bool = True,
        key: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """Non-negative matrix factorisation ``V ~ W @ H`` by multiplicative updates.

  The beta-divergence updates of Lee & Seung (2001) and Fevotte & Idier (2011)
  (beta 2: Euclidean, 1: Kullback-Leibler, 0: Itakura-Saito), with the
  majorise-minimise exponent outside ``[1, 2]``, so the objective never
  increases. Each iteration updates ``W`` then ``H``, exactly as
  scikit-learn's ``NMF(solver="mu")`` (same guards against zeros), for a
  fixed number of iterations in a `jax.lax.fori_loop`.

  Args:
    V: non-negative ``[..., n_bins, n_frames]``; leading dimensions are
      independent problems.
    n_components: the rank ``r``.
    beta: the divergence.
    n_iter: number of iterations.
    W: initial (or, with ``update_W=False``, fixed) bases ``[..., n_bins, r]``.
    H: initial activations ``[..., r, n_frames]``.
    update_W, update_H: learn each factor or keep it fixed.
    key: `jax.random` key for the factors not given (scikit-learn's random
      initialisation); required unless both are given.

  Returns:
    ``(W, H)``: ``[..., n_bins, r]`` and ``[..., r, n_frames]``.

  Raises:
    ParameterError: bad settings, or a rank whose memory (`nmf_memory`)
      exceeds what the machine has available.
  """
  V = _check_spectrogram(V, "V")
  if jnp.issubdtype(V.dtype, jnp.complexfloating):
    raise ParameterError(f"V must be real and non-negative, got dtype {V.dtype}")
  if _is_concrete(V) and bool(jnp.any(V < 0)):
    raise ParameterError("V must be non-negative")
  check_positive_int("n_components", n_components)
  check_memory(f"n_components={n_components!r}", nmf_memory(
      n_bins=V.shape[-2], n_frames=V.shape[-1], n_components=n_components,
      n_problems=math.prod(V.shape[:-2]), itemsize=V.dtype.itemsize))
  if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
    raise ParameterError(f"n_iter={n_iter!r} must be a non-negative integer")
  check_finite("beta", beta)
  if beta <= 0 and _is_concrete(V) and bool(jnp.any(V == 0)):
    raise ParameterError(f"beta={beta} <= 0 needs a strictly positive V")
  if (W is None or H is None) and key is None:
    raise ParameterError("key is required to initialise the factors not given")
  if W is None and not update_W:
    raise ParameterError("update_W=False needs fixed bases W")
  init_W, init_H = _random_init(V, n_components, key) if key is not None else (None, None)
  W = init_W if W is None else _check_factor(W, "W", V.shape[:-1] + (n_components,), V.dtype)
  H = init_H if H is None else _check_factor(H, "H", V.shape[:-2] + (n_components, V.shape[-1]), V.dtype)
  return _nmf(V, W, H, beta=float(beta), n_iter=int(n_iter), update_W=bool(update_W), update_H=bool(update_H))


def beta_divergence(V: ArrayLike, W: ArrayLike, H: ArrayLike, *, beta: float = 2.0) -> jax.Array:
  """``D_beta(V | W @ H)`` summed over the last two axes, as scikit-learn's ``_beta_divergence``.

  Entries with ``V <= eps`` are left out of the non-Euclidean divergences.

  Args:
    V: non-negative ``[..., n_bins, n_frames]``.
    W: bases ``[..., n_bins, r]``.
    H: activations ``[..., r, n_frames]``.
    beta: the divergence (2: Euclidean, 1: Kullback-Leibler, 0: Itakura-Saito).

  Returns:
    ``[...]``, one value per problem.
  """
  V, W, H = jnp.asarray(V), jnp.asarray(W), jnp.asarray(H)
  with jax.default_matmul_precision("highest"):
    WH = W @ H
  if beta == 2:
    return 0.5 * jnp.sum((V - WH) ** 2, axis=(-2, -1))
  keep = V > _EPS
  WH = jnp.maximum(WH, _EPS)
  Vs = jnp.where(keep, V, 1.0)
  ratio = Vs / WH
  if beta == 1:
    terms = jnp.where(keep, Vs * jnp.log(ratio), 0.0)
    return jnp.sum(terms, axis=(-2, -1)) + jnp.sum(W @ H, axis=(-2, -1)) - jnp.sum(jnp.where(keep, V, 0.0),
                                                                                   axis=(-2, -1))
  if beta == 0:
    return jnp.sum(jnp.where(keep, ratio - 1.0 - jnp.log(ratio), 0.0), axis=(-2, -1))
  terms = (Vs ** beta + (beta - 1) * WH ** beta - beta * Vs * WH ** (beta - 1)) / (beta * (beta - 1))
  return jnp.sum(jnp.where(keep, terms, 0.0), axis=(-2, -1))
