"""Whole tracks of any track layout, for evaluation and scoring: `open_tracks`.

`mssjax.data.musdb.Track` reads MUSDB18 (``.stem.mp4``) and MUSDB18-HQ as the
``musdb`` package does; `FolderTrack` reads a trackfolder (``TRACK/STEM.EXT``,
any stem names, an optional mixture: the sum of the stems when absent). Both
give ``stems(names) -> {name: float32 [2, n]}``, ``mixture()``, ``name``,
``subset``, ``sample_rate`` and ``n_samples``: what `mssjax.evaluation.loop` and
`mssjax.evaluation.score` read. A sourcefolder holds no tracks (its files are unrelated):
``python -m mssjax.data prepare`` turns it into track folders first.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import Iterable, Sequence

import numpy as np

from mssjax import audio
from mssjax.data import layouts, musdb, splits
from mssjax.data.layouts import MIXTURE, Item
from mssjax.data.sources import MissingStemWarning
from mssjax.errors import DataError, check_choice

__all__ = ["FolderTrack", "open_tracks", "reference_identity"]


class FolderTrack:
  """One track of a trackfolder dataset; its audio is read when asked.

  Attributes:
    name: the track's folder name.
    subset: "train", "valid" or "test".
    path: the track's folder.
    target_names: the stems it has files for, sorted.
  """

  def __init__(self, item: Item):
    self.name, self.subset, self.path = item.name, item.subset, item.path
    self._files, self._mixture = item.stems, item.mixture
    self.target_names = tuple(self._files)
    self._info = None

  def __repr__(self) -> str:
    return f"FolderTrack({self.name!r}, subset={self.subset!r})"

  def files(self) -> tuple[pathlib.Path, ...]:
    """Every file the track reads: its stems' and its mixture's, if it has one."""
    return tuple(self._files.values()) + ((self._mixture,) if self._mixture else ())

  def header(self) -> audio.AudioInfo:
    """`audio.AudioInfo` of the mixture file, or of the first stem's where there is none."""
    if self._info is None:
      self._info = audio.info(self._mixture or next(iter(self._files.values())))
    return self._info

  @property
  def sample_rate(self) -> int:
    return self.header().sample_rate

  @property
  def n_samples(self) -> int:
    frames = self.header().frames
    return frames if frames is not None else self.stem(MIXTURE).shape[-1]

  def stem(self, name: str) -> np.ndarray:
    """One stem as float32 ``[2, n_samples]``."""
    return self.stems([name])[name]

  def mixture(self) -> np.ndarray:
    """The mixture file, or the sum of every stem."""
    return self.stem(MIXTURE)

  def targets(self) -> np.ndarray:
    """Every stem, float32 ``[len(target_names), 2, n_samples]``."""
    stems = self.stems(self.target_names)
    return np.stack([stems[t] for t in self.target_names])

  def stems(self, names: Iterable[str]) -> dict[str, np.ndarray]:
    """Several stems, ``{name: float32 [2, n_samples]}``; a stem without a file is silence, with a warning.

    Raises:
      DataError: files of other rates or lengths.
      AudioError: an unreadable file.
    """
    names = list(names)
    wanted = set(names)
    if MIXTURE in wanted and self._mixture is None:
      wanted |= set(self._files)
    read = {n: self._read(self._mixture if n == MIXTURE else self._files[n]) for n in wanted
            if n in self._files or (n == MIXTURE and self._mixture is not None)}
    lengths = {n: x.shape[-1] for n, x in read.items()}
    if len(set(lengths.values())) > 1:
      detail = ", ".join(f"{n} {k}" for n, k in sorted(lengths.items()))
      raise DataError(f"{self.path}: stems differ in length ({detail} samples)")
    n = next(iter(lengths.values())) if lengths else self.n_samples
    if MIXTURE in wanted and self._mixture is None:
      read[MIXTURE] = np.sum([read[s] for s in self._files], axis=0, dtype=np.float32)
    for name in names:
      if name not in read:
        warnings.warn(f"{self.path}: no file for target {name!r}; it is read as silence", MissingStemWarning,
                      stacklevel=2)
        read[name] = np.zeros((2, n), np.float32)
    return {name: read[name] for name in names}

  def clear_cache(self) -> None:
    """Nothing is cached (kept for the `musdb.Track` interface)."""

  def _read(self, path: pathlib.Path) -> np.ndarray:
    (decoded,), rate = audio.read(path)
    if rate != self.sample_rate:
      raise DataError(f"{path}: sample rate {rate} Hz, the track's other files are at {self.sample_rate} Hz")
    stereo = audio.as_stereo(decoded, path=path)
    audio.check_finite(stereo, path=path)
    return stereo


def open_tracks(root: str | os.PathLike, *, subset: str = "test", split: str | None = None, layout: str = "auto",
                targets: Sequence[str] | None = None) -> list:
  """The tracks of a dataset folder in a track layout (musdb18, musdb18hq, trackfolder).

  Args:
    root: the dataset folder.
    subset: "train", "valid" or "test" (a trackfolder may have no subset folders: all is "train").
    split: for the training tracks: "train", "valid" (`mssjax.data.splits`) or None (all).
    layout: one of `mssjax.data.layouts.LAYOUT_CHOICES` ("auto": detected).
    targets: the target names, to tell layouts apart where the folder alone cannot.

  Returns:
    `musdb.Track` s (MUSDB layouts, read as the ``musdb`` package reads them) or
    `FolderTrack` s, sorted by name.

  Raises:
    DataError: no tracks, a sourcefolder (no tracks), or a broken folder.
    ParameterError: an unknown subset, split or layout.
  """
  check_choice("subset", subset, layouts.SUBSETS)
  dataset = layouts.scan(root, layout=layout, targets=targets)
  if dataset.layout in musdb.LAYOUTS:
    if subset == "valid":
      subset, split = "train", "valid"
    return musdb.load_tracks(root, subset=subset, split=split, layout=dataset.layout)
  if dataset.layout == "sourcefolder":
    raise DataError(f"{root}: a sourcefolder (STEM/FILE) holds no tracks to evaluate; turn it into track "
                    "folders with python -m mssjax.data prepare")
  return [FolderTrack(item) for item in splits.select(dataset, subset=subset, split=split)]


def reference_identity(track) -> dict:
  """What a stored score of ``track`` was measured against: a JSON-able dict, equal only for the same references.

  The track's resolved path (so its root, subset and name), its name, rate and
  length from the header, and each file's size and modification time in
  nanoseconds. A stored result is reused only while this is unchanged
  (`mssjax.metrics.store.result_problem`), so the same estimates scored
  against another root, or against a reference file rewritten since, are
  scored again. Size and mtime rather than a content hash: a hash reads
  every reference in full on every re-run (about 370 MB for a 7-minute
  MUSDB18-HQ track) just to decide to skip it, while a stat is free, and any
  rewrite or plain copy of a file changes its mtime (as for the estimates'
  fingerprint in `mssjax.evaluation.score`).

  Args:
    track: a `musdb.Track` or `FolderTrack`.

  Raises:
    AudioError, DataError: a reference file that cannot be read.
  """
  header = track.header()
  files = {}
  for path in track.files():
    try:
      stat = path.stat()
    except OSError as e:
      raise DataError(f"{path}: cannot read the reference ({e.strerror or e})") from e
    name = path.name if path == track.path else os.path.relpath(path, track.path)
    files[name] = [int(stat.st_size), int(stat.st_mtime_ns)]
  return {"path": str(pathlib.Path(track.path).resolve()), "track": track.name, "subset": track.subset,
          "sample_rate": int(header.sample_rate), "frames": None if header.frames is None else int(header.frames),
          "files": files}
