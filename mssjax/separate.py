"""Separation of whole songs of any length, rate and channel count, in bounded memory.

A song is cut into overlapping chunks of fixed length; each chunk is separated
on its own and the chunks are joined by windowed overlap-add: inside an
overlap the two chunks cross-fade with raised-cosine weights, and the sum is
divided by the sum of the weights, so a separator that returns its input
unchanged gives back the song exactly. Only one chunk is in flight at a time,
so memory grows with the song only through the output arrays (float32, four
stems), never through the separator's intermediate arrays.

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

import os
import pathlib
import tempfile
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
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
  if separator.needs_references:
    raise ParameterError(f"separator {separator.name!r} is an oracle: it needs the true stems, not a song alone")
  squeeze = mixture.ndim == 1
  mixture = mixture[None] if squeeze else mixture
  pairs = [_separate_stereo(separator, pair, sample_rate, progress)
           for pair in _stereo_pairs(mixture)]  # each [targets, 2, n]
  stems = _from_stereo_pairs(pairs, mixture.shape[0])
  return {t: (stems[i, 0] if squeeze else stems[i]) for i, t in enumerate(separator.targets)}


def _resampled_length(n_samples: int, sample_rate: int, separator: Separator) -> int:
  return int(np.ceil(n_samples * separator.sample_rate / sample_rate))


def n_chunks(separator: Separator, *, n_samples: int, sample_rate: int, channels: int) -> int:
  """How many chunk calls `separate_array` makes for a ``[channels, n_samples]`` song (for a progress bar)."""
  n_model = _resampled_length(n_samples, sample_rate, separator)
  chunk, overlap = chunk_samples(separator, n_model)
  return len(chunk_starts(n_model, chunk, overlap)) * (1 if channels <= 2 else channels)


def _stereo_pairs(mixture: np.ndarray) -> list[np.ndarray]:
  """Mono is doubled; stereo is one pair; more channels are separated one by one as dual mono."""
  channels = mixture.shape[0]
  if channels == 2:
    return [mixture]
  return [np.stack([c, c]) for c in mixture]


def _from_stereo_pairs(pairs: list[np.ndarray], channels: int) -> np.ndarray:
  """A list of ``[targets, 2, n]`` back to ``[4, channels, n]`` (no copy for stereo: memory matters for long songs)."""
  if channels == 2:
    return pairs[0]
  return np.stack([p.mean(axis=1) for p in pairs], axis=1)


def _separate_stereo(separator: Separator, pair: np.ndarray, sample_rate: int, progress: Any) -> np.ndarray:
  n = pair.shape[-1]
  x = audio.resample(pair, sample_rate, separator.sample_rate)
  chunk, overlap = chunk_samples(separator, x.shape[-1])
  stems = separate_in_chunks(separator.separate_chunk, x, chunk_samples=chunk, overlap_samples=overlap,
                             progress=progress)
  if sample_rate != separator.sample_rate:
    stems = audio.resample(stems, separator.sample_rate, sample_rate)
  if stems.shape[-1] < n:
    stems = np.pad(stems, ((0, 0), (0, 0), (0, n - stems.shape[-1])))
  return stems[..., :n]


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


def check_output_folder(folder: str | os.PathLike, targets: Sequence[str]) -> pathlib.Path:
  """Makes ``folder`` and checks that the stems ``TARGET.wav`` can be written there, before any work is done.

  Raises:
    AudioError: the folder cannot be made or written to (a parent is a file,
      no permission, a read-only filesystem), or a stem's file name is taken by
      a folder.
  """
  folder = pathlib.Path(folder)
  try:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder, prefix=".write-check."):
      pass
  except OSError as e:
    raise AudioError(f"{folder}: cannot write the stems there ({e.strerror or e})") from e
  for target in targets:
    if (folder / f"{target}.wav").is_dir():
      raise AudioError(f"{folder / (target + '.wav')}: is a folder, so the {target} stem cannot be written")
  return folder


def write_stems(folder: str | os.PathLike, stems: dict[str, np.ndarray], *, sample_rate: int) -> pathlib.Path:
  """Writes ``folder/TARGET.wav`` for every stem as a set: all the new stems, or none."""
  folder = check_output_folder(folder, list(stems))
  audio.save_set({folder / f"{target}.wav": stem for target, stem in stems.items()}, sample_rate=sample_rate)
  return folder


def _load_song(path: str | os.PathLike) -> tuple[np.ndarray, int]:
  """``(audio [channels, n], rate)`` of a file, every channel kept."""
  (mixture,), rate = audio.read(path, streams=[0])
  audio.check_finite(mixture, path=path)
  return mixture, rate


def separate_file(separator: Separator, path: str | os.PathLike, folder: str | os.PathLike, *,
                  progress: Any = None) -> pathlib.Path:
  """Separates an audio file and writes ``folder/TARGET.wav`` for each of the separator's targets.

  The stems have the file's sample rate and channel count: a mono file gives
  mono stems, a file of more than two channels stems of as many channels
  (each channel separated as dual mono).

  Returns:
    ``folder``.

  Raises:
    AudioError: an unreadable input or an unwritable output (checked before
      the separation).
  """
  mixture, rate = _load_song(path)
  check_output_folder(folder, separator.targets)
  stems = separate_array(separator, mixture, sample_rate=rate, progress=progress)
  return write_stems(folder, stems, sample_rate=rate)


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

  A file that cannot be read or written is reported in its `Outcome` and the
  others go on.

  Returns:
    one `Outcome` per input, in order.
  """
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
      bar.set_postfix_str(folder.name)
      note = None
      if folder.name != song_name(path):
        note = f"{path}: another input is also named {song_name(path)!r}; its stems go to {folder.name!r}"
      try:
        outcomes[str(path)] = Outcome(str(path), separate_file(separator, path, folder, progress=bar), None, note)
      except (AudioError, ParameterError) as e:
        outcomes[str(path)] = Outcome(str(path), None, str(e))
  return [outcomes[str(p)] for p in paths]
