"""Runs a separator exported by ``python -m mssjax export``, with nothing of mssjax but this file.

An exported separator is two files (`mssjax.deploy.export` writes them):

- ``OUT``: a serialised `jax.export` module (StableHLO) of the chunk
  separator, mixture ``[2, chunk_samples]`` float32 -> stems
  ``[4, 2, chunk_samples]`` in the order of ``targets``; the STFT, the
  masks (or the network) and the iSTFT are all inside it, and so are the
  weights;
- ``OUT.json``: what the module needs around it: the sample rate, the chunk
  and overlap in samples, the targets, the platforms it was lowered for, the
  versions it was made with and the module's SHA-256.

This module imports only jax, numpy and the standard library, so that the file
can be copied next to an application that has no mssjax installed::

    import exported                                   # this file, copied
    separator = exported.load("unet.jaxexport")
    stems = separator.separate(mixture)               # [2, n] at 44.1 kHz -> {"vocals": [2, n], ...}

Long songs are cut into chunks of ``chunk_samples`` that overlap by
``overlap_samples`` and joined by windowed overlap-add, exactly as
`mssjax.separate` does (raised-cosine cross-fades, the sum divided by the sum
of the weights; the last chunk zero-padded), so the stems equal those of
``python -m mssjax separate`` on the same song. Mono is separated as dual mono
and the stems averaged back; more than two channels are separated one by one
as dual mono. Resampling is left to the caller: the mixture must be at the
artifact's ``sample_rate``.

A missing, corrupt or incompatible pair of files (another format version, a
module that this jax cannot read, a platform it was not lowered for) raises
`ExportedError` naming the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import itertools
import pathlib
from typing import Any, NamedTuple

import jax
import numpy as np
from jax import export as jax_export

FORMAT = "mssjax.exported"
FORMAT_VERSION = 2
"""The version of the pair of files this loader reads; `mssjax.deploy.export` writes the same (2: the JSON
carries ``document_sha256``, a digest of its own fields)."""


class ExportedError(ValueError):
  """An exported separator is missing, corrupt, or cannot run here (the message names the file)."""


def document_digest(document: dict) -> str:
  """SHA-256 (hex) of a JSON document's fields other than ``document_sha256``, in canonical form
  (sorted keys, no spaces): what ``document_sha256`` holds, so an edited field is noticed."""
  body = {key: value for key, value in document.items() if key != "document_sha256"}
  return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def metadata_path(path: str | os.PathLike) -> pathlib.Path:
  """The JSON beside an exported module: ``OUT`` -> ``OUT.json``."""
  path = pathlib.Path(path)
  return path.with_name(path.name + ".json")


@dataclasses.dataclass(frozen=True)
class Metadata:
  """The JSON beside an exported module (the fields the loader uses; the rest is in ``document``).

  Attributes:
    method: the separator's registry name (``"unet"``, ``"hpss_repet"``, ...).
    sample_rate: the rate in Hz the module separates at.
    chunk_samples: the module's input length (it is exported for this length).
    overlap_samples: overlap of consecutive chunks in samples.
    targets: the stems' names, in the module's output order.
    platforms: the platforms the module was lowered for (``"cpu"``, ``"cuda"``, ...).
    sha256: the module file's SHA-256 (hex).
    document: the whole JSON document.
  """

  method: str
  sample_rate: int
  chunk_samples: int
  overlap_samples: int
  targets: tuple[str, ...]
  platforms: tuple[str, ...]
  sha256: str
  document: dict


def read_metadata(path: str | os.PathLike) -> Metadata:
  """The metadata of the exported module at ``path`` (read from ``path.json``), checked.

  Raises:
    ExportedError: a missing or unreadable JSON, another format or format
      version, or missing or malformed fields.
  """
  meta = metadata_path(path)
  try:
    document = json.loads(meta.read_text(encoding="utf-8"))
  except FileNotFoundError as e:
    raise ExportedError(f"{meta}: no such file (the JSON that `python -m mssjax export` writes beside "
                        f"{pathlib.Path(path).name})") from e
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ExportedError(f"{meta}: not a readable JSON document ({e})") from e
  if not isinstance(document, dict) or document.get("format") != FORMAT:
    raise ExportedError(f"{meta}: not an mssjax exported separator (format={_get(document, 'format')!r}, "
                        f"expected {FORMAT!r})")
  if document.get("format_version") != FORMAT_VERSION:
    raise ExportedError(f"{meta}: format_version={document.get('format_version')!r}, but this loader reads "
                        f"format_version={FORMAT_VERSION} (made by mssjax {document.get('mssjax_version')!r}); "
                        "export it again with this version")
  if document.get("document_sha256") != document_digest(document):
    raise ExportedError(f"{meta}: its fields were edited or damaged after export (document_sha256 does not "
                        "match them; the targets, rate and chunking must be the module's own): export it again")
  try:
    fields = Metadata(
        method=str(document["method"]), sample_rate=_positive(document, "sample_rate"),
        chunk_samples=_positive(document, "chunk_samples"), overlap_samples=int(document["overlap_samples"]),
        targets=tuple(str(t) for t in document["targets"]), platforms=tuple(str(p) for p in document["platforms"]),
        sha256=str(document["module_sha256"]), document=document)
  except (KeyError, TypeError, ValueError) as e:
    raise ExportedError(f"{meta}: malformed metadata ({type(e).__name__}: {e})") from e
  if not 0 <= fields.overlap_samples < fields.chunk_samples:
    raise ExportedError(f"{meta}: overlap_samples={fields.overlap_samples} must be in "
                        f"[0, chunk_samples={fields.chunk_samples})")
  return fields


def _get(document: Any, key: str) -> Any:
  return document.get(key) if isinstance(document, dict) else None


def _positive(document: dict, key: str) -> int:
  value = document[key]
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise ValueError(f"{key}={value!r} must be a positive integer")
  return value


def _deserialize(path: pathlib.Path, meta: Metadata) -> jax_export.Exported:
  """The module at ``path``, its checksum and calling convention checked."""
  try:
    data = path.read_bytes()
  except FileNotFoundError as e:
    raise ExportedError(f"{path}: no such file") from e
  except OSError as e:
    raise ExportedError(f"{path}: cannot be read ({e.strerror or e})") from e
  digest = hashlib.sha256(data).hexdigest()
  if digest != meta.sha256:
    raise ExportedError(f"{path}: corrupt or replaced (SHA-256 {digest[:12]}..., "
                        f"{metadata_path(path).name} records {meta.sha256[:12]}...)")
  try:
    exported = jax_export.deserialize(bytearray(data))
  except Exception as e:  # flatbuffers and jax raise many kinds on foreign bytes
    raise ExportedError(f"{path}: this jax {jax.__version__} cannot read the module ({type(e).__name__}: {e}); "
                        f"it was made with jax {meta.document.get('jax_version')!r}") from e
  low = jax_export.minimum_supported_calling_convention_version
  high = jax_export.maximum_supported_calling_convention_version
  if not low <= exported.calling_convention_version <= high:
    raise ExportedError(f"{path}: calling convention version {exported.calling_convention_version}, but jax "
                        f"{jax.__version__} runs versions {low} to {high}; export it again with this jax")
  return exported


def _check_platform(path: pathlib.Path, exported: jax_export.Exported) -> str:
  """The platform this process runs on, if the module was lowered for it."""
  here = jax_export.default_export_platform()
  if here not in exported.platforms:
    raise ExportedError(f"{path}: exported for {', '.join(exported.platforms)}, but jax here runs on {here}; "
                        f"export it again with --platforms {here} (or run with JAX_PLATFORMS="
                        f"{exported.platforms[0]})")
  return here


def _check_shapes(path: pathlib.Path, exported: jax_export.Exported, meta: Metadata) -> None:
  """The module maps ``[2, chunk]`` float32 to ``[len(targets), 2, chunk]``, as its JSON says."""
  want_in = ((2, meta.chunk_samples), np.dtype(np.float32))
  want_out = ((len(meta.targets), 2, meta.chunk_samples), np.dtype(np.float32))
  got_in = [(tuple(a.shape), np.dtype(a.dtype)) for a in exported.in_avals]
  got_out = [(tuple(a.shape), np.dtype(a.dtype)) for a in exported.out_avals]
  if got_in != [want_in] or got_out != [want_out]:
    raise ExportedError(f"{path}: the module maps {got_in} to {got_out}, but {metadata_path(path).name} "
                        f"describes {want_in} to {want_out}")


class ExportedSeparator:
  """A loaded exported separator: ``separate(mixture [channels, n]) -> {target: [channels, n]}``.

  Attributes:
    path: the module file.
    metadata: its `Metadata`.
    exported: the deserialised `jax.export.Exported`.
    platform: the platform it runs on here.
  """

  def __init__(self, path: pathlib.Path, metadata: Metadata, exported: jax_export.Exported, platform: str):
    self.path, self.metadata, self.exported, self.platform = path, metadata, exported, platform
    self._call = jax.jit(exported.call)

  @property
  def sample_rate(self) -> int:
    return self.metadata.sample_rate

  @property
  def targets(self) -> tuple[str, ...]:
    return self.metadata.targets

  def separate_chunk(self, chunk: np.ndarray) -> np.ndarray:
    """``[2, chunk_samples]`` float32 -> ``[len(targets), 2, chunk_samples]`` float32 numpy (one module call)."""
    return np.asarray(self._call(np.asarray(chunk, dtype=np.float32)))

  def separate(self, mixture: np.ndarray, *, sample_rate: int | None = None) -> dict[str, np.ndarray]:
    """Separates a whole song by overlap-add of chunks (as `mssjax.separate.separate_array`).

    Args:
      mixture: ``[channels, n_samples]`` (any channel count) or ``[n_samples]`` (mono).
      sample_rate: the mixture's rate in Hz, checked against the artifact's
        when given (resample beforehand: this loader does not).

    Returns:
      dict ``{target: float32 [channels, n_samples]}`` (``[n_samples]`` for a 1-D input).

    Raises:
      ExportedError: another sample rate, a mixture that is not 1-D or 2-D,
        empty, or not finite.
    """
    if sample_rate is not None and sample_rate != self.sample_rate:
      raise ExportedError(f"{self.path}: separates audio at {self.sample_rate} Hz; resample the "
                          f"{sample_rate} Hz mixture first")
    mixture = np.asarray(mixture, dtype=np.float32)
    if mixture.ndim not in (1, 2) or mixture.shape[-1] == 0:
      raise ExportedError(f"mixture of shape {mixture.shape} must be [channels, n_samples] or [n_samples]")
    if not np.all(np.isfinite(mixture)):
      raise ExportedError("mixture holds NaN or Inf samples")
    squeeze = mixture.ndim == 1
    mixture = mixture[None] if squeeze else mixture
    if mixture.shape[0] == 2:
      stems = self._separate_stereo(mixture)
    else:  # dual mono, channel by channel, averaged back
      stems = np.stack([self._separate_stereo(np.stack([c, c])).mean(axis=1) for c in mixture], axis=1)
    return {t: (stems[i, 0] if squeeze else stems[i]) for i, t in enumerate(self.targets)}

  __call__ = separate

  def _separate_stereo(self, pair: np.ndarray) -> np.ndarray:
    return overlap_add(self.separate_chunk, pair, chunk_samples=self.metadata.chunk_samples,
                       overlap_samples=self.metadata.overlap_samples)


def load(path: str | os.PathLike) -> ExportedSeparator:
  """Loads the exported separator at ``path`` (and its ``path.json``), ready to run on this platform.

  Raises:
    ExportedError: a missing or corrupt file, another format version, a
      module this jax cannot run, or one not lowered for this platform.
  """
  path = pathlib.Path(path)
  meta = read_metadata(path)
  exported = _deserialize(path, meta)
  platform = _check_platform(path, exported)
  _check_shapes(path, exported, meta)
  return ExportedSeparator(path, meta, exported, platform)


# --- overlap-add (mssjax.separate uses these) --------------------------------------------------------


def crossfade_window(chunk_samples: int, overlap_samples: int, *, fade_in: bool = True, fade_out: bool = True
                     ) -> np.ndarray:
  """Overlap-add weights ``[chunk_samples]``: raised-cosine ramps over ``overlap_samples``, ones between.

  The ramps never reach zero (half-sample offset), so every sample has a positive total weight.
  """
  w = np.ones(chunk_samples, dtype=np.float32)
  if overlap_samples:
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap_samples) + 0.5) / overlap_samples)
    if fade_in:
      w[:overlap_samples] = ramp
    if fade_out:
      w[-overlap_samples:] = np.minimum(w[-overlap_samples:], ramp[::-1])
  return w


def chunk_starts(n_samples: int, chunk_samples: int, overlap_samples: int) -> list[int]:
  """Start samples of the chunks that cover ``n_samples`` (hop ``chunk_samples - overlap_samples``)."""
  hop = chunk_samples - overlap_samples
  count = 1 + max(0, -(-(n_samples - chunk_samples) // hop))
  return [i * hop for i in range(count)]


def overlap_add(separate_chunk, mixture: np.ndarray, *, chunk_samples: int, overlap_samples: int,
                progress=None) -> np.ndarray:
  """Applies ``separate_chunk`` (``[channels, chunk_samples] -> [n_sources, channels, chunk_samples]``) to a
  ``[channels, n_samples]`` signal by windowed overlap-add; returns float32 ``[n_sources, channels, n_samples]``.

  Every call gets exactly ``chunk_samples`` samples (the last chunk zero-padded).
  ``progress`` (a tqdm-like object), where given, is advanced once per chunk.
  `mssjax.separate` joins its chunks with `overlap_add_blocks`, of which this is the whole-array case.
  """
  return np.concatenate(list(overlap_add_blocks(separate_chunk, [mixture], chunk_samples=chunk_samples,
                                                overlap_samples=overlap_samples, progress=progress)), axis=-1)


def overlap_add_blocks(separate_chunk, blocks, *, chunk_samples: int, overlap_samples: int, progress=None,
                       batch_size: int = 1):
  """`overlap_add` over a signal that comes in blocks, yielding the output as soon as it is final.

  Args:
    separate_chunk: ``[..., chunk_samples] -> [..., chunk_samples]`` (any leading shape out); with
      ``batch_size > 1``, ``[b, ..., chunk_samples] -> [b, ..., chunk_samples]`` for ``b <= batch_size``
      consecutive chunks at a time (the last batch of a signal may be shorter).
    blocks: iterable of float ``[..., k]`` arrays (any ``k``, one leading shape), the signal in order.
    chunk_samples, overlap_samples, progress: as `overlap_add` (``progress`` advances by a batch's chunks).
    batch_size: chunks per call of ``separate_chunk``; 1: one chunk, without the batch axis.

  Yields:
    float32 ``[..., k']`` blocks whose concatenation is `overlap_add`'s output for the whole signal,
    sample for sample, whatever ``batch_size``: after chunk ``i`` the samples before chunk ``i + 1``'s
    start are final. Memory holds ``batch_size`` chunks of input and output and ``overlap_samples`` of
    output, whatever the length.
  """
  hop = chunk_samples - overlap_samples
  carried = carried_weight = None  # earlier chunks' weighted sum over the next chunk's first overlap_samples
  chunks = _cut_chunks(blocks, chunk_samples=chunk_samples, overlap_samples=overlap_samples)
  while batch := list(itertools.islice(chunks, batch_size)):
    if batch_size == 1:
      outs = [separate_chunk(batch[0].piece)]
    else:
      outs = separate_chunk(np.stack([chunk.piece for chunk in batch]))
    if progress is not None:
      progress.update(len(batch))
    for chunk, out in zip(batch, outs):
      out = np.asarray(out, dtype=np.float32)[..., :chunk.length] * chunk.weight
      total = chunk.weight
      if carried is not None:
        out[..., :overlap_samples] += carried
        total[:overlap_samples] += carried_weight
      if chunk.last:
        out /= total
        yield out
        return
      carried, carried_weight = out[..., hop:].copy(), total[hop:]  # a copy, so `out` is not kept
      out = out[..., :hop]
      out /= total[:hop]
      yield out


class _Chunk(NamedTuple):
  """One chunk of `_cut_chunks`: ``piece`` ``[..., chunk_samples]`` (zero-padded), of which ``length``
  samples are the signal's, its overlap-add ``weight`` ``[length]``, and whether it is the ``last``."""
  piece: np.ndarray
  length: int
  weight: np.ndarray
  last: bool


def _cut_chunks(blocks, *, chunk_samples: int, overlap_samples: int):
  """The chunks of a signal that comes in blocks (`_Chunk` s, in order), reading the blocks only as far as needed."""
  hop = chunk_samples - overlap_samples
  source = iter(blocks)
  pending, ended, index = None, False, 0  # pending: the input from the next chunk's start on
  while True:
    parts, have = ([] if pending is None else [pending]), (0 if pending is None else pending.shape[-1])
    while not ended and have <= chunk_samples:
      block = next(source, None)
      if block is None:
        ended = True
      else:
        parts.append(np.asarray(block, dtype=np.float32))
        have += parts[-1].shape[-1]
    pending = None if not parts else parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
    if pending is None:
      return
    last = pending.shape[-1] <= chunk_samples
    piece = pending[..., :chunk_samples]
    length = piece.shape[-1]
    if length < chunk_samples:
      piece = np.pad(piece, [(0, 0)] * (piece.ndim - 1) + [(0, chunk_samples - length)])
    weight = crossfade_window(chunk_samples, overlap_samples, fade_in=index > 0, fade_out=not last)[:length]
    yield _Chunk(piece, length, weight, last)
    if last:
      return
    pending, index = pending[..., hop:], index + 1
