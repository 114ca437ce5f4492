"""The study's preprocessing: trim silence, cut one segment per track, remix.

For each track of a dataset folder in any layout (`mssjax.data.layouts`):

1. the stems are decoded (the original mixture is not used): MUSDB18's four
   targets, or a trackfolder's ``targets`` (default: every stem the dataset
   holds; a stem missing from a track is written as silence and recorded); a
   sourcefolder's tracks are first made as the seeded mixtures of one file per
   stem that validation uses (`sources.SourceFolderSource.track`), named
   ``mixture 000``, ...;
2. leading and trailing silence is trimmed, measured on the sum of the stems
   (so all stems are cut at the same samples and stay aligned): frames of
   `FRAME_LENGTH` samples whose RMS is below ``silence_db`` dBFS;
3. one segment of ``segment`` seconds is cut at the same place from every
   stem: the start, the centre, or the most active window (the window where
   the most stems are active, i.e. above ``active_db`` dBFS, for the most
   frames; ties go to the louder window);
4. the mixture is made again as the sum of the stems, and everything is
   written as ``OUT/SUBSET/NAME/{mixture,STEM...}.wav`` (MUSDB18-HQ's layout, a
   trackfolder for other stems), 16-bit by default: the tracks are read as
   the ``musdb`` package reads them (`mssjax.data.musdb`), on the 16-bit grid,
   so the cut stems are stored exactly and a prepared folder scores as its
   source does (and feeds ``python -m mssjax data build --builder-config hq``). The
   sum of four 16-bit stems is on the same grid; where it exceeds full scale
   (1 or 2 samples in 3 of the 134 previews) those samples are clipped and
   the marker counts them (``mixture_clipped``). A source that is not 16-bit
   is refused unless ``subtype`` is "FLOAT" or "PCM_24".

A track shorter than the segment is kept whole (``keep_short``) or dropped,
never padded. Every write is atomic: a track's files go to a hidden folder
that is renamed into place once complete, then a marker records the settings,
so a re-run skips finished tracks. A track that fails is reported and skipped
unless ``strict``. The output is then checked with `mssjax.data.validate`.

    python -m mssjax data prepare --root IN -o OUT [--set segment=30] [--set position=active]

(`mssjax.cli`; ``--help`` lists every setting, whose defaults are `Settings`'s and `prepare`'s.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import sys
import tempfile
from typing import Any, Sequence

import numpy as np
import tqdm

from mssjax import TARGETS
from mssjax import audio
from mssjax import fileio
from mssjax.data import layouts, musdb, sources, splits
from mssjax.data import validate as validation
from mssjax.errors import DataError, ParameterError, check_choice, check_finite

__all__ = ["Settings", "POSITIONS", "frame_rms_db", "trim_bounds", "segment_start", "cut",
           "prepare_track", "prepare"]

POSITIONS = ("active", "start", "center")
FRAME_LENGTH = 1024
"""Samples per frame for the silence and activity measurements (23 ms at 44.1 kHz)."""
STATE_FOLDER = ".prepare"
"""Hidden folder under the output root holding one marker per finished track."""


@dataclasses.dataclass(frozen=True)
class Settings:
  """How tracks are prepared (recorded in each track's marker).

  Attributes:
    segment: seconds per track; None or 0 keeps the whole trimmed track.
    position: where the segment is cut: "active", "start" or "center".
    silence_db: frames of the stem sum quieter than this (RMS, dBFS) are
      silence when trimming the ends.
    active_db: a stem counts as active in a frame whose RMS is above this (dBFS).
    keep_short: keep a track shorter than the segment whole (True) or drop it.
    subtype: wav sample format: "PCM_16" (the default, exact for MUSDB18 and
      MUSDB18-HQ), "PCM_24" or "FLOAT".
  """
  segment: float | None = 30.0
  position: str = "active"
  silence_db: float = -60.0
  active_db: float = -40.0
  keep_short: bool = True
  subtype: str = "PCM_16"

  def __post_init__(self):
    if self.segment is not None:
      check_finite("segment", self.segment, minimum=0)
    check_choice("position", self.position, POSITIONS)
    check_choice("subtype", self.subtype, audio.SUBTYPES)


def frame_rms_db(x: np.ndarray, *, frame_length: int = FRAME_LENGTH) -> np.ndarray:
  """RMS per frame in dBFS, over the channels jointly.

  Args:
    x: ``[..., channels, n_samples]``.
    frame_length: samples per frame; frames do not overlap and the last,
      partial frame is measured on the samples it has.

  Returns:
    float64 ``[..., n_frames]`` with ``n_frames = ceil(n_samples / frame_length)``.
  """
  return 10.0 * np.log10(_frame_energy(x, frame_length) + 1e-20)


def _frame_energy(x, frame_length):
  """Mean square per frame over the channels: ``[..., channels, n]`` -> float64 ``[..., n_frames]``."""
  n = x.shape[-1]
  n_full = n // frame_length
  full = x[..., :n_full * frame_length].reshape(x.shape[:-1] + (n_full, frame_length))
  energy = np.square(full).mean(axis=(-3, -1), dtype=np.float64)
  if n > n_full * frame_length:
    tail = np.square(x[..., n_full * frame_length:]).mean(axis=(-2, -1), dtype=np.float64)
    energy = np.concatenate([energy, tail[..., None]], axis=-1)
  return energy


def trim_bounds(mixture: np.ndarray, *, silence_db: float = -60.0,
                frame_length: int = FRAME_LENGTH) -> tuple[int, int]:
  """Where the non-silent part of a track starts and ends.

  Args:
    mixture: ``[channels, n_samples]``, the sum of the stems.
    silence_db: frames with RMS below this (dBFS) are silent.
    frame_length: samples per frame.

  Returns:
    (start, end) sample indices: from the first to the end of the last frame
    at or above the threshold.

  Raises:
    DataError: every frame is silent.
  """
  loud = np.flatnonzero(frame_rms_db(mixture, frame_length=frame_length) >= silence_db)
  if loud.size == 0:
    raise DataError(f"the whole track is below {silence_db:g} dBFS")
  return int(loud[0]) * frame_length, min(int(loud[-1] + 1) * frame_length, mixture.shape[-1])


def segment_start(targets: np.ndarray, length: int, *, position: str = "active", active_db: float = -40.0,
                  frame_length: int = FRAME_LENGTH) -> int:
  """Where a segment of ``length`` samples starts in a track.

  Args:
    targets: ``[n_stems, channels, n_samples]`` with ``n_samples >= length``.
    length: segment length in samples.
    position: "start", "center", or "active": the frame-aligned window with
      the most (stem, frame) pairs above ``active_db``, the loudest among ties.
    active_db: activity threshold in dBFS.
    frame_length: samples per frame.

  Returns:
    the first sample of the segment, ``0 <= start <= n_samples - length``.

  Raises:
    ParameterError: ``length`` is longer than the track.
  """
  n = targets.shape[-1]
  if length > n:
    raise ParameterError(f"segment of {length} samples is longer than the track ({n} samples)")
  if position == "start":
    return 0
  if position == "center":
    return (n - length) // 2
  window = max(length // frame_length, 1)
  n_frames = n // frame_length
  if n_frames <= window:
    return 0
  energy = np.stack([_frame_energy(stem[..., :n_frames * frame_length], frame_length)
                     for stem in targets])  # [n_stems, n_frames], one stem at a time to spare memory
  active = (10.0 * np.log10(energy + 1e-20) >= active_db).sum(axis=0)
  loudness = energy.sum(axis=0)
  active_sums = _window_sums(active.astype(np.float64), window)
  loud_sums = _window_sums(loudness, window)
  best = np.flatnonzero(active_sums == active_sums.max())
  start = int(best[np.argmax(loud_sums[best])]) * frame_length
  return min(start, n - length)


def _window_sums(values, window):
  cumulative = np.concatenate([[0.0], np.cumsum(values)])
  return cumulative[window:] - cumulative[:-window]


def cut(targets: np.ndarray, sample_rate: int, settings: Settings) -> tuple[int, int] | None:
  """Trims silence and cuts the segment.

  Args:
    targets: float32 ``[n_stems, 2, n_samples]``.
    sample_rate: Hz.
    settings: `Settings`.

  Returns:
    (start, end) in samples of the source, or None when the track is shorter
    than the segment and ``settings.keep_short`` is False.
  """
  start, end = trim_bounds(targets.sum(axis=0), silence_db=settings.silence_db)
  length = int(round((settings.segment or 0) * sample_rate))
  if not length:
    return start, end
  if end - start < length:
    return (start, end) if settings.keep_short else None
  offset = segment_start(targets[..., start:end], length, position=settings.position,
                         active_db=settings.active_db)
  return start + offset, start + offset + length


def _marker_path(out, track):
  return pathlib.Path(out) / STATE_FOLDER / track.subset / f"{track.name}.json"


def _marker_key(track, settings):
  return {"source": str(pathlib.Path(track.path).resolve()), "settings": dataclasses.asdict(settings)}


def _is_done(out, track, settings):
  marker = _marker_path(out, track)
  if not marker.is_file():
    return None
  try:
    record = json.loads(marker.read_text())
  except (OSError, ValueError):
    return None
  if {k: record.get(k) for k in ("source", "settings")} != _marker_key(track, settings):
    return None
  folder = pathlib.Path(out) / track.subset / track.name
  complete = all((folder / f"{s}.wav").is_file() for s in (layouts.MIXTURE,) + tuple(track.target_names))
  return record if record.get("status") == "dropped" or complete else None


def _write_track(folder, stems, sample_rate, subtype):
  """Writes the stems into a hidden sibling folder, then renames it to ``folder``."""
  folder.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.",
                                          suffix=fileio.PARTIAL_SUFFIX))
  try:
    for name, x in stems.items():
      audio.save(staging / f"{name}.wav", x, sample_rate=sample_rate, subtype=subtype)
    os.chmod(staging, 0o777 & ~fileio._umask())  # pylint: disable=protected-access
    _remove_track(folder)
    os.replace(staging, folder)
  finally:
    if staging.exists():
      shutil.rmtree(staging)


def _remove_track(folder):
  """Removes an earlier run's track folder: renamed out of sight first, so it vanishes at once."""
  if folder.exists():
    stale = pathlib.Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".old"))
    os.replace(folder, stale / "track")
    shutil.rmtree(stale)


def prepare_track(track: musdb.Track | FolderTrack, out: str | os.PathLike,
                  settings: Settings = Settings()) -> dict[str, Any]:
  """Prepares one track into ``out/<subset>/<name>/`` (see the module docstring).

  Args:
    track: the source track: ``name``, ``subset``, ``path``, ``expected_rate``,
      ``target_names`` and ``targets()`` (``[len(target_names), 2, n]``).
    out: the output folder.
    settings: `Settings`.

  Returns:
    dict with "track", "subset", "status" ("written", "dropped" or "done"
    when an earlier run finished it), and "source_samples", "start", "end"
    (the cut, in source samples) for written tracks.

  Raises:
    DataError, AudioError: the track cannot be read or is silent.
  """
  done = _is_done(out, track, settings)
  if done is not None:
    return {**done, "status": "done"} if done.get("status") == "written" else done
  targets = track.targets()
  bounds = cut(targets, track.expected_rate, settings)
  record = {"track": track.name, "subset": track.subset, **_marker_key(track, settings),
            "source_samples": int(targets.shape[-1]), "stems": list(track.target_names),
            "missing": list(track.missing)}
  if bounds is None:
    _remove_track(pathlib.Path(out) / track.subset / track.name)  # written by a run with other settings
    record.update(status="dropped", reason=f"shorter than {settings.segment:g} s after trimming")
  else:
    start, end = bounds
    segment = np.ascontiguousarray(targets[..., start:end])
    mixture = segment.sum(axis=0)
    if settings.subtype == "PCM_16":
      if not np.array_equal(audio.quantize_pcm16(segment), segment):
        raise DataError(f"{track.path}: the stems are not 16-bit audio, so subtype='PCM_16' would alter them; "
                        "use --subtype FLOAT or PCM_24")
      record["mixture_clipped"] = int(np.count_nonzero(np.abs(mixture) > 32767 / 32768))
    stems = {layouts.MIXTURE: mixture, **dict(zip(track.target_names, segment))}
    _write_track(pathlib.Path(out) / track.subset / track.name, stems, track.expected_rate, settings.subtype)
    record.update(status="written", start=int(start), end=int(end))
  fileio.write_json(_marker_path(out, track), record, indent=1)
  return record


class FolderTrack:
  """A trackfolder track to prepare: its ``target_names`` read as one array, a missing one as silence.

  Args:
    item: the track, as `layouts.scan` lists it.
    target_names: the stems to read, in order.
    sample_rate: the rate every file must have (Hz).
  """

  def __init__(self, item: layouts.Item, target_names: Sequence[str], *, sample_rate: int = musdb.SAMPLE_RATE):
    self.item, self.name, self.subset, self.path = item, item.name, item.subset, item.path
    self.target_names, self.expected_rate = tuple(target_names), sample_rate
    self.missing = tuple(t for t in self.target_names if t not in item.stems)

  def targets(self) -> np.ndarray:
    """float32 ``[len(target_names), 2, n_samples]``; a missing stem is zeros.

    Raises:
      DataError: a file's rate is not ``expected_rate``, the files differ in length,
        or the track has none of the stems.
      AudioError: a file is unreadable, not mono or stereo, or holds NaN / Inf.
    """
    stems = {}
    for name in self.target_names:
      path = self.item.stems.get(name)
      if path is None:
        continue
      (decoded,), rate = audio.read(path)
      if rate != self.expected_rate:
        raise DataError(f"{path}: sample rate {rate} Hz, expected {self.expected_rate} Hz")
      stems[name] = audio.as_stereo(decoded, path=path)
      audio.check_finite(stems[name], path=path)
    lengths = {name: x.shape[-1] for name, x in stems.items()}
    if not lengths:
      raise DataError(f"{self.path}: none of the stems {', '.join(self.target_names)}")
    if len(set(lengths.values())) > 1:
      detail = ", ".join(f"{n} {k}" for n, k in lengths.items())
      raise DataError(f"{self.path}: stems differ in length ({detail} samples)")
    silence = np.zeros((2, next(iter(lengths.values()))), np.float32)
    return np.stack([stems.get(name, silence) for name in self.target_names]).astype(np.float32)


class _MixtureTrack:
  """A sourcefolder's seeded mixture ``index`` (`sources.SourceFolderSource.track`) as a track to prepare."""

  missing = ()

  def __init__(self, source: sources.SourceFolderSource, index: int):
    self.source, self.index = source, index
    self.name, self.subset = f"mixture {index:03d}", source.subset
    self.path = pathlib.Path(source.root) / source.subset / self.name  # the marker's key, not a file
    self.target_names = source.target_names
    self.expected_rate = source.sample_rate

  def targets(self) -> np.ndarray:
    return self.source.track(self.index)["targets"]


def _failed(entry, message):
  return {"track": entry.name, "subset": entry.subset, "status": "failed", "reason": message}


def _entry_problem(entry):
  if entry.missing:
    return f"missing stem file(s) {', '.join(m + '.wav' for m in entry.missing)}"
  if entry.duplicate_of:
    return f"duplicate track name (also {', '.join(entry.duplicate_of)})"
  return None


def _prepare_entry(entry, layout, out, settings, strict):
  problem = _entry_problem(entry)
  try:
    if problem:
      raise DataError(f"{entry.path}: {problem}")
    track = musdb.Track(entry.name, entry.subset, entry.path, layout)
    return prepare_track(track, out, settings)
  except ValueError as error:  # AudioError, DataError, ParameterError
    if strict:
      raise
    return _failed(entry, str(error))


def _prepare_tracks(tracks, out, settings, strict):
  """Prepares each track; a failure is recorded (or raised with ``strict``)."""
  records = []
  for track in tracks:
    try:
      records.append(prepare_track(track, out, settings))
    except ValueError as error:
      if strict:
        raise
      records.append(_failed(track, str(error)))
  return records


def _sourcefolder_tracks(root, dataset, subsets, target_names, seed, strict):
  """The seeded mixtures of each subset, and a failed record per subset that cannot be mixed."""
  tracks, failures = [], []
  for subset in (s for s in dataset.subsets if s in subsets):
    try:
      source = sources.SourceFolderSource(root, targets=target_names, subset=subset, layout="sourcefolder",
                                          valid=splits.ValidSplit(seed=seed))
    except ValueError as error:
      if strict:
        raise
      failures.append({"track": "*", "subset": subset, "status": "failed", "reason": str(error)})
      continue
    tracks += [_MixtureTrack(source, i) for i in range(len(source))]
  return tracks, failures


def prepare(root: str | os.PathLike, out: str | os.PathLike, settings: Settings = Settings(), *,
            subset: str | Sequence[str] | None = None, layout: str | None = None,
            targets: Sequence[str] | None = None, seed: int = 0, strict: bool = False, progress: bool = False,
            check: bool = True) -> dict[str, Any]:
  """Prepares every track of ``root`` into ``out/SUBSET/NAME/{mixture,STEM...}.wav``.

  Args:
    root: a dataset folder in any layout.
    out: output folder (must not be ``root``).
    settings: `Settings`.
    subset: "train", "valid", "test", a list of them, or None for all.
    layout: the input layout (None or "auto" detects it).
    targets: the stems to write (trackfolder, sourcefolder; default every stem the
      dataset holds; MUSDB18's layouts: their four). Other stems are left out,
      of the remade mixture too.
    seed: the seed of a sourcefolder's mixtures.
    strict: raise on the first bad track instead of reporting and skipping it.
    progress: show a tqdm progress bar.
    check: validate the output (`mssjax.data.validate`) and include the results.

  Returns:
    dict with "tracks" (one record per input track, see `prepare_track`;
    failed ones have status "failed" and a "reason") and "validation"
    (the validator's results on ``out``, or None). Both are also written to
    ``out/prepare_report.json``.

  Raises:
    ParameterError: ``out`` is ``root``, or other targets for a MUSDB18 layout.
    DataError: ``root`` is missing or holds no tracks, or its layout is ambiguous.
    AudioError, DataError: with ``strict``, the first bad track.
  """
  root, out = pathlib.Path(root), pathlib.Path(out)
  if out.resolve() == root.resolve():
    raise ParameterError(f"out={str(out)!r} must differ from root")
  subsets = validation._subsets(subset)  # pylint: disable=protected-access
  layout = layouts.detect_layout(root, targets=targets) if layout in (None, "auto") else layout
  check_choice("layout", layout, layouts.LAYOUTS)
  if layout in musdb.LAYOUTS:
    if targets is not None and tuple(targets) != TARGETS:
      raise ParameterError(f"targets={tuple(targets)}: a {layout} folder is prepared with its stems {TARGETS}")
    layout, entries = musdb.scan(root, layout=layout)
    entries = [e for e in entries if e.subset in subsets]
    records = [_prepare_entry(e, layout, out, settings, strict) for e in _progress(entries, progress)]
    names, out_layout = TARGETS, "musdb18hq"
  else:
    dataset = layouts.scan(root, layout=layout, targets=targets)
    names = layouts.check_targets(targets) if targets is not None else dataset.stem_names()
    out_layout = "trackfolder"
    if layout == "trackfolder":
      tracks, records = [FolderTrack(i, names) for i in dataset.items if i.subset in subsets], []
    else:
      tracks, records = _sourcefolder_tracks(root, dataset, subsets, names, seed, strict)
    records += _prepare_tracks(_progress(tracks, progress), out, settings, strict)
  checked = None
  if check and any(r["status"] in ("written", "done") for r in records):
    checked = validation.validate(out, subset=[s for s in subsets if (out / s).is_dir()], layout=out_layout,
                                  targets=None if out_layout == "musdb18hq" else names)
  summary = {"tracks": records, "validation": checked}
  fileio.write_json(out / "prepare_report.json", summary, indent=1)
  return summary


def _progress(items, enabled):
  return tqdm.tqdm(items, desc="prepare", unit="track", file=sys.stderr, disable=not enabled)


def format_summary(summary: dict[str, Any]) -> str:
  """Counts per status, the failed and dropped tracks, then the validation table."""
  records = summary["tracks"]
  counts = {s: sum(r["status"] == s for r in records) for s in ("written", "done", "dropped", "failed")}
  lines = [f"{len(records)} tracks: {counts['written']} written, {counts['done']} already done, "
           f"{counts['dropped']} dropped, {counts['failed']} failed"]
  lines += [f"  {r['status']}: {r['subset']}/{r['track']}: {r.get('reason', '')}"
            for r in records if r["status"] in ("dropped", "failed")]
  if summary["validation"] is not None:
    table = validation.format_table(summary["validation"], only_problems=True)
    lines += ["", "validation of the output:", table]
  return "\n".join(lines)
