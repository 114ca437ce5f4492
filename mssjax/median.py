"""The running median (`median_filter`, re-exported by `mssjax.decompose`; HPSS's two filters), and the
sorting networks it shares with `mssjax.decompose.nn_median`.

The running median has two exact kernels, chosen by the window's length:

1. Up to ``_NETWORK_MAX_SIZE`` values: a sorting network, Batcher's odd-even
   merge applied to shifted slices. A window of ``n`` values at every
   position is the merge of the sorted windows of ``n1`` and ``n - n1`` values
   at offsets ``0`` and ``n1``, and each of those is computed once for all
   positions and reused by slicing. Only the middle output wire is kept; XLA
   prunes the rest. Fastest for short windows, but its comparators grow as
   ``n log^2 n`` and XLA's compile time and memory grow faster still: 28 s and
   4 GB for 91 values, killed at 8 GB for 151 (issue #36).
2. Longer windows: a radix bisection over the values' bit patterns. Each
   value is mapped to an unsigned integer key of its width that sorts as the
   value does (the sign bit flipped, negative values' bits inverted), and the
   ``rank``-th smallest key of every window is found one bit at a time from
   the top: 32 rounds (for 32-bit values), each counting the window's keys at
   or below a trial key. The result is a key of the window, so the value is
   exact. Cost ``32 n`` comparisons per output, in loops whose body does not
   depend on ``n``: it compiles once in under a second for any window, and
   runs over blocks of rows that stay in cache.

``benchmarks/median_filter.py`` measures both (compile time, peak memory and
run time against the window's length), which is where the crossover comes from.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from mssjax.errors import ParameterError, check_positive_int

__all__ = ["median_filter"]


# ----------------------------------------------------------------------------
# Sorting networks.


def _compare_exchange(a, b):
  return jnp.minimum(a, b), jnp.maximum(a, b)


def _odd_even_merge(a, b):
  """Batcher's odd-even merge of two sorted lists of arrays (any lengths)."""
  if not a or not b:
    return list(a) + list(b)
  if len(a) == 1 and len(b) == 1:
    return list(_compare_exchange(a[0], b[0]))
  evens = _odd_even_merge(a[0::2], b[0::2])
  odds = _odd_even_merge(a[1::2], b[1::2])
  out = [evens[0]]
  rest_e, rest_o = evens[1:], odds
  while rest_e and rest_o:
    out += _compare_exchange(rest_o[0], rest_e[0])
    rest_e, rest_o = rest_e[1:], rest_o[1:]
  return out + rest_e + rest_o


def _sort_network(wires):
  """Sorts a list of arrays element-wise (Batcher's odd-even merge sort, any length)."""
  if len(wires) <= 1:
    return list(wires)
  half = len(wires) // 2
  return _odd_even_merge(_sort_network(wires[:half]), _sort_network(wires[half:]))


def _sorted_windows(x, size, axis, cache):
  """Element ``i`` is the ``i``-th smallest of ``x[p:p + size]`` along ``axis`` for every ``p``."""
  if size not in cache:
    if size == 1:
      cache[size] = [x]
    else:
      first = 1 << ((size - 1).bit_length() - 1)  # largest power of two below size
      n_out = x.shape[axis] - size + 1
      a = [jax.lax.slice_in_dim(t, 0, n_out, axis=axis) for t in _sorted_windows(x, first, axis, cache)]
      b = [jax.lax.slice_in_dim(t, first, first + n_out, axis=axis)
           for t in _sorted_windows(x, size - first, axis, cache)]
      cache[size] = _odd_even_merge(a, b)
  return cache[size]


# Windows up to this many values use the sorting network, longer ones the bisection
# (benchmarks/median_filter.py: on a [2, 2049, 1292] spectrogram the network is faster up to 31
# values and slower, with 4x the memory, from 45).
_NETWORK_MAX_SIZE = 32
# Rows per block of the bisection: about 256 KiB of keys, so a block's counts stay in cache.
_BISECT_BLOCK_BYTES = 1 << 18


def _order_keys(x):
  """``x`` as unsigned integer keys of its width that sort as its values do (floats: IEEE 754 order)."""
  dtype = jnp.dtype(x.dtype)
  if dtype == jnp.bool_:
    return x.astype(jnp.uint8)
  key_dtype = jnp.dtype(f"uint{8 * dtype.itemsize}")
  bits = jax.lax.bitcast_convert_type(x, key_dtype)
  sign = key_dtype.type(1 << (8 * dtype.itemsize - 1))
  if jnp.issubdtype(dtype, jnp.floating):
    return jnp.where(bits >= sign, ~bits, bits | sign)
  if jnp.issubdtype(dtype, jnp.signedinteger):
    return bits ^ sign
  return bits


def _from_order_keys(keys, dtype):
  """The inverse of `_order_keys`."""
  dtype = jnp.dtype(dtype)
  if dtype == jnp.bool_:
    return keys.astype(jnp.bool_)
  sign = keys.dtype.type(1 << (8 * dtype.itemsize - 1))
  if jnp.issubdtype(dtype, jnp.floating):
    keys = jnp.where(keys >= sign, keys ^ sign, ~keys)
  elif jnp.issubdtype(dtype, jnp.signedinteger):
    keys = keys ^ sign
  return jax.lax.bitcast_convert_type(keys, dtype)


def _bisect_rank(rows, size, rank):
  """``[b, n] -> [b, n - size + 1]``: the ``rank``-th smallest key of each window of ``size`` along rows."""
  n_out = rows.shape[1] - size + 1
  one = rows.dtype.type(1)

  def count_at_or_below(trial):
    def add(j, count):
      return count + (jax.lax.dynamic_slice_in_dim(rows, j, n_out, axis=1) <= trial).astype(jnp.int32)
    return jax.lax.fori_loop(0, size, add, jnp.zeros(trial.shape, jnp.int32), unroll=8)

  def next_bit(i, low):  # the answer lies in [low, low + 2 ** (bit + 1) - 1]
    step = one << (rows.dtype.type(8 * rows.dtype.itemsize - 1) - i.astype(rows.dtype))
    return jnp.where(count_at_or_below(low + (step - one)) > rank, low, low + step)

  return jax.lax.fori_loop(0, 8 * rows.dtype.itemsize, next_bit, jnp.zeros((rows.shape[0], n_out), rows.dtype))


def _bisect_windows(padded, size, axis):
  """Running median of ``padded`` (already padded by ``size - 1`` along ``axis``) by radix bisection."""
  x = jnp.moveaxis(padded, axis, -1)
  lead, n = x.shape[:-1], x.shape[-1]
  rows = _order_keys(x.reshape(-1, n))
  n_rows = rows.shape[0]
  block = max(1, min(n_rows, _BISECT_BLOCK_BYTES // (rows.dtype.itemsize * n)))
  n_blocks = -(-n_rows // block)
  rows = jnp.pad(rows, ((0, n_blocks * block - n_rows), (0, 0)))
  keys = jax.lax.map(lambda r: _bisect_rank(r, size, size // 2), rows.reshape(n_blocks, block, n))
  out = _from_order_keys(keys.reshape(n_blocks * block, -1)[:n_rows], x.dtype)
  return jnp.moveaxis(out.reshape(lead + (n - size + 1,)), -1, axis)


@functools.partial(jax.jit, static_argnames=("size", "axis"))
def _median_filter(x, *, size, axis):
  pad = [(0, 0)] * x.ndim
  pad[axis] = (size // 2, size - 1 - size // 2)
  padded = jnp.pad(x, pad, mode="symmetric")
  if size > _NETWORK_MAX_SIZE:
    return _bisect_windows(padded, size, axis)
  return _sorted_windows(padded, size, axis, {})[size // 2]


def median_filter(x: ArrayLike, *, size: int, axis: int = -1) -> jax.Array:
  """One-dimensional running median along ``axis``, as `scipy.ndimage.median_filter`.

  The boundary is ``mode="reflect"`` (half-sample symmetric: ``d c b a | a b c d``),
  and windows are placed as scipy places them: the window for position ``p``
  covers ``p - size // 2`` to ``p - size // 2 + size - 1``; for even sizes the
  output is the upper median (rank ``size // 2``), as in scipy.

  Args:
    x: real array of any shape ``[...]`` (e.g. ``[..., n_bins, n_frames]``).
    size: window length in samples along ``axis``, at most ``x.shape[axis]``.
    axis: the axis to filter.

  Returns:
    the filtered array, same shape and dtype as ``x``.
  """
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.complexfloating):
    raise ParameterError(f"median_filter input must be real, got dtype {x.dtype}")
  if x.ndim == 0:
    raise ParameterError("median_filter input must have at least one dimension")
  if not -x.ndim <= axis < x.ndim:
    raise ParameterError(f"axis={axis} is out of range for an array of {x.ndim} dimensions")
  check_positive_int("size", size)
  axis = axis % x.ndim
  if size > x.shape[axis]:
    raise ParameterError(f"kernel size={size} is longer than the signal ({x.shape[axis]} along axis {axis})")
  return _median_filter(x, size=int(size), axis=axis)
