"""Track sources: random access to the stems of a dataset, for the training pipeline.

A source serves chunks of stems (`TrackSource.chunk`) and whole tracks
(`TrackSource.track`). Its ``stem_names`` are its ``target_names`` (the
experiment's ``config.targets``, in that order) followed by the dataset's other
stems, which are mixed in but never predicted (a ``("vocals",)`` model still
trains on mixtures holding drums). A chunk's stems are indices into
``stem_names``; the training mixture is the sum of all of them.

- `WavSource`: track folders (musdb18hq, trackfolder) read in place; each chunk
  reads only its samples (soundfile formats; mp3 and other PyAV formats are
  decoded whole). A target missing from a trackfolder track is silence, with a
  `MissingStemWarning`.
- `SourceFolderSource`: a sourcefolder; every stem comes from a random file of
  its folder, and whole "tracks" are seeded mixtures of one file per stem.
- `TfdsSource`: the MUSDB18 array_record dataset of `mssjax.data.tfds_musdb`.
- `ArraySource`: tracks already in memory (tests, tiny datasets).

All are picklable, for grain's worker processes.
"""

from __future__ import annotations

import collections.abc
import os
import pathlib
import warnings
import zlib
from typing import Any, Protocol, Sequence

import numpy as np
import soundfile as sf

from mssjax import TARGETS, audio
from mssjax.data import augment, layouts, musdb, splits
from mssjax.data.layouts import MIXTURE, Item
from mssjax.errors import DataError, ParameterError

__all__ = ["TrackSource", "ArraySource", "WavSource", "SourceFolderSource", "TfdsSource", "MissingStemWarning",
           "chunk_start"]


class MissingStemWarning(UserWarning):
  """A target has no file in a track; it is read as silence."""


class TrackSource(Protocol):
  """What the pipeline reads from a track source."""

  target_names: tuple[str, ...]
  stem_names: tuple[str, ...]

  def __len__(self) -> int:
    """Number of tracks (records, for a segmented `TfdsSource`; files of the largest folder of a sourcefolder)."""

  def chunk(self, index: int, *, length: int, rng: np.random.Generator,
            stems: Sequence[int] = ...) -> np.ndarray:
    """``[len(stems), 2, length]`` float32 from a random position of track ``index``."""

  def track(self, index: Any) -> dict[str, Any]:
    """A whole track: ``{"name": str, "mixture": [2, n], "targets": [len(target_names), 2, n]}``."""


def chunk_start(n_samples: int, length: int, rng: np.random.Generator) -> int:
  """A uniform random start so that ``[start, start + length)`` lies in the track (0 if short)."""
  return int(rng.integers(0, max(n_samples - length, 0) + 1))


def _all(source) -> tuple[int, ...]:
  return tuple(range(len(source.stem_names)))


class ArraySource:
  """Tracks in memory.

  Args:
    targets: sequence of float32 ``[len(target_names), 2, n_i]`` arrays.
    mixtures: optional sequence of ``[2, n_i]`` (default: the sums of the targets).
    names: optional track names (default: "track 000", "track 001", ...).
    target_names: the targets' names, in the arrays' order.

  Raises:
    ParameterError: a target is not ``[len(target_names), 2, n_samples]``.
  """

  def __init__(self, targets: Sequence[np.ndarray], *, mixtures: Sequence[np.ndarray] | None = None,
               names: Sequence[str] | None = None, target_names: Sequence[str] = TARGETS) -> None:
    self.target_names = self.stem_names = layouts.check_targets(target_names)
    self.targets = [np.asarray(t, dtype=np.float32) for t in targets]
    n = len(self.target_names)
    for i, t in enumerate(self.targets):
      if t.ndim != 3 or t.shape[:2] != (n, 2):
        raise ParameterError(f"targets[{i}].shape={t.shape} must be [{n}, 2, n_samples]")
    self.mixtures = mixtures
    self.names = list(names) if names is not None else [f"track {i:03d}" for i in range(len(targets))]

  def __len__(self) -> int:
    return len(self.targets)

  def __repr__(self) -> str:
    return f"ArraySource(n_tracks={len(self)}, target_names={self.target_names})"

  def chunk(self, index: int, *, length: int, rng: np.random.Generator,
            stems: Sequence[int] | None = None) -> np.ndarray:
    """``[len(stems), 2, length]`` float32 from a random position of track ``index``.

    Stems are indices into ``stem_names`` (default all); a track shorter than
    ``length`` is zero-padded at the end.
    """
    track = self.targets[index]
    start = chunk_start(track.shape[-1], length, rng)
    stems = _all(self) if stems is None else stems
    return augment.fit(track[list(stems), :, start:start + length], length)

  def track(self, index: int) -> dict[str, Any]:
    """Track ``index`` whole: ``{"name": str, "mixture": float32 [2, n], "targets": float32 [T, 2, n]}``."""
    targets = self.targets[index]
    mixture = targets.sum(0) if self.mixtures is None else np.asarray(self.mixtures[index], np.float32)
    return {"name": self.names[index], "mixture": mixture, "targets": targets}


def _header(path: pathlib.Path, sample_rate: int) -> int:
  """The length of an audio file from its header, after checking its rate and channels."""
  header = audio.info(path)
  if header.sample_rate != sample_rate:
    raise DataError(f"{path}: sample rate {header.sample_rate} Hz, expected {sample_rate} Hz")
  if header.channels not in (1, 2):
    raise DataError(f"{path}: {header.channels} channels, expected 1 or 2")
  if header.frames is None:
    (decoded,), _ = audio.read(path)
    return decoded.shape[-1]
  return header.frames


def _read(path: str, start: int, stop: int) -> np.ndarray:
  """``[2, stop - start]`` float32 of one file (mono read as two equal channels); only those
  samples are read where soundfile can seek (wav, flac, ogg, aiff)."""
  if pathlib.Path(path).suffix.lower() in audio.SOUNDFILE_EXTENSIONS:
    x, _ = sf.read(path, start=start, stop=stop, dtype="float32", always_2d=True)
    x = x.T
  else:
    (x,), _ = audio.read(path)
    x = np.asarray(x[:, start:stop], np.float32)
  return np.repeat(x, 2, axis=0) if x.shape[0] == 1 else x


def _scan_selected(root, *, layout, targets, subset, split, valid):
  """(dataset, selected items) of ``root``."""
  dataset = layouts.scan(root, layout=layout, targets=targets)
  return dataset, splits.select(dataset, subset=subset, split=split, valid=valid)


class WavSource:
  """Track folders (musdb18hq, trackfolder) read in place: each chunk reads only its samples.

  Args:
    root: the dataset folder (``[SUBSET/]TRACK/STEM.EXT``).
    targets: the target names (stem file names), in batch order.
    subset: "train", "valid" or "test".
    split: None, or the "train" / "valid" split of the training tracks (`splits`).
    layout: "auto", "musdb18hq" or "trackfolder".
    valid: how the validation tracks are chosen (`splits.ValidSplit`).
    sample_rate: the rate every file must have (Hz).

  Raises:
    DataError: the folder holds another layout, a file has another rate or more
      than two channels, a track's files differ in length, a musdb18hq track
      lacks a stem, no track has one of the targets, or the selection is empty.
    ParameterError: an unknown subset, split or layout, or bad targets.
  """

  def __init__(self, root: str | os.PathLike, *, targets: Sequence[str] = TARGETS, subset: str = "train",
               split: str | None = None, layout: str = "auto", valid: splits.ValidSplit = splits.ValidSplit(),
               sample_rate: int = musdb.SAMPLE_RATE) -> None:
    self.target_names = layouts.check_targets(targets)
    dataset, items = _scan_selected(root, layout=layout, targets=self.target_names, subset=subset, split=split,
                                    valid=valid)
    _check_track_layout(dataset)
    self.root, self.subset, self.split, self.layout = str(root), subset, split, dataset.layout
    found = {stem for item in items for stem, _ in item.files}
    absent = [t for t in self.target_names if t not in found]
    if absent:
      raise DataError(f"{dataset.root}: no track of subset {subset!r} has a file for target(s) {', '.join(absent)} "
                      f"(stems found: {', '.join(sorted(found))})")
    self.stem_names = self.target_names + tuple(sorted(found - set(self.target_names)))
    self.names = [item.name for item in items]
    self.folders = [str(item.path) for item in items]
    self.files = [self._files(item) for item in items]
    self.mixtures = [None if item.mixture is None else str(item.mixture) for item in items]
    self.lengths = [_common_length(item, sample_rate) for item in items]

  def _files(self, item: Item) -> list[str | None]:
    """The file of each of ``stem_names`` in ``item`` (None: silence)."""
    stems = item.stems
    if self.layout == "musdb18hq":
      missing = [s for s in musdb.STEM_NAMES if s != MIXTURE and s not in stems] + ([] if item.mixture else [MIXTURE])
      if missing:
        raise DataError(f"{item.path}: missing stem file(s) {', '.join(m + '.wav' for m in missing)}")
    for target in self.target_names:
      if target not in stems:
        warnings.warn(f"{item.path}: no file for target {target!r}; it is read as silence", MissingStemWarning,
                      stacklevel=3)
    return [str(stems[s]) if s in stems else None for s in self.stem_names]

  def __len__(self) -> int:
    return len(self.folders)

  def __repr__(self) -> str:
    return (f"WavSource(root={self.root!r}, subset={self.subset!r}, split={self.split!r}, "
            f"targets={self.target_names})")

  def _stem(self, index: int, stem: int, start: int, stop: int) -> np.ndarray:
    path = self.files[index][stem]
    return np.zeros((2, stop - start), np.float32) if path is None else _read(path, start, stop)

  def chunk(self, index: int, *, length: int, rng: np.random.Generator,
            stems: Sequence[int] | None = None) -> np.ndarray:
    """``[len(stems), 2, length]`` float32 from a random position of track ``index``.

    Stems are indices into ``stem_names`` (default all); a track shorter than
    ``length`` is zero-padded at the end.
    """
    start = chunk_start(self.lengths[index], length, rng)
    stop = min(start + length, self.lengths[index])
    stems = _all(self) if stems is None else stems
    return augment.fit(np.stack([self._stem(index, s, start, stop) for s in stems]), length)

  def track(self, index: int) -> dict[str, Any]:
    """Track ``index`` whole: ``{"name": str, "mixture": float32 [2, n], "targets": float32 [T, 2, n]}``.

    The mixture is the track's mixture file, else the sum of all its stems.
    """
    n = self.lengths[index]
    stems = np.stack([self._stem(index, s, 0, n) for s in range(len(self.stem_names))])
    mixture = stems.sum(0) if self.mixtures[index] is None else _read(self.mixtures[index], 0, n)
    return {"name": self.names[index], "mixture": mixture, "targets": stems[:len(self.target_names)]}


def _check_track_layout(dataset: layouts.Dataset) -> None:
  if dataset.layout == "musdb18":
    raise DataError(f"{dataset.root}: holds MUSDB18 .stem.mp4 files, not MUSDB18-HQ wav folders; build the "
                    "TFDS dataset (python -m mssjax data build --builder-config stems_10s) and use "
                    "data.source='tfds', or convert it with python -m mssjax data prepare")
  if dataset.layout == "sourcefolder":
    raise DataError(f"{dataset.root}: a sourcefolder (STEM/FILE), not track folders; use SourceFolderSource")


def _common_length(item: Item, sample_rate: int) -> int:
  """The common length of a track's files (headers only), else `DataError` naming them."""
  files = dict(item.files, **({MIXTURE: item.mixture} if item.mixture else {}))
  lengths = {stem: _header(path, sample_rate) for stem, path in files.items()}
  if len(set(lengths.values())) > 1:
    detail = ", ".join(f"{stem} {n}" for stem, n in lengths.items())
    raise DataError(f"{item.path}: stems differ in length ({detail} samples)")
  return next(iter(lengths.values()))


class SourceFolderSource:
  """A sourcefolder (``[SUBSET/]STEM/FILE.EXT``): unrelated files per stem, mixed at random.

  A training chunk takes each stem from a random file of its folder at a random
  position (``index`` only counts examples: ``len`` is the size of the largest
  target folder). ``track(i)`` is a deterministic mixture: for each stem the
  ``i``-th file of a permutation of its folder seeded by ``valid.seed``, all cut
  to the shortest of them.

  Args:
    root: the dataset folder.
    targets: the target names (stem folder names), in batch order.
    subset: "train", "valid" or "test".
    split: None, or the "train" / "valid" split of the training files (`splits`,
      chosen per stem folder).
    layout: "auto" or "sourcefolder".
    valid: `splits.ValidSplit` (its seed also seeds the mixtures of `track`).
    sample_rate: the rate every file must have (Hz).

  Raises:
    DataError: the folder holds another layout, a target has no folder or no
      files, a file has another rate or more than two channels.
  """

  def __init__(self, root: str | os.PathLike, *, targets: Sequence[str] = TARGETS, subset: str = "train",
               split: str | None = None, layout: str = "auto", valid: splits.ValidSplit = splits.ValidSplit(),
               sample_rate: int = musdb.SAMPLE_RATE) -> None:
    self.target_names = layouts.check_targets(targets)
    dataset, items = _scan_selected(root, layout=layout, targets=self.target_names, subset=subset, split=split,
                                    valid=valid)
    if dataset.layout != "sourcefolder":
      raise DataError(f"{dataset.root}: a {dataset.layout} folder, not a sourcefolder (STEM/FILE)")
    pools = {}
    for item in items:
      pools.setdefault(item.files[0][0], []).append(str(item.path))
    absent = [t for t in self.target_names if t not in pools]
    if absent:
      raise DataError(f"{dataset.root}: no files for target(s) {', '.join(absent)} in subset {subset!r} "
                      f"(stem folders: {', '.join(sorted(pools))})")
    self.root, self.subset, self.split, self.seed = str(root), subset, split, valid.seed
    self.sample_rate = sample_rate
    self.stem_names = self.target_names + tuple(sorted(set(pools) - set(self.target_names)))
    self.pools = [pools[s] for s in self.stem_names]
    self.lengths = [[_header(pathlib.Path(p), sample_rate) for p in pool] for pool in self.pools]

  def __len__(self) -> int:
    return max(len(self.pools[s]) for s in range(len(self.target_names)))

  def __repr__(self) -> str:
    return f"SourceFolderSource(root={self.root!r}, subset={self.subset!r}, targets={self.target_names})"

  def chunk(self, index: int, *, length: int, rng: np.random.Generator,
            stems: Sequence[int] | None = None) -> np.ndarray:
    """``[len(stems), 2, length]`` float32: each stem from a random file at a random position.

    Stems are indices into ``stem_names`` (default all); a file shorter than
    ``length`` is zero-padded at the end.
    """
    del index  # every stem's file is drawn from rng
    out = []
    for s in _all(self) if stems is None else stems:
      file = int(rng.integers(len(self.pools[s])))
      n = self.lengths[s][file]
      start = chunk_start(n, length, rng)
      out.append(augment.fit(_read(self.pools[s][file], start, min(start + length, n)), length))
    return np.stack(out)

  def files_of(self, index: int) -> list[str]:
    """The file of each of ``stem_names`` in the mixture ``track(index)``."""
    chosen = []
    for name, pool in zip(self.stem_names, self.pools):
      order = np.random.default_rng([self.seed, zlib.crc32(name.encode())]).permutation(len(pool))
      chosen.append(pool[order[index % len(pool)]])
    return chosen

  def track(self, index: int) -> dict[str, Any]:
    """The seeded mixture ``index``: ``{"name": "mixture 000", "mixture": [2, n], "targets": [T, 2, n]}``,
    ``n`` the length of its shortest file."""
    if not 0 <= index < len(self):
      raise IndexError(index)
    files = self.files_of(index)
    n = min(self.lengths[s][self.pools[s].index(f)] for s, f in enumerate(files))
    stems = np.stack([_read(f, 0, n) for f in files])
    return {"name": f"mixture {index:03d}", "mixture": stems.sum(0), "targets": stems[:len(self.target_names)]}


class TfdsSource:
  """The MUSDB18 array_record dataset of `mssjax.data.tfds_musdb` (one record per track or segment).

  Args:
    data_source: ``builder.as_data_source(split)`` or
      ``tfds.data_source("musdb18/CONFIG", split=..., data_dir=...)``: a random-access
      sequence of records with "name", "start", "mixture" ``[2, n]`` and "targets"
      ``[4, 2, n]`` in `mssjax.TARGETS` order.
    targets: the targets to serve, some of MUSDB18's (`mssjax.TARGETS`), in batch order.

  Raises:
    DataError: the data source is empty.
    ParameterError: a target that is not one of MUSDB18's.
  """

  def __init__(self, data_source: collections.abc.Sequence[dict[str, Any]], *,
               targets: Sequence[str] = TARGETS) -> None:
    self.target_names = layouts.check_targets(targets)
    unknown = [t for t in self.target_names if t not in TARGETS]
    if unknown:
      raise ParameterError(f"targets={self.target_names}: the TFDS dataset holds MUSDB18's {TARGETS} only, "
                           f"not {', '.join(unknown)}")
    if len(data_source) == 0:
      raise DataError(f"{data_source!r}: empty")
    self.data_source = data_source
    self.stem_names = self.target_names + tuple(t for t in TARGETS if t not in self.target_names)
    self.columns = [TARGETS.index(s) for s in self.stem_names]

  def __len__(self) -> int:
    return len(self.data_source)

  def __repr__(self) -> str:
    return f"TfdsSource({self.data_source!r})"

  def chunk(self, index: int, *, length: int, rng: np.random.Generator,
            stems: Sequence[int] | None = None) -> np.ndarray:
    """``[len(stems), 2, length]`` float32 from a random position of record ``index`` (zero-padded if short)."""
    from mssjax.data.tfds_musdb import decode_audio  # pylint: disable=import-outside-toplevel
    targets = self.data_source[index]["targets"]
    start = chunk_start(targets.shape[-1], length, rng)
    columns = [self.columns[s] for s in (_all(self) if stems is None else stems)]
    return augment.fit(decode_audio(targets[columns, :, start:start + length]), length)

  def record(self, index: int) -> dict[str, Any]:
    """Record ``index`` (a track or a segment): ``{"name": str, "start": int (samples),
    "mixture": float32 [2, n], "targets": float32 [T, 2, n]}``."""
    from mssjax.data.tfds_musdb import decode_audio  # pylint: disable=import-outside-toplevel
    record = self.data_source[index]
    name = record["name"]
    columns = self.columns[:len(self.target_names)]
    return {"name": name.decode() if isinstance(name, bytes) else str(name), "start": int(record["start"]),
            "mixture": decode_audio(record["mixture"]), "targets": decode_audio(record["targets"][columns])}

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

  def track(self, indices: int | Sequence[int]) -> dict[str, Any]:
    """A whole track from its records ``indices`` (`groups`; an int: one record).

    Returns:
      ``{"name": str, "mixture": float32 [2, n], "targets": float32 [T, 2, n]}``, the
      records joined in the order given.
    """
    records = [self.record(i) for i in ([indices] if isinstance(indices, (int, np.integer)) else indices)]
    return {"name": records[0]["name"],
            "mixture": np.concatenate([r["mixture"] for r in records], axis=-1),
            "targets": np.concatenate([r["targets"] for r in records], axis=-1)}
