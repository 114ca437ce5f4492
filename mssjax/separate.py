"""Separation of whole songs of any length, rate and channel count, in bounded memory.

A song is cut into overlapping chunks of fixed length; each chunk is separated
on its own and the chunks are joined by windowed overlap-add: inside an
overlap the two chunks cross-fade with raised-cosine weights, and the sum is
divided by the sum of the weights, so a separator that returns its input
unchanged gives back the song exactly.

Files are separated as streams (`separate_blocks`): the song is read block
by block (`mssjax.audio.read_blocks`), resampled by a streaming resampler
(soxr's, which gives the same samples as resampling the whole song), cut into
chunks, and each stem is written block by block as soon as the chunks that
cover it are done. Memory holds about one chunk of the song and its stems,
whatever the song's length (a 1-hour song: benchmarks/long_song.py). A
separator without a fixed chunk (``chunk_seconds=None``) takes the whole song
in one call, so its memory grows with the song.

A song's stems are written as a set: into a temporary folder beside the
song's folder, which then takes its place in one step
(`mssjax.fileio.atomic_folder`). A song that fails (an unreadable file, a full
disk, no memory, Ctrl-C) leaves no folder and no partial stems, and the other
songs of the batch go on.

Each separator works in stereo at its own rate (``separator.sample_rate``).
Other rates are resampled for the separator and the stems resampled back, so
outputs are at the input's rate and length; mono songs are separated as dual mono and the stems averaged back to
one channel; songs of more than two channels are separated channel by channel
(each as dual mono), so the stems keep the song's channel count.

The chunking is the separator's (``chunk_seconds``, ``overlap_seconds``,
checked when it is built; ``chunk_seconds=None`` separates the whole song in
one call), and its stems are named after its ``targets``.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import pathlib
import tempfile
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import soxr
import tqdm

from mssjax import audio, fileio
from mssjax.deploy import exported
from mssjax.errors import AudioError, ParameterError, check_finite, check_positive_int
from mssjax.separators import Separator


crossfade_window = exported.crossfade_window


def chunk_starts(n_samples: int, chunk_samples: int, overlap_samples: int) -> list[int]:
  """Start samples of the chunks that cover ``n_samples`` with the given overlap (`exported.chunk_starts`).

  Raises:
    ParameterError: unless ``chunk_samples >= 1`` and ``0 <= overlap_samples < chunk_samples``
      (so the hop is positive and the list is finite).
  """
  _check_chunking(chunk_samples, overlap_samples)
  return exported.chunk_starts(n_samples, chunk_samples, overlap_samples)


def _check_chunking(chunk_samples: int, overlap_samples: int) -> None:
  check_positive_int("chunk_samples", chunk_samples)
  if isinstance(overlap_samples, bool) or not isinstance(overlap_samples, (int, np.integer)) or \
      not 0 <= overlap_samples < chunk_samples:
    raise ParameterError(
        f"overlap_samples={overlap_samples!r} must be an integer in [0, chunk_samples={chunk_samples})")


def check_chunking(*, chunk_seconds: float, overlap_seconds: float, sample_rate: int) -> tuple[int, int]:
  """``(chunk, overlap)`` in samples at ``sample_rate``, checked.

  Raises:
    ParameterError: a chunk that is not a finite positive duration of at
      least one sample, or an overlap that is not finite, is negative, or is
      not shorter than the chunk (the hop would not be positive).
  """
  check_finite("chunk_seconds", chunk_seconds, minimum=0, strict=True)
  check_finite("overlap_seconds", overlap_seconds, minimum=0)
  chunk, overlap = int(round(chunk_seconds * sample_rate)), int(round(overlap_seconds * sample_rate))
  if chunk < 1:
    raise ParameterError(f"chunk_seconds={chunk_seconds!r} is shorter than one sample at {sample_rate} Hz")
  if overlap >= chunk:
    raise ParameterError(f"overlap_seconds={overlap_seconds!r} must be shorter than chunk_seconds="
                         f"{chunk_seconds!r}")
  return chunk, overlap


def chunk_samples(separator: Separator, n_samples: int | None = None) -> tuple[int, int]:
  """``(chunk, overlap)`` in samples at the separator's rate.

  Args:
    separator: the separator (its ``chunk_seconds`` and ``overlap_seconds``).
    n_samples: the song's length at the separator's rate; a separator whose
      ``chunk_seconds`` is None takes it whole (one chunk, no overlap), and
      a chunk longer than the song is the song (memory grows with the chunk:
      ``chunk_seconds=1e9`` would be 321 TiB of padding).
  """
  if separator.chunk_seconds is None:
    if n_samples is None:
      raise ParameterError(f"separator {separator.name!r} has no fixed chunk (chunk_seconds=None): "
                           "set chunk_seconds")
    return max(int(n_samples), 1), 0
  chunk, overlap = check_chunking(chunk_seconds=separator.chunk_seconds, overlap_seconds=separator.overlap_seconds,
                                  sample_rate=separator.sample_rate)
  if n_samples is not None and chunk > n_samples:
    return max(int(n_samples), 1), 0
  return chunk, overlap


def chunk_length(separator: Separator, *, n_samples: int, sample_rate: int) -> int:
  """The chunk (samples at the separator's rate) `separate_array` runs a song of ``n_samples`` at ``sample_rate``
  in: its ``chunk_seconds`` (the last chunk zero-padded to it, a short song too), or the whole song
  resampled where ``chunk_seconds`` is None. Its compiled program is `Separator.compiled_chunk`'s of that length."""
  if separator.chunk_seconds is None:
    return chunk_samples(separator, _resampled_length(n_samples, sample_rate, separator))[0]
  return chunk_samples(separator)[0]


def separate_in_chunks(separate_chunk: Callable[[np.ndarray], Any], mixture: np.ndarray, *, chunk_samples: int,
                       overlap_samples: int, progress: Any = None) -> np.ndarray:
  """Applies a chunk separator to a long signal by overlap-add.

  Args:
    separate_chunk: ``[channels, chunk_samples] -> [n_sources, channels, chunk_samples]``
      (numpy in, array out); it always receives exactly ``chunk_samples``
      samples (the last chunk is zero-padded), so a jitted separator compiles once.
    mixture: ``[channels, n_samples]``.
    chunk_samples: chunk length in samples.
    overlap_samples: overlap of consecutive chunks in samples (``< chunk_samples``).
    progress: optional tqdm-like object, advanced once per chunk.

  Returns:
    float32 numpy ``[n_sources, channels, n_samples]``.
  """
  _check_chunking(chunk_samples, overlap_samples)
  return exported.overlap_add(separate_chunk, np.asarray(mixture, dtype=np.float32), chunk_samples=chunk_samples,
                              overlap_samples=overlap_samples, progress=progress)


def separate_array(separator: Separator, mixture: np.ndarray, *, sample_rate: int,
                   progress: Any = None) -> dict[str, np.ndarray]:
  """Separates one song held in memory, in the separator's chunks, at its rate.

  Args:
    separator: a separator that needs no references.
    mixture: ``[channels, n_samples]`` (any channel count) or ``[n_samples]`` (mono).
    sample_rate: the mixture's rate in Hz; stems come back at this rate.
    progress: optional tqdm-like object, advanced once per chunk.

  Returns:
    dict ``{target: float32 [channels, n_samples]}`` in ``separator.targets``
    order (``[n_samples]`` for a 1-D input).

  Raises:
    ParameterError: a bad mixture, or an oracle (it needs the true stems).
  """
  mixture = np.asarray(mixture, dtype=np.float32)
  if mixture.ndim not in (1, 2) or mixture.shape[-1] == 0:
    raise ParameterError(f"mixture of shape {mixture.shape} must be [channels, n_samples] or [n_samples]")
  if not np.all(np.isfinite(mixture)):
    raise ParameterError("mixture holds NaN or Inf samples")
  squeeze = mixture.ndim == 1
  mixture = mixture[None] if squeeze else mixture
  stems = np.concatenate(list(separate_blocks(separator, [mixture], sample_rate=sample_rate,
                                              channels=mixture.shape[0], progress=progress)), axis=-1)
  return {t: (stems[i, 0] if squeeze else stems[i]) for i, t in enumerate(separator.targets)}


def separate_blocks(separator: Separator, blocks: Iterable[np.ndarray], *, sample_rate: int, channels: int,
                    progress: Any = None) -> Iterator[np.ndarray]:
  """Separates a song that comes in blocks, yielding its stems in blocks as they are done.

  The stems joined are `separate_array`'s, sample for sample; memory holds
  about one chunk, whatever the song's length (except for a separator whose
  ``chunk_seconds`` is None: it takes the whole song at once).

  Args:
    separator: a separator that needs no references.
    blocks: float ``[channels, k]`` blocks of the song, in order (any ``k``).
    sample_rate: the song's rate in Hz; the stems come at this rate.
    channels: the song's channel count.
    progress: optional tqdm-like object, advanced once per chunk.

  Yields:
    float32 ``[n_targets, channels, k']`` blocks, ``separator.targets`` in order.

  Raises:
    ParameterError: an oracle (it needs the true stems).
  """
  if separator.needs_references:
    raise ParameterError(f"separator {separator.name!r} is an oracle: it needs the true stems, not a song alone")
  song = _Counted(blocks)
  pairs = (_stereo_pairs(block) for block in song)  # [pairs, 2, k]
  stems = _separate_pairs(separator, _resampled(pairs, sample_rate, separator.sample_rate), progress)
  stems = (_from_stereo_pairs(block, channels) for block in _resampled(stems, separator.sample_rate, sample_rate))
  yield from _cut_to(stems, song)


class _Counted:
  """Iterates over ``blocks`` and counts their samples; ``done`` once they are all read."""

  def __init__(self, blocks: Iterable[np.ndarray]):
    self._blocks, self.samples, self.done = blocks, 0, False

  def __iter__(self) -> Iterator[np.ndarray]:
    for block in self._blocks:
      block = np.asarray(block, dtype=np.float32)
      self.samples += block.shape[-1]
      yield block
    self.done = True


def _cut_to(blocks: Iterable[np.ndarray], song: _Counted) -> Iterator[np.ndarray]:
  """The stems cut (or zero-padded) to the song's length, as the song's samples are counted."""
  written = 0
  for block in blocks:
    if song.done:
      block = block[..., :max(song.samples - written, 0)]
    written += block.shape[-1]
    if block.shape[-1]:
      yield block
  if written < song.samples:
    yield np.zeros((*block.shape[:-1], song.samples - written), np.float32)


_RESAMPLE_BLOCK = 1 << 16
"""Samples resampled at a time (the transposed copies soxr needs stay small)."""


def _resampled(blocks: Iterable[np.ndarray], orig_rate: int, target_rate: int) -> Iterator[np.ndarray]:
  """`mssjax.audio.resample` of the joined ``[..., k]`` blocks, block by block (soxr's stream: the same samples)."""
  if orig_rate == target_rate:
    yield from blocks
    return
  stream, shape, n_in, n_out = None, None, 0, 0
  for block in blocks:
    shape = block.shape[:-1]
    if stream is None:
      stream = soxr.ResampleStream(orig_rate, target_rate, math.prod(shape), dtype="float32", quality="HQ")
    flat = block.reshape(-1, block.shape[-1])
    for start in range(0, flat.shape[-1], _RESAMPLE_BLOCK):  # soxr wants [k, channels]: transposed in pieces
      n_in += flat[:, start:start + _RESAMPLE_BLOCK].shape[-1]
      out = stream.resample_chunk(np.ascontiguousarray(flat[:, start:start + _RESAMPLE_BLOCK].T))
      n_out += out.shape[0]
      yield np.ascontiguousarray(out.T).reshape(*shape, -1)
  if stream is None:
    return
  out = stream.resample_chunk(np.zeros((0, math.prod(shape)), np.float32), last=True)
  want = math.ceil(n_in * target_rate / orig_rate)  # soxr rounds, librosa ceils: pad to the ceiling
  out = np.concatenate([out, np.zeros((max(0, want - n_out - out.shape[0]), out.shape[1]), np.float32)])
  yield np.ascontiguousarray(out.T).reshape(*shape, -1)


def _separate_pairs(separator: Separator, blocks: Iterable[np.ndarray], progress: Any) -> Iterator[np.ndarray]:
  """``[pairs, 2, k]`` blocks -> ``[pairs, targets, 2, k]``, each pair separated in the separator's chunks."""
  def separate_chunk(piece):
    out = []
    for pair in piece:
      out.append(np.asarray(separator.separate_chunk(pair), dtype=np.float32))
      if progress is not None:
        progress.update(1)
    return out[0][None] if len(out) == 1 else np.stack(out)

  if separator.chunk_seconds is None:  # the whole song in one chunk
    blocks = list(blocks)
    blocks = [np.concatenate(blocks, axis=-1)] if blocks else []
    chunk, overlap = chunk_samples(separator, blocks[0].shape[-1] if blocks else 1)
  else:
    chunk, overlap = chunk_samples(separator)
  yield from exported.overlap_add_blocks(separate_chunk, blocks, chunk_samples=chunk, overlap_samples=overlap)


def _resampled_length(n_samples: int, sample_rate: int, separator: Separator) -> int:
  return int(np.ceil(n_samples * separator.sample_rate / sample_rate))


def n_chunks(separator: Separator, *, n_samples: int, sample_rate: int, channels: int) -> int:
  """How many chunk calls `separate_array` makes for a ``[channels, n_samples]`` song (for a progress bar)."""
  n_model = _resampled_length(n_samples, sample_rate, separator)
  chunk, overlap = chunk_samples(separator, n_model)
  return len(chunk_starts(n_model, chunk, overlap)) * (1 if channels <= 2 else channels)


def _stereo_pairs(block: np.ndarray) -> np.ndarray:
  """``[channels, k]`` -> ``[pairs, 2, k]``: stereo is one pair; mono is doubled; more channels are separated
  one by one as dual mono."""
  if block.shape[0] == 2:
    return block[None]
  return np.stack([block, block], axis=1)


def _from_stereo_pairs(block: np.ndarray, channels: int) -> np.ndarray:
  """``[pairs, targets, 2, k]`` back to ``[targets, channels, k]`` (dual mono averaged)."""
  if channels == 2:
    return block[0]
  return block.mean(axis=2).transpose(1, 0, 2)


# --- files ------------------------------------------------------------------------------------------


def song_name(path: str | os.PathLike) -> str:
  """The song's name from its file (``"A - B.stem.mp4"`` -> ``"A - B"``), safe as one folder name.

  Path separators and control characters become ``_``; leading and trailing
  dots and spaces are removed (so ``"...wav"`` cannot name the parent
  folder); an empty result is ``"song"``.
  """
  name = pathlib.Path(path).name
  if name.lower().endswith(".stem.mp4"):
    name = name[:-len(".stem.mp4")]
  else:
    name = pathlib.Path(name).stem
  return fileio.safe_name(name, default="song")


def output_folders(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> list[pathlib.Path]:
  """One distinct output folder per input file inside ``out_dir``.

  Two inputs with the same song name get ``NAME``, ``NAME (2)``, ... in the
  order given, so no song overwrites another.
  """
  out_dir = pathlib.Path(out_dir)
  seen: dict[str, int] = {}
  folders = []
  for path in paths:
    name = song_name(path)
    count = seen.get(name.lower(), 0) + 1
    seen[name.lower()] = count
    folders.append(out_dir / (name if count == 1 else f"{name} ({count})"))
  return folders


def check_writable(folder: str | os.PathLike) -> pathlib.Path:
  """Checks, before any work is done, that ``folder`` can be made (if missing) and written to; makes nothing.

  The nearest folder that exists (``folder`` or a parent) is tried with a temporary file.

  Raises:
    AudioError: a parent is a file, no permission, a read-only filesystem.
  """
  folder = pathlib.Path(folder)
  existing = next((p for p in (folder, *folder.parents) if p.exists()), pathlib.Path.cwd())
  try:
    if not existing.is_dir():
      raise NotADirectoryError(errno.ENOTDIR, f"{fileio.printable(existing)} is not a folder")
    with tempfile.TemporaryFile(dir=existing, prefix=".write-check."):
      pass
  except OSError as e:
    raise AudioError(f"{fileio.printable(folder)}: cannot write the stems there ({e.strerror or e})") from e
  return folder


def check_output_folder(folder: str | os.PathLike, targets: Sequence[str]) -> pathlib.Path:
  """Checks, before any work is done, that a song's stems ``TARGET.wav`` can be written to ``folder``.

  Nothing is made (`check_writable`): a song's folder appears only when its
  stems are complete (`write_stems`).

  Raises:
    AudioError: the folder cannot be made or written to, or holds something
      that is not a stem file (the folder is replaced with the new set), such
      as a folder in a stem's place.
  """
  folder = check_writable(folder)
  _check_replaceable(folder, targets)
  return folder


def _check_replaceable(folder: pathlib.Path, targets: Sequence[str]) -> None:
  """Raises `AudioError` unless ``folder`` holds stem files only (``*.wav``, a killed writer's ``.*.partial``)."""
  if not folder.is_dir():
    return
  for entry in folder.iterdir():
    if entry.name.startswith(".") and entry.name.endswith(fileio.PARTIAL_SUFFIX) and not entry.is_dir():
      continue
    if entry.is_dir() and entry.suffix == ".wav":
      target = entry.name[:-len(".wav")]
      what = f"the {target} stem" if target in targets else "the stems"
      raise AudioError(f"{fileio.printable(entry)}: is a folder, so {what} cannot be written")
    if entry.is_dir() or entry.is_symlink() or entry.suffix.lower() != ".wav":
      raise AudioError(f"{fileio.printable(folder)}: holds {fileio.printable(entry.name)!r}, which is not a stem; "
                       "the folder is replaced by the new stems, so move it away or choose another -o")


def write_stems(folder: str | os.PathLike, stems: dict[str, np.ndarray], *, sample_rate: int) -> pathlib.Path:
  """Writes ``folder/TARGET.wav`` for every stem as a set: all the new stems (and no others), or none.

  The set is written into a temporary folder that then replaces ``folder``
  (`mssjax.fileio.atomic_folder`): readers and other writers see the whole
  old set or the whole new set.

  Raises:
    AudioError: as `check_output_folder`, or a write that fails (the old set is kept).
  """
  folder = check_output_folder(folder, list(stems))
  with _stem_writers(folder, list(stems), sample_rate=sample_rate, channels=_channels(stems)) as writers:
    for writer, stem in zip(writers, stems.values()):
      writer.write(stem)
  return folder


def _channels(stems: dict[str, np.ndarray]) -> int:
  shapes = {np.shape(stem) for stem in stems.values()}
  if len(shapes) != 1 or len(next(iter(shapes))) not in (1, 2):
    raise AudioError(f"stems of shapes {sorted(shapes)} must share one [channels, n_samples] or [n_samples] shape")
  shape = shapes.pop()
  return 1 if len(shape) == 1 else shape[0]


@contextlib.contextmanager
def _stem_writers(folder: pathlib.Path, targets: Sequence[str], *, sample_rate: int, channels: int
                  ) -> Iterator[list[audio.BlockWriter]]:
  """One `mssjax.audio.BlockWriter` per target in a temporary folder that replaces ``folder`` when all are done."""
  try:
    with fileio.atomic_folder(folder) as temporary, contextlib.ExitStack() as stack:
      yield [stack.enter_context(audio.BlockWriter(temporary / f"{t}.wav", sample_rate=sample_rate, channels=channels,
                                                   name=folder / f"{t}.wav")) for t in targets]
  except OSError as e:
    raise AudioError(f"{fileio.printable(folder)}: cannot write the stems there ({e.strerror or e})") from e


def separate_file(separator: Separator, path: str | os.PathLike, folder: str | os.PathLike, *,
                  progress: Any = None) -> pathlib.Path:
  """Separates an audio file and writes ``folder/TARGET.wav`` for each of the separator's targets.

  The stems have the file's sample rate and channel count: a mono file gives
  mono stems, a file of more than two channels stems of as many channels
  (each channel separated as dual mono). The file is read, separated and
  written block by block (`separate_blocks`), and the stems appear as a set
  (`write_stems`).

  Returns:
    ``folder``.

  Raises:
    AudioError: an unreadable input or an unwritable output (the folder is
      checked before the separation); nothing is left in ``folder``'s place.
  """
  header, blocks = audio.read_blocks(path)
  folder = check_output_folder(folder, separator.targets)
  stems = separate_blocks(separator, blocks, sample_rate=header.sample_rate, channels=header.channels,
                          progress=progress)
  with _stem_writers(folder, separator.targets, sample_rate=header.sample_rate, channels=header.channels) as writers:
    for block in stems:
      for writer, stem in zip(writers, block):
        writer.write(stem)
  return folder


class Outcome(NamedTuple):
  """What became of one input of `separate_files`.

  Attributes:
    path: the input file.
    folder: its output folder (None if it failed).
    error: the one-line error (None if it worked).
    note: set where the folder's name differs from the song's (a name clash).
  """
  path: str
  folder: pathlib.Path | None
  error: str | None
  note: str | None = None


def separate_files(separator: Separator, paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                   show_progress: bool = True) -> list[Outcome]:
  """Separates many files with one progress bar over all their chunks.

  A file that cannot be read or written, or runs out of memory, is reported
  in its `Outcome` and the others go on. Temporary folders that killed runs
  left in ``out_dir`` are removed first (`mssjax.fileio.remove_stale_folders`);
  ``out_dir`` is not left behind empty when it did not exist and no song worked.

  Returns:
    one `Outcome` per input, in order.
  """
  out_dir = pathlib.Path(out_dir)
  existed = out_dir.exists()
  fileio.remove_stale_folders(out_dir)
  try:
    return _separate_files(separator, paths, out_dir, show_progress)
  finally:
    if not existed:
      with contextlib.suppress(OSError):
        out_dir.rmdir()  # only if empty


def _separate_files(separator: Separator, paths: Sequence[str | os.PathLike], out_dir: pathlib.Path,
                    show_progress: bool) -> list[Outcome]:
  folders = output_folders(paths, out_dir)
  headers, outcomes = {}, {}
  for path in paths:
    try:
      headers[str(path)] = audio.info(path)
    except AudioError as e:
      outcomes[str(path)] = Outcome(str(path), None, str(e))
  total = sum(n_chunks(separator, n_samples=h.frames or 0, sample_rate=h.sample_rate, channels=h.channels)
              for h in headers.values())
  with tqdm.tqdm(total=total, unit="chunk", disable=not show_progress, desc="separating") as bar:
    for path, folder in zip(paths, folders):
      if str(path) in outcomes:
        continue
      bar.set_postfix_str(fileio.printable(folder.name))
      note = None
      if folder.name != song_name(path):
        note = f"{path}: another input is also named {song_name(path)!r}; its stems go to {folder.name!r}"
      outcomes[str(path)] = Outcome(str(path), None, None, note)._replace(**_separate_one(separator, path, folder, bar))
  return [outcomes[str(p)] for p in paths]


def _separate_one(separator: Separator, path: str | os.PathLike, folder: pathlib.Path, bar: Any) -> dict[str, Any]:
  """``{"folder": ...}`` or ``{"error": "one line"}`` for one song: its failure is the song's, not the batch's."""
  try:
    return {"folder": separate_file(separator, path, folder, progress=bar)}
  except (AudioError, ParameterError) as e:
    return {"error": str(e)}
  except MemoryError:
    return {"error": f"{path}: out of memory while separating"}
  except RuntimeError as e:  # XLA's allocation failures are RuntimeErrors (jax.errors.JaxRuntimeError)
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    return {"error": f"{path}: out of memory while separating ({str(e).splitlines()[0]})"}
