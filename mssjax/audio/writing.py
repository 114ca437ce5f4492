"""Write audio files (the writing side of `mssjax.audio`).

``save`` writes atomically through `mssjax.fileio.atomic_path` (a temporary
``.NAME.xxxx.partial`` file in the same folder, then one ``os.replace``), so a
crash never leaves a half-written file behind. ``BlockWriter`` writes one file
block by block, so a song of any length passes through in bounded memory
(`mssjax.separate`).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from typing import Mapping

import numpy as np
import soundfile

from mssjax import fileio
from mssjax.audio.reading import _check_rate, _native, check_finite
from mssjax.errors import AudioError, ParameterError, check_choice

__all__ = ["save", "save_set", "BlockWriter"]

SUBTYPES = ("FLOAT", "PCM_16", "PCM_24")


def save(path: str | os.PathLike, audio: np.ndarray, *, sample_rate: int = 44100,
         subtype: str = "FLOAT") -> None:
  """Writes audio to a wav / flac / ogg file atomically.

  The audio is checked first; nothing is written when it is unusable. It goes
  to a temporary file in the target folder (`mssjax.fileio.atomic_path`), then
  replaces ``path`` in one ``os.replace``, so readers see the old file or the
  new one, never half. The finished file's mode follows the umask.

  Args:
    path: the file to write; the format comes from its extension (wav, flac,
      ogg, aiff). Missing parent folders are created.
    audio: ``[channels, n_samples]`` or ``[n_samples]`` (mono), floats in
      [-1, 1]. PCM subtypes clip values outside that range.
    sample_rate: Hz.
    subtype: "FLOAT" (32-bit float, lossless for float32 audio), "PCM_16" or "PCM_24".

  Raises:
    AudioError: empty audio, non-finite samples, bad shape or unknown extension.
    ParameterError: bad sample_rate or subtype.
  """
  save_set({path: audio}, sample_rate=sample_rate, subtype=subtype)


def save_set(files: Mapping[str | os.PathLike, np.ndarray], *, sample_rate: int = 44100,
             subtype: str = "FLOAT") -> None:
  """Writes several audio files as a set (e.g. a track's four stems): all of them, or none.

  Every array is checked before anything is written; each file goes to a
  temporary file first, and only when all are written are they moved into
  place (`mssjax.fileio.atomic_paths`).

  Args:
    files: ``{path: audio}``, as `save`'s ``path`` and ``audio``.
    sample_rate, subtype: as `save`, for every file.

  Raises:
    AudioError, ParameterError: as `save`, before any file is written.
  """
  _check_rate(sample_rate, allow_none=False)
  check_choice("subtype", subtype, SUBTYPES)
  prepared = []
  for path, audio in files.items():
    path = pathlib.Path(path)
    data, file_format = _audio_to_write(path, audio, subtype), _write_format(path)
    if not soundfile.check_format(file_format, subtype):
      raise ParameterError(f"subtype={subtype!r} cannot be written to {file_format} files")
    prepared.append((path, data, file_format))
  path = prepared[0][0]
  try:
    with fileio.atomic_paths([path for path, _, _ in prepared]) as temporaries:
      for (path, data, file_format), temporary in zip(prepared, temporaries):
        soundfile.write(_native(temporary), data.T, sample_rate, subtype=subtype, format=file_format)
  except OSError as e:
    raise AudioError(f"{path}: cannot be written ({e.strerror or e})") from e
  except soundfile.LibsndfileError as e:  # a full disk: libsndfile's "System error.", not an OSError
    raise AudioError(f"{path}: cannot be written ({e})") from e


class BlockWriter:
  """Writes an audio file block by block (a context manager): a stem of any length in bounded memory.

  Every failure to write (a full disk, a folder that went away; libsndfile's
  errors are not `OSError`s) is an `AudioError` naming the file. The file is
  written in place: write into a temporary folder (`mssjax.fileio.atomic_folder`)
  or file to make it appear whole.

  Example::

    with BlockWriter(path, sample_rate=44100, channels=2) as writer:
      for block in blocks:  # [2, k]
        writer.write(block)
  """

  def __init__(self, path: str | os.PathLike, *, sample_rate: int, channels: int, subtype: str = "FLOAT",
               file_format: str | None = None, name: str | os.PathLike | None = None) -> None:
    """Opens ``path`` for writing.

    Args:
      path: the file; its extension gives the format unless ``file_format``.
      sample_rate: Hz.
      channels: channels of every block.
      subtype: as `save`.
      file_format: libsndfile's format name (``"WAV"``); default from ``path``.
      name: the file named in errors (default ``path``; the final name of a temporary file).

    Raises:
      AudioError: the file cannot be created.
    """
    self.path, self.name = pathlib.Path(path), pathlib.Path(name or path)
    self._clip = subtype != "FLOAT"
    with self._errors():
      self._file = soundfile.SoundFile(_native(self.path), "w", samplerate=sample_rate, channels=channels,
                                       subtype=subtype, format=file_format or _write_format(self.name))

  @contextlib.contextmanager
  def _errors(self):
    try:
      yield
    except (OSError, soundfile.LibsndfileError, RuntimeError) as error:
      raise AudioError(f"{self.name}: cannot be written ({getattr(error, 'strerror', None) or error})") from error

  def write(self, block: np.ndarray) -> None:
    """Appends ``[channels, k]`` (or ``[k]`` for mono) float samples; NaN or Inf is an `AudioError`."""
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 1:
      block = block[None]
    if block.shape[-1] == 0:
      return
    check_finite(block, path=self.name)
    if self._clip:
      block = np.clip(block, -1.0, 1.0)
    with self._errors():
      self._file.write(block.T)

  def close(self) -> None:
    """Finishes the file (its header); an error here is an `AudioError` too."""
    with self._errors():
      self._file.close()

  def __enter__(self) -> "BlockWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    if exc_info[0] is None:
      self.close()
    else:
      with contextlib.suppress(Exception):
        self._file.close()


def _audio_to_write(path, audio, subtype):
  data = np.asarray(audio)
  if data.ndim == 1:
    data = data[None]
  if data.ndim != 2 or not np.issubdtype(data.dtype, np.number):
    raise AudioError(f"{path}: audio must be a numeric [channels, n_samples] array, "
                     f"got shape {data.shape} dtype {data.dtype}")
  if data.shape[0] > 64:
    raise AudioError(f"{path}: {data.shape[0]} channels; audio must be [channels, n_samples]")
  if data.shape[1] == 0:
    raise AudioError(f"{path}: refusing to write zero-length audio")
  data = data.astype(np.float32, copy=False)
  check_finite(data, path=path)
  if subtype != "FLOAT":
    data = np.clip(data, -1.0, 1.0)
  return data


def _write_format(path):
  extension = path.suffix.lower()
  formats = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aif": "AIFF", ".aiff": "AIFF"}
  if extension not in formats:
    raise AudioError(f"{path}: cannot write {extension or 'extensionless'} files "
                     f"(use one of {sorted(formats)})")
  return formats[extension]
