"""Separation of whole songs of any length, rate and channel count, in bounded memory.

A song is cut into overlapping chunks of fixed length; each chunk is separated
on its own and the chunks are joined by windowed overlap-add: inside an
overlap the two chunks cross-fade with raised-cosine weights, and the sum is
divided by the sum of the weights, so a separator that returns its input
unchanged gives back the song exactly. Only one chunk is in flight at a time,
so memory grows with the song only through the output arrays (float32, four
stems), never through the separator's intermediate arrays.

The separators work at 44.1 kHz in stereo. Other rates are resampled for the
separator and the stems resampled back, so outputs are at the input's rate and
length; mono songs are separated as dual mono and the stems averaged back to
one channel.
"""

import pathlib

import numpy as np
import tqdm

from mssjax import TARGETS, audio
from mssjax.errors import ParameterError
from mssjax.spectral import check_positive_int

MODEL_RATE = 44100


def crossfade_window(chunk_samples, overlap_samples, *, fade_in=True, fade_out=True):
  """Overlap-add weights ``[chunk_samples]``: raised-cosine ramps over ``overlap_samples``, ones between.

  The ramps never reach zero (half-sample offset), so every sample of the song
  has a positive total weight.
  """
  w = np.ones(chunk_samples, dtype=np.float32)
  if overlap_samples:
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap_samples) + 0.5) / overlap_samples)
    if fade_in:
      w[:overlap_samples] = ramp
    if fade_out:
      w[-overlap_samples:] = np.minimum(w[-overlap_samples:], ramp[::-1])
  return w


def chunk_starts(n_samples, chunk_samples, overlap_samples):
  """Start samples of the chunks that cover ``n_samples`` with the given overlap."""
  hop = chunk_samples - overlap_samples
  starts = [0]
  while starts[-1] + chunk_samples < n_samples:
    starts.append(starts[-1] + hop)
  return starts


def _check_chunking(chunk_samples, overlap_samples):
  check_positive_int("chunk_samples", chunk_samples)
  if not isinstance(overlap_samples, (int, np.integer)) or not 0 <= overlap_samples < chunk_samples:
    raise ParameterError(
        f"overlap_samples={overlap_samples!r} must be an integer in [0, chunk_samples={chunk_samples})")


def separate_in_chunks(separate_chunk, mixture, *, chunk_samples, overlap_samples, progress=None):
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
  mixture = np.asarray(mixture, dtype=np.float32)
  channels, n = mixture.shape
  starts = chunk_starts(n, chunk_samples, overlap_samples)
  out, total = None, np.zeros(n, dtype=np.float32)
  for i, start in enumerate(starts):
    piece = mixture[:, start:start + chunk_samples]
    length = piece.shape[-1]
    if length < chunk_samples:
      piece = np.pad(piece, ((0, 0), (0, chunk_samples - length)))
    estimate = np.asarray(separate_chunk(piece), dtype=np.float32)[..., :length]
    if out is None:
      out = np.zeros((estimate.shape[0], channels, n), dtype=np.float32)
    w = crossfade_window(chunk_samples, overlap_samples, fade_in=i > 0,
                         fade_out=i < len(starts) - 1)[:length]
    out[..., start:start + length] += estimate * w
    total[start:start + length] += w
    if progress is not None:
      progress.update(1)
  out /= total
  return out


def _chunk_function(separator):
  """``[2, n] -> [4, 2, n]`` from a separator (its jitted chunk call where it has one)."""
  if hasattr(separator, "separate_chunk"):
    return separator.separate_chunk

  def separate_chunk(chunk):
    stems = separator(chunk)
    return np.stack([np.asarray(stems[t]) for t in TARGETS])

  return separate_chunk


def separate_array(separator, mixture, *, sample_rate=MODEL_RATE, chunk_seconds=None,
                   overlap_seconds=None, progress=None):
  """Separates one song held in memory.

  Args:
    separator: a `mssjax.separators` separator (44.1 kHz stereo in, dict of stems out).
    mixture: ``[channels, n_samples]`` (any channel count) or ``[n_samples]`` (mono).
    sample_rate: the mixture's rate in Hz; stems come back at this rate.
    chunk_seconds, overlap_seconds: chunking (default: the separator's own, else 30 s and 1 s).
    progress: optional tqdm-like object, advanced once per chunk.

  Returns:
    dict ``{target: float32 [channels, n_samples]}`` (``[n_samples]`` for a 1-D input).
  """
  mixture = np.asarray(mixture, dtype=np.float32)
  if mixture.ndim not in (1, 2) or mixture.shape[-1] == 0:
    raise ParameterError(f"mixture of shape {mixture.shape} must be [channels, n_samples] or [n_samples]")
  if not np.all(np.isfinite(mixture)):
    raise ParameterError("mixture holds NaN or Inf samples")
  squeeze = mixture.ndim == 1
  mixture = mixture[None] if squeeze else mixture
  chunk, overlap = _chunk_sizes(separator, chunk_seconds, overlap_seconds)
  pairs = [_separate_stereo(separator, pair, sample_rate, chunk, overlap, progress)
           for pair in _stereo_pairs(mixture)]  # each [4, 2, n]
  stems = _from_stereo_pairs(pairs, mixture.shape[0])
  return {t: (stems[i, 0] if squeeze else stems[i]) for i, t in enumerate(TARGETS)}


def n_chunks(n_samples, sample_rate, channels, separator, chunk_seconds=None, overlap_seconds=None):
  """How many chunk calls `separate_array` makes for a ``[channels, n_samples]`` song (for a progress bar)."""
  chunk, overlap = _chunk_sizes(separator, chunk_seconds, overlap_seconds)
  n_model = int(np.ceil(n_samples * MODEL_RATE / sample_rate))
  return len(chunk_starts(n_model, chunk, overlap)) * (1 if channels <= 2 else channels)


def _chunk_sizes(separator, chunk_seconds, overlap_seconds):
  chunk_seconds = chunk_seconds or getattr(separator, "chunk_seconds", 30.0)
  overlap_seconds = overlap_seconds if overlap_seconds is not None else getattr(separator, "overlap_seconds", 1.0)
  return int(round(chunk_seconds * MODEL_RATE)), int(round(overlap_seconds * MODEL_RATE))


def _stereo_pairs(mixture):
  """Mono is doubled; stereo is one pair; more channels are separated one by one as dual mono."""
  channels = mixture.shape[0]
  if channels == 2:
    return [mixture]
  return [np.stack([c, c]) for c in mixture]


def _from_stereo_pairs(pairs, channels):
  """A list of ``[4, 2, n]`` back to ``[4, channels, n]`` (no copy for stereo: memory matters for long songs)."""
  if channels == 2:
    return pairs[0]
  return np.stack([p.mean(axis=1) for p in pairs], axis=1)


def _separate_stereo(separator, pair, sample_rate, chunk, overlap, progress):
  n = pair.shape[-1]
  x = audio.resample(pair, sample_rate, MODEL_RATE)
  stems = separate_in_chunks(_chunk_function(separator), x, chunk_samples=chunk,
                             overlap_samples=overlap, progress=progress)
  if sample_rate != MODEL_RATE:
    stems = audio.resample(stems, MODEL_RATE, sample_rate)
  if stems.shape[-1] < n:
    stems = np.pad(stems, ((0, 0), (0, 0), (0, n - stems.shape[-1])))
  return stems[..., :n]


def song_name(path):
  """The song's name from its file: ``"A - B.stem.mp4"`` -> ``"A - B"``."""
  name = pathlib.Path(path).name
  if name.lower().endswith(".stem.mp4"):
    return name[:-len(".stem.mp4")]
  return pathlib.Path(name).stem


def separate_file(separator, path, out_dir, *, chunk_seconds=None, overlap_seconds=None, progress=None):
  """Separates an audio file and writes ``out_dir/<song>/{vocals,drums,bass,other}.wav``.

  The stems have the file's sample rate; a mono file gives mono stems; a file
  of more than two channels is downmixed (as `mssjax.audio.load` does) and
  gives mono stems.

  Returns:
    the song's output folder.
  """
  header = audio.info(path)
  mixture = audio.load(path, sample_rate=None, downmix=header.channels > 2)
  if header.channels != 2:
    mixture = mixture[:1]
  stems = separate_array(separator, mixture, sample_rate=header.sample_rate,
                         chunk_seconds=chunk_seconds, overlap_seconds=overlap_seconds, progress=progress)
  folder = pathlib.Path(out_dir) / song_name(path)
  for target in TARGETS:
    audio.save(folder / f"{target}.wav", stems[target], sample_rate=header.sample_rate)
  return folder


def separate_files(separator, paths, out_dir, *, chunk_seconds=None, overlap_seconds=None, show_progress=True):
  """Separates many files with one progress bar over all their chunks; returns the output folders."""
  headers = [audio.info(p) for p in paths]
  total = sum(n_chunks(h.frames or 0, h.sample_rate, min(h.channels, 2), separator, chunk_seconds,
                       overlap_seconds) for h in headers)
  folders = []
  with tqdm.tqdm(total=total, unit="chunk", disable=not show_progress, desc="separating") as bar:
    for path in paths:
      bar.set_postfix_str(song_name(path))
      folders.append(separate_file(separator, path, out_dir, chunk_seconds=chunk_seconds,
                                   overlap_seconds=overlap_seconds, progress=bar))
  return folders
