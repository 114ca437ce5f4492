"""`Separator`: the one type every separator is, classical, oracle or trained network.

A separator is data: its name, the targets it returns, the rate it works at,
its config and parameters, and one pure jax function for one chunk of audio::

    apply(params, mixture [2, n]) -> stems [len(targets), 2, n]
    apply(params, mixture [2, n], references [len(targets), 2, n])   # oracles

`mssjax.separate` cuts a song into chunks of ``chunk_seconds`` (None: the
whole song in one call) joined over ``overlap_seconds``, resampled to
``sample_rate`` and back; `mssjax.sharded` splits tracks over devices;
`mssjax.deploy.export` serialises ``apply`` with its parameters. None of them asks
which kind of separator it holds: a network differs only in having parameters
and a `Network` description (what its ONNX export needs).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.typing import ArrayLike

from mssjax.errors import ParameterError, check_finite, check_memory, check_targets

__all__ = ["Separator", "Network", "ChunkProgram", "memory_bytes"]


class ChunkProgram(NamedTuple):
  """``apply`` for one chunk length, at each stage of `jax.jit`'s ahead-of-time compilation.

  Attributes:
    jaxpr: the traced program (``jax.extend.core.ClosedJaxpr``): its loops and their trip counts.
    lowered: the StableHLO before XLA's optimisations (``jax.stages.Lowered``).
    compiled: the executable (``jax.stages.Compiled``), called for each chunk.
  """

  jaxpr: Any
  lowered: Any
  compiled: Any


def memory_bytes(stats: Any) -> int:
  """Peak memory of a compiled program by XLA's memory analysis: its temporaries, arguments and outputs (bytes)."""
  return int(stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes)


class Network(NamedTuple):
  """What a trained mask network adds to its `Separator` (the ONNX export reads it).

  Attributes:
    graphdef: the model's `nnx.GraphDef` (its parameters are ``Separator.params``).
    n_fft, hop_length: its STFT.
    wiener_iterations: EM iterations of the multichannel Wiener filter (0: plain masks).
    shifts, channel_swap: test-time averaging passes.
    model_config: the experiment config it was trained with.
  """

  graphdef: nnx.GraphDef
  n_fft: int
  hop_length: int
  wiener_iterations: int
  shifts: int
  channel_swap: bool
  model_config: ml_collections.ConfigDict


@dataclasses.dataclass(frozen=True, eq=False)
class Separator:
  """A separator: ``separator(mixture) -> {target: stem}``.

  Attributes:
    name: the registry name (``"hpss_repet"``, ``"irm1"``, ``"unet"``...).
    targets: the names of the stems it returns, in order.
    sample_rate: the rate ``apply`` works at (Hz); `mssjax.separate` resamples to it and back.
    config: the settings it was built from.
    apply: the pure per-chunk function ``(params, mixture [2, n]) -> [len(targets), 2, n]``
      (oracles: ``(params, mixture, references [len(targets), 2, n])``).
    params: its parameters (a pytree of arrays; ``{}`` for the classical methods).
    needs_references: True for oracles, which need the true stems.
    chunk_seconds: the chunk `mssjax.separate` cuts a song into; None: the whole song at once.
    overlap_seconds: the overlap of consecutive chunks.
    network: for a trained mask network, its `Network`; None otherwise.
  """

  name: str
  targets: tuple[str, ...]
  sample_rate: int
  config: ml_collections.ConfigDict = dataclasses.field(repr=False)
  apply: Callable[..., jax.Array] = dataclasses.field(repr=False)
  params: Any = dataclasses.field(default_factory=dict, repr=False)
  needs_references: bool = False
  chunk_seconds: float | None = None
  overlap_seconds: float = 0.0
  network: Network | None = dataclasses.field(default=None, repr=False)

  def __post_init__(self):
    object.__setattr__(self, "targets", check_targets(self.targets, what=f"{self.name} targets"))
    if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, (int, np.integer)) or \
        self.sample_rate <= 0:
      raise ParameterError(f"sample_rate={self.sample_rate!r} must be a positive integer (Hz)")
    object.__setattr__(self, "sample_rate", int(self.sample_rate))
    if self.chunk_seconds is not None:
      object.__setattr__(self, "chunk_seconds", check_finite("chunk_seconds", self.chunk_seconds, minimum=0,
                                                             strict=True))
    object.__setattr__(self, "overlap_seconds", check_finite("overlap_seconds", self.overlap_seconds, minimum=0))
    if self.chunk_seconds is not None and self.overlap_seconds >= self.chunk_seconds:
      raise ParameterError(f"overlap_seconds={self.overlap_seconds!r} must be shorter than chunk_seconds="
                           f"{self.chunk_seconds!r}")
    object.__setattr__(self, "_chunk", jax.jit(self.apply))
    object.__setattr__(self, "_compiled", {})
    object.__setattr__(self, "_tracks", jax.jit(_over_tracks(self.apply)))

  @property
  def n_parameters(self) -> int:
    """Trained parameters (0 for the classical methods and the oracles)."""
    return int(sum(np.size(p) for p in jax.tree.leaves(self.params)))

  def chunk_function(self) -> Callable[..., jax.Array]:
    """``apply`` with the parameters bound: ``mixture [2, n] (, references) -> [len(targets), 2, n]``."""
    return lambda *inputs: self.apply(self.params, *inputs)

  def separate_chunk(self, mixture: ArrayLike, references: ArrayLike | None = None) -> np.ndarray:
    """One compiled call of ``apply``: ``[2, n]`` (and ``[len(targets), 2, n]``) -> numpy ``[len(targets), 2, n]``.

    Raises:
      ParameterError: the first chunk of a length needs more memory than is
        available (`compiled_chunk`), before it runs.
    """
    inputs = self._inputs(jnp.asarray(mixture, jnp.float32)[None],
                          None if references is None else jnp.asarray(references, jnp.float32)[None])
    return np.asarray(self.compiled_chunk(inputs[0].shape[-1])(self.params, *(x[0] for x in inputs)))

  def compiled_chunk(self, n_samples: int) -> Callable[..., jax.Array]:
    """``apply`` compiled ahead of time for chunks of ``n_samples``, its memory checked before it runs.

    XLA's memory analysis of the compiled chunk (its temporaries, inputs and
    outputs) is compared with the memory available (`mssjax.errors.check_memory`),
    so a chunk the machine cannot hold (a REPET-SIM similarity matrix of a
    1-hour chunk: 290 GiB) is one error naming ``chunk_seconds`` instead of
    the out-of-memory killer. One compilation per length, kept.
    """
    return self.chunk_program(n_samples).compiled

  def chunk_program(self, n_samples: int) -> ChunkProgram:
    """The `ChunkProgram` of chunks of ``n_samples``: traced, lowered and compiled once per length, kept
    (`compiled_chunk`; `mssjax.separators.cost` reads its cost and memory analyses)."""
    if n_samples not in self._compiled:
      shapes = [jax.ShapeDtypeStruct((2, n_samples), jnp.float32)]
      if self.needs_references:
        shapes.append(jax.ShapeDtypeStruct((len(self.targets), 2, n_samples), jnp.float32))
      traced = self._chunk.trace(self.params, *shapes)
      lowered = traced.lower()
      compiled = lowered.compile()
      stats = compiled.memory_analysis()
      if stats is not None:
        check_memory(f"chunk_seconds={n_samples / self.sample_rate:g} ({self.name}, {n_samples} samples)",
                     memory_bytes(stats))
      self._compiled[n_samples] = ChunkProgram(traced.jaxpr, lowered, compiled)
    return self._compiled[n_samples]

  def __call__(self, mixture: ArrayLike, references: ArrayLike | None = None) -> dict[str, jax.Array]:
    """The whole input in one compiled call, no chunking and no resampling.

    Args:
      mixture: ``[..., 2, n]`` at ``sample_rate``; leading dimensions are
        tracks of equal length (looped inside the call on CPU, vmapped elsewhere).
      references: for oracles, the true stems ``[..., len(targets), 2, n]``.

    Returns:
      ``{target: [..., 2, n]}`` in ``targets`` order.
    """
    mixture = _check_audio(mixture, "mixture")
    lead, n = mixture.shape[:-2], mixture.shape[-1]
    refs = None
    if references is not None:
      references = _check_audio(references, "references")
      if references.ndim < 3 or references.shape[:-3] != lead:
        raise ParameterError(f"references of shape {references.shape} must be "
                             f"{lead + (len(self.targets), 2, n)} for the mixture")
      refs = references.reshape((-1,) + references.shape[-3:])
    inputs = self._inputs(mixture.reshape((-1, 2, n)), refs)
    out = self._tracks(self.params, *inputs).reshape(lead + (len(self.targets), 2, n))
    return {target: out[..., j, :, :] for j, target in enumerate(self.targets)}

  def _inputs(self, mixtures: jax.Array, references: jax.Array | None) -> tuple[jax.Array, ...]:
    """``(mixtures,)`` or, for an oracle, ``(mixtures, references)``, their shapes checked."""
    if not self.needs_references:
      return (mixtures,)
    if references is None:
      raise ParameterError(f"separator {self.name!r} is an oracle: pass the true stems as references")
    want = (mixtures.shape[0], len(self.targets)) + mixtures.shape[1:]
    if references.shape != want:
      raise ParameterError(f"references of shape {references.shape[1:]} must be {want[1:]}: the mixture's "
                           f"shape for each of the targets {self.targets}")
    return mixtures, references


def _over_tracks(apply: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
  """``apply`` over a leading axis of tracks: looped inside the compiled call on CPU, else vmapped.

  On CPU the batched intermediates of several tracks leave the cache, and a
  vmapped recipe ran slower than one call per track; `jax.lax.map` runs one
  track at a time in one call (no per-call dispatch), and each result is
  exactly that of a single call. Accelerators get the vmapped batch.
  """
  if jax.default_backend() != "cpu":
    return lambda params, *inputs: jax.vmap(lambda *x: apply(params, *x))(*inputs)
  return lambda params, *inputs: jax.lax.map(lambda x: apply(params, *x), inputs)


def _check_audio(x: ArrayLike, name: str) -> jax.Array:
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.complexfloating):
    raise ParameterError(f"{name} must be real audio, got dtype {x.dtype}")
  x = x.astype(jnp.float32)
  if x.ndim < 2 or x.shape[-2] != 2:
    raise ParameterError(f"{name} must be stereo [..., 2, n_samples], got shape {x.shape}")
  if x.shape[-1] == 0 or x.size == 0:
    raise ParameterError(f"{name} of shape {x.shape} is empty")
  if not bool(jnp.all(jnp.isfinite(x))):
    raise ParameterError(f"{name} contains non-finite samples (NaN or inf)")
  return x
