"""Linear cross-correlations of whole tracks at small lags, for BSSEval's distortion filters.

`correlations` gives every correlation of the reference channels with each other and with the
estimates' for lags up to the filter length, from one blockwise FFT pass over the track
(cross-spectra summed over blocks, one inverse FFT at the end, short FFTs for the pairs of
samples across block boundaries). `mssjax.metrics.bss_eval` builds its block Toeplitz Gram
systems from them; the inputs are read through `mssjax.metrics.track_input`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mssjax.metrics import track_input

CORRELATION_FFT = 16384
"""The blocks' FFT length (blocks of ``CORRELATION_FFT - max_lag`` samples), unless the lags need longer."""

_TILE = 256


def _blocks(signal, start, n_blocks, length, hop, inside=False):
  """Float64 blocks ``[S * C, n_blocks, length]`` of ``signal[s, start + b * hop : ... + length, c]``.

  ``signal`` is ``[S, n_samples, C]``; samples outside ``[0, n_samples)`` are zero. ``inside``
  (static): adjacent blocks known to lie inside the signal, read by `track_input.slice_range`.
  """
  n_src, n_samples, n_ch = signal.shape
  if hop == length:  # adjacent blocks: one contiguous range
    read = track_input.slice_range if inside else track_input.take_range
    values = read(signal, start, n_blocks * length).reshape(n_src, n_blocks, length, n_ch)
  else:
    # 32-bit offsets: the index dtype is the start's (see `_overlap_save`).
    idx = start + hop * jnp.arange(n_blocks, dtype=jnp.int32)[:, None] + jnp.arange(length, dtype=jnp.int32)[None, :]
    inside = (idx >= 0) & (idx < n_samples)
    values = track_input.take(signal, jnp.clip(idx, 0, n_samples - 1))      # [S, nb, len, C]
    values = jnp.where(inside[None, :, :, None], values, 0)
  values = values.astype(jnp.float64)
  return jnp.moveaxis(values, 3, 1).reshape(n_src * n_ch, n_blocks, length)


def _tiled(spectra, idx, b):
  """``spectra[idx, b]`` (``[pairs, n_bins]`` of ``spectra [signals, blocks, n_bins]``) in frequency tiles.

  Returns ``([n_bins // _TILE, pairs, _TILE], [pairs, rest])``: the tiles, then the bins past the
  last whole tile (the Nyquist bin). The correlations' products ``u[p, b, f] * v[q, b, f]``
  gather two rows of the spectra per pair; accumulated as ``[pairs, f]`` each pair streams its
  rows over all frequencies (the step's spectra, tens of MB, read once per pair from memory),
  while tiles of `_TILE` frequencies keep one tile of every signal in cache for all pairs.
  """
  n_bins = spectra.shape[-1]
  tile = min(_TILE, max(n_bins - 1, 1))
  n_tiles = (n_bins - 1) // tile
  head = spectra[idx, b, :n_tiles * tile].reshape(len(idx), n_tiles, tile)
  return jnp.transpose(head, (1, 0, 2)), spectra[idx, b, n_tiles * tile:]


def _untiled(parts):
  """Inverse of `_tiled`: ``[pairs, n_bins]``."""
  head, rest = parts
  return jnp.concatenate([jnp.transpose(head, (1, 0, 2)).reshape(head.shape[1], -1), rest], axis=1)


def correlations(x, y, max_lag, blocks_per_step=16, *, differentiable=False):
  """Linear cross-correlations for small lags of ``x`` with ``x`` and ``y``, by blockwise FFT.

  The signals are cut in blocks of ``n_fft - max_lag`` samples. Each block's spectrum
  (zero-padded to ``n_fft``) gives every correlation of two samples inside the block
  (cross-spectra summed over blocks, one inverse FFT at the end); pairs of samples on
  either side of a block boundary come from short FFTs of the ``max_lag`` samples
  before and after each boundary. Every signal is transformed once, where an
  overlap-save split (blocks of ``x`` with margins against plain blocks of ``x``
  and ``y``) transforms ``x`` twice: 16 long FFTs per block instead of 24 for four
  stereo sources (benchmarks/metrics.py times the stage). Of the
  correlations of ``x`` with itself only ``p <= q`` are accumulated (``out[q, p]`` is
  ``out[p, q]`` reversed in lag).
  ``blocks_per_step`` blocks are transformed at a time, so memory stays bounded.

  ``differentiable=True`` takes another route to the same values, whose gradient is
  cheaper (`_overlap_save`).

  Args:
    x: ``[S, n_samples, C]``: ``n_x = S * C`` signals (source-major).
    y: ``[S_y, n_samples, C_y]``: ``n_y = S_y * C_y`` signals.
    max_lag: largest absolute lag ``L - 1``.
    blocks_per_step: blocks transformed at once.
    differentiable: by `_overlap_save` (arrays only, not `track_input.FlatSignal`).

  Returns:
    ``[n_x, n_x + n_y, 2 * max_lag + 1]``: ``out[p, q, k + max_lag] = sum_n x[p, n + k]
    z[q, n]`` for ``k`` in ``[-max_lag, max_lag]``, ``z`` the signals of ``x`` then ``y``
    (signals are zero outside ``[0, n_samples)``).
  """
  if differentiable:
    return _overlap_save(x, y, max_lag)
  n_samples = x.shape[1]
  n_x = x.shape[0] * x.shape[2]
  n_z = n_x + y.shape[0] * y.shape[2]
  n_fft = _fft_length(max_lag)
  block = n_fft - max_lag  # a block's own lags |k| <= max_lag do not wrap around
  n_short = 1 << int(np.ceil(np.log2(4 * max_lag))) if max_lag else 2  # two max_lag segments, no wrap
  n_blocks = -(-n_samples // block)
  per_step = min(blocks_per_step, n_blocks)
  # The first and last steps read across the track's ends by a gather (`track_input.split_scan`), about three
  # times a sliced block's time, so short tracks take smaller steps: at most an eighth of the
  # blocks in those two. A 7 s track's 19 blocks in steps of 4 took 0.05 s, in steps of 16 0.10 s.
  while per_step > 4 and 16 * per_step > n_blocks:
    per_step //= 2
  n_steps = -(-n_blocks // per_step)
  unroll = next(k for k in (8, 4, 2, 1) if per_step % k == 0)
  # Pairs (p, q) accumulated: x with x for p <= q only (the pair (q, p) is the same correlation
  # reversed in lag), x with every signal of y. 100 pairs instead of 128 for four stereo sources.
  upper_p, upper_q = np.triu_indices(n_x)
  cross_p, cross_q = np.divmod(np.arange(n_x * (n_z - n_x)), n_z - n_x)
  pair_p = np.concatenate([upper_p, cross_p]).astype(np.int32)
  pair_q = np.concatenate([upper_q, cross_q + n_x]).astype(np.int32)


  def products(u, v, b):  # u[pair_p, b] * v[pair_q, b], frequency-tiled (`_tiled`)
    return jax.tree.map(lambda a, c: a * c, _tiled(u, pair_p, b), _tiled(v, pair_q, b))

  def step(carry, i, inside):
    start = i * per_step * block
    # The signals' blocks joined before one FFT: joining the spectra instead cost 8 % of the stage.
    z = jnp.fft.rfft(jnp.concatenate([_blocks(s, start, per_step, block, block, inside) for s in (x, y)]),
                     n=n_fft, axis=-1)                                          # [z, b, f]
    z_conj = jnp.conj(z)
    if max_lag:
      # Boundary b: the last max_lag samples of block b, then the first max_lag of block b + 1.
      edge = jnp.concatenate([_blocks(s, start + block - max_lag, per_step, 2 * max_lag, block) for s in (x, y)])
      edge_spec = jnp.fft.rfft(edge, n=n_short, axis=-1)
      before = jnp.fft.rfft(edge.at[..., max_lag:].set(0), n=n_short, axis=-1)
      after = edge_spec - before
      before_conj, after_conj = jnp.conj(before), jnp.conj(after)

    # Summed block by block in the FFT's own layout (frequency last, no transposes of the spectra),
    # into accumulators tiled over frequency (`_tiled`). `unroll` blocks per iteration make one
    # fusion that reads and writes the accumulator once: it is 13 MB, out of cache, so 8 blocks
    # at a time took 20 % less time than 1 (same sums).
    def accumulate(i, carry):
      acc, acc_edge = carry
      for j in range(unroll):
        b = i * unroll + j
        acc = jax.tree.map(jnp.add, acc, products(z, z_conj, b))
        if max_lag:
          # x after the boundary with z before it (lags > 0), and x before with z after (lags < 0).
          acc_edge = jax.tree.map(lambda a, c, d: a + c + d, acc_edge, products(after, before_conj, b),
                                  products(before, after_conj, b))
      return acc, acc_edge

    return jax.lax.fori_loop(0, per_step // unroll, accumulate, carry)

  def zeros(n_bins):
    return _tiled(jnp.zeros((1, 1, n_bins), jnp.complex128), np.zeros(len(pair_p), np.int32), 0)

  steps = np.arange(n_steps)
  inside = track_input.slices_inside(steps * per_step * block, per_step * block, n_samples)
  (acc, acc_edge), _ = track_input.split_scan(lambda *args: (step(*args), None),
                                              (zeros(n_fft // 2 + 1), zeros(n_short // 2 + 1)), steps, inside)
  acc, acc_edge = _untiled(acc), _untiled(acc_edge)
  lags = np.arange(-max_lag, max_lag + 1)
  pairs = (jnp.fft.irfft(acc, n=n_fft, axis=-1)[..., lags % n_fft]
           + jnp.fft.irfft(acc_edge, n=n_short, axis=-1)[..., lags % n_short])   # [pairs, 2 * max_lag + 1]
  out = jnp.zeros((n_x, n_z, 2 * max_lag + 1), pairs.dtype).at[pair_p, pair_q].set(pairs)
  lower = upper_p != upper_q
  return out.at[upper_q[lower], upper_p[lower]].set(pairs[:len(upper_p)][lower, ::-1])


def _fft_length(max_lag):
  return max(CORRELATION_FFT, 1 << int(np.ceil(np.log2(8 * max_lag + 2))))


def _overlap_save(x, y, max_lag, blocks_per_step=64):
  """`correlations` by overlap-save, for differentiation: 32-bit indices, one einsum per step.

  Blocks of ``x`` with ``max_lag`` samples of margin on either side are correlated
  with plain blocks of ``x`` and ``y`` (``x`` is transformed twice), and every pair
  ``(p, q)`` is accumulated, in a ``lax.scan`` of one einsum per step. The indices
  are int32 so that the gradient's scatters lower in a program compiled without
  x64 (a float32 training step; a 64-bit index scatter does not lower there).

  `correlations` is the faster forward pass, but its gradient is a scatter per
  block of its ``fori_loop`` of gathers: slower to run and to compile than this
  route's (commit cc6afb7 has the measurements).
  """
  n_samples = x.shape[1]
  n_fft = _fft_length(max_lag)
  block = n_fft - 2 * max_lag
  n_blocks = -(-n_samples // block)
  per_step = min(blocks_per_step, n_blocks)
  n_steps = -(-n_blocks // per_step)

  def step(acc, i):
    start = i * (per_step * block)
    x_spec = jnp.fft.rfft(_blocks(x, start - max_lag, per_step, block + 2 * max_lag, block), n=n_fft, axis=-1)
    z_spec = jnp.fft.rfft(jnp.concatenate([_blocks(s, start, per_step, block, block) for s in (x, y)]),
                          n=n_fft, axis=-1)
    return acc + jnp.einsum("pbf,qbf->fpq", x_spec, jnp.conj(z_spec)), None

  n_x, n_z = x.shape[0] * x.shape[2], x.shape[0] * x.shape[2] + y.shape[0] * y.shape[2]
  acc = jnp.zeros((n_fft // 2 + 1, n_x, n_z), jnp.complex128)
  cross, _ = jax.lax.scan(step, acc, jnp.arange(n_steps, dtype=jnp.int32))
  return jnp.fft.irfft(jnp.transpose(cross, (1, 2, 0)), n=n_fft, axis=-1)[..., :2 * max_lag + 1]


__all__ = ["CORRELATION_FFT", "correlations"]
