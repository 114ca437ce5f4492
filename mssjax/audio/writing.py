"""Write audio files (the writing side of `mssjax.audio`): whole arrays atomically, or streams block by block.

``save`` and ``save_set`` write arrays (wav, flac, ogg, aiff) atomically
through `mssjax.fileio.atomic_paths` (a temporary ``.NAME.xxxx.partial`` file
in the same folder, then one ``os.replace``), so a crash never leaves a
half-written file behind.

``BlockWriter`` (libsndfile) and ``EncoderWriter`` (PyAV) write one file block
by block, so a stem of any length passes through in bounded memory
(`mssjax.separate`). `OutputFormat` is the choice of ``python -m mssjax
separate``'s stems, and opens the writer for it:

======  =================================  ===============  ===============================
format  written by                         setting          default
======  =================================  ===============  ===============================
wav     libsndfile                         16, 24, 32f bit  32f (32-bit float, lossless)
flac    libsndfile                         16, 24 bit       24
mp3     PyAV: libmp3lame, constant rate    32k to 320k      320k (demucs' ``--mp3-bitrate``)
m4a     PyAV: ffmpeg's AAC, MP4 container  32k to 512k      256k (Apple's iTunes Plus)
ogg     libsndfile: libvorbis, variable    64k to 500k      320k (Spotify's "very high")
======  =================================  ===============  ===============================

Ogg Vorbis goes through libsndfile because the PyAV wheels carry no
libvorbis (only ffmpeg's experimental stereo-only encoder, which ignores the
bit rate). libvorbis encodes at a quality, not a bit rate: the bit rate
asked for is mapped to the quality whose nominal rate it is for 44.1 kHz
stereo (`_VORBIS_NOMINAL_KBPS`, interpolated), so the files' real rate varies
with the music.

Integer depths (16 and 24 bit; `quantize`): a sample ``x`` becomes the
integer nearest ``x * 2**(bits - 1)``, clipped to ``[-2**(bits - 1),
2**(bits - 1) - 1]`` (the scale libsndfile and ffmpeg read back with, so the
file reads back as ``x`` within half a step). Samples beyond full scale
(``|x| > 1``) are clipped and counted (``BlockWriter.clipped``;
`mssjax.separate` warns once per song). 16-bit output is dithered with
triangular (TPDF) noise of +-1 step, the difference of two uniform draws
(Lipshitz, Wannamaker & Vanderkooy 1992), which makes the rounding error
independent of the music instead of a distortion of it; the noise comes from a
generator seeded per stem (`OutputFormat.writer`'s ``seed``), so a re-run
writes the same bytes. 24-bit output is rounded without dither: its step lies
138 dB below full scale, under any converter's noise. 32-bit float keeps
every value, beyond full scale too; the lossy encoders take floats and clip
nothing themselves (a player's decoder may).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import os
import pathlib
import re
from typing import Mapping, NamedTuple

import av
import numpy as np
import soundfile

from mssjax import fileio
from mssjax.audio.reading import _check_rate, _native, check_finite
from mssjax.errors import AudioError, ParameterError, check_choice

__all__ = ["save", "save_set", "BlockWriter", "EncoderWriter", "OutputFormat", "Quantized", "quantize",
           "ClippingWarning", "FORMATS", "BIT_DEPTHS", "DEFAULT_SETTINGS"]

SUBTYPES = ("FLOAT", "PCM_16", "PCM_24")
"""The libsndfile subtypes `save` writes."""

FORMATS = ("wav", "flac", "mp3", "ogg", "m4a")
"""The formats `OutputFormat` writes."""

BIT_DEPTHS = ("16", "24", "32f")
"""Bit depths of the PCM formats: 16- and 24-bit integers, 32-bit float."""

_WRITE_ERRORS = (OSError, soundfile.LibsndfileError, RuntimeError, av.FFmpegError)
"""What a failed write raises (libsndfile's "System error." of a full disk is not an `OSError`)."""


class ClippingWarning(UserWarning):
  """Samples beyond full scale were clipped to fit an integer bit depth (`mssjax.separate` warns once per song)."""


class _Codec(NamedTuple):
  """How one format of `OutputFormat` is written."""
  file_format: str  # libsndfile's format name, or the ffmpeg muxer of a PyAV format
  encoder: str | None  # the PyAV encoder (None: libsndfile writes it)
  bit_depths: tuple[str, ...]  # () for a lossy format
  bitrates: tuple[int, int] | None  # the bit rates allowed, bits per second (None: lossless)
  default: str | int  # the default bit depth or bit rate


_CODECS = {
    "wav": _Codec("WAV", None, ("16", "24", "32f"), None, "32f"),
    "flac": _Codec("FLAC", None, ("16", "24"), None, "24"),
    "mp3": _Codec("mp3", "libmp3lame", (), (32_000, 320_000), 320_000),
    "m4a": _Codec("ipod", "aac", (), (32_000, 512_000), 256_000),
    "ogg": _Codec("OGG", None, (), (64_000, 500_000), 320_000),
}

DEFAULT_SETTINGS = {name: codec.default for name, codec in _CODECS.items()}
"""Each format's default bit depth (wav, flac) or bit rate in bits per second (mp3, m4a, ogg)."""

_SUBTYPE_OF_DEPTH = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}

_VORBIS_NOMINAL_KBPS = (64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 500)
"""libvorbis's nominal bit rates for 44.1 kHz stereo at qualities 0 to 10 (its documentation's table)."""


def _parse_bitrate(bitrate: str | int) -> int:
  """``"320k"`` or ``320000`` -> bits per second."""
  if isinstance(bitrate, (int, np.integer)) and not isinstance(bitrate, bool):
    return int(bitrate)
  match = re.fullmatch(r"\s*(\d+)\s*([kK]?)\s*", bitrate) if isinstance(bitrate, str) else None
  if match is None:
    raise ParameterError(f"bitrate={bitrate!r} must be a bit rate such as '320k' (kilobits per second) or 320000")
  return int(match.group(1)) * (1000 if match.group(2) else 1)


@dataclasses.dataclass(frozen=True)
class OutputFormat:
  """The format of written stems: a file format and its bit depth or bit rate, checked when made.

  Attributes:
    format: one of `FORMATS`.
    bit_depth: ``"16"``, ``"24"`` or ``"32f"`` for wav and flac (None: the
      format's default, 32f for wav and 24 for flac); must be None for the
      lossy formats.
    bitrate: bits per second for mp3, m4a and ogg, as ``"320k"`` or
      ``320000`` (None: the format's default, see the module docstring); must
      be None for wav and flac. Stored as an int (bits per second).

  Raises:
    ParameterError: an unknown format, a bit depth the format cannot hold,
      a bad bit rate, or a setting the format does not have.
    AudioError: the encoder the format needs is missing from this PyAV
      (ffmpeg) or libsndfile build.
  """
  format: str = "wav"
  bit_depth: str | None = None
  bitrate: str | int | None = None

  def __post_init__(self):
    codec = _CODECS[check_choice("format", self.format, FORMATS)]
    if codec.bitrates is None:
      self._check_lossless(codec)
    else:
      self._check_lossy(codec)
    self._check_encoder(codec)

  def _check_lossless(self, codec: _Codec) -> None:
    if self.bitrate is not None:
      raise ParameterError(f"bitrate={self.bitrate!r} applies to mp3, m4a and ogg only; {self.format} is lossless "
                           "(set the bit depth)")
    depth = codec.default if self.bit_depth is None else str(self.bit_depth)
    if depth not in codec.bit_depths:
      raise ParameterError(f"bit_depth={self.bit_depth!r} must be one of {list(codec.bit_depths)} for {self.format}")
    object.__setattr__(self, "bit_depth", depth)

  def _check_lossy(self, codec: _Codec) -> None:
    if self.bit_depth is not None:
      raise ParameterError(f"bit_depth={self.bit_depth!r} applies to wav and flac only; {self.format} is lossy "
                           "(set the bit rate)")
    bitrate = codec.default if self.bitrate is None else _parse_bitrate(self.bitrate)
    low, high = codec.bitrates
    if not low <= bitrate <= high:
      raise ParameterError(f"bitrate={self.bitrate!r} must be within {low // 1000}k to {high // 1000}k "
                           f"for {self.format}")
    object.__setattr__(self, "bitrate", bitrate)

  def _check_encoder(self, codec: _Codec) -> None:
    if codec.encoder is not None and codec.encoder not in av.codecs_available:
      raise AudioError(f"format={self.format!r} needs ffmpeg's {codec.encoder} encoder, which this PyAV build "
                       "lacks (choose another --format, or install a PyAV whose ffmpeg has it)")
    if self.format == "ogg" and "VORBIS" not in soundfile.available_subtypes("OGG"):
      raise AudioError("format='ogg' needs libsndfile's Vorbis encoder, which this libsndfile build lacks "
                       "(choose another --format)")

  @property
  def extension(self) -> str:
    """The file extension, with its dot (``".flac"``)."""
    return f".{self.format}"

  @property
  def bits(self) -> int | None:
    """16 or 24 for integer PCM, None for float and lossy formats."""
    return int(self.bit_depth) if self.bit_depth in ("16", "24") else None

  def writer(self, path: str | os.PathLike, *, sample_rate: int, channels: int,
             name: str | os.PathLike | None = None, seed: int = 0) -> BlockWriter | EncoderWriter:
    """Opens a block writer for ``path`` in this format (a context manager).

    Args:
      path: the file (written in place; see `BlockWriter`).
      sample_rate: Hz.
      channels: channels of every block.
      name: the file named in errors (default ``path``).
      seed: the dither generator's seed (16-bit output only): the same seed
        writes the same bytes.

    Raises:
      AudioError: the file cannot be created, or the encoder cannot take
        this rate or channel count (mp3: at most 2 channels, 8 to 48 kHz).
    """
    codec = _CODECS[self.format]
    if codec.encoder is not None:
      return EncoderWriter(path, sample_rate=sample_rate, channels=channels, encoder=codec.encoder,
                           container_format=codec.file_format, bitrate=self.bitrate, name=name)
    if self.format == "ogg":
      quality = float(np.interp(self.bitrate / 1000, _VORBIS_NOMINAL_KBPS, range(11)))
      return BlockWriter(path, sample_rate=sample_rate, channels=channels, subtype="VORBIS",
                         file_format=codec.file_format, name=name, compression_level=1 - quality / 10)
    return BlockWriter(path, sample_rate=sample_rate, channels=channels, subtype=_SUBTYPE_OF_DEPTH[self.bit_depth],
                       file_format=codec.file_format, name=name, dither_seed=seed if self.bits == 16 else None)


class Quantized(NamedTuple):
  """What `quantize` returns.

  Attributes:
    samples: int32 integers in ``[-2**(bits - 1), 2**(bits - 1) - 1]``, the input's shape.
    clipped: how many samples lay beyond full scale (``|x| > 1``) and were clipped.
  """
  samples: np.ndarray
  clipped: int


def quantize(audio: np.ndarray, *, bits: int, rng: np.random.Generator | None = None) -> Quantized:
  """Rounds float audio to ``bits``-bit PCM integers, with TPDF dither if ``rng`` is given.

  ``clip(rint(x * 2**(bits - 1) + d), -2**(bits - 1), 2**(bits - 1) - 1)``
  where ``d`` is 0, or with ``rng`` triangular noise in (-1, 1) steps (the
  difference of two uniform draws; Lipshitz, Wannamaker & Vanderkooy 1992).
  The draws are taken sample by sample (all channels of a sample, then the
  next), so quantising a signal in blocks with one generator gives the same
  integers as quantising it whole. ``quantize(x, bits=16).samples / 32768``
  is `mssjax.audio.quantize_pcm16`'s result.

  Args:
    audio: finite float ``[channels, n_samples]`` (or ``[n_samples]``).
    bits: 16 or 24.
    rng: the dither's generator (None: no dither).

  Returns:
    `Quantized`: the integers and the count of samples clipped beyond full scale.
  """
  check_choice("bits", bits, (16, 24))
  x = np.asarray(audio, dtype=np.float64)
  scaled = x * float(1 << (bits - 1))
  if rng is not None:
    draws = rng.random((*x.shape[::-1], 2))  # [n_samples, channels, 2]: block-invariant order
    scaled = scaled + (draws[..., 0] - draws[..., 1]).T
  top = (1 << (bits - 1)) - 1
  samples = np.clip(np.rint(scaled), -top - 1, top).astype(np.int32)
  return Quantized(samples, int(np.count_nonzero(np.abs(x) > 1.0)))


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


class _Writer(abc.ABC):
  """What both block writers share: the file's name in errors, checked blocks, the context manager.

  Attributes:
    path: the file written.
    name: the file named in errors.
    clipped: samples clipped beyond full scale so far (only integer PCM clips).
  """

  def __init__(self, path: str | os.PathLike, name: str | os.PathLike | None) -> None:
    self.path, self.name, self.clipped = pathlib.Path(path), pathlib.Path(name or path), 0

  @contextlib.contextmanager
  def _errors(self):
    try:
      yield
    except _WRITE_ERRORS as error:
      raise AudioError(f"{self.name}: cannot be written ({getattr(error, 'strerror', None) or error})") from error

  def write(self, block: np.ndarray) -> None:
    """Appends ``[channels, k]`` (or ``[k]`` for mono) float samples; NaN or Inf is an `AudioError`."""
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 1:
      block = block[None]
    if block.shape[-1] == 0:
      return
    check_finite(block, path=self.name)
    with self._errors():
      self._write(block)

  @abc.abstractmethod
  def _write(self, block: np.ndarray) -> None:
    """Writes a checked float32 ``[channels, k]`` block (``k > 0``)."""

  def close(self) -> None:
    """Finishes the file (its header or last frames); an error here is an `AudioError` too."""
    with self._errors():
      self._close()

  @abc.abstractmethod
  def _close(self) -> None:
    """Finishes the file."""

  def __enter__(self):
    return self

  def __exit__(self, *exc_info) -> None:
    if exc_info[0] is None:
      self.close()
    else:
      with contextlib.suppress(Exception):
        self._close()


class BlockWriter(_Writer):
  """Writes an audio file through libsndfile block by block (a context manager): a stem of any length in bounded
  memory.

  Every failure to write (a full disk, a folder that went away; libsndfile's
  errors are not `OSError`s) is an `AudioError` naming the file. The file is
  written in place: write into a temporary folder (`mssjax.fileio.atomic_folder`)
  or file to make it appear whole. Integer subtypes are quantised by `quantize`
  (samples beyond full scale clipped and counted in ``clipped``).

  Example::

    with BlockWriter(path, sample_rate=44100, channels=2) as writer:
      for block in blocks:  # [2, k]
        writer.write(block)
  """

  def __init__(self, path: str | os.PathLike, *, sample_rate: int, channels: int, subtype: str = "FLOAT",
               file_format: str | None = None, name: str | os.PathLike | None = None,
               dither_seed: int | None = None, compression_level: float | None = None) -> None:
    """Opens ``path`` for writing.

    Args:
      path: the file; its extension gives the format unless ``file_format``.
      sample_rate: Hz.
      channels: channels of every block.
      subtype: libsndfile's subtype: as `save`, or ``"VORBIS"`` for ogg.
      file_format: libsndfile's format name (``"WAV"``); default from ``path``.
      name: the file named in errors (default ``path``; the final name of a temporary file).
      dither_seed: for PCM_16 and PCM_24, TPDF dither from ``np.random.default_rng(dither_seed)``
        (None: none).
      compression_level: libsndfile's, 0 to 1 (for Vorbis, 1 - quality / 10).

    Raises:
      AudioError: the file cannot be created.
    """
    super().__init__(path, name)
    self._bits = {"PCM_16": 16, "PCM_24": 24}.get(subtype)
    self._rng = None if dither_seed is None or self._bits is None else np.random.default_rng(dither_seed)
    with self._errors():
      self._file = soundfile.SoundFile(_native(self.path), "w", samplerate=sample_rate, channels=channels,
                                       subtype=subtype, format=file_format or _write_format(self.name),
                                       compression_level=compression_level)

  def _write(self, block: np.ndarray) -> None:
    if self._bits is None:
      self._file.write(block.T)
      return
    quantized = quantize(block, bits=self._bits, rng=self._rng)
    self.clipped += quantized.clipped
    if self._bits == 16:  # libsndfile writes int16 as they are, and takes the top 24 bits of int32
      self._file.write(quantized.samples.T.astype(np.int16))
    else:
      self._file.write(quantized.samples.T << 8)

  def _close(self) -> None:
    self._file.close()


class EncoderWriter(_Writer):
  """Writes an mp3 or m4a file through PyAV (ffmpeg's encoders) block by block (a context manager), in bounded
  memory: each block is encoded and its packets written at once.

  The encoder's delay and padding are recorded in the file (the LAME header of
  mp3, the edit list of m4a), so `mssjax.audio.load` reads back the samples
  written, no more, no fewer. Errors are `AudioError` naming the file, as
  `BlockWriter`'s.
  """

  def __init__(self, path: str | os.PathLike, *, sample_rate: int, channels: int, encoder: str,
               container_format: str, bitrate: int, name: str | os.PathLike | None = None) -> None:
    """Opens ``path`` and its encoder.

    Args:
      path: the file.
      sample_rate: Hz; the encoder must take it (mp3: 8 to 48 kHz).
      channels: channels of every block (1 to 8; mp3: 1 or 2).
      encoder: PyAV's encoder name (``"libmp3lame"``, ``"aac"``).
      container_format: ffmpeg's muxer (``"mp3"``, ``"ipod"`` for m4a).
      bitrate: bits per second.
      name: the file named in errors (default ``path``).

    Raises:
      AudioError: the file cannot be created, or the encoder cannot take the rate or channels.
    """
    super().__init__(path, name)
    rates = av.Codec(encoder, "w").audio_rates
    if rates and sample_rate not in rates:
      raise AudioError(f"{self.name}: the {encoder} encoder cannot take {sample_rate} Hz audio "
                       f"(it takes {sorted(rates)} Hz)")
    self._samples = 0
    with self._errors():
      self._layout = av.AudioLayout(f"{channels}c")
      self._handle = open(_native(self.path), "wb")  # a file object: PyAV cannot open a name that is not UTF-8
      try:
        self._container = av.open(self._handle, "w", format=container_format)
        self._stream = self._container.add_stream(encoder, rate=sample_rate, layout=self._layout)
        self._stream.codec_context.format = "fltp"
        self._stream.bit_rate = bitrate
        self._container.start_encoding()
      except _WRITE_ERRORS as error:
        self._handle.close()
        raise AudioError(f"{self.name}: the {encoder} encoder cannot take {channels} channels at {sample_rate} Hz "
                         f"({error})") from error

  def _write(self, block: np.ndarray) -> None:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout=self._layout)
    frame.sample_rate, frame.pts = self._stream.codec_context.sample_rate, self._samples
    self._samples += block.shape[-1]
    for packet in self._stream.encode(frame):
      self._container.mux(packet)

  def _close(self) -> None:
    try:
      for packet in self._stream.encode(None):
        self._container.mux(packet)
      self._container.close()
    finally:
      self._handle.close()


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
