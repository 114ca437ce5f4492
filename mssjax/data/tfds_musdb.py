"""A tensorflow-datasets builder for MUSDB18 / MUSDB18-HQ, written as array_record.

The builder reads a local MUSDB18 root (``manual_dir``) through
`mssjax.data.load_tracks` and writes array_record files that
`mssjax.data.pipeline` reads with random access through
``builder.as_data_source(split)``. It needs no TensorFlow: the audio is stored as
plain tensors (int16 or float32, raw bytes, uncompressed: a record read is a
copy), never as ``tfds.features.Audio``.

Each example is one track, or one segment of a track when the config sets
``segment_seconds``::

  name      str    track name, e.g. "Generated - Train Song 000"
  subset    str    "train" or "test" (MUSDB18's folder)
  start     int64  first sample of the segment in the track
  mixture   [2, n]     the mixture as stored on disk
  targets   [4, 2, n]  the stems in mssjax.TARGETS order (vocals, drums, bass, other)

Splits: ``train`` and ``valid`` (MUSDB18's standard split of the training tracks;
``valid`` is absent when none of its 14 tracks is present, e.g. for generated
songs, and then ``train`` holds all training tracks) and ``test``.

Build from the command line with ``python -m mssjax data build --root ROOT
-o DIR --set builder_config=hq`` or in Python::

  builder = build("/data/musdb18hq", "/data/tfds", config="hq_10s")
  source = builder.as_data_source("train")   # len(source), source[i] -> dict
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from mssjax import TARGETS
from mssjax.data import musdb
from mssjax.errors import DataError, ParameterError, check_choice, check_finite, check_positive_int

__all__ = ["Musdb18", "Musdb18Config", "make_builder", "build", "decode_audio"]

_INT16_SCALE = 32768.0
# Raw bytes: one protobuf field per tensor, not one list element per sample.
_BYTES = tfds.features.Encoding.BYTES
_DTYPES = ("float32", "int16")


@dataclasses.dataclass
class Musdb18Config(tfds.core.BuilderConfig):
  """A MUSDB18 builder configuration.

  Attributes:
    layout: "musdb18hq" (folders of wav) or "musdb18" (.stem.mp4 files).
    segment_seconds: 0 for whole tracks, else each track is cut into consecutive
      segments of this many seconds (the last, shorter one is kept).
    dtype: "float32" (exact for any source) or "int16" (half the size; for
      16-bit sources such as MUSDB18-HQ and generated songs: audio off the
      16-bit grid is refused, never silently quantised).
    sample_rate: the expected sampling rate in Hz (MUSDB18: 44100).
    compression: the array_record compression: "uncompressed" (default: audio
      hardly compresses, and reading a record is then a copy with no
      decompression) or an array_record option such as "zstd:3" (tfds's default
      is zstd).
  """

  layout: str = "musdb18hq"
  segment_seconds: float = 0.0
  dtype: str = "float32"
  sample_rate: int = 44100
  compression: str = "uncompressed"


def _check_config(config):
  check_choice("layout", config.layout, musdb.LAYOUTS)
  check_choice("dtype", config.dtype, _DTYPES)
  check_finite("segment_seconds", config.segment_seconds, minimum=0)
  check_positive_int("sample_rate", config.sample_rate)


class Musdb18(tfds.core.GeneratorBasedBuilder):
  """MUSDB18 and MUSDB18-HQ (Rafii et al. 2017, 2019) from a local copy, as tensors."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Tracks or segments as float32/int16 tensors, TARGETS order."}
  BUILDER_CONFIGS = [
      Musdb18Config(name="hq", dtype="int16",
                    description="MUSDB18-HQ (16-bit wav folders), whole tracks, int16."),
      Musdb18Config(name="hq_10s", dtype="int16", segment_seconds=10.0,
                    description="MUSDB18-HQ (16-bit wav folders), 10 s segments, int16."),
      Musdb18Config(name="hq_float32",
                    description="MUSDB18-HQ layout of float wav (e.g. `prepare` output), whole tracks."),
      Musdb18Config(name="hq_float32_10s", segment_seconds=10.0,
                    description="MUSDB18-HQ layout of float wav, 10 s segments, float32."),
      Musdb18Config(name="stems", layout="musdb18",
                    description="MUSDB18 .stem.mp4 files, whole tracks, float32."),
      Musdb18Config(name="stems_10s", layout="musdb18", segment_seconds=10.0,
                    description="MUSDB18 .stem.mp4 files, 10 s segments, float32."),
  ]
  # tfds finds a builder's checksums file beside its code through the optional
  # importlib_resources package; this builder downloads nothing, so it has none.
  code_path = None

  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Point manual_dir at a MUSDB18 folder holding train/ and test/: MUSDB18-HQ
  folders of wav (configs hq*) or MUSDB18 .stem.mp4 files (configs stems*).
  `mssjax.data.generate.write_songs` makes a small MUSDB18-HQ folder of
  generated songs.
  """

  def download_and_prepare(self, **kwargs) -> None:  # pylint: disable=arguments-differ
    """As tfds's, writing the array_record files with the config's compression."""
    with _array_record_options(f"group_size:1,{self.builder_config.compression}"):
      super().download_and_prepare(**kwargs)

  def _info(self):
    _check_config(self.builder_config)
    dtype = np.dtype(self.builder_config.dtype)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "name": tfds.features.Text(),
            "subset": tfds.features.Text(),
            "start": tfds.features.Scalar(dtype=np.int64),
            "mixture": tfds.features.Tensor(shape=(2, None), dtype=dtype, encoding=_BYTES),
            "targets": tfds.features.Tensor(shape=(len(TARGETS), 2, None), dtype=dtype, encoding=_BYTES),
        }),
        homepage="https://sigsep.github.io/datasets/musdb.html",
        citation=("Rafii, Liutkus, Stoter, Mimilakis, Bittner. The MUSDB18 corpus for "
                  "music separation. 2017. doi:10.5281/zenodo.1117372"),
    )

  def _split_generators(self, dl_manager):
    root = pathlib.Path(dl_manager.manual_dir)
    config = self.builder_config
    splits = {"train": _tracks(root, "train", "train", config),
              "valid": _tracks(root, "train", "valid", config),
              "test": _tracks(root, "test", None, config)}
    if not any(splits.values()):
      raise DataError(f"{root}: no MUSDB18 tracks in train/ or test/")
    return {name: self._generate_examples(tracks) for name, tracks in splits.items() if tracks}

  def _generate_examples(self, tracks):
    config = self.builder_config
    for track in tracks:
      stems = track.stems()  # one decoding pass; checks rate, channels, lengths, NaN
      targets = np.stack([stems[name] for name in TARGETS])
      n_samples = targets.shape[-1]
      segment = int(round(config.segment_seconds * config.sample_rate)) or n_samples
      for start in range(0, n_samples, segment):
        yield f"{track.subset}/{track.name}/{start:010d}", {
            "name": track.name,
            "subset": track.subset,
            "start": start,
            "mixture": _encode(stems["mixture"][:, start:start + segment], config.dtype, track.path),
            "targets": _encode(targets[..., start:start + segment], config.dtype, track.path),
        }


def _tracks(root, subset, split, config):
  """The tracks of one subset (and MUSDB18 split: "train", "valid" or None), maybe []."""
  if not (root / subset).is_dir():
    return []
  tracks = musdb.load_tracks(root, subset=subset, layout=config.layout, sample_rate=config.sample_rate)
  if split is None:
    return tracks
  return [t for t in tracks if (t.name in musdb.VALIDATION_TRACKS) == (split == "valid")]


@contextlib.contextmanager
def _array_record_options(options):
  """Makes tfds write array_record files with writer ``options`` (tfds fixes "group_size:1")."""
  from array_record.python import array_record_module  # pylint: disable=import-outside-toplevel
  adapter = tfds.core.file_adapters.ArrayRecordFileAdapter
  original = adapter.__dict__["write_examples"]

  def write_examples(cls, path, iterator):
    del cls
    writer = array_record_module.ArrayRecordWriter(os.fspath(path), options)
    for _, serialized_example in iterator:
      writer.write(serialized_example)
    writer.close()

  adapter.write_examples = classmethod(write_examples)
  try:
    yield
  finally:
    adapter.write_examples = original


def _encode(audio, dtype, where):
  """float32 audio -> the stored dtype; int16 only for audio exactly on the 16-bit grid."""
  if dtype == "float32":
    return np.ascontiguousarray(audio, dtype=np.float32)
  scaled = audio.astype(np.float64) * _INT16_SCALE
  pcm = np.clip(np.round(scaled), -32768, 32767)
  if not np.array_equal(pcm, scaled):
    raise DataError(f"{where}: audio is not 16-bit PCM, int16 storage would alter it; "
                    "use a float32 config (hq_float32, stems)")
  return pcm.astype(np.int16)


def decode_audio(array: np.ndarray) -> np.ndarray:
  """Stored audio (float32 or int16, any shape, e.g. ``[4, 2, n]``) -> float32 of the same shape.

  int16 is scaled by 1 / 32768 into [-1, 1); float32 is returned as it is.
  """
  if array.dtype == np.int16:
    return array.astype(np.float32) / _INT16_SCALE
  return np.asarray(array, dtype=np.float32)


def make_builder(data_dir: str | os.PathLike, *, config: str | Musdb18Config = "hq") -> Musdb18:
  """A `Musdb18` builder that writes and reads array_record under ``data_dir``.

  Args:
    data_dir: the TFDS data folder (the dataset goes to
      ``data_dir/musdb18/CONFIG/1.0.0``).
    config: a predefined config name ("hq", "hq_10s" (int16), "hq_float32",
      "hq_float32_10s", "stems", "stems_10s" (float32)) or a `Musdb18Config`
      with another name.

  Returns:
    the builder: ``download_and_prepare(download_config=
    tfds.download.DownloadConfig(manual_dir=ROOT))`` (or `build`) writes it,
    ``as_data_source(split)`` reads it.

  Raises:
    ParameterError: ``config`` names no predefined config.
  """
  if isinstance(config, str):
    names = [c.name for c in Musdb18.BUILDER_CONFIGS]
    if config not in names:
      raise ParameterError(f"config={config!r} must be one of {names} (or a Musdb18Config)")
  return Musdb18(data_dir=str(data_dir), config=config, file_format="array_record")


def build(root: str | os.PathLike, data_dir: str | os.PathLike, *,
          config: str | Musdb18Config = "hq") -> Musdb18:
  """Writes the array_record dataset of the MUSDB18 folder ``root``; skips a finished one.

  Args:
    root: the MUSDB18 / MUSDB18-HQ folder (``train/``, ``test/``).
    data_dir: the TFDS data folder.
    config: as in `make_builder`.

  Returns:
    the prepared builder.

  Raises:
    DataError: ``root`` is missing, holds no tracks, or holds the other layout
      than the config reads; or a track is bad (`mssjax.data.load_tracks`).
  """
  builder = make_builder(data_dir, config=config)
  layout = musdb.detect_layout(root)  # DataError for a missing or empty folder
  wanted = builder.builder_config.layout
  if layout != wanted:
    raise DataError(f"{root}: holds {layout} tracks but config {builder.builder_config.name!r} reads "
                    f"{wanted}; choose a {'stems' if layout == 'musdb18' else 'hq'}* config")
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(manual_dir=str(root)))
  return builder
