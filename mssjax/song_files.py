"""The files of a separation job: the songs found in the inputs, and where each song's stems go.

Inputs are audio files or folders. A folder stands for every audio file in it
(`SONG_EXTENSIONS`, hidden files left out), in its subfolders too with
``recursive=True``; each song keeps its folder relative to the input folder
(`Song.folder`), so the outputs keep the input's structure.

Where the stems go is a file-name template inside the output folder
(`DEFAULT_FILENAME`, demucs's ``{track}/{stem}.{ext}``), with the fields

- ``{track}``: the song's name (`song_name`), made distinct among the songs
  of one folder (``NAME``, ``NAME (2)``, ... in input order);
- ``{stem}``: the stem's name (a target, or ``no_<target>`` for two stems);
- ``{ext}``: the file extension of the output format (``wav``);
- ``{folder}``: the song's folder relative to its input folder (empty for a
  file given by itself). A template without ``{folder}`` is placed in that
  folder: ``OUT/<folder>/<template>``.

`check_filename` refuses, before any work, a template that would let stems or
songs overwrite each other (no ``{stem}``, no ``{track}``) or write outside the
output folder (an absolute path, a ``..``). A template whose folder part holds
``{track}`` (and not ``{stem}``) gives each song a folder of its own
(`SongOutput.folder`), which `mssjax.separate` replaces as a set.
"""

from __future__ import annotations

import os
import pathlib
import string
from typing import Iterable, NamedTuple, Sequence

from mssjax import audio, fileio
from mssjax.errors import ParameterError

DEFAULT_FILENAME = "{track}/{stem}.{ext}"
"""Where a song's stems go inside the output folder (demucs's default): ``OUT/<song>/<stem>.wav``."""

FILENAME_FIELDS = ("track", "stem", "ext", "folder")
"""The fields of a file-name template."""

SONG_EXTENSIONS = (*audio.SOUNDFILE_EXTENSIONS, ".aifc", ".mp3", ".m4a", ".mp4", ".aac", ".opus", ".wma")
"""The files a folder argument stands for (``.stem.mp4`` ends in ``.mp4``); case does not matter."""


class Song(NamedTuple):
  """One input song.

  Attributes:
    path: the audio file.
    folder: its folder relative to the input folder, ``/``-separated (``""`` for a file given by itself).
    track: its name in the outputs: `song_name`, made distinct among the songs of ``folder``.
  """
  path: str
  folder: str
  track: str


class SongOutput(NamedTuple):
  """Where one song's stems go.

  Attributes:
    files: ``{stem: file}``, in writing order.
    folder: the song's own folder, holding exactly its stems (replaced as a
      set), or None where the template puts the stems elsewhere (each file is
      then moved into place on its own).
  """
  files: dict[str, pathlib.Path]
  folder: pathlib.Path | None


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


def find_songs(paths: Sequence[str | os.PathLike], *, recursive: bool = False,
               exclude: str | os.PathLike | None = None) -> list[Song]:
  """The songs of the inputs, in order: each file as given, each folder's audio files sorted by path.

  Args:
    paths: audio files or folders (a path that is neither is kept as a file:
      reading it reports it).
    recursive: descend into the subfolders of folders (hidden ones left out).
    exclude: a folder never searched (the output folder, when it lies inside an input folder).

  Returns:
    one `Song` per file; two songs of one folder with the same name get the
    tracks ``NAME``, ``NAME (2)``, ... in this order, so none overwrites another.

  Raises:
    ParameterError: a folder that holds no audio file, or that is ``exclude`` itself with ``recursive``.
  """
  found = []
  for path in paths:
    if os.path.isdir(path):
      if recursive and exclude is not None and pathlib.Path(path).resolve() == pathlib.Path(exclude).resolve():
        raise ParameterError(f"{fileio.printable(path)}: is the output folder too; with --recursive its stems "
                             "would be taken for songs: choose another -o")
      files = _audio_files(pathlib.Path(path), recursive=recursive, exclude=exclude)
      if not files:
        raise ParameterError(f"{fileio.printable(path)}: holds no audio file ({', '.join(SONG_EXTENSIONS)})"
                             + ("" if recursive else "; --recursive searches its subfolders"))
      found += files
    else:
      found.append((str(path), ""))
  return _distinct(found)


def _audio_files(folder: pathlib.Path, *, recursive: bool, exclude: str | os.PathLike | None
                 ) -> list[tuple[str, str]]:
  """``(file, folder relative to folder)`` of every audio file under ``folder``, sorted, hidden ones left out."""
  skip = pathlib.Path(exclude).resolve() if exclude is not None else None
  found = []
  for root, dirs, files in os.walk(folder):
    root = pathlib.Path(root)
    dirs[:] = sorted(d for d in dirs if recursive and not d.startswith(".") and (root / d).resolve() != skip)
    relative = root.relative_to(folder).as_posix()
    found += [(str(root / name), "" if relative == "." else relative) for name in sorted(files)
              if not name.startswith(".") and name.lower().endswith(SONG_EXTENSIONS)]
  return found


def _distinct(found: Iterable[tuple[str, str]]) -> list[Song]:
  seen: dict[tuple[str, str], int] = {}
  songs = []
  for path, folder in found:
    name = song_name(path)
    key = (folder.lower(), name.lower())
    seen[key] = seen.get(key, 0) + 1
    songs.append(Song(path, folder, name if seen[key] == 1 else f"{name} ({seen[key]})"))
  return songs


def output_folders(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> list[pathlib.Path]:
  """One distinct output folder ``out_dir/TRACK`` per input file (`find_songs`' tracks)."""
  return [pathlib.Path(out_dir) / song.track for song in _distinct((str(p), "") for p in paths)]


def check_filename(filename: str) -> str:
  """Returns the file-name template ``filename``, checked (see the module docstring).

  Raises:
    ParameterError: not a template, an unknown field, a field with a format
      spec or conversion, no ``{stem}`` or no ``{track}``, an absolute path,
      or a ``..`` part.
  """
  if not isinstance(filename, str) or not filename.strip():
    raise ParameterError(f"filename={filename!r} must be a template such as {DEFAULT_FILENAME!r}")
  fields = _fields(filename)
  for field, why in (("stem", "the stems of a song would overwrite each other"),
                     ("track", "the songs would overwrite each other")):
    if field not in fields:
      raise ParameterError(f"filename={filename!r} must hold {{{field}}}: without it {why}")
  if filename.startswith(("/", "\\")):
    raise ParameterError(f"filename={filename!r} must be a path relative to the output folder")
  if ".." in filename.split("/"):
    raise ParameterError(f"filename={filename!r} must not hold '..': it would leave the output folder")
  return filename


def _fields(text: str) -> set[str]:
  """The fields of a template (`FILENAME_FIELDS` only, without format specs or conversions)."""
  try:
    parsed = list(string.Formatter().parse(text))
  except ValueError as e:
    raise ParameterError(f"filename={text!r} is not a valid template ({e})") from None
  fields = set()
  for _, field, spec, conversion in parsed:
    if field is None:
      continue
    if field not in FILENAME_FIELDS:
      raise ParameterError(f"filename={text!r}: unknown field {{{field}}}; valid fields: "
                           + ", ".join(f"{{{f}}}" for f in FILENAME_FIELDS))
    if spec or conversion:
      raise ParameterError(f"filename={text!r}: the field {{{field}}} takes no format spec or conversion")
    fields.add(field)
  return fields


def has_own_folder(filename: str) -> bool:
  """Whether the template gives each song a folder of its own that holds exactly its stems.

  True when the folder part (before the last ``/``) holds ``{track}`` and not
  ``{stem}``, and ``{folder}``, if used, lies in the folder part too.
  """
  folder_part = filename.rpartition("/")[0]
  fields = _fields(folder_part)
  return "track" in fields and "stem" not in fields and ("folder" in fields or "folder" not in _fields(filename))


def song_output(filename: str, out_dir: str | os.PathLike, song: Song, stems: Sequence[str], *,
                extension: str = "wav") -> SongOutput:
  """Where ``song``'s ``stems`` go under ``out_dir`` by the template ``filename`` (checked first).

  Args:
    filename: the template (`check_filename`).
    out_dir: the output folder.
    song: the song (its track and folder fill the fields).
    stems: the stems' names.
    extension: the output format's extension, without the dot.
  """
  check_filename(filename)
  prefix = "" if "folder" in _fields(filename) else song.folder
  files = {}
  for stem in stems:
    rendered = filename.format(track=song.track, stem=stem, ext=extension, folder=song.folder)
    parts = [part for part in f"{prefix}/{rendered}".split("/") if part not in ("", ".")]
    files[stem] = pathlib.Path(out_dir, *parts)
  folder = next(iter(files.values())).parent if files and has_own_folder(filename) else None
  return SongOutput(files, folder)
