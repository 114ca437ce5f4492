"""Checks a dataset folder track by track, in any layout (`mssjax.data.layouts`).

For every track: the sample rate and channel count of each stem, equal stem
lengths, NaN / Inf samples, clipping, silent or nearly silent stems, and the
residual of the mixture minus the sum of the stems, per channel, in dB
relative to the mixture. A trackfolder track lacking one of the dataset's stems
(or of ``targets``) is reported under "missing" and "warnings" (training reads it
as silence), as is a track without a mixture file (its mixture is the sum of the
stems); a sourcefolder is checked file by file (no mixture, no residual). On clean MUSDB18 tracks the residual is about -21 to
-35 dB (each stream is AAC-coded on its own); a mixture that is not the sum of
its stems ("PR - Oh No": the left channel is about 6 dB below the stem sum)
stands well above it.

    python -m mssjax data validate --root ROOT -o OUT.json [--set residual_db=-15]

writes a list of ``{"track", "subset", "ok", "problems", "warnings", "missing",
"rates", "lengths", ...measured levels}`` and prints a table.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Iterable, Sequence

import numpy as np
import tqdm

from mssjax import audio
from mssjax import fileio
from mssjax.data import layouts, musdb
from mssjax.errors import AudioError, ParameterError, check_choice

__all__ = ["Thresholds", "validate", "validate_entry", "validate_item", "validate_tracks", "format_table",
           "write_report"]

_EPS = 1e-20


@dataclasses.dataclass(frozen=True)
class Thresholds:
  """What a clean track must satisfy.

  The defaults come from the 134 MUSDB18 previews: clean residuals lie between
  -35.5 and -21.4 dB (worst channel), "PR - Oh No" is at -0.4 dB on its left
  channel; the quietest clean stem has an RMS of -39.1 dBFS, the nearly silent
  bass of "The Districts - Vermont" -51.0 dBFS; no stem has more than one
  sample at or above 0.999 (AAC overshoot), far below `clip_fraction`.

  Attributes:
    sample_rate: required rate of every stem (Hz).
    channels: required channel count of every stem.
    residual_db: largest residual of mixture - sum(stems) per channel, in dB
      relative to the mixture's energy in that channel.
    silent_db: a stem whose RMS over the whole track is below this (dBFS) is
      flagged as (nearly) silent.
    clip_level: |sample| at or above this counts as clipped.
    clip_fraction: flag clipping when more than this fraction of a stem's
      samples is clipped (isolated codec overshoots stay below it).
  """
  sample_rate: int = musdb.SAMPLE_RATE
  channels: int = 2
  residual_db: float = -15.0
  silent_db: float = -45.0
  clip_level: float = 0.999
  clip_fraction: float = 1e-4


def _db(energy, reference=1.0):
  return float(10.0 * np.log10((energy + _EPS) / (reference + _EPS)))


def _read_entry(entry, layout):
  """Decodes every stem of a track at its own rate: ({stem: [channels, n]}, {stem: rate}, problems)."""
  stems, rates, problems = {}, {}, []
  if layout == "musdb18":
    try:
      decoded, rate = audio.read(entry.path)
    except (AudioError, ValueError) as error:
      return stems, rates, [f"unreadable: {error}"]
    if len(decoded) != len(musdb.STEM_NAMES):
      problems.append(f"{len(decoded)} audio streams (expected {len(musdb.STEM_NAMES)})")
    for name, x in zip(musdb.STEM_NAMES, decoded):
      stems[name], rates[name] = x, rate
    return stems, rates, problems
  for name in musdb.STEM_NAMES:
    if name in entry.missing:
      continue
    try:
      (stems[name],), rates[name] = audio.read(entry.path / f"{name}.wav")
    except (AudioError, ValueError) as error:
      problems.append(f"{name}: unreadable: {error}")
  return stems, rates, problems


def _stem_problems(name, x, rate, thresholds, levels):
  """Checks one stem; records its levels; returns (problems, x with non-finite samples zeroed)."""
  problems = []
  if rate != thresholds.sample_rate:
    problems.append(f"{name}: sample rate {rate} Hz (expected {thresholds.sample_rate})")
  if x.shape[0] != thresholds.channels:
    problems.append(f"{name}: {x.shape[0]} channel(s) (expected {thresholds.channels})")
  finite = np.isfinite(x)
  if not finite.all():
    problems.append(f"{name}: {int(x.size - finite.sum())} NaN/Inf samples")
    x = np.where(finite, x, 0.0).astype(np.float32)
  clipped = int(np.count_nonzero(np.abs(x) >= thresholds.clip_level))
  if clipped > thresholds.clip_fraction * x.size:
    problems.append(f"{name}: clipping ({clipped} samples at |x| >= {thresholds.clip_level}, "
                    f"{100.0 * clipped / x.size:.3f} %)")
  rms_db = _db(float(np.mean(np.square(x, dtype=np.float64))))
  levels["rms_db"][name] = round(rms_db, 2)
  levels["peak"][name] = round(float(np.max(np.abs(x))), 4)
  if not np.any(x):
    problems.append(f"{name}: silent (all samples zero)")
  elif rms_db < thresholds.silent_db:
    problems.append(f"{name}: nearly silent (RMS {rms_db:.1f} dBFS < {thresholds.silent_db:g} dBFS)")
  return problems, x


def _residual_problems(stems, thresholds, levels):
  """Per channel: 10 log10(|mixture - sum(stems)|^2 / |mixture|^2), against the threshold.

  Also records the residual relative to the stem sum ("residual_stems_db", not
  checked): a mixture at half the stem sum is 0 dB by the first, -6 dB by it.
  """
  per_channel, per_channel_stems = [], []
  for channel in range(stems["mixture"].shape[0]):  # one channel at a time: full tracks are large
    mixture = stems["mixture"][channel].astype(np.float64)
    stem_sum = sum(x[channel].astype(np.float64) for name, x in stems.items() if name != layouts.MIXTURE)
    residual_energy = float(np.sum(np.square(mixture - stem_sum)))
    per_channel.append(_db(residual_energy, float(np.sum(np.square(mixture)))))
    per_channel_stems.append(_db(residual_energy, float(np.sum(np.square(stem_sum)))))
  levels["residual_db"] = [round(v, 2) for v in per_channel]
  levels["residual_stems_db"] = [round(v, 2) for v in per_channel_stems]
  limit = thresholds.residual_db
  return [f"mixture != sum of stems: residual {v:.1f} dB on channel {c} (threshold {limit:g} dB)"
          for c, v in enumerate(per_channel) if v > limit]


def _check_stems(stems, rates, thresholds, *, residual):
  """(problems, levels, lengths) of decoded stems; the residual is checked when ``residual`` and it can be."""
  problems = []
  levels = {"rms_db": {}, "peak": {}, "residual_db": None, "residual_stems_db": None}
  for name in list(stems):
    stem_problems, stems[name] = _stem_problems(name, stems[name], rates[name], thresholds, levels)
    problems += stem_problems
  lengths = {name: x.shape[-1] for name, x in stems.items()}
  if len(set(lengths.values())) > 1:
    problems.append("stems differ in length (" + ", ".join(f"{n} {k}" for n, k in lengths.items()) + ")")
  elif residual and len({x.shape[0] for x in stems.values()}) == 1:
    problems += _residual_problems(stems, thresholds, levels)
  return problems, levels, lengths


def _result(name, subset, problems, warnings, missing, rates, lengths, levels):
  main = layouts.MIXTURE if layouts.MIXTURE in lengths else next(iter(lengths), None)
  return {"track": name, "subset": subset, "ok": not problems, "problems": problems, "warnings": warnings,
          "missing": missing, "sample_rate": rates.get(main), "n_samples": lengths.get(main), "rates": rates,
          "lengths": lengths, **levels}


def validate_entry(entry: musdb.Entry, layout: str, *, thresholds: Thresholds = Thresholds()) -> dict[str, Any]:
  """Checks one MUSDB18 / MUSDB18-HQ track found by `musdb.scan`.

  Args:
    entry: the track, as `musdb.scan` lists it.
    layout: "musdb18" or "musdb18hq".
    thresholds: `Thresholds`.

  Returns:
    dict with "track", "subset", "ok", "problems" (list of str), "warnings" (list
    of str), "missing" (stems without a file), "rates" and "lengths" per stem, the
    mixture's "sample_rate" and "n_samples", "rms_db" and "peak" per stem and
    "residual_db" (relative to the mixture, checked) and "residual_stems_db"
    (relative to the stem sum) per channel.
  """
  problems = [f"missing stem file(s) {', '.join(m + '.wav' for m in entry.missing)}"] if entry.missing else []
  if entry.duplicate_of:
    problems.append(f"duplicate track name (also {', '.join(entry.duplicate_of)})")
  stems, rates, read_problems = _read_entry(entry, layout)
  problems += read_problems
  complete = len(stems) == len(musdb.STEM_NAMES)
  stem_problems, levels, lengths = _check_stems(stems, rates, thresholds, residual=complete)
  return _result(entry.name, entry.subset, problems + stem_problems, [], list(entry.missing), rates, lengths,
                 levels)


def validate_item(item: layouts.Item, *, expected: Sequence[str] = (),
                  thresholds: Thresholds = Thresholds()) -> dict[str, Any]:
  """Checks one trackfolder track or sourcefolder file found by `layouts.scan`.

  Args:
    item: the track (or file).
    expected: the stems every track should have; those it lacks are reported
      under "missing" and "warnings" (read as silence in training).
    thresholds: `Thresholds`.

  Returns:
    dict as `validate_entry`.
  """
  files = dict(item.files, **({layouts.MIXTURE: item.mixture} if item.mixture else {}))
  stems, rates, problems = {}, {}, []
  for name, path in files.items():
    try:
      (stems[name],), rates[name] = audio.read(path)
    except (AudioError, ValueError) as error:
      problems.append(f"{name}: unreadable: {error}")
  missing = [s for s in expected if s not in item.stems]
  warnings = [f"missing stem(s) {', '.join(missing)}: read as silence"] if missing else []
  if item.mixture is None and len(item.files) > 1:
    warnings.append("no mixture file: the mixture is the sum of the stems")
  stem_problems, levels, lengths = _check_stems(stems, rates, thresholds, residual=item.mixture is not None)
  return _result(item.name, item.subset, problems + stem_problems, warnings, missing, rates, lengths, levels)


def validate_tracks(tracks: Iterable[musdb.Track], *, thresholds: Thresholds = Thresholds(),
                    progress: bool = False) -> list[dict[str, Any]]:
  """Checks `musdb.Track` objects (for example a subset chosen with `load_tracks`).

  Args:
    tracks: the tracks to check.
    thresholds: `Thresholds`.
    progress: show a tqdm progress bar.

  Returns:
    list of dicts as `validate_entry`.
  """
  entries = [(musdb.Entry(t.name, t.subset, t.path, (), ()), t.layout) for t in tracks]
  return [validate_entry(e, layout, thresholds=thresholds) for e, layout in _progress(entries, progress)]


def validate(root: str | os.PathLike, *, subset: str | Sequence[str] | None = None, layout: str | None = None,
             targets: Sequence[str] | None = None, thresholds: Thresholds = Thresholds(),
             report: str | os.PathLike | None = None, progress: bool = False) -> list[dict[str, Any]]:
  """Checks every track of a dataset folder; one bad track never stops the run.

  Args:
    root: a dataset folder in any layout.
    subset: "train", "valid", "test", a list of them, or None for all.
    layout: one of `layouts.LAYOUTS`; None or "auto" detects it.
    targets: the stems every track should have (default: every stem the dataset
      holds), and a hint for the layout's detection.
    thresholds: `Thresholds`.
    report: if given, the JSON file the results are written to (atomically).
    progress: show a tqdm progress bar.

  Returns:
    list of dicts, one per track (a sourcefolder: per file), as `validate_entry`.

  Raises:
    DataError: ``root`` is missing or holds no tracks, or its layout is ambiguous.
    ParameterError: an unknown subset or layout.
  """
  subsets = _subsets(subset)
  layout = "auto" if layout is None else check_choice("layout", layout, layouts.LAYOUT_CHOICES)
  if layout == "auto":
    layout = layouts.detect_layout(root, targets=targets)
  if layout in musdb.LAYOUTS:
    layout, entries = musdb.scan(root, layout=layout)
    entries = [e for e in entries if e.subset in subsets]
    results = [validate_entry(e, layout, thresholds=thresholds) for e in _progress(entries, progress)]
  else:
    dataset = layouts.scan(root, layout=layout, targets=targets)
    expected = () if layout == "sourcefolder" else tuple(targets or dataset.stem_names())
    items = [i for i in dataset.items if i.subset in subsets]
    results = [validate_item(i, expected=expected, thresholds=thresholds) for i in _progress(items, progress)]
  if report is not None:
    write_report(report, results)
  return results


def _subsets(subset):
  subsets = layouts.SUBSETS if subset is None else (subset,) if isinstance(subset, str) else tuple(subset)
  for s in subsets:
    if s not in layouts.SUBSETS:
      raise ParameterError(f"subset={s!r} must be one of {layouts.SUBSETS} (or a list of them, or None)")
  return subsets


def _progress(items, enabled):
  return tqdm.tqdm(items, desc="validate", unit="track", file=sys.stderr, disable=not enabled)


def write_report(path: str | os.PathLike, results: Any) -> None:
  """Writes ``results`` as JSON indented by one space, atomically (`mssjax.fileio`)."""
  fileio.write_json(path, results, indent=1)


def format_table(results: Sequence[dict[str, Any]], *, only_problems: bool = False) -> str:
  """A readable table of the results, one line per track (problems indented under it)."""
  lines = [f"{'track':<48} {'subset':<6} {'ok':<4} {'residual dB (L, R)':<19} {'lowest stem RMS':<22}"]
  for r in results:
    if only_problems and r["ok"]:
      continue
    residual = "" if not r.get("residual_db") else ", ".join(f"{v:.1f}" for v in r["residual_db"])
    rms = r.get("rms_db") or {}
    quietest = min(((v, n) for n, v in rms.items() if n != "mixture"), default=None)
    lowest = "" if quietest is None else f"{quietest[1]} {quietest[0]:.1f} dBFS"
    lines.append(f"{r['track'][:48]:<48} {r['subset']:<6} {'yes' if r['ok'] else 'NO':<4} "
                 f"{residual:<19} {lowest:<22}")
    lines += [f"    - {p}" for p in r["problems"]]
    lines += [f"    ~ {w}" for w in r.get("warnings", ())]
  bad = sum(not r["ok"] for r in results)
  lines.append(f"{len(results)} tracks checked, {len(results) - bad} ok, {bad} with problems")
  return "\n".join(lines)
