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

Where the stems go is a file-name template (`mssjax.song_files`: default
``{track}/{stem}.{ext}``), and which stems, a choice of the separator's
targets or two stems, X and ``no_X`` (`output_stems`). Where the template
gives each song a folder of its own (as the default does), the song's stems
are written as a set: into a temporary folder beside the song's folder, which
then takes its place in one step (`mssjax.fileio.atomic_folder`). Other
templates write each stem to a temporary file beside its place and move them
all into place once every stem is complete (`separate_song` says what that
guarantees). A song that fails (an unreadable file, a full disk, no memory,
Ctrl-C) leaves no partial stems, and the other songs of the batch go on. A
re-run skips the songs whose stem files all exist (`separate_files`).

Stems are written in the format of an `mssjax.audio.OutputFormat` (wav,
flac, mp3, ogg or m4a; bit depth or bit rate), block by block; a song whose
16- or 24-bit stems had samples beyond full scale clipped gets one
`mssjax.audio.ClippingWarning` that counts them per stem.

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
import math
import os
import pathlib
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import jax
import numpy as np
import soxr
import tqdm

from mssjax import audio, distributed, fileio, sharded, song_files, stem_files
from mssjax.deploy import exported
from mssjax.errors import AudioError, ParameterError, check_finite, check_positive_int
from mssjax.separators import Separator
from mssjax.song_files import SongOutput


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


def separate_array(separator: Separator, mixture: np.ndarray, *, sample_rate: int, progress: Any = None,
                   batch_size: int = 1) -> dict[str, np.ndarray]:
  """Separates one song held in memory, in the separator's chunks, at its rate.

  Args:
    separator: a separator that needs no references.
    mixture: ``[channels, n_samples]`` (any channel count) or ``[n_samples]`` (mono).
    sample_rate: the mixture's rate in Hz; stems come back at this rate.
    progress: optional tqdm-like object, advanced once per chunk.
    batch_size: chunks per compiled call (`separate_blocks`).

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
                                              channels=mixture.shape[0], progress=progress,
                                              batch_size=batch_size)), axis=-1)
  return {t: (stems[i, 0] if squeeze else stems[i]) for i, t in enumerate(separator.targets)}


def separate_blocks(separator: Separator, blocks: Iterable[np.ndarray], *, sample_rate: int, channels: int,
                    progress: Any = None, batch_size: int = 1) -> Iterator[np.ndarray]:
  """Separates a song that comes in blocks, yielding its stems in blocks as they are done.

  The stems joined are `separate_array`'s, sample for sample; memory holds
  about ``batch_size`` chunks, whatever the song's length (except for a
  separator whose ``chunk_seconds`` is None: it takes the whole song at once).

  With ``batch_size > 1`` the song's chunks go ``batch_size`` at a time to
  one compiled call, split over this process's devices
  (`mssjax.sharded.separate_chunks`); the stems are bit for bit those of one
  chunk per call (``batch_size=1``, `Separator.separate_chunk`).

  Args:
    separator: a separator that needs no references.
    blocks: float ``[channels, k]`` blocks of the song, in order (any ``k``).
    sample_rate: the song's rate in Hz; the stems come at this rate.
    channels: the song's channel count.
    progress: optional tqdm-like object, advanced once per chunk.
    batch_size: chunks per compiled call (a song of more than two channels: chunks of each channel).

  Yields:
    float32 ``[n_targets, channels, k']`` blocks, ``separator.targets`` in order.

  Raises:
    ParameterError: an oracle (it needs the true stems).
  """
  if separator.needs_references:
    raise ParameterError(f"separator {separator.name!r} is an oracle: it needs the true stems, not a song alone")
  song = _Counted(blocks)
  pairs = (_stereo_pairs(block) for block in song)  # [pairs, 2, k]
  check_positive_int("batch_size", batch_size)
  stems = _separate_pairs(separator, _resampled(pairs, sample_rate, separator.sample_rate), progress, batch_size)
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


def _separate_pairs(separator: Separator, blocks: Iterable[np.ndarray], progress: Any,
                    batch_size: int) -> Iterator[np.ndarray]:
  """``[pairs, 2, k]`` blocks -> ``[pairs, targets, 2, k]``, each pair separated in the separator's chunks."""
  def separate_batch(pieces):  # [b, pairs, 2, chunk] -> [b, pairs, targets, 2, chunk]
    b, pairs = pieces.shape[:2]
    stems = sharded.separate_chunks(separator, pieces.reshape((b * pairs,) + pieces.shape[2:]),
                                    batch_size=batch_size * pairs)
    if progress is not None:
      progress.update(b * pairs)
    return stems.reshape((b, pairs) + stems.shape[1:])

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
  if batch_size == 1:
    yield from exported.overlap_add_blocks(separate_chunk, blocks, chunk_samples=chunk, overlap_samples=overlap)
  else:
    yield from exported.overlap_add_blocks(separate_batch, blocks, chunk_samples=chunk, overlap_samples=overlap,
                                           batch_size=batch_size)


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

song_name = song_files.song_name
output_folders = song_files.output_folders
DEFAULT_FILENAME = song_files.DEFAULT_FILENAME
STEM_EXTENSIONS = stem_files.STEM_EXTENSIONS
output_stems = stem_files.output_stems
two_stem_blocks = stem_files.two_stem_blocks
check_stems_writable = stem_files.check_stems_writable
check_output = stem_files.check_output
write_stems = stem_files.write_stems

def separate_song(separator: Separator, path: str | os.PathLike, output: SongOutput, *,
                  output_format: audio.OutputFormat = audio.OutputFormat(), progress: Any = None,
                  batch_size: int = 1) -> SongOutput:
  """Separates an audio file and writes the stems ``output`` names (targets, or ``no_X``: `two_stem_blocks`).

  The stems have the file's sample rate and channel count: a mono file gives
  mono stems, a file of more than two channels stems of as many channels
  (each channel separated as dual mono). The file is read, separated and
  written block by block (`separate_blocks`, ``batch_size`` chunks per call). Where the song has a folder of
  its own (the default template) the stems appear as a set: that folder is
  replaced in one step (`write_stems`). Otherwise each stem is written to a
  temporary file beside its place, and once every stem is complete they are
  moved into place, one ``os.replace`` each (`mssjax.fileio.atomic_paths`):
  every file is whole, old or new, and a failure restores the ones moved;
  only a kill between two of those renames leaves a mix of old and new stems.

  Returns:
    ``output``.

  Raises:
    AudioError: an unreadable input or an unwritable output (checked before
      the separation); nothing new is left in the stems' places.
  """
  header, blocks = audio.read_blocks(path)
  check_output(output)
  stems = separate_blocks(separator, blocks, sample_rate=header.sample_rate, channels=header.channels,
                          progress=progress, batch_size=batch_size)
  names = list(output.files)
  with stem_files.stem_writers(output, sample_rate=header.sample_rate, channels=header.channels,
                     output_format=output_format) as writers:
    for block in stems:
      for writer, stem in zip(writers, two_stem_blocks(block, separator.targets, names)):
        writer.write(stem)
  stem_files.warn_clipped(output, writers)
  return output


class Outcome(NamedTuple):
  """What became of one song of `separate_files`.

  Attributes:
    path: the input file.
    folder: the song's own folder of stems (None: it failed, or the template gives it none).
    error: the one-line error (None if it worked).
    note: set where the song's track name differs from its file's (a name clash).
    files: the stem files written (or found complete, when skipped); () if it failed.
    skipped: True where every stem file existed already and nothing was done.
  """
  path: str
  folder: pathlib.Path | None
  error: str | None
  note: str | None = None
  files: tuple[pathlib.Path, ...] = ()
  skipped: bool = False


def separate_files(separator: Separator, paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                   filename: str = DEFAULT_FILENAME, stems: Sequence[str] | None = None, two_stems: str | None = None,
                   output_format: audio.OutputFormat = audio.OutputFormat(), recursive: bool = False,
                   overwrite: bool = False,
                   show_progress: bool = True, batch_size: int = 1, multihost: bool = False) -> list[Outcome]:
  """Separates many files and folders with one progress bar over all their chunks.

  Each folder in ``paths`` stands for its audio files (`mssjax.song_files.find_songs`);
  a song's stems go where the template ``filename`` says, below its folder
  relative to the input folder. A song whose every stem file exists is
  skipped unless ``overwrite``; a song with a stem missing is separated again.
  A file that cannot be read or written, or runs out of memory, is reported
  in its `Outcome` and the others go on. Temporary folders that killed runs
  left are removed first (`mssjax.fileio.remove_stale_folders`); ``out_dir``
  is not left behind empty when it did not exist and no song worked. The bar
  counts chunks; its label counts songs and hours of audio (from the headers).

  Args:
    separator: a separator that needs no references.
    paths: audio files and folders.
    out_dir: the output folder.
    filename: the file-name template (`mssjax.song_files`).
    stems, two_stems: which stems to write (`output_stems`; default every target).
    output_format: the stems' format (`mssjax.audio.OutputFormat`; default 32-bit float wav).
    recursive: folders' subfolders too.
    overwrite: separate songs whose stems all exist again.
    show_progress: show the bar.
    batch_size: chunks per compiled call (`separate_blocks`).
    multihost: split the songs over the JAX processes (`mssjax.distributed`),
      every process given the same ``paths``: process ``p`` of ``P`` takes
      songs ``p, p + P, ...`` of the list (its tracks are named from the
      whole list, so a name clash resolves as in one process). Process 0
      alone removes stale temporary folders, before the others start (a
      barrier): another host's writer's process id means nothing here.

  Returns:
    one `Outcome` per song, in order (a folder's songs sorted by path; with
    ``multihost``, this process's songs only).

  Raises:
    ParameterError: a bad template, a stem that is not a target, a folder without audio files (before any work).
  """
  song_files.check_filename(filename)
  names = output_stems(separator.targets, stems=stems, two_stems=two_stems)
  out_dir = pathlib.Path(out_dir)
  songs = song_files.find_songs(paths, recursive=recursive, exclude=out_dir)
  outputs = [song_files.song_output(filename, out_dir, song, names,
                                      extension=output_format.extension[1:]) for song in songs]
  existed = out_dir.exists()
  if not multihost or distributed.is_leader():
    for parent in {out_dir} | {o.folder.parent for o in outputs if o.folder is not None}:
      fileio.remove_stale_folders(parent)
  if multihost:
    distributed.barrier("mssjax.separate.start")
    share = slice(jax.process_index(), None, jax.process_count())
    songs, outputs = songs[share], outputs[share]
  try:
    return _separate_files(separator, songs, outputs, overwrite=overwrite, output_format=output_format,
                           show_progress=show_progress, batch_size=batch_size)
  finally:
    if not existed and not multihost:  # another process may be about to write there
      with contextlib.suppress(OSError):
        out_dir.rmdir()  # only if empty


def _separate_files(separator: Separator, songs: Sequence[song_files.Song], outputs: Sequence[SongOutput], *,
                    overwrite: bool, output_format: audio.OutputFormat,
                    show_progress: bool, batch_size: int) -> list[Outcome]:
  outcomes: list[Outcome | None] = []
  headers = {}
  for i, (song, output) in enumerate(zip(songs, outputs)):
    note = None
    if song.track != song_name(song.path):
      note = (f"{song.path}: another input is also named {song_name(song.path)!r}; "
              f"its stems go to {song.track!r}")
    outcome = Outcome(song.path, output.folder, None, note, tuple(output.files.values()))
    if not overwrite and all(path.is_file() for path in output.files.values()):
      outcomes.append(outcome._replace(skipped=True))
      continue
    try:
      headers[i] = audio.info(song.path)
      outcomes.append(outcome)
    except AudioError as e:
      outcomes.append(outcome._replace(folder=None, files=(), error=str(e)))
  progress = _Progress(separator, headers, show_progress)
  with progress.bar:
    for i in headers:
      progress.start(songs[i])
      outcomes[i] = outcomes[i]._replace(**_separate_one(separator, songs[i].path, outputs[i], output_format,
                                                                   progress.bar, batch_size))
      progress.finish(headers[i])
  return outcomes


class _Progress:
  """One bar over every chunk of the job, labelled with the songs and the hours of audio done and in all."""

  def __init__(self, separator: Separator, headers: dict[int, audio.AudioInfo], show: bool):
    total = sum(n_chunks(separator, n_samples=h.frames or 0, sample_rate=h.sample_rate, channels=h.channels)
                for h in headers.values())
    self.songs, self.hours = len(headers), sum(_hours(h) for h in headers.values())
    self.songs_done, self.hours_done = 0, 0.0
    self.bar = tqdm.tqdm(total=total, unit="chunk", disable=not show, desc=self._label())

  def _label(self) -> str:
    return f"{self.songs_done}/{self.songs} songs, {_clock(self.hours_done)}/{_clock(self.hours)} of audio"

  def start(self, song: song_files.Song) -> None:
    self.bar.set_postfix_str(fileio.printable(song.track))

  def finish(self, header: audio.AudioInfo) -> None:
    self.songs_done, self.hours_done = self.songs_done + 1, self.hours_done + _hours(header)
    self.bar.set_description_str(self._label())


def _clock(hours: float) -> str:
  """``H:MM:SS`` (a 3-minute song is 0:03:00; hours to two decimals would show 0.05)."""
  seconds = int(round(hours * 3600))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _hours(header: audio.AudioInfo) -> float:
  seconds = header.frames / header.sample_rate if header.frames is not None else header.duration
  return (seconds or 0.0) / 3600


def _separate_one(separator: Separator, path: str | os.PathLike, output: SongOutput,
                  output_format: audio.OutputFormat,
                  bar: Any, batch_size: int) -> dict[str, Any]:
  """``{}`` or ``{"error": "one line", ...}`` for one song: its failure is the song's, not the batch's."""
  failed = {"folder": None, "files": ()}
  try:
    separate_song(separator, path, output, output_format=output_format, progress=bar, batch_size=batch_size)
    return {}
  except (AudioError, ParameterError) as e:
    return dict(failed, error=str(e))
  except MemoryError:
    return dict(failed, error=f"{path}: out of memory while separating")
  except RuntimeError as e:  # XLA's allocation failures are RuntimeErrors (jax.errors.JaxRuntimeError)
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    return dict(failed, error=f"{path}: out of memory while separating ({str(e).splitlines()[0]})")
