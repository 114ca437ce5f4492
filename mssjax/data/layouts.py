"""Dataset layouts: where a dataset keeps its stems on disk, and what it holds.

Four layouts (`LAYOUTS`), chosen by ``config.data.layout`` ("auto" detects it):

- ``"musdb18"``: ``ROOT/{train,test}/NAME.stem.mp4`` (MUSDB18; `mssjax.data.musdb`);
- ``"musdb18hq"``: ``ROOT/{train,test}/NAME/{mixture,drums,bass,other,vocals}.wav`` (MUSDB18-HQ);
- ``"trackfolder"``: ``ROOT/[SUBSET/]TRACK/STEM.EXT``: one audio file per stem with any
  names (``guitar.wav``, ``piano.flac``: the stem name is the file's stem) and an
  optional ``mixture.EXT``, the sum of the stems when absent (Open-Unmix's
  ``trackfolder`` datasets, MSST's type 2);
- ``"sourcefolder"``: ``ROOT/[SUBSET/]STEM/FILE.EXT``: unrelated files per stem, mixed
  at random for training (Open-Unmix's ``sourcefolder``, MSST's type 1).

Subset folders are ``train``, ``valid`` and ``test`` (`SUBSETS`); a root with none
of them holds one subset, ``train``. Audio files are those `mssjax.audio` reads
(`AUDIO_SUFFIXES`).

Detection (`detect_layout`): ``.stem.mp4`` files make it musdb18; folders whose
files are all MUSDB18-HQ wavs, a ``mixture.wav`` among them, make it musdb18hq
(a trackfolder with MUSDB18's names, so the more specific of the two). Otherwise
a trackfolder has the targets as file names (or, without targets, file names
shared by several folders) and a sourcefolder has the targets as folder names
(or no file name in two folders). Where more than one fits, or none, the error
lists them and asks for ``data.layout``.
"""

from __future__ import annotations

import os
import pathlib
from typing import NamedTuple, Sequence

from mssjax import audio
from mssjax.data import musdb
from mssjax import errors
from mssjax.errors import DataError, ParameterError, check_choice

__all__ = ["LAYOUTS", "LAYOUT_CHOICES", "SUBSETS", "AUDIO_SUFFIXES", "MIXTURE", "Item", "Dataset",
           "check_targets", "detect_layout", "scan"]

LAYOUTS = ("musdb18", "musdb18hq", "trackfolder", "sourcefolder")
LAYOUT_CHOICES = ("auto",) + LAYOUTS
"""What ``data.layout`` accepts: "auto" (detected) or a layout."""
SUBSETS = ("train", "valid", "test")
AUDIO_SUFFIXES = tuple(audio.SOUNDFILE_EXTENSIONS) + (".mp3", ".m4a")
MIXTURE = "mixture"
"""The file stem of a track's mixture (never a target's name)."""


def check_targets(targets: Sequence[str]) -> tuple[str, ...]:
  """``targets`` checked as `mssjax.errors.check_targets` does, and none of them "mixture".

  Raises:
    ParameterError: as `mssjax.errors.check_targets`, or a target named "mixture".
  """
  targets = errors.check_targets(targets)
  if MIXTURE in targets:
    raise ParameterError(f"targets={targets!r} must not hold {MIXTURE!r} (the sum of the targets)")
  return targets


class Item(NamedTuple):
  """One track of a track layout, or one file of a sourcefolder, as found on disk.

  Attributes:
    name: the track's name (its folder or ``.stem.mp4`` name); sourcefolder: ``STEM/FILE``.
    subset: "train", "valid" or "test".
    path: the track's folder or ``.stem.mp4``; sourcefolder: the file.
    files: ``((stem, path), ...)`` sorted by stem, the mixture left out (sourcefolder: one pair).
    mixture: the mixture file, or None (the sum of the stems).
  """
  name: str
  subset: str
  path: pathlib.Path
  files: tuple[tuple[str, pathlib.Path], ...]
  mixture: pathlib.Path | None

  @property
  def stems(self) -> dict[str, pathlib.Path]:
    """stem name -> file."""
    return dict(self.files)


class Dataset(NamedTuple):
  """What `scan` found.

  Attributes:
    root: the dataset folder.
    layout: one of `LAYOUTS`.
    items: every `Item`, sorted by subset (train, valid, test) then name.
  """
  root: pathlib.Path
  layout: str
  items: tuple[Item, ...]

  @property
  def subsets(self) -> tuple[str, ...]:
    """The subsets that hold items, in `SUBSETS` order."""
    return tuple(s for s in SUBSETS if any(i.subset == s for i in self.items))

  def subset(self, name: str) -> list[Item]:
    """The items of subset ``name`` (empty if it has none)."""
    return [i for i in self.items if i.subset == name]

  def stem_names(self) -> tuple[str, ...]:
    """Every stem name found, sorted (the mixture left out)."""
    return tuple(sorted({stem for item in self.items for stem, _ in item.files}))


def _visible(folder):
  return sorted(e for e in folder.iterdir() if not e.name.startswith("."))


def _is_audio(path):
  name = path.name.lower()
  return path.is_file() and name.endswith(AUDIO_SUFFIXES) and not name.endswith(musdb.STEM_SUFFIX)


def _file_stem(path):
  return path.name[:-len(path.suffix)] if path.suffix else path.name


def _subset_folders(root):
  """``[(subset, folder)]``: the subset folders present, else ``[("train", root)]``."""
  present = [(s, root / s) for s in SUBSETS if (root / s).is_dir()]
  return present or [("train", root)]


def _survey(root):
  """(``.stem.mp4`` files, ``{(subset, folder): [audio files]}`` of the folders holding audio)."""
  stems, folders = [], {}
  for subset, parent in _subset_folders(root):
    for entry in _visible(parent):
      if entry.is_file() and entry.name.lower().endswith(musdb.STEM_SUFFIX):
        stems.append(entry)
      elif entry.is_dir():
        files = [f for f in _visible(entry) if _is_audio(f)]
        if files:
          folders[(subset, entry)] = files
  return stems, folders


def _check_root(root):
  root = pathlib.Path(root)
  if not root.is_dir():
    raise DataError(f"{root}: no such folder")
  return root


def _is_musdb18hq(files):
  names = {f.name for f in files}
  return f"{MIXTURE}.wav" in names and names <= {f"{s}.wav" for s in musdb.STEM_NAMES}


def _fitting(stem_files, folders, targets):
  """The layouts among trackfolder / sourcefolder that ``folders`` fit."""
  folder_names = {folder.name for _, folder in folders}
  file_stems = [{_file_stem(f) for f in files} for files in folders.values()]
  fits = []
  if targets is not None:
    if any(t in stems for stems in file_stems for t in targets):
      fits.append("trackfolder")
    if any(t in folder_names for t in targets):
      fits.append("sourcefolder")
    return fits
  counts = {}
  for stems in file_stems:
    for stem in stems - {MIXTURE}:
      counts[stem] = counts.get(stem, 0) + 1
  shared = any(n > 1 for n in counts.values())
  if shared or len(folders) == 1:
    fits.append("trackfolder")
  if not shared:
    fits.append("sourcefolder")
  return fits


def detect_layout(root: str | os.PathLike, *, targets: Sequence[str] | None = None) -> str:
  """The layout of ``root`` (see the module docstring for the rules).

  Args:
    root: the dataset folder.
    targets: the target names, if known: they tell a trackfolder (files named
      after them) from a sourcefolder (folders named after them).

  Returns:
    one of `LAYOUTS`.

  Raises:
    DataError: ``root`` is missing or holds no audio, or several layouts fit (the
      message names them and asks to set ``data.layout``).
  """
  root = _check_root(root)
  targets = None if targets is None else check_targets(targets)
  stem_files, folders = _survey(root)
  fits = ["musdb18"] if stem_files else []
  if folders and all(_is_musdb18hq(files) for files in folders.values()):
    fits.append("musdb18hq")
  elif folders:
    fits += _fitting(stem_files, folders, targets)
  if len(fits) == 1:
    return fits[0]
  if not fits and not (stem_files or folders):
    raise DataError(f"{root}: no tracks (expected [SUBSET/]TRACK/STEM.wav folders, [SUBSET/]STEM/FILE.wav "
                    f"folders or {{train,test}}/NAME{musdb.STEM_SUFFIX} files)")
  if not fits:
    raise DataError(f"{root}: no folder holds files named after the targets {targets} (trackfolder) and no "
                    "folder is named after one (sourcefolder)")
  raise DataError(f"{root}: fits several layouts ({', '.join(fits)}); set data.layout (--layout) to one of them")


def _item_files(folder, files):
  """``(files, mixture)`` of a track folder; two files of one stem raise `DataError`."""
  by_stem = {}
  for f in files:
    by_stem.setdefault(_file_stem(f), []).append(f)
  for stem, paths in by_stem.items():
    if len(paths) > 1:
      raise DataError(f"{folder}: several files for stem {stem!r} ({', '.join(p.name for p in paths)})")
  mixture = by_stem.pop(MIXTURE, [None])[0]
  return tuple((stem, paths[0]) for stem, paths in sorted(by_stem.items())), mixture


def scan(root: str | os.PathLike, *, layout: str = "auto", targets: Sequence[str] | None = None) -> Dataset:
  """Lists what a dataset folder holds, in any layout; no audio is read.

  Args:
    root: the dataset folder.
    layout: one of `LAYOUT_CHOICES` ("auto": `detect_layout`).
    targets: the target names, for the detection only.

  Returns:
    `Dataset`. musdb18 items name their ``.stem.mp4`` for every stem of
    `musdb.STEM_NAMES`; musdb18hq and trackfolder items the files present.

  Raises:
    DataError: as `detect_layout`, or a track folder holds two files of one stem.
    ParameterError: an unknown layout.
  """
  check_choice("layout", layout, LAYOUT_CHOICES)
  root = _check_root(root)
  if layout == "auto":
    layout = detect_layout(root, targets=targets)
  stem_files, folders = _survey(root)
  items = []
  if layout == "musdb18":
    for path in stem_files:
      subset = path.parent.name if path.parent != root else "train"
      files = tuple(sorted((s, path) for s in musdb.STEM_NAMES if s != MIXTURE))
      items.append(Item(path.name[:-len(musdb.STEM_SUFFIX)], subset, path, files, path))
  elif layout == "sourcefolder":
    for (subset, folder), files in folders.items():
      items += [Item(f"{folder.name}/{f.name}", subset, f, ((folder.name, f),), None) for f in files]
  else:
    for (subset, folder), files in folders.items():
      if layout == "musdb18hq":
        files = [f for f in files if f.suffix.lower() == ".wav" and _file_stem(f) in musdb.STEM_NAMES]
      stems, mixture = _item_files(folder, files)
      items.append(Item(folder.name, subset, folder, stems, mixture))
  order = {s: i for i, s in enumerate(SUBSETS)}
  return Dataset(root, layout, tuple(sorted(items, key=lambda i: (order[i.subset], i.name))))
