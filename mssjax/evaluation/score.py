"""Score a folder of separated stems against MUSDB18: ``python -m mssjax score``.

::

  python -m mssjax score ESTIMATES_DIR --root MUSDB_ROOT -o OUTPUT_DIR [--set subset=test]
      [--set targets=vocals,drums,bass,other] [--set method=NAME] [--set jobs=2]

(`mssjax.cli`; ``--root`` = ``--set root=``; the settings' defaults are `score`'s.)

``ESTIMATES_DIR`` holds ``<track>/<target>.<ext>`` or
``<subset>/<track>/<target>.<ext>``: what museval's ``eval_mus_dir``, Demucs,
Open-Unmix, Spleeter and ``python -m mssjax separate`` write, in any format
`mssjax.audio` reads (wav, flac, mp3, ...). A track folder matches a reference
track by its name, or by the name `mssjax.fileio.safe_name` makes of it (as
``mssjax separate`` names folders). ``MUSDB_ROOT`` is MUSDB18, MUSDB18-HQ or a
``python -m mssjax data prepare``d folder; its tracks are read as the ``musdb``
package reads them (16-bit values, ffmpeg's length), so the numbers are the
field's.

Each track is scored with BSSEval v4 (`mssjax.metrics.score_targets`, museval's
grouping of targets) and written as museval JSON to
``OUTPUT_DIR/<method>/<subset>/<track>.json`` (museval's ``MethodStore`` reads
the method folder), with the SiSEC tables (``results.csv``, ``results.md``)
and the HTML report (audio players for the first ``report_tracks``).

Per-track problems are one line each and the other tracks go on: a missing
target, an unreadable file, a sample rate or channel count other than the
reference's, or a folder that matches no reference track. Estimates of
another length are cut or zero-padded at the end to the reference's length,
as museval does, and the line says so. Every file is written atomically, and a
re-run skips tracks already scored from the same estimate files against the
same references (the size and modification time of both, and the
references' resolved path, rate and length, are kept in the track's meta:
`mssjax.data.tracks.reference_identity`), so an interrupted run resumes; a
result of other estimates or references is removed and scored again, and the
tables count only the tracks of this run. ``jobs`` tracks are read and scored at once in threads (default 2);
the JSON is written on the main thread, in the tracks' order.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import pathlib
import time
from typing import Any, Iterable, Sequence

import numpy as np
import tqdm

from mssjax import TARGETS, audio, fileio
from mssjax.data.tracks import open_tracks, reference_identity
from mssjax.data.layouts import SUBSETS
from mssjax.data.musdb import Track
from mssjax.errors import USER_ERRORS, AudioError, DataError, ParameterError, check_choice, check_targets
from mssjax.metrics import museval_compat, store

__all__ = ["Outcome", "find_estimates", "score"]

REFERENCE = "reference"
"""The report's folder of a track's true stems (``report/audio/<track>/reference``)."""


@dataclasses.dataclass
class Outcome:
  """What happened to one estimate folder.

  Attributes:
    track: the track's name (or the folder's, when it matches no track).
    status: "scored", "done" (an earlier run's result reused) or "failed".
    message: the problem, for failures.
    notes: what was done to the estimates (lengths fitted).
  """
  track: str
  status: str
  message: str = ""
  notes: tuple[str, ...] = ()


def _audio_files(folder: pathlib.Path) -> dict[str, list[pathlib.Path]]:
  files = {}
  for path in sorted(folder.iterdir()):
    if path.is_file() and not path.name.startswith("."):
      files.setdefault(path.name.split(".")[0], []).append(path)
  return files


def find_estimates(estimates_dir: str | pathlib.Path, subset: str) -> list[pathlib.Path]:
  """The track folders of an estimates folder (``DIR/<subset>/<track>`` if ``DIR/<subset>`` exists, else ``DIR/<track>``).

  Raises:
    DataError: the folder is missing or holds no track folders.
  """
  root = pathlib.Path(estimates_dir)
  if not root.is_dir():
    raise DataError(f"{root}: estimates folder not found")
  base = root / subset if (root / subset).is_dir() else root
  folders = [p for p in sorted(base.iterdir()) if p.is_dir() and not p.name.startswith(".")
             and not (base is root and p.name in SUBSETS)]
  if not folders:
    raise DataError(f"{base}: no track folders (expected <track>/<target>.wav or <subset>/<track>/<target>.wav)")
  return folders


def _fingerprint(files: Iterable[pathlib.Path]) -> dict[str, list[int]]:
  out = {}
  for path in files:
    stat = path.stat()
    out[path.name] = [int(stat.st_size), int(stat.st_mtime_ns)]
  return out


def _target_files(folder: pathlib.Path, targets: Sequence[str]) -> dict[str, pathlib.Path]:
  files = _audio_files(folder)
  missing = [t for t in targets if t not in files]
  if missing:
    raise DataError(f"{folder}: missing estimate(s) of {', '.join(missing)}")
  several = {t: [p.name for p in files[t]] for t in targets if len(files[t]) > 1}
  if several:
    raise DataError(f"{folder}: more than one file per target {several}")
  return {t: files[t][0] for t in targets}


def _load(track: Track, files: dict[str, pathlib.Path]) -> tuple[dict, dict, list[str]]:
  """References and estimates ``{target: [n_samples, n_channels]}`` fitted to the references, and notes."""
  wanted = [t for t in files if t != "accompaniment"]
  if "accompaniment" in files:
    wanted += [t for t in ("drums", "bass", "other") if t not in wanted]
  stems = track.stems(wanted)
  if "accompaniment" in files:
    stems["accompaniment"] = stems["drums"] + stems["bass"] + stems["other"]
  references, estimates, notes = {}, {}, []
  for target, path in files.items():
    reference = stems[target]
    (estimate,), rate = audio.read(path)
    if rate != track.sample_rate:
      raise AudioError(f"{path}: sample rate {rate} Hz, the reference's is {track.sample_rate} Hz "
                       "(resample the estimates; museval does not either)")
    if estimate.shape[0] != reference.shape[0]:
      raise AudioError(f"{path}: {estimate.shape[0]} channel(s), the reference has {reference.shape[0]}")
    audio.check_finite(estimate, path=path)
    n, m = reference.shape[-1], estimate.shape[-1]
    if m != n:
      action = "cut" if m > n else "zero-padded"
      notes.append(f"{target}: {m} samples, the reference {n}: {action} at the end (as museval)")
      estimate = estimate[:, :n] if m > n else np.pad(estimate, ((0, 0), (0, n - m)))
    references[target], estimates[target] = reference.T, estimate.T
  return references, estimates, notes


def _save_audio(output_dir: pathlib.Path, track: Track, method: str, references: dict, estimates: dict) -> None:
  base = output_dir / "report" / "audio" / fileio.safe_name(track.name)
  folder = base / REFERENCE
  if not all((folder / f"{n}.wav").is_file() for n in ("mixture",) + tuple(references)):
    sets = {folder / f"{n}.wav": x.T for n, x in references.items()}
    sets[folder / "mixture.wav"] = track.mixture()
    audio.save_set(sets, sample_rate=track.sample_rate, subtype="PCM_16")
  audio.save_set({base / method / f"{n}.wav": x.T for n, x in estimates.items()}, sample_rate=track.sample_rate,
                 subtype="PCM_16")


def _reusable(output_dir, method, track, fingerprint, references, window_seconds, hop_seconds):
  if store.result_problem(output_dir, method, track.subset, track.name, win=window_seconds, hop=hop_seconds,
                          references=references) is not None:
    return False
  try:
    meta = json.loads(store.meta_path(output_dir, method, track.subset, track.name).read_text())
  except (OSError, ValueError):
    return False
  return isinstance(meta, dict) and meta.get("estimates") == fingerprint


def _match(folders: Sequence[pathlib.Path], tracks: Sequence[Track]) -> tuple[list, list[Outcome]]:
  by_name = {}
  for track in tracks:
    by_name.setdefault(track.name, track)
    by_name.setdefault(fileio.safe_name(track.name), track)
  pairs, unmatched = [], []
  for folder in folders:
    track = by_name.get(folder.name)
    if track is None:
      unmatched.append(Outcome(folder.name, "failed", f"{folder}: no reference track of that name in the root"))
    else:
      pairs.append((track, folder))
  return pairs, unmatched


def _check_scorable(targets: list[str] | None, tracks: Sequence[Track]) -> list[str]:
  """``targets`` (None: every stem of the references), each a stem of the references.

  Raises:
    ParameterError: a target no reference track has, or fewer than two to score together.
  """
  known = list(dict.fromkeys(name for track in tracks for name in track.target_names))
  if targets is None:
    targets = known
  scorable = known + (["accompaniment"] if set(TARGETS) <= set(known) else [])
  for target in targets:
    check_choice("target", target, scorable)
  if len(targets) < 2:
    raise ParameterError(f"targets={targets}: at least two targets are scored together (BSSEval's images mode)")
  return targets


def score(estimates_dir: str | pathlib.Path, root: str | pathlib.Path, output_dir: str | pathlib.Path, *,
          subset: str = "test", targets: Sequence[str] | None = None, method: str | None = None,
          window_seconds: float = 1.0, hop_seconds: float = 1.0, report: bool = True, report_tracks: int = 2,
          jobs: int = 2, progress: bool = True) -> dict[str, Any]:
  """Scores every track folder of ``estimates_dir`` against the references of ``root``.

  Args:
    estimates_dir: ``<track>/<target>.<ext>`` or ``<subset>/<track>/<target>.<ext>``.
    root: MUSDB18, MUSDB18-HQ or a prepared folder.
    output_dir: where the JSON, tables and report go (created).
    subset: "train" or "test".
    targets: the targets scored together: any of the references' stems (at
      least two), or vocals with ``accompaniment`` (MUSDB18's drums + bass + other);
      None: every stem of the references (MUSDB18's four).
    method: the method's name in the tables (default: the estimates folder's name).
    window_seconds, hop_seconds: BSSEval windows (SiSEC: 1 s, 1 s).
    report: write the HTML report; ``report_tracks`` of them with audio.
    jobs: tracks read and scored at once, each in a thread. BSSEval's filter solve is a chain
      of small kernels that leaves cores idle, which a second track fills (benchmarks/score.py
      times ``--jobs``). Memory grows with each job (a
      4-minute track's stems and estimates are 0.7 GB in float32).
    progress: show a progress bar.

  Returns:
    dict with "method", "outcomes" (list of `Outcome`), "rows" (the SiSEC
    table), "report" (path or None) and "seconds".

  Raises:
    DataError, ParameterError: the folders or settings are unusable (before any work).
  """
  start = time.perf_counter()
  check_choice("subset", subset, SUBSETS)
  if targets is not None:
    targets = list(check_targets(list(dict.fromkeys(targets))))
  if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
    raise ParameterError(f"jobs={jobs!r} must be a positive integer")
  estimates_dir, output_dir = pathlib.Path(estimates_dir), pathlib.Path(output_dir)
  method = method or estimates_dir.resolve().name
  if not method or method != fileio.safe_name(method) or method in (REFERENCE, "report"):
    raise ParameterError(f"method={method!r} is not usable as a folder name; pass --method NAME")
  tracks = open_tracks(root, subset=subset, targets=None if targets is None else
                       [t for t in targets if t != "accompaniment"])
  targets = _check_scorable(targets, tracks)
  pairs, outcomes = _match(find_estimates(estimates_dir, subset), tracks)
  audio_tracks = {t.name for t, _ in pairs[:report_tracks]} if report else set()
  output_dir.mkdir(parents=True, exist_ok=True)

  def work(pair):  # in a worker thread: read the track, score it, write its report audio
    track, folder = pair
    try:
      files = _target_files(folder, targets)
      fingerprint, identity = _fingerprint(files.values()), reference_identity(track)
      keep_audio = track.name in audio_tracks
      if not _reusable(output_dir, method, track, fingerprint, identity, window_seconds, hop_seconds):
        store.discard_track(output_dir, method, track.subset, track.name)  # stale: never counted again
      elif not (keep_audio and not (output_dir / "report" / "audio" / fileio.safe_name(track.name) / method
                                    ).is_dir()):
        return _Scored(fingerprint=fingerprint, reused=True)
      references, estimates, notes = _load(track, files)
      try:
        scores = museval_compat.score_targets(references, estimates, rate=track.sample_rate,
                                              win=window_seconds, hop=hop_seconds, what=f"{folder}")
        if keep_audio:
          _save_audio(output_dir, track, method, references, estimates)
      except USER_ERRORS as error:
        return _Scored(error=error, notes=tuple(notes))
      return _Scored(fingerprint=fingerprint, references=identity, scores=scores, notes=tuple(notes))
    except USER_ERRORS as error:
      return _Scored(error=error)
    finally:
      track.clear_cache()

  bar = tqdm.tqdm(total=len(pairs), desc="score", unit="track", disable=not progress)
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
  try:
    # Submitted `jobs + 1` ahead (a track is read while `jobs` are scored) and recorded in order.
    futures = [pool.submit(work, p) for p in pairs[:jobs + 1]]
    for i, (track, folder) in enumerate(pairs):
      result = futures[i].result()
      if i + jobs + 1 < len(pairs):
        futures.append(pool.submit(work, pairs[i + jobs + 1]))
      futures[i] = None
      bar.set_postfix_str(track.name[:40])
      outcomes.append(_record(output_dir, method, track, folder, result, window_seconds, hop_seconds, bar))
      bar.update()
  finally:
    pool.shutdown(wait=True, cancel_futures=True)
    bar.close()
  failures = [{"method": method, "track": o.track, "error": o.message} for o in outcomes if o.status == "failed"]
  fileio.write_json(output_dir / "failures.json", failures)
  scored = [o.track for o in outcomes if o.status in ("scored", "done")]  # results of other runs not counted
  rows = store.write_tables(output_dir, [method], subset=subset, tracks=scored)
  page = None
  if report:
    from mssjax.evaluation import report as report_lib  # pylint: disable=import-outside-toplevel
    page = report_lib.build_report(output_dir, [method], subset=subset,
                                   tracks=[t.name for t, _ in pairs[:report_tracks]], failures=failures,
                                   scored_tracks=scored)
  return {"method": method, "outcomes": outcomes, "rows": rows, "report": page,
          "seconds": time.perf_counter() - start}


@dataclasses.dataclass
class _Scored:
  """A worker's result for one track: reused, scored, or failed (``error``)."""
  fingerprint: dict | None = None
  references: dict | None = None
  scores: dict | None = None
  notes: tuple[str, ...] = ()
  error: Exception | None = None
  reused: bool = False


def _record(output_dir, method, track, folder, result, window_seconds, hop_seconds, bar) -> Outcome:
  """Writes one track's museval JSON (on the main thread, in the tracks' order) and says what happened."""
  for note in result.notes:
    bar.write(f"note {track.name}: {note}")
  if result.reused:
    return Outcome(track.name, "done")
  if result.error is not None:
    bar.write(f"FAILED {track.name}: {result.error}")
    return Outcome(track.name, "failed", str(result.error), result.notes)
  meta = {"audio_seconds": track.n_samples / track.sample_rate, "estimates": result.fingerprint,
          "references": result.references, "estimates_folder": str(folder), "notes": list(result.notes)}
  store.save_track(output_dir, method, track.subset, track.name, result.scores, meta=meta, win=window_seconds,
                   hop=hop_seconds)
  return Outcome(track.name, "scored", notes=result.notes)
