"""museval's API on mssjax's BSSEval v4: the two-line switch for museval users.

``museval.evaluate`` and ``museval.eval_mus_track`` with the same signatures,
the same return layouts and the same numbers (`mssjax.metrics.bss_eval_v4`
agrees with museval within 0.05 dB on every frame of the MUSDB18 previews, NaN
where museval's are), without museval's minutes per track::

  import mssjax.metrics as museval          # was: import museval
  sdr, isr, sir, sar = museval.evaluate(references, estimates)
  scores = museval.eval_mus_track(track, estimates, output_dir="eval")

Only the v4 (images, filters fitted once per track) mode is offered; museval's
``mode="v3"`` (filters refitted in every window) raises `ParameterError`.

``eval_mus_track`` takes a ``musdb.Track`` (its ``targets[name].audio``,
``rate``, ``name`` and ``subset``) or an `mssjax.data.Track`, and the user's
estimates as museval takes them: a dict of ``[n_samples, n_channels]`` arrays
keyed by target name. As museval: only the targets present in both are
scored, together; when "vocals" and "accompaniment" are both given, they are
also scored as a pair of their own, and vocals' scores are the pair's. The
JSON written to ``output_dir/<subset>/<track>.json`` is museval's (its
``MethodStore`` and ``TrackStore`` read it).
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping

import numpy as np

from mssjax import TARGETS
from mssjax.errors import ParameterError
from mssjax.metrics import bss_eval, store

__all__ = ["evaluate", "eval_mus_track", "score_targets", "TrackScores"]

MODES = ("v4",)


def evaluate(references: Any, estimates: Any, win: int = 1 * 44100, hop: int = 1 * 44100, mode: str = "v4",
             padding: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """BSSEval v4 images evaluation, as ``museval.evaluate``.

  Args:
    references: true sources ``[n_sources, n_samples, n_channels]`` (anything
      ``np.array`` takes, e.g. a list of ``[n_samples, n_channels]`` arrays).
    estimates: estimated sources, ``[n_sources, m_samples, n_channels]``.
    win: window size in samples.
    hop: hop size in samples.
    mode: "v4" (museval's default; "v3" is not implemented).
    padding: cut or zero-pad the estimates to the references' length first
      (museval's ``pad_or_truncate``).

  Returns:
    ``(SDR, ISR, SIR, SAR)``, each float64 ``[n_sources, n_windows]`` in dB.

  Raises:
    ParameterError: another mode, shapes that differ (after padding), a
      silent source, non-finite values or bad window settings.
  """
  if mode not in MODES:
    raise ParameterError(f"mode={mode!r} is not supported; mssjax computes museval's 'v4' (images) only")
  references = np.array(references)
  estimates = np.array(estimates)
  if references.ndim != 3 or estimates.ndim != 3:
    raise ParameterError(f"references {references.shape} and estimates {estimates.shape} must be "
                         "[n_sources, n_samples, n_channels]")
  if padding:
    references, estimates = bss_eval.pad_or_truncate(references, estimates)
  out = bss_eval.bss_eval_v4(references, estimates, window=int(win), hop=int(hop))
  return out["SDR"], out["ISR"], out["SIR"], out["SAR"]


class TrackScores:
  """One track's framewise scores, as museval's ``TrackStore`` holds them.

  Attributes:
    track_name: the track.
    win, hop: window and hop in seconds.
    scores: ``{"targets": [{"name", "frames": [{"time", "duration", "metrics"}]}],
      "museval_version"}``, museval's document (values rounded to 1e-5 dB, inf as NaN).
  """

  def __init__(self, track_name: str, scores: Mapping[str, Mapping[str, np.ndarray]], *, win: float,
               hop: float) -> None:
    self.track_name, self.win, self.hop = track_name, win, hop
    self.scores = store.track_json(scores, win=win, hop=hop)

  @property
  def json(self) -> str:
    """The document as museval writes it (indented by 2, NaN as ``NaN``)."""
    return json.dumps(self.scores, indent=2)

  def medians(self) -> dict[str, dict[str, float]]:
    """``{target: {metric: median over frames}}`` (NaN frames skipped), SiSEC's per-track figure."""
    out = {}
    for target in self.scores["targets"]:
      values = {m: [f["metrics"][m] for f in target["frames"]] for m in store.JSON_METRICS}
      out[target["name"]] = {m: _nanmedian(v) for m, v in values.items()}
    return out

  def __repr__(self) -> str:
    lines = [f"{self.track_name}"] + [
        f"{name:>13s} ==> " + " ".join(f"{m}:{v:>8.3f}" for m, v in values.items())
        for name, values in self.medians().items()]
    return "\n".join(lines)


def _nanmedian(values):
  values = np.asarray(values, np.float64)
  return float(np.nanmedian(values)) if np.any(~np.isnan(values)) else float("nan")


def _reference_of(track: Any, name: str) -> np.ndarray:
  """A target of a ``musdb.Track`` or an `mssjax.data.Track`, ``[n_samples, n_channels]``."""
  targets = track.targets
  if callable(targets):  # mssjax.data.Track
    if name == "accompaniment":
      stems = track.stems(("drums", "bass", "other"))
      return (stems["drums"] + stems["bass"] + stems["other"]).T
    return track.stem(name).T
  return np.asarray(targets[name].audio)


def _target_names(track: Any) -> list[str]:
  if callable(track.targets):
    return list(TARGETS) + ["accompaniment"]
  return list(track.targets)


def _rate_of(track: Any) -> int:
  return int(track.rate if hasattr(track, "rate") else track.sample_rate)


def score_targets(references: Mapping[str, Any], estimates: Mapping[str, Any], *, rate: int, win: float = 1.0,
                  hop: float = 1.0, mode: str = "v4", what: str = "track") -> dict[str, dict[str, np.ndarray]]:
  """Scores named targets together as ``museval.eval_mus_track`` groups them.

  Args:
    references: ``{target: [n_samples, n_channels] array}``, or a callable
      returning it (called only for the targets scored).
    estimates: ``{target: [m_samples, n_channels] array}`` for the same targets.
    rate: the sample rate (Hz); ``win`` and ``hop`` are in seconds.
    what: the track's name, for error messages.

  Returns:
    ``{target: {metric: [n_windows]}}`` in museval's target order.

  Raises:
    ParameterError: fewer than two targets (unless vocals and accompaniment),
      or anything `evaluate` raises.
  """
  names = [n for n in references if n in estimates]
  with_accompaniment = "vocals" in names and "accompaniment" in names
  sources = [n for n in names if n != "accompaniment"] if with_accompaniment else names
  if len(sources) < 2 and not with_accompaniment:
    raise ParameterError(f"{what}: at least two estimates of the track's targets are needed to score, "
                         f"got {sorted(estimates)}")

  def reference(n):
    x = references[n]
    return x() if callable(x) else x

  def score(group):
    out = evaluate([reference(n) for n in group], [np.asarray(estimates[n]) for n in group],
                   win=int(win * rate), hop=int(hop * rate), mode=mode)
    return {n: dict(zip(bss_eval.METRICS, (m[i] for m in out))) for i, n in enumerate(group)}

  scores = {}
  if len(sources) >= 2:
    scores.update({n: v for n, v in score(sources).items() if not (n == "vocals" and with_accompaniment)})
  if with_accompaniment:
    scores.update(score(["vocals", "accompaniment"]))
  return scores


def eval_mus_track(track: Any, user_estimates: Mapping[str, Any], output_dir: str | os.PathLike | None = None,
                   mode: str = "v4", win: float = 1.0, hop: float = 1.0) -> TrackScores:
  """Scores a track's estimates as ``museval.eval_mus_track`` does.

  Args:
    track: a ``musdb.Track`` or an `mssjax.data.Track`.
    user_estimates: ``{target: [n_samples, n_channels] array}``; targets the
      track does not have are ignored, as museval ignores them.
    output_dir: if given, the JSON goes to ``output_dir/<subset>/<track>.json``
      (written atomically).
    mode: "v4".
    win, hop: window and hop in seconds.

  Returns:
    `TrackScores` (``.scores``, ``.json``, ``.medians()``).

  Raises:
    ParameterError: fewer than two targets to score (museval warns and
      returns empty scores; an empty result is never what a caller wants),
      or anything `evaluate` raises.
  """
  names = [n for n in _target_names(track) if n in user_estimates]
  scores = score_targets({n: (lambda n=n: _reference_of(track, n)) for n in names},
                         {n: user_estimates[n] for n in names}, rate=_rate_of(track), win=win, hop=hop,
                         mode=mode, what=track.name)
  result = TrackScores(track.name, scores, win=win, hop=hop)
  if output_dir is not None:
    path = pathlib.Path(output_dir) / track.subset / f"{track.name}.json"
    store.write_json(path, result.scores)
  return result
