"""The static HTML report: ``DIR/report/index.html``, opening offline (relative paths only)."""

from __future__ import annotations

import hashlib
import html
import math
import os
import pathlib
import urllib.parse
from typing import Any, Collection, Sequence

from mssjax import TARGETS, audio, fileio
from mssjax.metrics import store
from mssjax.evaluation.report import plots

_STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:1200px}
table{border-collapse:collapse;font-size:0.9em}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}td:first-child,td:nth-child(2){text-align:left}img{max-width:100%}
.players td{text-align:left}audio{width:220px;height:32px}.fail{color:#a00}
.pivots{display:flex;flex-wrap:wrap;gap:1.5em;margin-bottom:1em}caption{font-weight:bold;text-align:left}"""


def _url(*parts):
  return "/".join(urllib.parse.quote(p) for p in parts)


def _table(rows):
  head = store.TABLE_HEADER
  keys = store.TABLE_COLUMNS
  out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
  for row in rows:
    out.append("<tr>" + "".join(f"<td>{html.escape(store._fmt(row[k]))}</td>" for k in keys) + "</tr>")  # pylint: disable=protected-access
  return "\n".join(out + ["</table>"])


def _pivot(rows, metric):
  """The SiSEC-style pivot (`store.pivot_rows`): methods as rows, targets as columns."""
  targets, pivot = store.pivot_rows(rows, metric)
  head = ["method", *targets, "average"]
  out = [f"<table class='pivot'><caption>{metric} (dB)</caption><tr>"
         + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
  for entry in pivot:
    cells = [html.escape(entry["method"])] + [store._fmt(entry[k]) if k in entry else "-" for k in head[1:]]  # pylint: disable=protected-access
    out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
  return "\n".join(out + ["</table>"])


def _complexity_points(workdir, table, subset, scored_tracks):
  """One `plots.MethodPoint` per method of the table: its average SDR, parameters, compute, oracle or not."""
  _, pivot = store.pivot_rows(table, "SDR")
  first = {}
  for row in table:
    first.setdefault(row["method"], row)
  return [plots.MethodPoint(e["method"], e["average"], int(first[e["method"]]["n_parameters"]),
                            float(first[e["method"]]["gflops_per_second"]),
                            store.uses_references(workdir, e["method"], subset=subset, tracks=scored_tracks))
          for e in pivot]


def _stem_names(base, methods):
  """The targets with audio under a track's folder (its references' and methods'), MUSDB18's first."""
  names = {p.stem for who in ["reference", *methods] if (base / who).is_dir() for p in (base / who).glob("*.wav")}
  names.discard("mixture")
  return [t for t in TARGETS if t in names] + sorted(names - set(TARGETS))


def _players(report_dir, track, methods):
  """Audio players for one track: mixture and references, then each method's estimates."""
  base = report_dir / "audio" / fileio.safe_name(track)
  targets = _stem_names(base, methods)
  lines = ["<table class='players'><tr><th></th>" + "".join(f"<th>{html.escape(t)}</th>" for t in targets)
           + "</tr>"]
  for who in ["reference"] + list(methods):
    cells = []
    for target in targets:
      if (base / who / f"{target}.wav").exists():
        src = _url("audio", fileio.safe_name(track), who, f"{target}.wav")
        cells.append(f"<td><audio controls preload='metadata' src='{src}'></audio></td>")
      else:
        cells.append("<td>-</td>")
    lines.append(f"<tr><td>{html.escape(who)}</td>" + "".join(cells) + "</tr>")
  mix = base / "reference" / "mixture.wav"
  if mix.exists():
    src = _url("audio", fileio.safe_name(track), "reference", "mixture.wav")
    lines.insert(0, f"<p>mixture <audio controls preload='metadata' src='{src}'></audio></p>")
  return "\n".join(lines + ["</table>"])


def _spectrograms(report_dir, track, methods):
  """One truth-vs-estimate spectrogram figure per method; returns the image file names."""
  base = report_dir / "audio" / fileio.safe_name(track)
  targets = _stem_names(base, methods)
  refs = {t: audio.load(base / "reference" / f"{t}.wav") for t in targets
          if (base / "reference" / f"{t}.wav").exists()}
  names = []
  for method in methods:
    ests = {t: audio.load(base / method / f"{t}.wav") for t in targets if (base / method / f"{t}.wav").exists()}
    if not refs or not ests:
      continue
    digest = hashlib.md5(f"{track}/{method}".encode()).hexdigest()[:10]
    name = f"spectrogram_{digest}.png"
    plots.spectrogram_figure(refs, ests, report_dir / "figures" / name, title=f"{track}: {method}")
    names.append((method, name))
  return names


def build_report(workdir: str | os.PathLike, methods: Sequence[str], *, subset: str = "test",
                 tracks: Sequence[str] = (), failures: Sequence[dict[str, Any]] = (),
                 scored_tracks: Collection[str] | None = None) -> pathlib.Path:
  """Writes ``DIR/report/index.html`` with the table, figures and audio players.

  Args:
    workdir: the evaluation workdir (museval JSON per method, meta, audio of the
      chosen tracks under ``report/audio/<track>/<method|reference>/``).
    methods: method names, in table order.
    subset: the subset evaluated.
    tracks: names of the tracks shown with audio players and spectrograms.
    failures: ``[{method, track, error}]`` listed on the page.
    scored_tracks: the tracks whose results the table and figures count (the
      run's); None: every result in the workdir.

  Returns:
    the path of index.html. The page and every figure are written atomically
    (`mssjax.fileio`).
  """
  report_dir = pathlib.Path(workdir) / "report"
  rows = store.load_scores(workdir, methods, subset, tracks=scored_tracks)
  table = store.table_rows(workdir, methods, subset, tracks=scored_tracks)
  body = [f"<h1>mssjax evaluation ({html.escape(subset)})</h1>",
          "<p>BSSEval v4 (museval-compatible), 1 s windows; median over frames, then over tracks "
          "(SiSEC 2018). Time: seconds of separation per second of audio. Compute: GFLOPs per second of audio; "
          "memory: XLA's peak for one chunk (MB).</p>"]
  if table:
    body += ["<div class='pivots'>" + "".join(_pivot(table, m) for m in store.METRICS) + "</div>"]
  body += ["<h2>Every method and target</h2>", _table(table)]
  points = _complexity_points(workdir, table, subset, scored_tracks) if table else []
  if any(math.isfinite(p.gflops_per_second) for p in points):  # not for estimates scored alone (score.py)
    plots.complexity_figure(points, report_dir / "figures" / "complexity.png")
    body += ["<h2>Quality against complexity</h2>",
             "<p>SDR (mean over targets of the median over tracks) against parameters and against GFLOPs per "
             "second of audio: XLA's count of each method's compiled chunk program (STFT and iSTFT included, "
             "loops counted per iteration; <code>mssjax.separators.complexity</code>). Log axes: methods without "
             "parameters sit at the shaded left edge. Oracles (open diamonds) see the true stems.</p>",
             "<img src='figures/complexity.png' alt='SDR against parameters and GFLOPs per second'>"]
  if rows:
    plots.metric_figure(rows, methods, report_dir / "figures" / "boxplots.png", per_track=True)
    plots.metric_figure(rows, methods, report_dir / "figures" / "distributions.png", per_track=False)
    body += ["<h2>Per-track medians</h2><img src='figures/boxplots.png' alt='box plots'>",
             "<h2>Distributions over frames</h2><img src='figures/distributions.png' alt='distributions'>"]
  for track in tracks:
    body.append(f"<h2>{html.escape(track)}</h2>")
    body.append(_players(report_dir, track, methods))
    for method, name in _spectrograms(report_dir, track, methods):
      body.append(f"<h3>{html.escape(method)}: truth (left) and estimate (right)</h3>"
                  f"<img src='{_url('figures', name)}' alt='spectrograms {html.escape(method)}'>")
  if failures:
    body.append("<h2 class='fail'>Failures</h2><ul>" + "".join(
        f"<li class='fail'>{html.escape(f['method'])} / {html.escape(f['track'])}: "
        f"{html.escape(f['error'])}</li>" for f in failures) + "</ul>")
  page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>mssjax evaluation</title>"
          f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
  return fileio.write_text(report_dir / "index.html", page)
