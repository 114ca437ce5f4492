"""The grain training input pipeline: random augmented chunks of MUSDB18 tracks.

Each training example is a fixed-length chunk (default 6 s) cut at a random
position of a random track, with the data augmentations of Open-Unmix
(Stöter et al. 2019) and Demucs (Défossez et al. 2019), each switchable:

- ``gain``: every stem is scaled by a random gain in [0.25, 1.25];
- ``channel_swap``: every stem has its left and right channels swapped with
  probability 1/2;
- ``remix``: every stem comes from an independent random track and position
  (Open-Unmix's ``random_track_mix``), so mixtures never heard together are made;
- ``batch_remix``: the same idea at no reading cost (Demucs): each stem is
  shuffled across the examples of a batch. Meant for sources where reading one
  stem costs as much as reading four (`TfdsSource`), with ``remix`` off.

The mixture is the sum of the augmented stems. Batches are
``{"mixture": float32 [B, 2, n], "targets": float32 [B, 4, 2, n]}`` with the
targets in `mssjax.TARGETS` order (vocals, drums, bass, other).

The pipeline is a `grain.DataLoader`: an `IndexSampler` shuffles
``n_tracks * samples_per_track`` keys per epoch (so every track is visited
``samples_per_track`` times an epoch, Open-Unmix's scheme) and a `RandomMap`
cuts and augments the chunk with the sampler's per-record generator
(``Philox(seed + index)``). The stream is therefore a pure function of the seed
and ``worker_count`` (with W workers, worker w batches records w, w + W, ...:
the same examples, grouped differently); it is sharded per JAX process
(`grain.sharding.ShardByJaxProcess`); and the iterator's state (``get_state`` /
``set_state``, or orbax through `checkpoint_save_args` /
`checkpoint_restore_args`) resumes it exactly, given the same ``worker_count``
(grain checks it, with the sampler and the number of tracks).

Track sources (random access, picklable for the worker processes):

- `WavSource`: a MUSDB18-HQ folder (e.g. generated songs); reads only the
  samples of each chunk from the wav files.
- `TfdsSource`: the array_record dataset of `mssjax.data.tfds_musdb` (either
  layout; use a segmented config such as "hq_10s" so each read is small, and
  ``batch_remix`` rather than ``remix``: a read returns all four stems).
- `ArraySource`: tracks already in memory (tests, tiny datasets).

Typical use (``config.data`` fields in `default_config`)::

  loader = make_train_loader(config, seed=config.seed)
  iterator = iter(loader)
  batch = next(iterator)          # {"mixture": [B, 2, n], "targets": [B, 4, 2, n]}
  for track in make_eval_source(config): ...   # {"name", "mixture", "targets"}
"""

from __future__ import annotations

import collections.abc
import dataclasses
import pathlib
from typing import Any, Protocol

from absl import flags
import grain
import ml_collections
import numpy as np
import soundfile as sf

from mssjax import TARGETS, audio
from mssjax import config as config_lib
from mssjax.data import augment, musdb
from mssjax.data.augment import Augment, BatchRemix, RandomChunk
from mssjax.errors import (DataError, ParameterError, check_choice, check_finite, check_non_negative_int,
                           check_positive_int)

__all__ = [
    "ArraySource", "WavSource", "TfdsSource", "Augment", "RandomChunk", "BatchRemix", "default_config",
    "make_source", "make_train_loader", "make_eval_source", "checkpoint_save_args",
    "checkpoint_restore_args", "iterator_state", "restore_iterator_state", "SOURCES", "TrackSource",
]

_ALL_STEMS = tuple(range(len(TARGETS)))

SOURCES = ("files", "tfds")
"""The track sources ``data.source`` names: a MUSDB18-HQ folder or the TFDS array_record dataset."""

ConfigLike = ml_collections.ConfigDict | collections.abc.Mapping
"""An experiment config with a ``data`` field, or the data config itself (a ConfigDict or a dict)."""


class TrackSource(Protocol):
  """What the pipeline reads from a track source (`ArraySource`, `WavSource`, `TfdsSource`)."""

  def __len__(self) -> int:
    """Number of tracks (records, for a segmented `TfdsSource`)."""

  def chunk(self, index: int, *, length: int, rng: np.random.Generator,
            stems: collections.abc.Sequence[int] = ...) -> np.ndarray:
    """``[len(stems), 2, length]`` float32 from a random position of track ``index``."""

  def track(self, index: Any) -> dict[str, Any]:
    """A whole track: ``{"name": str, "mixture": [2, n], "targets": [4, 2, n]}``."""


def _chunk_start(n_samples: int, length: int, rng: np.random.Generator) -> int:
  """A uniform random start so that ``[start, start + length)`` lies in the track (0 if short)."""
  return int(rng.integers(0, max(n_samples - length, 0) + 1))


class ArraySource:
  """Tracks in memory.

  Args:
    targets: sequence of float32 ``[4, 2, n_i]`` arrays in TARGETS order.
    mixtures: optional sequence of ``[2, n_i]`` (default: the sums of the targets).
    names: optional track names (default: "track 000", "track 001", ...).

  Raises:
    ParameterError: a target is not ``[4, 2, n_samples]``.
  """

  def __init__(self, targets: collections.abc.Sequence[np.ndarray], *,
               mixtures: collections.abc.Sequence[np.ndarray] | None = None,
               names: collections.abc.Sequence[str] | None = None) -> None:
    self.targets = [np.asarray(t, dtype=np.float32) for t in targets]
    for i, t in enumerate(self.targets):
      if t.ndim != 3 or t.shape[:2] != (len(TARGETS), 2):
        raise ParameterError(f"targets[{i}].shape={t.shape} must be [4, 2, n_samples]")
    self.mixtures = mixtures
    self.names = list(names) if names is not None else [f"track {i:03d}" for i in range(len(targets))]

  def __len__(self) -> int:
    return len(self.targets)

  def __repr__(self) -> str:
    return f"ArraySource(n_tracks={len(self)})"

  def chunk(self, index: int, *, length: int, rng: np.random.Generator,
            stems: collections.abc.Sequence[int] = _ALL_STEMS) -> np.ndarray:
    """``[len(stems), 2, length]`` float32 from a random position of track ``index``.

    Stems are indices into TARGETS; a track shorter than ``length`` is zero-padded at the end.
    """
    track = self.targets[index]
    start = _chunk_start(track.shape[-1], length, rng)
    return augment.fit(track[list(stems), :, start:start + length], length)

  def track(self, index: int) -> dict[str, Any]:
    """Track ``index`` whole: ``{"name": str, "mixture": float32 [2, n], "targets": float32 [4, 2, n]}``."""
    targets = self.targets[index]
    mixture = targets.sum(0) if self.mixtures is None else np.asarray(self.mixtures[index], np.float32)
    return {"name": self.names[index], "mixture": mixture, "targets": targets}


class WavSource:
  """A MUSDB18-HQ folder read in place: each chunk reads only its samples.

  Args:
    root: MUSDB18-HQ folder (``{train,test}/NAME/{mixture,vocals,...}.wav``).
    subset: "train" or "test".
    split: None, or MUSDB18's "train" / "valid" split of the training tracks.

  Raises:
    DataError: the folder holds MUSDB18 .stem.mp4 files, a track's stems differ in
      length or are not at 44.1 kHz, or the split has no tracks.
    ParameterError: an unknown subset or split.
  """

  def __init__(self, root: str | pathlib.Path, *, subset: str = "train", split: str | None = None) -> None:
    if musdb.detect_layout(root) != "musdb18hq":
      raise DataError(f"{root}: holds MUSDB18 .stem.mp4 files, not MUSDB18-HQ wav folders; build the "
                      "TFDS dataset (python -m mssjax.data build --config stems_10s) and use "
                      "data.source='tfds', or convert it with python -m mssjax.data prepare")
    tracks = _select(musdb.load_tracks(root, subset=subset, layout="musdb18hq"), split, root)
    self.root, self.subset, self.split = str(root), subset, split
    self.names = [t.name for t in tracks]
    self.folders = [str(t.path) for t in tracks]
    self.lengths = [_checked_length(t) for t in tracks]

  def __len__(self) -> int:
    return len(self.folders)

  def __repr__(self) -> str:
    return f"WavSource(root={self.root!r}, subset={self.subset!r}, split={self.split!r})"

  def _read(self, index: int, stem: str, start: int, stop: int) -> np.ndarray:
    """``[2, stop - start]`` float32 of one wav file (mono read as two equal channels)."""
    audio, _ = sf.read(pathlib.Path(self.folders[index]) / f"{stem}.wav", start=start, stop=stop,
                       dtype="float32", always_2d=True)
    if audio.shape[1] == 1:
      audio = np.repeat(audio, 2, axis=1)
    return audio.T

  def chunk(self, index: int, *, length: int, rng: np.random.Generator,
            stems: collections.abc.Sequence[int] = _ALL_STEMS) -> np.ndarray:
    """``[len(stems), 2, length]`` float32 from a random position of track ``index``.

    Stems are indices into TARGETS; a track shorter than ``length`` is zero-padded at the end.
    """
    start = _chunk_start(self.lengths[index], length, rng)
    stop = min(start + length, self.lengths[index])
    return augment.fit(np.stack([self._read(index, TARGETS[s], start, stop) for s in stems]), length)

  def track(self, index: int) -> dict[str, Any]:
    """Track ``index`` whole: ``{"name": str, "mixture": float32 [2, n], "targets": float32 [4, 2, n]}``."""
    n = self.lengths[index]
    targets = np.stack([self._read(index, name, 0, n) for name in TARGETS])
    return {"name": self.names[index], "mixture": self._read(index, "mixture", 0, n), "targets": targets}


def _checked_length(track: musdb.Track) -> int:
  """The common length of a MUSDB18-HQ track's five wav files (headers only), else `DataError`."""
  headers = {stem: audio.info(track.file(stem)) for stem in musdb.STEM_NAMES}
  for stem, header in headers.items():
    if header.sample_rate != musdb.SAMPLE_RATE:
      raise DataError(f"{track.file(stem)}: sample rate {header.sample_rate} Hz, "
                      f"expected {musdb.SAMPLE_RATE} Hz")
  lengths = {stem: header.frames for stem, header in headers.items()}
  if len(set(lengths.values())) > 1:
    detail = ", ".join(f"{stem} {n}" for stem, n in lengths.items())
    raise DataError(f"{track.path}: stems differ in length ({detail} samples)")
  return lengths["mixture"]


def _select(tracks: list[musdb.Track], split: str | None, root: str | pathlib.Path) -> list[musdb.Track]:
  """The tracks of MUSDB18's ``split`` ("train": not a validation track; "valid"; None: all)."""
  check_choice("split", split, (None, *musdb.SPLITS))
  if split is None:
    return tracks
  chosen = [t for t in tracks if (t.name in musdb.VALIDATION_TRACKS) == (split == "valid")]
  if not chosen:
    raise DataError(f"{root}: no tracks in split {split!r} (MUSDB18's validation tracks are absent, "
                    "as in generated songs: use subset 'test' or split None)")
  return chosen


class TfdsSource:
  """The array_record dataset written by `mssjax.data.tfds_musdb` (one record per track or segment).

  Args:
    data_source: ``builder.as_data_source(split)`` or
      ``tfds.data_source("musdb18/CONFIG", split=..., data_dir=...)``: a random-access
      sequence of records with "name", "start", "mixture" ``[2, n]`` and "targets"
      ``[4, 2, n]``.

  Raises:
    DataError: the data source is empty.
  """

  def __init__(self, data_source: collections.abc.Sequence[dict[str, Any]]) -> None:
    if len(data_source) == 0:
      raise DataError(f"{data_source!r}: empty")
    self.data_source = data_source

  def __len__(self) -> int:
    return len(self.data_source)

  def __repr__(self) -> str:
    return f"TfdsSource({self.data_source!r})"

  def chunk(self, index: int, *, length: int, rng: np.random.Generator,
            stems: collections.abc.Sequence[int] = _ALL_STEMS) -> np.ndarray:
    """``[len(stems), 2, length]`` float32 from a random position of record ``index`` (zero-padded if short)."""
    from mssjax.data.tfds_musdb import decode_audio  # pylint: disable=import-outside-toplevel
    targets = self.data_source[index]["targets"]
    start = _chunk_start(targets.shape[-1], length, rng)
    return augment.fit(decode_audio(targets[list(stems), :, start:start + length]), length)

  def record(self, index: int) -> dict[str, Any]:
    """Record ``index`` (a track or a segment): ``{"name": str, "start": int (samples),
    "mixture": float32 [2, n], "targets": float32 [4, 2, n]}``."""
    from mssjax.data.tfds_musdb import decode_audio  # pylint: disable=import-outside-toplevel
    record = self.data_source[index]
    name = record["name"]
    return {"name": name.decode() if isinstance(name, bytes) else str(name), "start": int(record["start"]),
            "mixture": decode_audio(record["mixture"]), "targets": decode_audio(record["targets"])}

  def groups(self) -> list[list[int]]:
    """The records of each track in time order: list of index lists, tracks sorted by name.

    Reads every record once (uncompressed: a copy each); segmented configs need it
    to give whole tracks.
    """
    starts = {}
    for index in range(len(self)):
      record = self.data_source[index]
      name = record["name"].decode() if isinstance(record["name"], bytes) else str(record["name"])
      starts.setdefault(name, []).append((int(record["start"]), index))
    return [[index for _, index in sorted(starts[name])] for name in sorted(starts)]

  def track(self, indices: int | collections.abc.Sequence[int]) -> dict[str, Any]:
    """A whole track from its records ``indices`` (`groups`; an int: one record).

    Returns:
      ``{"name": str, "mixture": float32 [2, n], "targets": float32 [4, 2, n]}``, the
      records joined in the order given.
    """
    records = [self.record(i) for i in ([indices] if isinstance(indices, (int, np.integer)) else indices)]
    return {"name": records[0]["name"],
            "mixture": np.concatenate([r["mixture"] for r in records], axis=-1),
            "targets": np.concatenate([r["targets"] for r in records], axis=-1)}


class _TrackKeys:
  """The DataLoader's data source: key -> track index (``key % n_tracks``), so each epoch of
  ``n_tracks * samples_per_track`` keys visits every track ``samples_per_track`` times."""

  def __init__(self, n_tracks: int, samples_per_track: int) -> None:
    self.n_tracks, self.samples_per_track = n_tracks, samples_per_track

  def __len__(self) -> int:
    return self.n_tracks * self.samples_per_track

  def __getitem__(self, key: int) -> int:
    return key % self.n_tracks

  def __repr__(self) -> str:
    return f"_TrackKeys(n_tracks={self.n_tracks}, samples_per_track={self.samples_per_track})"


def default_config() -> ml_collections.ConfigDict:
  """The ``config.data`` fields that `make_train_loader` and `make_eval_source` read.

  Returns:
    ml_collections.ConfigDict with:
      name: the loader of `mssjax.data.loaders` ("musdb": this pipeline; "synthetic").
      source: "files" (a MUSDB18-HQ folder, read in place) or "tfds" (array_record).
      root: the MUSDB18-HQ folder (source "files").
      tfds_dir, tfds_config: TFDS data_dir and builder config (source "tfds").
      subset, split: training tracks (subset "train", MUSDB18 split "train"; for
        generated songs, which have no validation tracks, split "train" is all of them).
      eval_subset, eval_split: validation tracks ("train" / "valid"; generated songs:
        "test" / None).
      sample_rate: 44100.
      chunk_seconds: training chunk length (6 s).
      batch_size: per JAX process.
      samples_per_track: chunks per track per epoch (64, as Open-Unmix).
      worker_count: grain worker processes (0: in the main process).
      worker_buffer_size: batches each worker prepares ahead.
      shard_by_process: shard the sampler per JAX process (multi-host).
      augment.gain / gain_low / gain_high / channel_swap / remix / batch_remix /
        sign_flip / speed / speed_low / speed_high: see `Augment` (gain,
        channel_swap and remix on, the others off; with source "tfds" prefer remix
        off and batch_remix on: a record read gives all four stems).
  """
  config = ml_collections.ConfigDict()
  config.name = "musdb"
  config.source = "files"
  config.root = ""
  config.tfds_dir = ""
  config.tfds_config = "hq_10s"
  config.subset = "train"
  config.split = "train"
  config.eval_subset = "train"
  config.eval_split = "valid"
  config.sample_rate = 44100
  config.chunk_seconds = 6.0
  config.batch_size = 16
  config.samples_per_track = 64
  config.worker_count = 0
  config.worker_buffer_size = 2
  config.shard_by_process = True
  config.augment = ml_collections.ConfigDict(dataclasses.asdict(Augment()))
  return config


def _data_config(config: ConfigLike) -> ml_collections.ConfigDict:
  """``config.data`` (or the data config itself; a ConfigDict or dict) over `default_config`.

  Fields left out take their defaults; a field `default_config` does not have
  is a `ParameterError` listing the valid ones (never a silently ignored setting).
  """
  if isinstance(config, collections.abc.Mapping):
    config = ml_collections.ConfigDict(dict(config))
  data = config.data if hasattr(config, "data") else config
  overrides = data.to_dict() if hasattr(data, "to_dict") else dict(data)
  return config_lib.override(default_config(), overrides, what="data config")


def make_source(config: ConfigLike, *, subset: str | None = None,
                split: str | None = None) -> WavSource | TfdsSource:
  """The track source that ``config.data`` names (`WavSource` or `TfdsSource`).

  Args:
    config: a config with a ``data`` field, or the data config itself.
    subset: overrides ``data.subset`` ("train" or "test").
    split: overrides ``data.split`` ("train", "valid"; "" for all the subset's tracks).

  Returns:
    a `WavSource` (``data.source`` "files") or a `TfdsSource` ("tfds").

  Raises:
    ParameterError: an unknown ``data.source`` or a field `default_config` lacks, or
      no ``data.root`` for "files".
  """
  data = _data_config(config)
  check_choice("data.source", data.source, SOURCES)
  subset = data.subset if subset is None else subset
  split = data.split if split is None else split
  if data.source == "files":
    if not data.root:
      raise ParameterError("data.root must name a MUSDB18-HQ folder for data.source='files'")
    return WavSource(data.root, subset=subset, split=split or None)
  from mssjax.data import tfds_musdb  # pylint: disable=import-outside-toplevel
  builder = tfds_musdb.make_builder(data.tfds_dir, config=data.tfds_config)
  return TfdsSource(builder.as_data_source(_tfds_split(builder, subset, split)))


def _tfds_split(builder: Any, subset: str, split: str | None) -> str:
  """The TFDS split of a MUSDB18 subset and split ("train+valid" for all training tracks)."""
  if subset == "test":
    return "test"
  if split:
    return split
  return "train+valid" if "valid" in builder.info.splits else "train"


def _sampler_seed(seed: int) -> int:
  """A 31-bit seed for grain's sampler, hashed from ``seed`` (grain seeds record i with
  ``Philox(seed + i)``, so raw neighbouring seeds would give the same chunks shifted by one)."""
  seed = check_non_negative_int("seed", seed)
  return int(np.random.SeedSequence(seed).generate_state(1)[0]) >> 1


def make_train_loader(config: ConfigLike, *, seed: int, source: TrackSource | None = None,
                      shard_options: grain.sharding.ShardOptions | None = None,
                      num_epochs: int | None = None) -> grain.DataLoader:
  """The training `grain.DataLoader` of random augmented chunks.

  Args:
    config: the experiment config (its ``data`` field is read) or the data config
      itself; missing fields take `default_config` values. Read: source, root,
      tfds_dir, tfds_config, subset, split, sample_rate, chunk_seconds,
      batch_size, samples_per_track, worker_count, worker_buffer_size,
      shard_by_process, augment (every `Augment` field).
    seed: the pipeline seed (a non-negative int): shuffling and every random draw
      follow from it.
    source: a track source to use instead of the one ``config`` names (e.g. an
      `ArraySource`).
    shard_options: a `grain.sharding.ShardOptions`; default: by JAX process when
      ``data.shard_by_process``, else none.
    num_epochs: None for an endless stream.

  Returns:
    `grain.DataLoader`; ``iter(loader)`` yields ``{"mixture": float32 [B, 2, n],
    "targets": float32 [B, 4, 2, n]}`` with ``n = round(chunk_seconds * sample_rate)``
    and has ``get_state`` / ``set_state``.

  Raises:
    ParameterError: a setting out of range (``data.chunk_seconds``, ``batch_size``,
      ``samples_per_track``, ``worker_count``, ``worker_buffer_size``, ``seed``), an
      unknown field, or a bad `Augment` range.
  """
  data = _data_config(config)
  check_finite("data.chunk_seconds", data.chunk_seconds, minimum=0, strict=True)
  length = check_positive_int("chunk samples", int(round(data.chunk_seconds * data.sample_rate)))
  for name in ("batch_size", "samples_per_track", "worker_buffer_size"):
    check_positive_int(f"data.{name}", data[name])
  check_non_negative_int("data.worker_count", data.worker_count)
  source = make_source(data) if source is None else source
  if shard_options is None:
    shard_options = (grain.sharding.ShardByJaxProcess(drop_remainder=True) if data.shard_by_process
                     else grain.sharding.NoSharding())
  if data.worker_count:
    _allow_unparsed_absl_flags()
  keys = _TrackKeys(len(source), data.samples_per_track)
  sampler = grain.samplers.IndexSampler(len(keys), shard_options=shard_options, shuffle=True,
                                        num_epochs=num_epochs, seed=_sampler_seed(seed))
  augment = Augment(**data.augment.to_dict())
  operations = [RandomChunk(source, length=length, augment=augment),
                grain.transforms.Batch(batch_size=data.batch_size, drop_remainder=True)]
  if augment.batch_remix:
    operations.append(BatchRemix())
  return grain.DataLoader(data_source=keys, sampler=sampler, operations=operations,
                          worker_count=data.worker_count, worker_buffer_size=data.worker_buffer_size,
                          shard_options=shard_options)


def _allow_unparsed_absl_flags() -> None:
  """grain 0.2.18's worker processes read an absl flag and fail in a program that does not
  parse absl flags (google/grain issue 1355, fixed later); mark them parsed (defaults) there."""
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


class _EvalTracks(collections.abc.Sequence):
  """Whole tracks of a source as a sequence of dicts name, mixture ``[2, n]``, targets ``[4, 2, n]``."""

  def __init__(self, source: TrackSource) -> None:
    self.source = source
    self.keys = source.groups() if hasattr(source, "groups") else list(range(len(source)))

  def __len__(self) -> int:
    return len(self.keys)

  def __getitem__(self, index: int) -> dict[str, Any]:
    if not 0 <= index < len(self):
      raise IndexError(index)
    return self.source.track(self.keys[index])

  def __repr__(self) -> str:
    return f"_EvalTracks({self.source!r})"


def make_eval_source(config: ConfigLike, *,
                     source: TrackSource | None = None) -> collections.abc.Sequence[dict[str, Any]]:
  """The validation tracks, whole (``data.eval_subset`` / ``data.eval_split``).

  Args:
    config: as `make_train_loader`.
    source: a track source to use instead.

  Returns:
    a sequence (``len``, ``[i]``, iteration) of dicts ``{"name": str, "mixture":
    float32 [2, n], "targets": float32 [4, 2, n]}``, read when indexed (whole
    tracks also from a segmented TFDS config: its segments are joined).
  """
  data = _data_config(config)
  if source is None:
    source = make_source(data, subset=data.eval_subset, split=data.eval_split or "")
  return _EvalTracks(source)


def iterator_state(iterator: grain.DataLoaderIterator) -> bytes:
  """The state of a loader's iterator (JSON as bytes), to save beside a checkpoint."""
  return iterator.get_state()


def restore_iterator_state(iterator: grain.DataLoaderIterator, state: bytes) -> grain.DataLoaderIterator:
  """Sets a loader's iterator to a state from `iterator_state`; the stream resumes exactly."""
  iterator.set_state(state)
  return iterator


def checkpoint_save_args(iterator: grain.DataLoaderIterator) -> grain.checkpoint.CheckpointSave:
  """orbax args that save the iterator: ``ocp.args.Composite(..., data=checkpoint_save_args(it))``."""
  return grain.checkpoint.CheckpointSave(iterator)


def checkpoint_restore_args(iterator: grain.DataLoaderIterator) -> grain.checkpoint.CheckpointRestore:
  """orbax args that restore into the iterator (a fresh ``iter(loader)`` of the same loader)."""
  return grain.checkpoint.CheckpointRestore(iterator)
