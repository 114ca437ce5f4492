"""The grain training input pipeline: random augmented chunks of any stems of any dataset.

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
  stem costs as much as reading all (`TfdsSource`), with ``remix`` off.

The targets are the experiment's ``config.targets`` (a tuple of stem names,
`mssjax.TARGETS` by default), or ``targets=`` where only a data config is given.
The mixture is the sum of the augmented stems: the targets and the dataset's
other stems (so it equals the sum of the targets where they are all the stems).
Batches are ``{"mixture": float32 [B, 2, n], "targets": float32 [B, T, 2, n]}``
with ``T = len(targets)``, in the targets' order.

The dataset is a folder in one of the layouts of `mssjax.data.layouts`
(``data.layout``: musdb18hq, trackfolder, sourcefolder; "auto" detects it), read
in place (`WavSource`, `SourceFolderSource`), or the MUSDB18 TFDS dataset
(`TfdsSource`). The validation tracks are chosen by `mssjax.data.splits`
(``data.valid_method``: a ``valid/`` folder, a list file, a seeded fraction of the
training tracks, or MUSDB18's own 14).

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

Typical use (``config.data`` fields in `default_config`)::

  loader = make_train_loader(config, seed=config.seed)   # config.targets = ("guitar", "piano")
  batch = next(iter(loader))      # {"mixture": [B, 2, n], "targets": [B, 2, 2, n]}
  for track in make_eval_source(config): ...   # {"name", "mixture", "targets"}
"""

from __future__ import annotations

import collections.abc
import dataclasses
from typing import Any, Sequence

from absl import flags
import grain
import ml_collections
import numpy as np

from mssjax import TARGETS
from mssjax import config as config_lib
from mssjax.data import layouts, splits
from mssjax.data.augment import Augment, BatchRemix, RandomChunk
from mssjax.data.sources import (ArraySource, MissingStemWarning, SourceFolderSource, TfdsSource, TrackSource,
                                 WavSource)
from mssjax.errors import ParameterError, check_choice, check_finite, check_non_negative_int, check_positive_int

__all__ = [
    "ArraySource", "WavSource", "SourceFolderSource", "TfdsSource", "Augment", "RandomChunk", "BatchRemix",
    "MissingStemWarning", "default_config", "targets_of", "make_source", "make_train_loader", "make_eval_source",
    "checkpoint_save_args", "checkpoint_restore_args", "iterator_state", "restore_iterator_state", "SOURCES",
    "TrackSource",
]

SOURCES = ("files", "tfds")
"""The track sources ``data.source`` names: a dataset folder in any layout, or the TFDS array_record dataset."""

ConfigLike = ml_collections.ConfigDict | collections.abc.Mapping
"""An experiment config with a ``data`` field, or the data config itself (a ConfigDict or a dict)."""


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
      name: the loader of `mssjax.data.loaders` ("musdb": this pipeline, for any
        dataset folder; "synthetic").
      source: "files" (a dataset folder, read in place) or "tfds" (MUSDB18 array_record).
      root: the dataset folder (source "files").
      layout: "auto" (detected) or one of `mssjax.data.layouts.LAYOUTS`: "musdb18hq",
        "trackfolder", "sourcefolder" ("musdb18" needs source "tfds").
      tfds_dir, tfds_config: TFDS data_dir and builder config (source "tfds").
      subset, split: training tracks (subset "train", split "train": the training
        subset less its validation tracks, see `mssjax.data.splits`).
      eval_subset, eval_split: validation tracks ("train" / "valid"; e.g. "test" / None
        for a test folder).
      valid_method: where the validation tracks come from: "auto", "folder" (a
        ``valid/`` subset folder), "list", "fraction" or "musdb" (`splits.VALID_METHODS`).
      valid_list: a text file of validation track names, one a line ("" none).
      valid_fraction: share of the training tracks held out for validation (0.1)
        when the method is (or "auto" resolves to) "fraction".
      valid_seed: seed of that choice, and of a sourcefolder's validation mixtures.
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
  config.layout = "auto"
  config.tfds_dir = ""
  config.tfds_config = "hq_10s"
  config.subset = "train"
  config.split = "train"
  config.eval_subset = "train"
  config.eval_split = "valid"
  valid = splits.ValidSplit()
  config.valid_method = valid.method
  config.valid_list = valid.list_file
  config.valid_fraction = valid.fraction
  config.valid_seed = valid.seed
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


def targets_of(config: ConfigLike, targets: Sequence[str] | None = None) -> tuple[str, ...]:
  """The target names: ``targets`` if given, else the experiment config's ``config.targets``,
  else (a data config alone) `mssjax.TARGETS`.

  Raises:
    ParameterError: bad names (`mssjax.data.layouts.check_targets`), or ``targets``
      differs from ``config.targets``.
  """
  if isinstance(config, collections.abc.Mapping):
    config = ml_collections.ConfigDict(dict(config))
  has = hasattr(config, "data") and hasattr(config, "targets")
  configured = tuple(config.targets) if has else None
  if targets is not None and configured is not None and tuple(targets) != configured:
    raise ParameterError(f"targets={tuple(targets)} differs from config.targets={configured}")
  chosen = targets if targets is not None else configured if configured is not None else TARGETS
  return layouts.check_targets(chosen)


def valid_split(config: ConfigLike) -> splits.ValidSplit:
  """The `splits.ValidSplit` of ``config.data`` (``valid_method``, ``valid_list``, ...)."""
  data = _data_config(config)
  return splits.ValidSplit(method=data.valid_method, list_file=data.valid_list, fraction=data.valid_fraction,
                           seed=data.valid_seed)


def make_source(config: ConfigLike, *, targets: Sequence[str] | None = None, subset: str | None = None,
                split: str | None = None) -> WavSource | SourceFolderSource | TfdsSource:
  """The track source that ``config.data`` names.

  Args:
    config: a config with a ``data`` field (and ``targets``), or the data config itself.
    targets: the target names (see `targets_of`).
    subset: overrides ``data.subset`` ("train", "valid" or "test").
    split: overrides ``data.split`` ("train", "valid"; "" for all the subset's tracks).

  Returns:
    a `WavSource` (``data.source`` "files", a musdb18hq or trackfolder folder), a
    `SourceFolderSource` (a sourcefolder) or a `TfdsSource` ("tfds").

  Raises:
    ParameterError: an unknown ``data.source``, ``data.layout`` or field, or no
      ``data.root`` for "files".
    DataError: as the sources (a layout that does not fit, no tracks, ...).
  """
  data = _data_config(config)
  targets = targets_of(config, targets)
  check_choice("data.source", data.source, SOURCES)
  check_choice("data.layout", data.layout, layouts.LAYOUT_CHOICES)
  valid = valid_split(data)
  subset = data.subset if subset is None else subset
  split = (data.split if split is None else split) or None
  if data.source == "files":
    if not data.root:
      raise ParameterError("data.root must name a dataset folder for data.source='files'")
    layout = layouts.detect_layout(data.root, targets=targets) if data.layout == "auto" else data.layout
    kind = SourceFolderSource if layout == "sourcefolder" else WavSource
    return kind(data.root, targets=targets, subset=subset, split=split, layout=layout, valid=valid,
                sample_rate=data.sample_rate)
  from mssjax.data import tfds_musdb  # pylint: disable=import-outside-toplevel
  builder = tfds_musdb.make_builder(data.tfds_dir, config=data.tfds_config)
  return TfdsSource(builder.as_data_source(_tfds_split(builder, subset, split)), targets=targets)


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


def make_train_loader(config: ConfigLike, *, seed: int, targets: Sequence[str] | None = None,
                      source: TrackSource | None = None,
                      shard_options: grain.sharding.ShardOptions | None = None,
                      num_epochs: int | None = None) -> grain.DataLoader:
  """The training `grain.DataLoader` of random augmented chunks.

  Args:
    config: the experiment config (its ``targets`` and ``data`` fields are read) or
      the data config itself; missing fields take `default_config` values. Read:
      source, root, layout, tfds_dir, tfds_config, subset, split, valid_*,
      sample_rate, chunk_seconds, batch_size, samples_per_track, worker_count,
      worker_buffer_size, shard_by_process, augment (every `Augment` field).
    seed: the pipeline seed (a non-negative int): shuffling and every random draw
      follow from it.
    targets: the target names (`targets_of`: default ``config.targets``, else
      `mssjax.TARGETS`).
    source: a track source to use instead of the one ``config`` names (e.g. an
      `ArraySource`); its ``target_names`` must be the targets.
    shard_options: a `grain.sharding.ShardOptions`; default: by JAX process when
      ``data.shard_by_process``, else none.
    num_epochs: None for an endless stream.

  Returns:
    `grain.DataLoader`; ``iter(loader)`` yields ``{"mixture": float32 [B, 2, n],
    "targets": float32 [B, len(targets), 2, n]}`` with ``n = round(chunk_seconds *
    sample_rate)`` and has ``get_state`` / ``set_state``.

  Raises:
    ParameterError: a setting out of range (``data.chunk_seconds``, ``batch_size``,
      ``samples_per_track``, ``worker_count``, ``worker_buffer_size``, ``seed``), an
      unknown field, a bad `Augment` range, or a source serving other targets.
  """
  data = _data_config(config)
  check_finite("data.chunk_seconds", data.chunk_seconds, minimum=0, strict=True)
  length = check_positive_int("chunk samples", int(round(data.chunk_seconds * data.sample_rate)))
  for name in ("batch_size", "samples_per_track", "worker_buffer_size"):
    check_positive_int(f"data.{name}", data[name])
  check_non_negative_int("data.worker_count", data.worker_count)
  targets = targets_of(config, targets)
  source = make_source(config, targets=targets) if source is None else _checked_source(source, targets)
  if shard_options is None:
    shard_options = (grain.sharding.ShardByJaxProcess(drop_remainder=True) if data.shard_by_process
                     else grain.sharding.NoSharding())
  if data.worker_count:
    _allow_unparsed_absl_flags()
  keys = _TrackKeys(len(source), data.samples_per_track)
  sampler = grain.samplers.IndexSampler(len(keys), shard_options=shard_options, shuffle=True,
                                        num_epochs=num_epochs, seed=_sampler_seed(seed))
  augment = Augment(**data.augment.to_dict())
  operations = [RandomChunk(source, length=length, augment=augment, keep_rest=augment.batch_remix),
                grain.transforms.Batch(batch_size=data.batch_size, drop_remainder=True)]
  if augment.batch_remix:
    operations.append(BatchRemix())
  return grain.DataLoader(data_source=keys, sampler=sampler, operations=operations,
                          worker_count=data.worker_count, worker_buffer_size=data.worker_buffer_size,
                          shard_options=shard_options)


def _checked_source(source: TrackSource, targets: tuple[str, ...]) -> TrackSource:
  if tuple(source.target_names) != targets:
    raise ParameterError(f"the source serves targets {tuple(source.target_names)}, not targets={targets}")
  return source


def _allow_unparsed_absl_flags() -> None:
  """grain 0.2.18's worker processes read an absl flag and fail in a program that does not
  parse absl flags (google/grain issue 1355, fixed later); mark them parsed (defaults) there."""
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


class _EvalTracks(collections.abc.Sequence):
  """Whole tracks of a source as a sequence of dicts name, mixture ``[2, n]``, targets ``[T, 2, n]``."""

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


def make_eval_source(config: ConfigLike, *, targets: Sequence[str] | None = None,
                     source: TrackSource | None = None) -> collections.abc.Sequence[dict[str, Any]]:
  """The validation tracks, whole (``data.eval_subset`` / ``data.eval_split``, `mssjax.data.splits`).

  Args:
    config: as `make_train_loader`.
    targets: the target names (`targets_of`).
    source: a track source to use instead (serving those targets).

  Returns:
    a sequence (``len``, ``[i]``, iteration) of dicts ``{"name": str, "mixture":
    float32 [2, n], "targets": float32 [len(targets), 2, n]}``, read when indexed
    (whole tracks also from a segmented TFDS config: its segments are joined; a
    sourcefolder gives seeded mixtures of one file per target).
  """
  data = _data_config(config)
  targets = targets_of(config, targets)
  if source is None:
    source = make_source(config, targets=targets, subset=data.eval_subset, split=data.eval_split or "")
  return _EvalTracks(_checked_source(source, targets))


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
