"""A song's stem files: which stems, where, in what format, written as a set.

`output_stems` chooses the stems (the separator's targets, some of them, or
X and ``no_X``); `check_output` checks, before any work, that they can be
written where a `mssjax.song_files.SongOutput` says; `stem_writers` opens one
block writer per stem (`mssjax.audio.OutputFormat`) in temporary files that
take their places only when every stem is complete: a song's own folder is
swapped in one step (`mssjax.fileio.atomic_folder`), the files of a template
without one are moved together (`mssjax.fileio.atomic_paths`). Used by
`mssjax.separate`, which streams the separation into these writers.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import warnings
import zlib
from typing import Iterator, Sequence

import numpy as np

from mssjax import audio, fileio
from mssjax.errors import AudioError, ParameterError
from mssjax.song_files import SongOutput


STEM_EXTENSIONS = tuple(f".{name}" for name in audio.FORMATS)
"""The stem files of every output format; a song's own folder may hold those of the format written."""


def output_stems(targets: Sequence[str], *, stems: Sequence[str] | None = None,
                 two_stems: str | None = None) -> tuple[str, ...]:
  """The names of the stems written for a separator's ``targets``.

  Args:
    targets: the separator's targets.
    stems: the targets to write (None: all of them).
    two_stems: a target X: write X and ``no_X``, the sum of the other targets' estimates
      (`two_stem_blocks`).

  Returns:
    ``targets``, ``stems`` (in the order given) or ``(X, "no_X")``.

  Raises:
    ParameterError: a name that is not a target (the valid ones listed), no
      name, a name given twice, or both ``stems`` and ``two_stems``.
  """
  valid = f"valid targets: {', '.join(targets)}"
  if stems is not None and two_stems is not None:
    raise ParameterError("stems and two_stems exclude each other: choose some stems, or two stems")
  if two_stems is not None:
    if two_stems not in targets:
      raise ParameterError(f"two_stems={two_stems!r} is not a target of the separator; {valid}")
    return (two_stems, f"no_{two_stems}")
  if stems is None:
    return tuple(targets)
  stems = tuple(stems)
  unknown = [stem for stem in stems if stem not in targets]
  if unknown or not stems:
    raise ParameterError(f"stems={','.join(stems)!r}: {', '.join(map(repr, unknown)) or 'no name'} "
                         f"{'is' if len(unknown) == 1 else 'are'} not a target of the separator; {valid}")
  if len(set(stems)) != len(stems):
    raise ParameterError(f"stems={','.join(stems)!r} names a target twice")
  return stems


def two_stem_blocks(block: np.ndarray, targets: Sequence[str], names: Sequence[str]) -> list[np.ndarray]:
  """The ``[channels, k]`` blocks of the stems ``names`` (`output_stems`) from a ``[n_targets, channels, k]`` block.

  A target is its own estimate; ``no_X`` is the sum of the other targets'
  estimates. The other choice, the mixture minus X's estimate (demucs's),
  scored the same: BSSEval v4 SDR of ``no_X`` against the sum of the other
  reference stems, median over the 40 MUSDB18 7 s test previews, differs by
  less than 0.0001 dB for every X, for the shipped network (8.89, 8.15, 9.56,
  7.73 dB for no_vocals, no_drums, no_bass, no_other) and for hpss_repet
  (8.02, 7.82, 8.20, 6.78 dB) (`benchmarks/two_stems.py`): both separate
  with masks that add up to one, so their estimates add up to the mixture (to
  2e-7 on a random song).
  The sum is computed block by block from the estimates alone, with no
  second reading of the song. For a separator whose estimates do not add up
  to the mixture the two differ (unmeasured): the sum leaves out what no
  target caught, the difference keeps it.
  """
  out = []
  for name in names:
    if name in targets:
      out.append(block[list(targets).index(name)])
    else:
      out.append(np.delete(block, list(targets).index(name[len("no_"):]), axis=0).sum(axis=0))
  return out


def check_stems_writable(path: str | os.PathLike, *, folder: bool = False) -> pathlib.Path:
  """`mssjax.fileio.check_writable`, its `OSError` an `AudioError` saying that the stems cannot be written there."""
  try:
    return fileio.check_writable(path, folder=folder)
  except OSError as e:
    raise AudioError(f"cannot write the stems there: {e}") from e


def check_output(output: SongOutput) -> SongOutput:
  """Checks, before any work is done, that a song's stems can be written where ``output`` says; makes nothing.

  A song's own folder appears only when its stems are complete (`write_stems`).

  Raises:
    AudioError: a file or folder cannot be made or written to, a folder
      stands where a stem goes, or the song's own folder holds something that
      is not a stem file (the folder is replaced with the new set).
  """
  if output.folder is not None:
    check_stems_writable(output.folder, folder=True)
    _check_replaceable(output.folder, list(output.files.values()))
  for path in output.files.values():
    if path.is_dir():
      raise AudioError(f"{fileio.printable(path)}: is a folder, so the {path.stem} stem cannot be written")
    check_stems_writable(path)
  return output


def _check_replaceable(folder: pathlib.Path, files: Sequence[pathlib.Path]) -> None:
  """Raises `AudioError` unless ``folder`` holds only stem files of the format written (the extension of
  ``files``) and a killed writer's ``.*.partial`` files.

  Stems of another format (`STEM_EXTENSIONS`) are refused rather than replaced:
  a run in another format would otherwise delete them with the old set.
  """
  if not folder.is_dir():
    return
  extension = files[0].suffix.lower() if files else ".wav"
  stems = [path.stem for path in files]
  for entry in folder.iterdir():
    if entry.name.startswith(".") and entry.name.endswith(fileio.PARTIAL_SUFFIX) and not entry.is_dir():
      continue
    if entry.is_dir() and entry.suffix.lower() in STEM_EXTENSIONS:
      what = f"the {entry.stem} stem" if entry.stem in stems else "the stems"
      raise AudioError(f"{fileio.printable(entry)}: is a folder, so {what} cannot be written")
    if entry.is_dir() or entry.is_symlink() or entry.suffix.lower() != extension:
      what = "not a stem"
      if entry.suffix.lower() in STEM_EXTENSIONS and not entry.is_dir():
        what = f"a stem of another format than {extension}"
      raise AudioError(f"{fileio.printable(folder)}: holds {fileio.printable(entry.name)!r}, which is {what}; "
                       "the folder is replaced by the new stems, so move it away or choose another -o")


def write_stems(folder: str | os.PathLike, stems: dict[str, np.ndarray], *, sample_rate: int,
                output_format: audio.OutputFormat = audio.OutputFormat()) -> pathlib.Path:
  """Writes ``folder/TARGET.EXT`` for every stem as a set: all the new stems (and no others), or none.

  The set is written into a temporary folder that then replaces ``folder``
  (`mssjax.fileio.atomic_folder`): readers and other writers see the whole
  old set or the whole new set. ``output_format`` gives the format and
  ``EXT`` (default 32-bit float wav).

  Raises:
    AudioError: as `check_output`, or a write that fails (the old set is kept).
  """
  folder = pathlib.Path(folder)
  output = check_output(SongOutput({t: folder / f"{t}{output_format.extension}" for t in stems}, folder))
  with stem_writers(output, sample_rate=sample_rate, channels=_channels(stems), output_format=output_format) as writers:
    for writer, stem in zip(writers, stems.values()):
      writer.write(stem)
  warn_clipped(output, writers)
  return folder


def _channels(stems: dict[str, np.ndarray]) -> int:
  shapes = {np.shape(stem) for stem in stems.values()}
  if len(shapes) != 1 or len(next(iter(shapes))) not in (1, 2):
    raise AudioError(f"stems of shapes {sorted(shapes)} must share one [channels, n_samples] or [n_samples] shape")
  shape = shapes.pop()
  return 1 if len(shape) == 1 else shape[0]


@contextlib.contextmanager
def stem_writers(output: SongOutput, *, sample_rate: int, channels: int,
                  output_format: audio.OutputFormat = audio.OutputFormat()
                  ) -> Iterator[list[audio.BlockWriter | audio.EncoderWriter]]:
  """One block writer per stem file (``output_format``), in temporary files that take their places when all are done.

  A song's own folder is replaced as a set (`mssjax.fileio.atomic_folder`);
  stems of a template without one are written beside their places and moved
  there together (`mssjax.fileio.atomic_paths`). Each stem's dither is seeded
  by its name (CRC-32), so a re-run writes the same bytes.
  """
  finals = list(output.files.values())
  where = output.folder if output.folder is not None else finals[0].parent
  try:
    with _temporaries(output) as temporaries, contextlib.ExitStack() as stack:
      yield [stack.enter_context(output_format.writer(temporary, sample_rate=sample_rate, channels=channels,
                                                      name=final, seed=zlib.crc32(stem.encode())))
             for temporary, final, stem in zip(temporaries, finals, output.files)]
  except OSError as e:
    raise AudioError(f"{fileio.printable(where)}: cannot write the stems there ({e.strerror or e})") from e


@contextlib.contextmanager
def _temporaries(output: SongOutput) -> Iterator[list[pathlib.Path]]:
  if output.folder is not None:
    with fileio.atomic_folder(output.folder) as temporary:
      yield [temporary / path.name for path in output.files.values()]
  else:
    with fileio.atomic_paths(output.files.values()) as temporaries:
      yield temporaries


def warn_clipped(output: SongOutput, writers: Sequence[audio.BlockWriter | audio.EncoderWriter]) -> None:
  """One `mssjax.audio.ClippingWarning` for the song if any stem had samples clipped beyond full scale."""
  clipped = {stem: writer.clipped for stem, writer in zip(output.files, writers) if writer.clipped}
  if clipped:
    where = output.folder if output.folder is not None else next(iter(output.files.values()))
    counts = ", ".join(f"{stem} {n:,}" for stem, n in clipped.items())
    warnings.warn(f"{fileio.printable(where)}: {sum(clipped.values()):,} samples beyond full scale were clipped "
                  f"({counts})", audio.ClippingWarning, stacklevel=3)
