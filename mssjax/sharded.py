"""Many tracks of equal length in one jitted call, the track axis split over devices.

A one-axis mesh (``"tracks"``, `track_mesh`) spreads a batch of tracks over
devices; each device runs the per-track program on its own share under
`jax.shard_map`, looping over its tracks with ``lax.map`` as the separators
and BSSEval already do for a batch. No value crosses devices, so each track's
result is that of running it alone. Used by `separate_tracks` (the
separators), `separate_chunks` (a song's chunks: ``separate --batch-size``)
and `mssjax.metrics.batched` (BSSEval v4).

The track count is padded to a multiple of the device count by repeating the
last track (zeros could be an invalid input: BSSEval refuses silent
references); the padding's results are dropped. `separate_chunks` pads
with zeros instead, which no device computes (each loops over its real
chunks only), so a song's last, shorter batch costs no more than its chunks.

The mesh defaults to this process's devices (`jax.local_devices()`): with
several processes, each process runs the tracks it was given and never waits
for another's. A mesh over several processes works too, where every process
passes the same number of tracks (its own) and gets back its own tracks'
results.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.typing import ArrayLike

from mssjax.errors import ParameterError, check_memory, check_positive_int
from mssjax.separators import Separator

AXIS = "tracks"
"""The mesh axis the tracks are split over."""


def track_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A one-axis ``("tracks",)`` mesh over ``devices`` (default: this process's devices)."""
  devices = jax.local_devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (AXIS,))


def local_device_count(mesh: Mesh) -> int:
  """How many of ``mesh``'s devices belong to this process."""
  return sum(d.process_index == jax.process_index() for d in mesh.devices.flat)


def pad_tracks(x: np.ndarray, multiple: int) -> np.ndarray:
  """``x`` with its last track (leading row) repeated up to a multiple of ``multiple`` tracks."""
  n = -(-x.shape[0] // multiple) * multiple
  if x.shape[0] == n:
    return x
  return np.concatenate([x, np.repeat(x[-1:], n - x.shape[0], axis=0)])


def place_tracks(x: np.ndarray, mesh: Mesh) -> jax.Array:
  """This process's tracks on ``mesh``, split along the leading axis."""
  sharding = NamedSharding(mesh, PartitionSpec(AXIS))
  if local_device_count(mesh) == mesh.size:
    return jax.device_put(x, sharding)
  return jax.make_array_from_process_local_data(sharding, x)


def replicate(tree, mesh: Mesh):
  """A pytree of arrays (every process holds the same values) replicated on every device of ``mesh``."""
  sharding = NamedSharding(mesh, PartitionSpec())
  if local_device_count(mesh) == mesh.size:
    return jax.device_put(tree, sharding)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def local_tracks(x: jax.Array) -> np.ndarray:
  """This process's rows of a track-sharded array, in order, as numpy."""
  shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
  return np.concatenate([np.asarray(s.data) for s in shards])


def over_tracks(fn: Callable, mesh: Mesh, n_outputs: int) -> Callable:
  """``fn`` (a function of track-batched arrays) jit-compiled under `jax.shard_map` over ``mesh``.

  Every input and each of the ``n_outputs`` outputs is split on its leading axis.
  ``check_vma=False``: the per-track programs build ``lax.map`` / ``scan``
  carries from constants, which the check would have to be told vary over the
  mesh axis; they use no collective, so there is nothing for it to protect.
  """
  spec = PartitionSpec(AXIS)
  out_specs = spec if n_outputs == 1 else (spec,) * n_outputs
  return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=out_specs, check_vma=False))


def separate_tracks(separator: Separator, mixtures: ArrayLike, references: ArrayLike | None = None, *,
                    mesh: Mesh | None = None) -> dict[str, np.ndarray]:
  """A separator on a batch of tracks of equal length, the tracks split over ``mesh``'s devices.

  Args:
    separator: a separator (its per-track ``apply`` and parameters).
    mixtures: float32 ``[n_tracks, 2, n_samples]`` at the separator's rate (this process's tracks).
    references: for oracles, the true stems ``[n_tracks, len(targets), 2, n_samples]``.
    mesh: a one-axis mesh (`track_mesh`; default: this process's devices).

  Returns:
    ``{target: float32 [n_tracks, 2, n_samples]}``, each track's stems equal to
    ``separator(mixture)`` of that track alone.

  Raises:
    ParameterError: not ``[n_tracks, 2, n_samples]``, or an oracle without references.
  """
  mixtures = np.asarray(mixtures, np.float32)
  if mixtures.ndim != 3 or mixtures.shape[1] != 2 or 0 in mixtures.shape:
    raise ParameterError(f"mixtures of shape {mixtures.shape} must be [n_tracks, 2, n_samples]")
  inputs = [mixtures]
  if separator.needs_references:
    if references is None:
      raise ParameterError(f"separator {separator.name!r} is an oracle: pass the true stems as references")
    references = np.asarray(references, np.float32)
    want = (mixtures.shape[0], len(separator.targets)) + mixtures.shape[1:]
    if references.shape != want:
      raise ParameterError(f"references of shape {references.shape} must be {want} for the mixtures")
    inputs.append(references)
  mesh = track_mesh() if mesh is None else mesh
  n_tracks = mixtures.shape[0]
  placed = [place_tracks(pad_tracks(x, local_device_count(mesh)), mesh) for x in inputs]
  params = replicate(separator.params, mesh)
  out = local_tracks(_separate_program(separator, mesh)(params, *placed))[:n_tracks]
  return {target: out[:, j] for j, target in enumerate(separator.targets)}


_PROGRAMS: dict[tuple[int, Mesh], tuple[Callable, Callable]] = {}
"""``(id(separator.apply), mesh) -> (separator.apply, program)``: one compiled program per separator and mesh
(separators hold configs, which are not hashable); the function is kept so its id stays its own."""


def _separate_program(separator: Separator, mesh: Mesh) -> Callable:
  apply = separator.apply
  cached = _PROGRAMS.get((id(apply), mesh))
  if cached is not None and cached[0] is apply:
    return cached[1]

  def per_device(params, *inputs):
    return jax.lax.map(lambda x: apply(params, *x), inputs)

  spec = PartitionSpec(AXIS)
  program = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(PartitionSpec(),) + (spec,) * (
      2 if separator.needs_references else 1), out_specs=spec, check_vma=False))
  _PROGRAMS[(id(apply), mesh)] = (apply, program)
  return program


# --- chunks of songs (mssjax.separate's --batch-size) ---------------------------------------------------


def chunk_mesh(batch_size: int) -> Mesh:
  """The mesh a batch of ``batch_size`` chunks is split over: this process's first ``min(batch_size, devices)``
  devices (a batch smaller than the device count leaves the others out instead of padding them)."""
  check_positive_int("batch_size", batch_size)
  return track_mesh(jax.local_devices()[:batch_size])


def separate_chunks(separator: Separator, mixtures: ArrayLike, *, batch_size: int | None = None,
                    mesh: Mesh | None = None) -> np.ndarray:
  """A separator on a batch of chunks (no references) in one compiled call, split over ``mesh``'s devices.

  Each device loops over its share of the batch (`jax.lax.while_loop`), so every chunk goes through the
  same per-chunk program as `Separator.separate_chunk` and the stems are bit for bit those of one call per
  chunk. A ``vmap`` of the chunks is not: XLA blocks the batched matmuls and convolutions differently, and
  the network's stems differed in the low bits (up to 1e-7); the classical recipes' did not.

  The program is compiled once for ``batch_size`` chunks (padded to a multiple of the mesh's devices), its
  XLA memory analysis checked against the memory available (`mssjax.errors.check_memory`) before it runs.
  A shorter batch (a song's last) reuses it: the padding is zeros that no device computes, as each device
  loops over its real chunks only.

  Args:
    separator: a separator that needs no references.
    mixtures: float32 ``[b, 2, n_samples]`` at the separator's rate.
    batch_size: the batch the program is compiled for (``>= b``; default ``b``).
    mesh: a one-axis mesh of this process's devices (default `chunk_mesh` of ``batch_size``).

  Returns:
    float32 numpy ``[b, len(targets), 2, n_samples]``.

  Raises:
    ParameterError: not ``[b, 2, n_samples]``, more than ``batch_size`` chunks, an oracle, or a batch that
      needs more memory than is available.
  """
  mixtures = np.asarray(mixtures, np.float32)
  if mixtures.ndim != 3 or mixtures.shape[1] != 2 or 0 in mixtures.shape:
    raise ParameterError(f"mixtures of shape {mixtures.shape} must be [n_chunks, 2, n_samples]")
  if separator.needs_references:
    raise ParameterError(f"separator {separator.name!r} is an oracle: it needs the true stems, not chunks alone")
  n_chunks = mixtures.shape[0]
  batch_size = n_chunks if batch_size is None else check_positive_int("batch_size", batch_size)
  if n_chunks > batch_size:
    raise ParameterError(f"mixtures of {n_chunks} chunks must be at most batch_size={batch_size}")
  mesh = chunk_mesh(batch_size) if mesh is None else mesh
  devices = local_device_count(mesh)
  per_device = -(-batch_size // devices)
  padded = np.zeros((per_device * devices,) + mixtures.shape[1:], np.float32)
  padded[:n_chunks] = mixtures
  counts = np.clip(n_chunks - per_device * np.arange(devices), 0, per_device).astype(np.int32)
  program = _chunk_program(separator, mesh, per_device * devices, mixtures.shape[-1], batch_size=batch_size)
  out = program(replicate(separator.params, mesh), place_tracks(padded, mesh), place_tracks(counts, mesh))
  return local_tracks(out)[:n_chunks]


_CHUNK_PROGRAMS: dict[tuple[int, Mesh, int, int], tuple[Callable, Callable]] = {}
"""``(id(separator.apply), mesh, chunks, n_samples) -> (separator.apply, compiled program)``."""


def _chunk_program(separator: Separator, mesh: Mesh, n_chunks: int, n_samples: int, *, batch_size: int) -> Callable:
  """`separate_chunks`' program for ``n_chunks`` chunks of ``n_samples`` (``batch_size`` padded to the mesh),
  compiled and its memory checked."""
  apply = separator.apply
  key = (id(apply), mesh, n_chunks, n_samples)
  cached = _CHUNK_PROGRAMS.get(key)
  if cached is not None and cached[0] is apply:
    return cached[1]
  n_targets = len(separator.targets)

  def per_device(params, mixtures, count):  # mixtures [c, 2, n]; count [1]: how many are real
    def one(i, out):
      return jax.lax.dynamic_update_index_in_dim(out, apply(params, mixtures[i]), i, axis=0)
    out = jnp.zeros((mixtures.shape[0], n_targets) + mixtures.shape[1:], jnp.float32)
    return jax.lax.fori_loop(0, count[0], one, out)

  spec = PartitionSpec(AXIS)
  program = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(PartitionSpec(), spec, spec), out_specs=spec,
                                  check_vma=False))
  compiled = program.lower(
      replicate(separator.params, mesh),
      jax.ShapeDtypeStruct((n_chunks, 2, n_samples), jnp.float32, sharding=NamedSharding(mesh, spec)),
      jax.ShapeDtypeStruct((local_device_count(mesh),), jnp.int32, sharding=NamedSharding(mesh, spec))).compile()
  stats = compiled.memory_analysis()
  if stats is not None:  # per device; on CPU this process's devices share the host's memory
    devices = local_device_count(mesh)
    need = stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes
    shared = devices if mesh.devices.flat[0].platform == "cpu" else 1
    check_memory(f"--batch-size {batch_size} ({separator.name}, chunk_seconds={n_samples / separator.sample_rate:g}, "
                 f"{devices} device{'s' if devices > 1 else ''})", need * shared)
  _CHUNK_PROGRAMS[key] = (apply, compiled)
  return compiled


__all__ = ["AXIS", "chunk_mesh", "local_device_count", "local_tracks", "over_tracks", "pad_tracks", "place_tracks",
           "replicate", "separate_chunks", "separate_tracks", "track_mesh"]
