"""How `mssjax.metrics.bss_eval_v4` hands a track to XLA, and reads time ranges of it.

A C-contiguous track is read in place: its flat view from the first 64-byte boundary on is
aliased by ``jax.device_put`` and copies of its first and last elements travel apart
(`aligned_split`, `FlatSignal`); anything else is copied once into an aligned buffer (`host_buffer`).
Inside the jitted code `take` and `take_range` read ``signal[:, idx, :]`` from either form, and
`slice_range` the ranges that lie inside the signal (`slices_inside` tells which); `split_scan`
loops over the steps that read across an end apart from those that read inside.
"""

from __future__ import annotations

import contextlib
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@contextlib.contextmanager
def no_hugepages():
  """numpy's ``madvise(MADV_HUGEPAGE)`` on new large arrays turned off while the block runs.

  Where the kernel's transparent-huge-page defrag setting is "madvise" (a common
  default), faulting in a hinted buffer can stall in memory compaction: the
  staging copies of a long track took several times longer, and varied from
  call to call, than with 4 KiB pages (commit 4c383dd). Other threads
  allocating meanwhile merely miss the hint.
  """
  toggle = getattr(getattr(np, "_core", np).multiarray, "_set_madvise_hugepage", None)
  previous = toggle(False) if toggle is not None else None
  try:
    yield
  finally:
    if toggle is not None:
      toggle(previous)


def host_buffer(x, dtype):
  """``x`` as a C-contiguous, 64-byte aligned ``dtype`` array that ``jax.device_put`` aliases.

  XLA's CPU client aliases an aligned host buffer and copies any other with a slow path,
  several times slower than numpy's own copy (commit a895aab). numpy's large buffers are
  16-byte aligned, so most inputs need one numpy copy here. The copy lands half a
  page away from the source's offset in its page: at equal offsets (4K aliasing)
  numpy's copy is slower. It is allocated without numpy's huge-page hint
  (`no_hugepages`).
  """
  dtype = np.dtype(dtype)
  if x.dtype == dtype and x.flags.c_contiguous and x.ctypes.data % 64 == 0:
    return x
  with no_hugepages():
    flat = np.empty(x.size + 8192 // dtype.itemsize, dtype)
  target = (x.ctypes.data + 2048) % 4096 // 64 * 64
  offset = (target - flat.ctypes.data) % 4096 // dtype.itemsize
  out = flat[offset:offset + x.size].reshape(x.shape)
  np.copyto(out, x, casting="unsafe")  # astype's casting
  return out


EDGE = 16
"""Elements kept apart at each end of a `FlatSignal`: 64 bytes of float32, so the first 64-byte
boundary of any float32 or float64 track lies among its first ``EDGE`` elements."""

SLICE_FROM = EDGE
"""`slice_range` reads samples ``[SLICE_FROM, n_samples - SLICE_FROM)`` only: past the ends."""


def aligned_split(x, dtype):
  """``(head, body, tail, k)``: ``x`` flattened, for `FlatSignal`; None if ``x`` cannot be read in place.

  ``body`` is a view of the flat elements ``[k, k + size - EDGE)``, starting at the first 64-byte
  boundary (``jax.device_put`` aliases it: no copy); ``head`` and ``tail`` are copies of the first and
  last ``EDGE`` elements, and ``k`` (a scalar argument, not a shape) is the boundary's offset. Every
  shape depends on ``x.size`` alone, not on where numpy placed ``x``: one compiled program serves
  every placement, so JAX's persistent cache finds it in the next process. (With the head's length
  as a shape, one track compiled several variants per process, each a cache miss: commit 0c6d9d5.)
  """
  dtype = np.dtype(dtype)
  if x.dtype != dtype or not x.flags.c_contiguous:
    return None
  skip = -x.ctypes.data % 64
  if skip % dtype.itemsize:
    return None
  flat = x.reshape(-1)
  if flat.size < 2 * EDGE:  # a tiny array: copied instead
    return None
  k = skip // dtype.itemsize
  return flat[:EDGE].copy(), flat[k:k + flat.size - EDGE], flat[-EDGE:].copy(), np.int32(k)


@dataclasses.dataclass(frozen=True)
class FlatSignal:
  """A ``[S, n_samples, C]`` signal held as the parts of `aligned_split` (read with `take`).

  Built inside the jitted function from its array arguments (not a pytree: ``shape`` is static).
  """
  head: jax.Array
  body: jax.Array
  tail: jax.Array
  k: jax.Array
  shape: tuple[int, int, int]


def take(signal, idx):
  """``signal[:, idx, :]``, ``[S, *idx.shape, C]``, for an array or a `FlatSignal`; ``idx`` in range."""
  if not isinstance(signal, FlatSignal):
    return signal[:, idx, :]
  n_src, n_samples, n_ch = signal.shape
  size = n_src * n_samples * n_ch
  src = jnp.arange(n_src).reshape((n_src,) + (1,) * (idx.ndim + 1))
  pos = (src * n_samples + idx[None, ..., None]) * n_ch + jnp.arange(n_ch)
  get = lambda part, i: part.at[jnp.clip(i, 0, part.shape[0] - 1)].get(mode="promise_in_bounds")
  values = get(signal.body, pos - signal.k)
  values = jnp.where(pos < EDGE, get(signal.head, pos), values)
  return jnp.where(pos >= size - EDGE, get(signal.tail, pos - (size - EDGE)), values)


def take_range(signal, start, length):
  """``signal[:, start : start + length, :]``, ``[S, length, C]``, zero outside ``[0, n_samples)``.

  An element gather, valid for any range; `slice_range` is the fast read of a range known to lie
  inside the signal.
  """
  n_samples = signal.shape[1]
  idx = start + jnp.arange(length, dtype=jnp.int32)  # the start's dtype (32-bit where it is)
  inside = (idx >= 0) & (idx < n_samples)
  return jnp.where(inside[None, :, None], take(signal, jnp.clip(idx, 0, n_samples - 1)), 0)


def slice_range(signal, start, length):
  """``signal[:, start : start + length, :]`` for a range inside ``[SLICE_FROM, n_samples - SLICE_FROM)``.

  One dynamic slice per source and no branch, so XLA fuses the read into whatever consumes it
  (the FFT's padding, the window sums). Reading through a ``lax.cond`` that chose between this
  and `take_range` made XLA copy every range twice (the branch's result, then a transposed
  layout). Outside that range ``lax.dynamic_slice`` clamps the start, so the caller must send
  such ranges to `take_range`.
  """
  n_src, n_samples, n_ch = signal.shape
  if not isinstance(signal, FlatSignal):
    return jax.lax.dynamic_slice_in_dim(signal, start, length, axis=1)
  return jnp.stack([
      jax.lax.dynamic_slice_in_dim(signal.body, (s * n_samples + start) * n_ch - signal.k, length * n_ch)
      .reshape(length, n_ch) for s in range(n_src)])


def slices_inside(starts, length, n_samples):
  """Whether each range ``[start, start + length)`` may be read by `slice_range` (numpy, static)."""
  starts = np.asarray(starts)
  return (starts >= SLICE_FROM) & (starts + length <= n_samples - SLICE_FROM)


def split_scan(step, carry, steps, inside):
  """``lax.scan`` of ``step(carry, i, inside)`` over ``steps``: those with ``inside`` false, then the rest.

  ``inside`` (numpy bool, static) marks the steps whose reads lie inside the track
  (`slices_inside`): they run in a loop of their own, compiled with plain slices.
  Returns the final carry and the steps' outputs stacked in the order of ``steps``.
  """
  outputs, order = [], []
  for flag in (False, True):
    idx = np.flatnonzero(inside == flag)
    if idx.size:
      carry, out = jax.lax.scan(lambda c, i, flag=flag: step(c, i, flag), carry, jnp.asarray(steps[idx]))
      outputs.append(out)
      order.append(idx)
  if len(outputs) == 1:
    return carry, outputs[0]
  order = np.argsort(np.concatenate(order)).astype(np.int32)  # 32-bit: its gradient's scatter lowers without x64
  return carry, jax.tree.map(lambda *parts: jnp.concatenate(parts)[order], *outputs)


__all__ = ["EDGE", "SLICE_FROM", "FlatSignal", "aligned_split", "host_buffer", "no_hugepages", "slice_range",
           "slices_inside", "split_scan", "take", "take_range"]
