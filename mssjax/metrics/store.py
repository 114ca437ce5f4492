"""Result stores in museval's format and SiSEC aggregation.

Layout of an evaluation workdir (the one ``museval.MethodStore.add_eval_dir``
reads, one folder per method)::

  DIR/<method>/<subset>/<track>.json       museval JSON: framewise SDR/SIR/ISR/SAR
  DIR/<method>/meta/<subset>/<track>.json  separation time, audio length, parameters
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
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from mssjax import fileio
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
  """``DIR/<method>/<subset>/<track>.json``."""
  return pathlib.Path(workdir) / method / subset / f"{track}.json"


def meta_path(workdir: str | os.PathLike, method: str, subset: str, track: str) -> pathlib.Path:
  """``DIR/<method>/meta/<subset>/<track>.json`` (outside museval's ``test/**/*.json`` glob)."""
  return pathlib.Path(workdir) / method / "meta" / subset / f"{track}.json"


def save_track(workdir: str | os.PathLike, method: str, subset: str, track: str,
               scores: Mapping[str, Mapping[str, Sequence[float]]], *, meta: Mapping[str, Any] | None = None,
               win: float = 1.0, hop: float = 1.0) -> pathlib.Path:
  """Writes a track's museval JSON (and its meta) into the workdir; returns the JSON path."""
  if meta is not None:
    write_json(meta_path(workdir, method, subset, track), meta)
  path = track_path(workdir, method, subset, track)
  write_json(path, track_json(scores, win=win, hop=hop))
  return path


def load_scores(workdir: str | os.PathLike, methods: Iterable[str], subset: str = "test") -> list[dict[str, Any]]:
  """Reads every track JSON of the given methods.

  Returns:
    list of dicts ``{"method", "track", "target", "metric", "frames" (float64 ``[n_frames]``)}``.
  """
  rows = []
  for method in methods:
    for path in sorted((pathlib.Path(workdir) / method / subset).glob("*.json")):
      with open(path) as f:
        doc = json.load(f)
      for target in doc["targets"]:
        for metric in JSON_METRICS:
          frames = np.array([fr["metrics"][metric] for fr in target["frames"]], dtype=np.float64)
          rows.append({"method": method, "track": path.stem, "target": target["name"],
                       "metric": metric, "frames": frames})
  return rows


def load_meta(workdir: str | os.PathLike, method: str, *, subset: str = "test") -> dict[str, dict[str, Any]]:
  """The meta documents of a method's tracks, ``{track: dict}``."""
  folder = pathlib.Path(workdir) / method / "meta" / subset
  out = {}
  for path in sorted(folder.glob("*.json")):
    with open(path) as f:
      out[path.stem] = json.load(f)
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


def complexity(workdir: str | os.PathLike, method: str, *, subset: str = "test") -> dict[str, float]:
  """Parameter count and separation time per second of audio (total time / total audio)."""
  meta = load_meta(workdir, method, subset=subset)
  seconds = sum(m.get("audio_seconds", 0.0) for m in meta.values())
  spent = sum(m.get("separation_seconds", 0.0) for m in meta.values())
  params = max((m.get("n_parameters", 0) for m in meta.values()), default=0)
  return {"n_parameters": int(params), "seconds_per_second": spent / seconds if seconds else math.nan}


TABLE_COLUMNS = ("method", "target", "SDR", "SIR", "SAR", "ISR", "n_tracks", "n_parameters",
                 "seconds_per_second")


def table_rows(workdir: str | os.PathLike, methods: Sequence[str], subset: str = "test") -> list[dict[str, Any]]:
  """The aggregate table: one row per method and target, with complexity columns."""
  agg = aggregate(load_scores(workdir, methods, subset))
  rows = []
  for method in methods:
    cost = complexity(workdir, method, subset=subset)
    for (m, target), values in agg.items():
      if m == method:
        rows.append({"method": method, "target": target, **{k: values.get(k, math.nan) for k in METRICS},
                     "n_tracks": values["n_tracks"], **cost})
  return rows


def _fmt(value):
  if isinstance(value, float):
    return "nan" if math.isnan(value) else f"{value:.3f}"
  return str(value)


def write_tables(workdir: str | os.PathLike, methods: Sequence[str], *,
                 subset: str = "test") -> list[dict[str, Any]]:
  """Writes ``DIR/results.csv`` and ``DIR/results.md`` (atomically); returns the rows."""
  rows = table_rows(workdir, methods, subset)
  workdir = pathlib.Path(workdir)
  with fileio.atomic_path(workdir / "results.csv") as temporary, open(temporary, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  fileio.write_text(workdir / "results.md", markdown_table(rows))
  return rows


def markdown_table(rows: Iterable[Mapping[str, Any]]) -> str:
  """A markdown table of aggregate rows (dB; time is seconds of separation per second of audio)."""
  header = ["method", "target", "SDR", "SIR", "SAR", "ISR", "tracks", "parameters", "s / s audio"]
  keys = TABLE_COLUMNS
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
  for row in rows:
    lines.append("| " + " | ".join(_fmt(row[k]) for k in keys) + " |")
  return "\n".join(lines) + "\n"
