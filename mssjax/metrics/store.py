"""Result stores in museval's format and SiSEC aggregation.

Layout of an evaluation workdir (the one ``museval.MethodStore.add_eval_dir``
reads, one folder per method)::

  DIR/<method>/<subset>/<track>.json       museval JSON: framewise SDR/SIR/ISR/SAR
  DIR/<method>/meta/<subset>/<track>.json  separation time, audio length, parameters, complexity
  DIR/results.csv, DIR/results.md          SiSEC aggregates with complexity columns

The JSON follows ``museval/musdb.schema.json``: ``{"targets": [{"name": ...,
"frames": [{"time", "duration", "metrics": {"SDR", "SIR", "SAR", "ISR"}}]}],
"museval_version": ...}``, values quantised to 1e-5 dB and infinities written
as NaN, as museval's ``TrackStore`` does.

Aggregation is SiSEC 2018's: the median over a track's frames (NaN frames
skipped), then the median over tracks.

Every file is written atomically through `mssjax.fileio`; its temporary files
are named ``.NAME.xxxx.partial``, so museval's and `load_scores`' ``*.json``
globs never see half a file.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pathlib
from typing import Any, Collection, Iterable, Mapping, Sequence

import numpy as np

from mssjax import TARGETS, fileio
from mssjax.errors import DataError, ParameterError
from mssjax.metrics.bss_eval import METRICS

MUSEVAL_VERSION = "0.4.1"
JSON_METRICS = ("SDR", "SIR", "SAR", "ISR")
"""Metric order in museval's JSON frames."""


def _quantise(value):
  """museval's ``TrackStore._q``: 5 decimals, inf -> NaN."""
  value = float(value)
  if not math.isfinite(value):
    return math.nan
  return round(value, 5)


def track_json(scores: Mapping[str, Mapping[str, Sequence[float]]], *, win: float = 1.0,
               hop: float = 1.0) -> dict[str, Any]:
  """The museval JSON document of one track.

  Args:
    scores: ``{target: {"SDR": [n_frames], "SIR": ..., "SAR": ..., "ISR": ...}}``, in
      the order the targets should be listed.
    win: window duration in seconds.
    hop: hop in seconds.

  Returns:
    a dict that ``json.dumps`` writes in museval's schema.
  """
  targets = []
  for name, values in scores.items():
    n_frames = len(values["SDR"])
    frames = [{"time": i * hop, "duration": win,
               "metrics": {m: _quantise(values[m][i]) for m in JSON_METRICS}} for i in range(n_frames)]
    targets.append({"name": name, "frames": frames})
  return {"targets": targets, "museval_version": MUSEVAL_VERSION}


def write_json(path: str | os.PathLike, document: Any) -> pathlib.Path:
  """`mssjax.fileio.write_json`: atomic, indented by 2, NaN written as ``NaN`` like museval."""
  return fileio.write_json(path, document, indent=2)


def track_path(workdir: str | os.PathLike, method: str, subset: str, track: str) -> pathlib.Path:
  """``DIR/<method>/<subset>/<track>.json`` (the track's name made safe as a file name)."""
  return pathlib.Path(workdir) / method / subset / f"{fileio.safe_name(track)}.json"


def meta_path(workdir: str | os.PathLike, method: str, subset: str, track: str) -> pathlib.Path:
  """``DIR/<method>/meta/<subset>/<track>.json`` (outside museval's ``test/**/*.json`` glob)."""
  return pathlib.Path(workdir) / method / "meta" / subset / f"{fileio.safe_name(track)}.json"


def bss_eval_settings(*, win: float, hop: float) -> dict[str, Any]:
  """The BSSEval settings a result records in its meta (``"bss_eval"``)."""
  return {"mode": "v4", "window_seconds": float(win), "hop_seconds": float(hop), "filters_len": 512}


def result_problem(workdir: str | os.PathLike, method: str, subset: str, track: str, *, win: float,
                   hop: float, references: Mapping[str, Any] | None = None) -> str | None:
  """Why the stored result of a track cannot be reused (None: it is complete and of these settings).

  A result is reused only if its JSON reads back in museval's layout with
  every metric of every frame, it was scored with the same BSSEval window and
  hop (from its meta, or its frames' ``duration`` and ``time``), and, when
  ``references`` is given, against the same references (its meta's
  ``"references"``, `mssjax.data.tracks.reference_identity`): the same
  estimates scored against another root, or a reference rewritten since, are
  another result.

  Returns:
    None, ``"missing"``, or a one-line reason naming the file.
  """
  path = track_path(workdir, method, subset, track)
  if not path.is_file():
    return "missing"
  try:
    document = json.loads(path.read_text())
    frames = [frame for target in document["targets"] for frame in target["frames"]]
    for frame in frames:
      [frame["metrics"][m] for m in JSON_METRICS]  # pylint: disable=expression-not-assigned
  except (OSError, ValueError, KeyError, TypeError) as e:
    return f"{path}: unreadable result ({type(e).__name__}: {e})"
  want = bss_eval_settings(win=win, hop=hop)
  meta = meta_path(workdir, method, subset, track)
  try:
    meta_document = json.loads(meta.read_text()) if meta.is_file() else {}
    stored = meta_document.get("bss_eval")
  except (OSError, ValueError, AttributeError) as e:
    return f"{meta}: unreadable result meta ({type(e).__name__}: {e})"
  if stored is None and frames:
    first = document["targets"][0]["frames"]
    stored = dict(want, window_seconds=float(first[0]["duration"]),
                  hop_seconds=float(first[1]["time"] - first[0]["time"]) if len(first) > 1 else float(hop))
  if stored is not None and stored != want:
    return f"{path}: scored with other BSSEval settings ({stored}, now {want})"
  if references is not None and meta_document.get("references") != references:
    change = _references_change(meta_document.get("references"), references)
    return f"{path}: scored against other references ({change})"
  return None


def _references_change(stored: Any, now: Mapping[str, Any]) -> str:
  """What differs between two reference identities, in a few words."""
  if not isinstance(stored, dict):
    return "not recorded with the result"
  if stored.get("path") != now["path"]:
    return f"{stored.get('path')}, now {now['path']}"
  old_files = stored.get("files") or {}
  changed = sorted(n for n in set(old_files) | set(now["files"]) if old_files.get(n) != now["files"].get(n))
  return f"{', '.join(changed)} changed since" if changed else "their rate or length changed since"


def discard_track(workdir: str | os.PathLike, method: str, subset: str, track: str) -> None:
  """Removes a track's stored result (its JSON first, then its meta), so that no stale number outlives it."""
  for path in (track_path(workdir, method, subset, track), meta_path(workdir, method, subset, track)):
    path.unlink(missing_ok=True)


def save_track(workdir: str | os.PathLike, method: str, subset: str, track: str,
               scores: Mapping[str, Mapping[str, Sequence[float]]], *, meta: Mapping[str, Any] | None = None,
               win: float = 1.0, hop: float = 1.0) -> pathlib.Path:
  """Writes a track's museval JSON (and its meta) into the workdir; returns the JSON path."""
  meta = dict(meta or {}, bss_eval=bss_eval_settings(win=win, hop=hop))
  write_json(meta_path(workdir, method, subset, track), meta)
  path = track_path(workdir, method, subset, track)
  write_json(path, track_json(scores, win=win, hop=hop))
  return path


def _result_files(folder: pathlib.Path, tracks: Collection[str] | None = None) -> list[pathlib.Path]:
  """The ``*.json`` results of a folder (of ``tracks`` only, unless None); hidden files (temporary ones, e.g.
  ``.tmp-*.json`` left by a kill in an older version) are not results."""
  names = None if tracks is None else {fileio.safe_name(t) for t in tracks}
  return sorted(p for p in folder.glob("*.json") if not p.name.startswith(".")
                and (names is None or p.stem in names))


def load_scores(workdir: str | os.PathLike, methods: Iterable[str], subset: str = "test", *,
                tracks: Collection[str] | None = None) -> list[dict[str, Any]]:
  """Reads every track JSON of the given methods (of ``tracks`` only, unless None).

  Returns:
    list of dicts ``{"method", "track", "target", "metric", "frames" (float64 ``[n_frames]``)}``.
  """
  rows = []
  for method in methods:
    for path in _result_files(pathlib.Path(workdir) / method / subset, tracks):
      try:
        doc = json.loads(path.read_text())
        for target in doc["targets"]:
          for metric in JSON_METRICS:
            frames = np.array([fr["metrics"][metric] for fr in target["frames"]], dtype=np.float64)
            rows.append({"method": method, "track": path.stem, "target": target["name"],
                         "metric": metric, "frames": frames})
      except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a readable museval result ({type(e).__name__}: {e}); delete it to "
                        "re-score the track") from e
  return rows


def load_meta(workdir: str | os.PathLike, method: str, *, subset: str = "test",
              tracks: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
  """The meta documents of a method's tracks (of ``tracks`` only, unless None), ``{track: dict}``."""
  folder = pathlib.Path(workdir) / method / "meta" / subset
  out = {}
  for path in _result_files(folder, tracks):
    try:
      out[path.stem] = json.loads(path.read_text())
    except ValueError as e:
      raise DataError(f"{path}: not a readable result meta ({e}); delete it to re-score the track") from e
  return out


def _nanmedian(values):
  values = np.asarray(values, np.float64)
  values = values[~np.isnan(values)]
  return float(np.median(values)) if values.size else math.nan


def aggregate(rows: Iterable[Mapping[str, Any]]) -> dict[Any, dict[str, float]]:
  """SiSEC aggregation: median over frames, then median over tracks.

  Args:
    rows: as returned by `load_scores`.

  Returns:
    ``{(method, target): {metric: value}}`` plus ``"n_tracks"``, in first-seen order.
  """
  per_track = {}
  for row in rows:
    key = (row["method"], row["target"], row["metric"])
    per_track.setdefault(key, []).append(_nanmedian(row["frames"]))
  out = {}
  for (method, target, metric), values in per_track.items():
    entry = out.setdefault((method, target), {})
    entry[metric] = _nanmedian(values)
    entry["n_tracks"] = len(values)
  return out


def complexity(workdir: str | os.PathLike, method: str, *, subset: str = "test",
               tracks: Collection[str] | None = None) -> dict[str, float]:
  """A method's complexity from its results' meta.

  Returns:
    ``{"n_parameters", "seconds_per_second" (separation time / audio, over all its tracks),
    "gflops_per_second" (GFLOPs per second of audio, `mssjax.separators.complexity`),
    "peak_memory_mb" (XLA's peak memory of its chunk program, 1e6 bytes)}``; the last two are
    NaN where no result records them (results stored before they were measured).
  """
  meta = load_meta(workdir, method, subset=subset, tracks=tracks)
  seconds = sum(m.get("audio_seconds", 0.0) for m in meta.values())
  spent = sum(m.get("separation_seconds", 0.0) for m in meta.values())
  params = max((m.get("n_parameters", 0) for m in meta.values()), default=0)
  costs = [m["complexity"] for m in meta.values() if isinstance(m.get("complexity"), dict)]
  flops = max((c["flops_per_second"] for c in costs), default=math.nan)
  memory = max((c["memory_bytes"] for c in costs), default=math.nan)
  return {"n_parameters": int(params), "seconds_per_second": spent / seconds if seconds else math.nan,
          "gflops_per_second": float(flops) / 1e9, "peak_memory_mb": float(memory) / 1e6}


def uses_references(workdir: str | os.PathLike, method: str, *, subset: str = "test",
                    tracks: Collection[str] | None = None) -> bool:
  """Whether a method's results were separated with the true stems (an oracle's), as their meta records."""
  return any(m.get("needs_references", False) for m in load_meta(workdir, method, subset=subset,
                                                                  tracks=tracks).values())


TABLE_COLUMNS = ("method", "target", "SDR", "SIR", "SAR", "ISR", "n_tracks", "n_parameters",
                 "seconds_per_second", "gflops_per_second", "peak_memory_mb")
TABLE_HEADER = ("method", "target", "SDR", "SIR", "SAR", "ISR", "tracks", "parameters", "s / s audio",
                "GFLOPs / s audio", "XLA peak MB")
"""`TABLE_COLUMNS` as results.md and the report head them."""


def table_rows(workdir: str | os.PathLike, methods: Sequence[str], subset: str = "test", *,
               tracks: Collection[str] | None = None) -> list[dict[str, Any]]:
  """The aggregate table: one row per method and target, with complexity columns.

  Args:
    tracks: the tracks counted (a run's: results of other tracks left in the
      workdir by an earlier run on another dataset are not); None: all.
  """
  agg = aggregate(load_scores(workdir, methods, subset, tracks=tracks))
  rows = []
  for method in methods:
    cost = complexity(workdir, method, subset=subset, tracks=tracks)
    for (m, target), values in agg.items():
      if m == method:
        rows.append({"method": method, "target": target, **{k: values.get(k, math.nan) for k in METRICS},
                     "n_tracks": values["n_tracks"], **cost})
  return rows


def _fmt(value):
  if isinstance(value, float):
    return "nan" if math.isnan(value) else f"{value:.3f}"
  return str(value)


def write_tables(workdir: str | os.PathLike, methods: Sequence[str], *, subset: str = "test",
                 tracks: Collection[str] | None = None) -> list[dict[str, Any]]:
  """Writes ``DIR/results.csv`` and ``DIR/results.md`` (atomically) of ``tracks`` (None: all); returns the rows.

  results.md opens with the SiSEC-style SDR pivot (`markdown_pivot`), then the long table.
  """
  rows = table_rows(workdir, methods, subset, tracks=tracks)
  workdir = pathlib.Path(workdir)
  with fileio.atomic_path(workdir / "results.csv") as temporary, open(temporary, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  fileio.write_text(workdir / "results.md", markdown_pivot(rows, "SDR") + "\n" + markdown_table(rows))
  return rows


def markdown_table(rows: Iterable[Mapping[str, Any]]) -> str:
  """A markdown table of aggregate rows (dB; time is seconds of separation per second of audio; compute is
  GFLOPs per second of audio; memory is XLA's peak of one chunk in MB)."""
  header = TABLE_HEADER
  keys = TABLE_COLUMNS
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
  for row in rows:
    lines.append("| " + " | ".join(_fmt(row[k]) for k in keys) + " |")
  return "\n".join(lines) + "\n"


def pivot_rows(rows: Iterable[Mapping[str, Any]], metric: str = "SDR") -> tuple[list[str], list[dict[str, Any]]]:
  """A SiSEC-style pivot of aggregate rows: one row per method, one column per target.

  Args:
    rows: `table_rows` (one per method and target).
    metric: ``"SDR"``, ``"SIR"``, ``"SAR"`` or ``"ISR"``.

  Returns:
    ``(targets, pivot)``: the targets in first-seen order (MUSDB18's four
    first), and per method ``{"method", <target>: dB, ..., "average": dB}``;
    the average is the mean over the targets the method has a finite value
    for (SiSEC 2018 reports the mean of the per-target medians), NaN if none.
  """
  if metric not in METRICS:
    raise ParameterError(f"metric={metric!r} must be one of {METRICS}")
  rows = list(rows)
  seen = list(dict.fromkeys(r["target"] for r in rows))
  targets = [t for t in TARGETS if t in seen] + [t for t in seen if t not in TARGETS]
  pivot = {}
  for row in rows:
    pivot.setdefault(row["method"], {"method": row["method"]})[row["target"]] = float(row[metric])
  for entry in pivot.values():
    values = [entry[t] for t in targets if t in entry and math.isfinite(entry[t])]
    entry["average"] = float(np.mean(values)) if values else math.nan
  return targets, list(pivot.values())


def markdown_pivot(rows: Iterable[Mapping[str, Any]], metric: str = "SDR") -> str:
  """`pivot_rows` as a markdown table (dB; ``-`` where a method lacks a target)."""
  targets, pivot = pivot_rows(rows, metric)
  header = ["method", *targets, "average"]
  lines = [f"{metric} (dB)", "", "| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
  for entry in pivot:
    cells = [entry["method"]] + [_fmt(entry[k]) if k in entry else "-" for k in header[1:]]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"

