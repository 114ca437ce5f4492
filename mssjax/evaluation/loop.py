"""The evaluation loop: separate every track with every method, score it, write museval JSON.

``evaluate(config, workdir)`` (called by ``evaluate.py``) does, for each track and
method: separate (timed), score with `mssjax.metrics.bss_eval_v4` (1 s windows),
write ``DIR/<method>/<subset>/<track>.json`` in museval's format, and, when asked,
the estimates as wav. Each method's complexity (`method_complexity`: FLOPs per
second of audio and XLA's peak memory of the chunk program its separation
compiled) is measured once per run and recorded with each of its results.
Finished tracks are skipped on a re-run; a failing track is reported and the
run goes on. At the end it writes the SiSEC tables
(``DIR/results.csv``, ``DIR/results.md``) and the report (``DIR/report/index.html``).

With no data root, it first writes a few generated songs (MUSDB18-HQ layout) into
``DIR/songs`` and evaluates those, so it runs offline on a fresh machine.

Tracks of equal length are scored in batches of up to ``config.score_batch_size``
(`mssjax.metrics.batched`: one jitted call, the tracks split over this process's
devices); the numbers are those of scoring each alone.

With several JAX processes (``evaluate.py --multihost``, `mssjax.distributed`)
on a shared ``DIR``, process ``p`` of ``P`` takes tracks ``p, p + P, ...``, so
every result is written by exactly one process; after a barrier, process 0
gathers the counts and failures and writes the tables and the report.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import sys
import time
import traceback
from typing import Any, Callable, Mapping, NamedTuple

import jax
import ml_collections
import numpy as np
import tqdm

from mssjax import audio, distributed, fileio, separate, separators
from mssjax.errors import (USER_ERRORS, ParameterError, check_choice, check_finite, check_non_negative_int,
                           check_positive_int)
from mssjax.data import Track, generate
from mssjax.data.tracks import open_tracks, reference_identity
from mssjax.metrics import batched, bss_eval, store
from mssjax.separators import Separator

log = logging.getLogger(__name__)


def resolve_root(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> pathlib.Path:
  """The dataset folder: ``config.data.root``, or generated songs in ``DIR/songs``."""
  if config.data.root:
    return pathlib.Path(config.data.root)
  root = pathlib.Path(workdir) / "songs"
  if distributed.is_leader():
    generate.write_songs(root, n_train=0, n_test=config.data.n_generated, seconds=config.data.seconds,
                         seed=config.data.seed)
  distributed.barrier("mssjax.evaluate.songs")
  return root


def method_names(config: ml_collections.ConfigDict) -> list[str]:
  """``config.methods`` (a list or a comma-separated string), checked against the registry."""
  names = config.methods
  if isinstance(names, str):
    names = [n.strip() for n in names.split(",") if n.strip()]
  if not names:
    raise ParameterError("config.methods is empty; valid names are " + str(separators.names()))
  unknown = [n for n in names if n not in separators.names()]
  if unknown:
    raise ParameterError(f"unknown method(s) {unknown}; valid names are {separators.names()}")
  missing = [n for n in names if n not in config.separators]
  if missing:
    raise ParameterError(f"config.separators has no config for {missing} (configs/evaluate.py lists one per "
                         "method)")
  return list(names)


def load_separators(config: ml_collections.ConfigDict) -> dict[str, Separator]:
  """``{name: separator}`` for ``config.methods``, each built from ``config.separators.<name>``."""
  return {n: separators.get(n, config.separators[n]) for n in method_names(config)}


def check_config(config: ml_collections.ConfigDict, *, check_methods: bool = True) -> None:
  """Checks the settings of an evaluation config before any work (nothing is written).

  Args:
    config: as ``configs/evaluate.py``.
    check_methods: also check ``config.methods`` and their ``config.separators`` (False: the
      separators are given to `evaluate` built).

  Raises:
    ParameterError: the first bad setting, named.
  """
  if check_methods:
    for name in method_names(config):
      separators.make_config(name, config.separators[name])
  check_finite("window_seconds", config.window_seconds, minimum=0, strict=True)
  check_finite("hop_seconds", config.hop_seconds, minimum=0, strict=True)
  check_choice("data.subset", config.data.subset, ("train", "valid", "test"))
  if config.data.split:
    check_choice("data.split", config.data.split, ("train", "valid"))
    if config.data.subset != "train":
      raise ParameterError(f"data.split={config.data.split!r} needs data.subset='train' (MUSDB18's splits)")
  check_non_negative_int("data.max_tracks", config.data.max_tracks)
  check_positive_int("score_batch_size", config.score_batch_size)
  check_non_negative_int("report.n_audio_tracks", config.report.n_audio_tracks)
  if config.data.root:
    if not pathlib.Path(config.data.root).is_dir():
      raise ParameterError(f"data.root={config.data.root!r} is not a folder")
  else:
    check_positive_int("data.n_generated", config.data.n_generated)
    check_finite("data.seconds", config.data.seconds, minimum=0, strict=True)


Stems = dict[str, np.ndarray]
"""``{target: float32 [2, n]}``: a track's estimates or references, in the separator's targets order."""


def references(separator: Separator, track: Track) -> Stems:
  """The track's true stems of the separator's targets."""
  return track.stems(separator.targets)


def separate_track(separator: Separator, track: Track, truth: Stems | None = None) -> tuple[Stems, float]:
  """Runs one separator on a track; returns (``{target: [2, n]}`` estimates, seconds spent).

  Args:
    truth: the track's `references`, where the caller has read them already (an oracle needs them).

  Raises:
    ParameterError: an oracle at another rate than the track's (oracles are not resampled).
  """
  mixture = track.mixture()
  start = time.perf_counter()
  if separator.needs_references:
    if separator.sample_rate != track.sample_rate:
      raise ParameterError(f"{track.name}: oracle {separator.name!r} works at {separator.sample_rate} Hz, the "
                           f"track is at {track.sample_rate} Hz: set the oracle's sample_rate")
    truth = references(separator, track) if truth is None else truth
    stems = separator.separate_chunk(mixture, np.stack([truth[t] for t in separator.targets]))
    out = dict(zip(separator.targets, stems))  # the program `method_complexity` measures
  else:
    out = separate.separate_array(separator, mixture, sample_rate=track.sample_rate)
  estimates = {t: np.asarray(out[t], np.float32) for t in separator.targets}
  return estimates, time.perf_counter() - start


def method_complexity(separator: Separator, track: Track) -> dict[str, Any]:
  """What the separator costs on the track's chunk (`mssjax.separators.complexity`), as a result's meta records it.

  The chunk is the one `separate_track` compiles for the track (`mssjax.separate.chunk_length`; an
  oracle's: the whole track), so after a separation nothing is compiled again.

  Returns:
    ``{"flops_per_second", "memory_bytes", "chunk_seconds", "loops_counted_once"}``.
  """
  n = track.n_samples if separator.needs_references else \
      separate.chunk_length(separator, n_samples=track.n_samples, sample_rate=track.sample_rate)
  cost = separators.complexity(separator, n_samples=n)
  return {"flops_per_second": cost.flops_per_second, "memory_bytes": cost.memory_bytes,
          "chunk_seconds": cost.seconds, "loops_counted_once": cost.loops_counted_once}


def _museval_layout(stems: Stems) -> np.ndarray:
  """``[targets, n, 2]``: museval's channel-last layout of a dict of ``[2, n]`` stems."""
  return np.stack([np.transpose(x) for x in stems.values()])


def score_track(references: Stems, estimates: Stems, *, sample_rate: int, window_seconds: float = 1.0,
                hop_seconds: float = 1.0) -> dict[str, dict[str, np.ndarray]]:
  """BSSEval v4 of estimates ``{target: [2, n]}`` (cut or padded to the references, as museval).

  Returns:
    ``{target: {metric: [n_frames]}}`` in the references' order.
  """
  estimates = {t: estimates[t] for t in references}
  refs, ests = bss_eval.pad_or_truncate(_museval_layout(references), _museval_layout(estimates))
  out = bss_eval.bss_eval_v4(refs, ests, window=int(window_seconds * sample_rate),
                             hop=int(hop_seconds * sample_rate))
  return {t: {m: out[m][i] for m in bss_eval.METRICS} for i, t in enumerate(references)}


def score_tracks(references: list[Stems], estimates: list[Stems], *, sample_rate: int,
                 window_seconds: float = 1.0, hop_seconds: float = 1.0) -> list[dict[str, dict[str, np.ndarray]]]:
  """`score_track` of several tracks of equal length in one call (`mssjax.metrics.batched`).

  Args:
    references, estimates: per track ``{target: [2, n]}`` (every reference of the same ``n``
      and targets; estimates cut or padded to it).

  Returns:
    per track, ``{target: {metric: [n_frames]}}``, equal to `score_track`'s.
  """
  targets = list(references[0])
  refs = np.stack([_museval_layout(r) for r in references])
  ests = np.stack([bss_eval.pad_or_truncate(r, _museval_layout({t: e[t] for t in targets}))[1]
                   for r, e in zip(refs, estimates)])
  out = batched.bss_eval_v4_sharded(refs, ests, window=int(window_seconds * sample_rate),
                                    hop=int(hop_seconds * sample_rate))
  return [{t: {m: out[m][k, i] for m in bss_eval.METRICS} for i, t in enumerate(targets)} for k in range(len(refs))]


REFERENCE = "reference"
"""The report's folder of a track's true stems and mixture (``report/audio/<track>/reference``)."""


def audio_folder(workdir: pathlib.Path, track: str, who: str) -> pathlib.Path:
  """``DIR/report/audio/<track>/<method or "reference">`` (the track's name made safe as a folder)."""
  return pathlib.Path(workdir) / "report" / "audio" / fileio.safe_name(track) / who


def _save_stems(folder: pathlib.Path, stems: dict[str, np.ndarray], sample_rate: int, subtype: str) -> None:
  audio.save_set({pathlib.Path(folder) / f"{name}.wav": x for name, x in stems.items()}, sample_rate=sample_rate,
                 subtype=subtype)


class _Separated(NamedTuple):
  """One (method, track) separated, waiting to be scored."""
  track: Track
  estimates: Stems
  references: Stems
  seconds: float
  keep_audio: bool


def evaluate_one(config: ml_collections.ConfigDict, workdir: pathlib.Path, name: str, separator: Separator,
                 track: Track, *, keep_audio: bool = False) -> pathlib.Path:
  """Separates, scores and stores one (method, track); returns the JSON path."""
  truth = references(separator, track)
  estimates, seconds = separate_track(separator, track, truth)
  scores = score_track(truth, estimates, sample_rate=track.sample_rate, window_seconds=config.window_seconds,
                       hop_seconds=config.hop_seconds)
  return _store(config, workdir, name, separator, _Separated(track, estimates, truth, seconds, keep_audio),
                scores, method_complexity(separator, track))


def _store(config: ml_collections.ConfigDict, workdir: pathlib.Path, name: str, separator: Separator,
           done: _Separated, scores: dict, cost: dict[str, Any]) -> pathlib.Path:
  """Writes one (method, track)'s stems (when asked) and its museval JSON (its meta with the method's
  `method_complexity`); returns the JSON path."""
  track, stems, _, seconds, keep_audio = done
  if config.save_estimates:
    _save_stems(pathlib.Path(workdir) / name / "estimates" / track.subset / fileio.safe_name(track.name), stems,
                track.sample_rate, "FLOAT")
  if keep_audio:
    _save_stems(audio_folder(workdir, track.name, name), stems, track.sample_rate, "PCM_16")
  meta = {"audio_seconds": track.n_samples / track.sample_rate, "separation_seconds": seconds,
          "n_parameters": int(separator.n_parameters), "needs_references": separator.needs_references,
          "complexity": cost, "references": reference_identity(track)}
  return store.save_track(workdir, name, track.subset, track.name, scores, meta=meta,
                          win=config.window_seconds, hop=config.hop_seconds)


def _save_references(workdir: pathlib.Path, track: Track, truth: Stems) -> None:
  """The track's mixture and true stems for the report, written as a set (repaired if a kill left half)."""
  folder = audio_folder(workdir, track.name, REFERENCE)
  if all((folder / f"{n}.wav").is_file() for n in ("mixture", *truth)):
    return
  _save_stems(folder, {"mixture": track.mixture(), **truth}, track.sample_rate, "PCM_16")


def _todo(config: ml_collections.ConfigDict, workdir: pathlib.Path, methods: dict[str, Separator], tracks: list
          ) -> list:
  """The (track, method) pairs without a reusable result.

  A result that is unreadable, of other BSSEval settings or of other
  references (another ``data.root``, a reference file rewritten since) is
  named and removed, so that a failure to redo it leaves no stale number.
  """
  todo = []
  for track in tracks:
    try:
      identity = reference_identity(track)
    except USER_ERRORS:  # an unreadable reference: the track fails, with its error, when it is separated
      todo += [(track, name) for name in methods]
      continue
    for name in methods:
      problem = store.result_problem(workdir, name, track.subset, track.name, win=config.window_seconds,
                                     hop=config.hop_seconds, references=identity)
      if problem is None:
        continue
      if problem != "missing":
        tqdm.tqdm.write(f"warning: re-scoring {name} / {track.name}: {problem}", file=sys.stderr)
        store.discard_track(workdir, name, track.subset, track.name)
      todo.append((track, name))
  return todo


def run_loop(config: ml_collections.ConfigDict, workdir: pathlib.Path, methods: dict[str, Separator], tracks: list,
             *, audio_tracks: set[str] | None = None) -> dict[str, Any]:
  """Every (track, method) without a reusable result; failures are logged and collected, never fatal.

  Method by method, consecutive tracks whose references have the same length and
  sample rate are scored together, ``config.score_batch_size`` at most (`score_tracks`).

  Args:
    audio_tracks: the tracks whose audio the report plays (default: the first
      ``report.n_audio_tracks`` of ``tracks``).
  """
  if audio_tracks is None:
    audio_tracks = {t.name for t in tracks[:config.report.n_audio_tracks]} if config.report.enabled else set()
  todo = _todo(config, workdir, methods, tracks)
  loop = _Loop(config, workdir, tqdm.tqdm(total=len(todo), desc="evaluate", unit="track",
                                          disable=not config.progress))
  for name, separator in methods.items():
    for track in (t for t, n in todo if n == name):
      loop.bar.set_postfix_str(f"{name} | {track.name}"[:60])
      done = loop.attempt(name, track, lambda: loop.separate(name, separator, track, audio_tracks))
      if done is None:
        continue
      if loop.pending and (len(loop.pending) == config.score_batch_size
                           or _batch_key(loop.pending[0]) != _batch_key(done)):
        loop.score_pending(name, separator)
      loop.pending.append(done)
    loop.score_pending(name, separator)
  loop.bar.close()
  return {"done": len(todo) - len(loop.failures), "skipped": len(tracks) * len(methods) - len(todo),
          "failures": loop.failures}


def _batch_key(done: _Separated) -> tuple[int, int]:
  """Tracks are scored together where these agree: the references' length and the sample rate."""
  return done.track.n_samples, done.track.sample_rate


def _separate_for_scoring(workdir: pathlib.Path, separator: Separator, track: Track, audio_tracks: set[str]
                          ) -> _Separated:
  keep = track.name in audio_tracks
  truth = references(separator, track)
  if keep:
    _save_references(workdir, track, truth)
  estimates, seconds = separate_track(separator, track, truth)
  return _Separated(track, estimates, truth, seconds, keep)


@dataclasses.dataclass
class _Loop:
  """`run_loop`'s state: the progress bar, the failures, and the separated tracks waiting to be scored."""
  config: ml_collections.ConfigDict
  workdir: pathlib.Path
  bar: Any
  failures: list = dataclasses.field(default_factory=list)
  pending: list = dataclasses.field(default_factory=list)
  costs: dict = dataclasses.field(default_factory=dict)

  def separate(self, name: str, separator: Separator, track: Track, audio_tracks: set[str]) -> _Separated:
    """Separates a track; the method's `method_complexity` is measured once, after its first separation."""
    done = _separate_for_scoring(self.workdir, separator, track, audio_tracks)
    if name not in self.costs:
      self.costs[name] = method_complexity(separator, track)
    return done

  def attempt(self, name: str, track: Track, work: Callable[[], Any]) -> Any:
    """``work()``, or None after recording its exception as the (method, track)'s failure."""
    try:
      return work()
    except Exception as e:  # pylint: disable=broad-except
      msg = f"{type(e).__name__}: {e}"
      log.error("method %s, track %s failed: %s", name, track.name, msg)
      self.bar.write(f"FAILED {name} / {track.name}: {msg}")
      self.failures.append({"method": name, "track": track.name, "error": msg,
                            "traceback": traceback.format_exc()})
      self.done(track)
      return None

  def done(self, track: Track) -> None:
    self.bar.update(1)
    track.clear_cache() if hasattr(track, "clear_cache") else None

  def score_pending(self, name: str, separator: Separator) -> None:
    """Scores the pending tracks (together where there are several) and stores each."""
    pending, self.pending = self.pending, []
    if not pending:
      return
    config = self.config
    scores = [None] * len(pending)
    if len(pending) > 1:
      try:
        scores = score_tracks([d.references for d in pending], [d.estimates for d in pending],
                              sample_rate=pending[0].track.sample_rate, window_seconds=config.window_seconds,
                              hop_seconds=config.hop_seconds)
      except Exception:  # pylint: disable=broad-except
        log.warning("batched scoring of %d tracks failed; scoring them one by one", len(pending))
    for done, score in zip(pending, scores):
      def store_one(done=done, score=score):
        if score is None:
          score = score_track(done.references, done.estimates, sample_rate=done.track.sample_rate,
                              window_seconds=config.window_seconds, hop_seconds=config.hop_seconds)
        return _store(config, self.workdir, name, separator, done, score, self.costs[name])
      if self.attempt(name, done.track, store_one) is not None:
        self.done(done.track)


def process_share(tracks: list) -> list:
  """This process's tracks: ``p, p + P, ...`` of ``tracks`` for process ``p`` of ``P``."""
  return tracks[jax.process_index()::jax.process_count()]


def _gather_summaries(workdir: pathlib.Path, summary: dict[str, Any]) -> dict[str, Any]:
  """Every process's counts and failures, summed, on process 0 (after a barrier); this process's elsewhere.

  Each process writes its summary to ``DIR/.processes/<p>.json`` (a hidden
  folder: never a result), which process 0 reads and removes.
  """
  if jax.process_count() == 1:
    return summary
  folder = workdir / ".processes"
  fileio.write_json(folder / f"{jax.process_index()}.json", summary)
  distributed.barrier("mssjax.evaluate.results")
  if not distributed.is_leader():
    return summary
  total = {"done": 0, "skipped": 0, "failures": []}
  for index in range(jax.process_count()):
    path = folder / f"{index}.json"
    part = json.loads(path.read_text())
    total = {"done": total["done"] + part["done"], "skipped": total["skipped"] + part["skipped"],
             "failures": total["failures"] + part["failures"]}
    path.unlink()
  folder.rmdir()
  return total


def evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
             methods: Mapping[str, Separator] | None = None) -> dict[str, Any]:
  """Evaluates ``config.methods`` on the tracks of ``config.data`` into ``workdir``.

  Args:
    config: an ``ml_collections.ConfigDict`` as ``configs/evaluate.py``.
    workdir: the output folder (created).
    methods: instead of ``config.methods``, built separators by the name their results are
      stored and reported under (``DIR/<name>/``): several trained networks of one architecture
      side by side (``benchmarks/architectures.py``). None: ``config.methods``, each built from
      ``config.separators.<name>``.

  Returns:
    dict with "done", "skipped", "failures" (list of {method, track, error}),
    "rows" (the aggregate table) and "report" (path of index.html or None). With
    several processes: the totals of all on process 0, which alone writes the
    tables and the report; elsewhere this process's counts, rows and report None.

  Raises:
    ParameterError: unknown methods or empty settings (before any work), or a
      workdir that another evaluation holds (`mssjax.distributed.workdir_lock`).
  """
  check_config(config, check_methods=methods is None)
  workdir = pathlib.Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise ParameterError(f"workdir={str(workdir)!r} is a file, not a folder")
  methods = load_separators(config) if methods is None else dict(methods)
  if not methods:
    raise ParameterError("methods is empty: give at least one separator")
  tracks = open_tracks(resolve_root(config, workdir), subset=config.data.subset, split=config.data.split or None)
  if config.data.max_tracks:
    tracks = tracks[:config.data.max_tracks]
  audio_tracks = {t.name for t in tracks[:config.report.n_audio_tracks]} if config.report.enabled else set()
  with distributed.workdir_lock(workdir):  # another evaluate.py on this workdir fails at once
    summary = run_loop(config, workdir, methods, process_share(tracks), audio_tracks=audio_tracks)
    summary = _gather_summaries(workdir, summary)
    summary["rows"] = summary["report"] = None
    if distributed.is_leader():
      fill_complexity(workdir, methods, tracks, subset=config.data.subset)
      _write_summary(config, workdir, methods, tracks, summary)
  return summary


def fill_complexity(workdir: pathlib.Path, methods: Mapping[str, Separator], tracks: list[Track], *,
                    subset: str) -> list[str]:
  """Measures, once, the complexity of methods whose stored results predate its measurement.

  A re-run skips finished tracks, so a method scored before `method_complexity`
  existed would stay without FLOPs or memory in the tables and the report's
  complexity figure (an oracle drawn as a method without parameters). Its first
  stored track's meta gets the measurement and whether it is an oracle (one
  compilation of that track's chunk, no separation); `store.complexity` reads
  a method's cost from any of its tracks.

  Returns:
    the names of the methods measured.
  """
  filled = []
  names = [t.name for t in tracks]
  for name, separator in methods.items():
    metas = store.load_meta(workdir, name, subset=subset, tracks=names)
    if not metas or any(isinstance(m.get("complexity"), dict) for m in metas.values()):
      continue
    track = next((t for t in tracks if fileio.safe_name(t.name) in metas), None)
    if track is None:
      continue
    path = store.meta_path(workdir, name, subset, track.name)
    meta = dict(metas[fileio.safe_name(track.name)], complexity=method_complexity(separator, track),
                needs_references=separator.needs_references)
    store.write_json(path, meta)
    filled.append(name)
  return filled


def _write_summary(config: ml_collections.ConfigDict, workdir: pathlib.Path, methods: dict[str, Separator],
                   tracks: list[Track], summary: dict[str, Any]) -> None:
  """Process 0's outputs: failures.json, the tables and the report; sets the summary's rows and report."""
  fileio.write_json(workdir / "failures.json", summary["failures"])
  names, run = list(methods), [t.name for t in tracks]  # results of tracks of other data roots not counted
  summary["rows"] = store.write_tables(workdir, names, subset=config.data.subset, tracks=run)
  if config.report.enabled:
    from mssjax.evaluation import report  # pylint: disable=import-outside-toplevel
    summary["report"] = report.build_report(
        workdir, names, subset=config.data.subset,
        tracks=[t.name for t in tracks[:config.report.n_audio_tracks]], failures=summary["failures"],
        scored_tracks=run)
