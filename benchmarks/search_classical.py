"""The settings search of the classical recipes, on the training previews only (never on test).

Run (from the repository root):
  python benchmarks/search_classical.py --method hpss_repet
  python benchmarks/search_classical.py --method nmf
  python benchmarks/search_classical.py --method librosa          # the reference, scored the same way

The previews of ``../shared/data/musdb18-7/train`` are decoded once into
``data_cache/search_previews.npz``: MUSDB18's 14 validation tracks and every
fifth of the other training tracks (16), 30 in all. Each stage of the search
varies a few settings of the method's config around the best point so far
(coordinate search, a coarse grid per stage); every point is one separator
built by `mssjax.separators.get` with those overrides, run on all 30 tracks in
one call, and scored by the whole-signal SDR (`mssjax.metrics.sdr.global_sdr`,
cheap: no distortion filters), median over tracks per target. The criterion is
the four-target average, with a penalty for every target below the librosa
recipe's score on the same tracks. The finalists are then scored with BSSEval
v4 (`mssjax.metrics.bss_eval_v4`, median over 1 s frames then tracks), the
metric of the README's table, and the best is written to
``outputs/search_classical/<method>.json``. Prints the table of every point.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

from mssjax import TARGETS, audio, separators
from mssjax.data import musdb
from mssjax.metrics import sdr as sdr_lib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import librosa_recipe  # pylint: disable=wrong-import-position

ROOT = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "musdb18-7" / "train"
CACHE = pathlib.Path("data_cache/search_previews.npz")
OUT = pathlib.Path("outputs/search_classical")
# MUSDB18 stream order: mixture, drums, bass, other, vocals
STREAM_OF = {"vocals": 4, "drums": 1, "bass": 2, "other": 3}
TRAIN_EVERY = 5

# Stages of the coordinate search: each is a list of override dicts tried around the best so far.
STAGES = {
    "hpss_repet": [
        [{"wiener_iterations": 1}, {"wiener_iterations": 0}],
        [{"stft.n_fft": 4096, "stft.hop_length": 1024}, {"stft.n_fft": 2048, "stft.hop_length": 512}],
        [{"hpss.kernel_size": k} for k in ((17, 17), (31, 17), (45, 17), (61, 17), (17, 31), (17, 61), (45, 23))],
        [{"bass_cutoff_hz": f} for f in (160.0, 200.0, 230.0)],
        [{"vocal_residue": v} for v in (1.0, 0.5)],
    ],
    # hpss_repet's choices for the shared steps, then the NMF split of the background
    "nmf": [
        [{"wiener_iterations": 0, "hpss.kernel_size": (45, 17)}],
        [{"bass_share": s} for s in (0.5, 0.7, 0.85, 0.95)],
        [{"nmf.beta": b} for b in (2.0, 1.0)],
        [{"mask_power": p} for p in (1.0, 2.0)],
    ],
}


def track_names(root: pathlib.Path) -> list[str]:
  """The validation tracks, then every `TRAIN_EVERY`-th other training track (sorted by name)."""
  names = sorted(p.name[:-len(".stem.mp4")] for p in root.glob("*.stem.mp4"))
  valid = [n for n in names if n in musdb.VALIDATION_TRACKS]
  return valid + [n for n in names if n not in musdb.VALIDATION_TRACKS][::TRAIN_EVERY]


def load_previews(root: pathlib.Path = ROOT, cache: pathlib.Path = CACHE):
  """``(names, mixtures [n, 2, s], references [n, 4, 2, s])``, decoded once into ``cache``."""
  names = track_names(root)
  if cache.exists():
    data = np.load(cache)
    if list(data["names"]) == names:
      n = int(np.min(data["lengths"]))
      return names, data["mixtures"][..., :n], data["references"][..., :n]
  stems = [audio.load_stems(root / f"{name}.stem.mp4") for name in names]
  n = min(s.shape[-1] for s in stems)
  mixtures = np.stack([s[0, :, :n] for s in stems])
  references = np.stack([np.stack([s[STREAM_OF[t], :, :n] for t in TARGETS]) for s in stems])
  cache.parent.mkdir(parents=True, exist_ok=True)
  np.savez(cache, names=np.array(names), mixtures=mixtures, references=references,
           lengths=np.array([s.shape[-1] for s in stems]))
  return names, mixtures, references


def separate(method: str, overrides: dict, mixtures: np.ndarray) -> np.ndarray:
  """``[n, 4, 2, s]`` estimates of ``method`` with ``overrides`` for every mixture."""
  if method == "librosa":
    return np.stack([np.stack([librosa_recipe.separate(x)[t] for t in TARGETS]) for x in mixtures])
  out = separators.get(method, overrides)(mixtures)
  return np.stack([np.asarray(out[t]) for t in TARGETS], axis=1)


def score(references: np.ndarray, estimates: np.ndarray, *, metric: str) -> np.ndarray:
  """``[n, 4]`` SDR per track and target: ``"global"`` or ``"bss"`` (median over 1 s frames)."""
  fn = sdr_lib.global_sdr if metric == "global" else sdr_lib.median_bss_eval_sdr
  return np.stack([fn(r, e) for r, e in zip(references, estimates)])


def summary(per_track: np.ndarray) -> np.ndarray:
  """Median over tracks per target, NaN-tolerant: ``[4]``."""
  return np.nanmedian(per_track, axis=0)


def criterion(medians: np.ndarray, floor: np.ndarray | None) -> float:
  """The average, less twice every shortfall below the librosa recipe's ``floor``."""
  penalty = 0.0 if floor is None else 2.0 * float(np.sum(np.maximum(floor - medians, 0.0)))
  return float(np.mean(medians)) - penalty


def row(label: str, medians: np.ndarray, seconds: float) -> str:
  return f"{label:<58}" + "".join(f"{m:8.2f}" for m in medians) + f"{np.mean(medians):8.2f}{seconds:7.0f}s"


def header() -> str:
  return f"{'setting':<58}" + "".join(f"{t:>8}" for t in TARGETS) + f"{'avg':>8}{'time':>8}"


def describe(overrides: dict) -> str:
  return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"


def search(method, mixtures, references, floor, stages, log):
  """Coordinate search over ``stages``: ``(best overrides, [(overrides, medians)])``."""
  best, best_value, tried = {}, -np.inf, []
  seen = {}
  for stage in stages:
    stage_best = best
    for change in stage:
      point = {**best, **change}
      key = json.dumps(point, sort_keys=True)
      if key not in seen:
        start = time.perf_counter()
        medians = summary(score(references, separate(method, point, mixtures), metric="global"))
        seen[key] = medians
        tried.append((point, medians))
        log(row(describe(point), medians, time.perf_counter() - start))
      value = criterion(seen[key], floor)
      if value > best_value:
        best_value, stage_best = value, point
    best = stage_best
  return best, tried


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--method", choices=["hpss_repet", "nmf", "librosa"], required=True)
  parser.add_argument("--root", type=pathlib.Path, default=ROOT)
  parser.add_argument("--finalists", type=int, default=3, help="points scored with BSSEval v4 at the end")
  parser.add_argument("--out", type=pathlib.Path, default=OUT)
  args = parser.parse_args()
  names, mixtures, references = load_previews(args.root)
  args.out.mkdir(parents=True, exist_ok=True)
  log_path = args.out / f"{args.method}.log"
  log_file = log_path.open("a")

  def log(line):
    print(line, flush=True)
    log_file.write(line + "\n")
    log_file.flush()

  log(f"{len(names)} training previews ({len(musdb.VALIDATION_TRACKS)} validation), "
      f"{mixtures.shape[-1] / 44100:.1f} s each; whole-signal SDR (dB), median over tracks")
  log(header())
  floor_path = args.out / "librosa.json"
  if args.method == "librosa":
    start = time.perf_counter()
    estimates = separate("librosa", {}, mixtures)
    medians = summary(score(references, estimates, metric="global"))
    log(row("librosa recipe", medians, time.perf_counter() - start))
    floor_path.write_text(json.dumps({"global": medians.tolist()}))
    return
  floor = np.asarray(json.loads(floor_path.read_text())["global"]) if floor_path.exists() else None
  best, tried = search(args.method, mixtures, references, floor, STAGES[args.method], log)
  ranked = sorted(tried, key=lambda pm: -criterion(pm[1], floor))[:args.finalists]
  log("\nfinalists, BSSEval v4 SDR (dB), median over 1 s frames then tracks")
  log(header())
  final = []
  for point, _ in ranked:
    start = time.perf_counter()
    medians = summary(score(references, separate(args.method, point, mixtures), metric="bss"))
    final.append((point, medians))
    log(row(describe(point), medians, time.perf_counter() - start))
  chosen, medians = max(final, key=lambda pm: float(np.mean(pm[1])))
  (args.out / f"{args.method}.json").write_text(json.dumps(
      {"overrides": chosen, "bss_eval_sdr": dict(zip(TARGETS, medians.tolist())), "tracks": names,
       "global_best": best}, indent=1))
  log(f"chosen: {describe(chosen)}")


if __name__ == "__main__":
  main()
