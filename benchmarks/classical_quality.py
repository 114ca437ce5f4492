"""SDR of the classical recipes against the librosa-built reference, on real music.

Run (from the repository root; about 15 min per method on the 40 previews):
  python benchmarks/classical_quality.py                       # all 40 test previews
  python benchmarks/classical_quality.py --tracks 8 --methods hpss_repet librosa

Separates the MUSDB18 7 s test previews (../shared/data/musdb18-7/test) and
scores every target with BSSEval v4 (museval, 1 s windows and hops). Prints,
per method, the median over tracks of each track's median SDR per target and
the four-target average; per-track medians go to outputs/classical_quality.json.
"""

import argparse
import json
import pathlib
import sys
import time

import museval
import numpy as np

from mssjax import TARGETS, audio, separators

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import librosa_recipe  # pylint: disable=wrong-import-position

ROOT = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "musdb18-7"
# MUSDB18 stream order: mixture, drums, bass, other, vocals
STREAM_OF = {"vocals": 4, "drums": 1, "bass": 2, "other": 3}


def load_track(path):
  """``(mixture [2, n], references [4, 2, n])`` in TARGETS order."""
  stems = audio.load_stems(path)
  return stems[0], np.stack([stems[STREAM_OF[t]] for t in TARGETS])


def separate(method, mixture, references):
  """``[4, 2, n]`` estimates of one method."""
  if method == "librosa":
    out = librosa_recipe.separate(mixture)
  elif method == "librosa_4096":
    out = librosa_recipe.separate(mixture, n_fft=4096, hop_length=1024)
  else:
    # Pad to a fixed length so that every track reuses one compiled function.
    n = mixture.shape[-1]
    pad = max(0, PAD_TO - n)
    sep = separators.get(method) if method not in _SEPARATORS else _SEPARATORS[method]
    _SEPARATORS[method] = sep
    refs = np.pad(references, ((0, 0), (0, 0), (0, pad))) if sep.needs_references else None
    out = sep(np.pad(mixture, ((0, 0), (0, pad))), refs)
    out = {t: np.asarray(v)[..., :n] for t, v in out.items()}
  return np.stack([np.asarray(out[t]) for t in TARGETS])


PAD_TO = 8 * 44100
_SEPARATORS = {}


def track_medians(references, estimates):
  """Per-target median SDR over the BSSEval v4 frames of one track."""
  sdr, _, _, _ = museval.evaluate(references.transpose(0, 2, 1), estimates.transpose(0, 2, 1),
                                  win=44100, hop=44100)
  return {t: float(np.nanmedian(sdr[j])) for j, t in enumerate(TARGETS)}


def table(results):
  """Median over tracks per target and their four-target average."""
  lines = [f"{'method':<14}" + "".join(f"{t:>9}" for t in TARGETS) + f"{'average':>9}"]
  for method, per_track in results.items():
    med = [float(np.median([r[t] for r in per_track.values()])) for t in TARGETS]
    lines.append(f"{method:<14}" + "".join(f"{m:9.2f}" for m in med) + f"{np.mean(med):9.2f}")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--root", type=pathlib.Path, default=ROOT)
  parser.add_argument("--tracks", type=int, default=None, help="first N test tracks (default all)")
  parser.add_argument("--methods", nargs="+", default=["hpss_repet", "nmf", "librosa"])
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("outputs/classical_quality.json"))
  parser.add_argument("--shard", default="0/1", help="i/n: run every n-th track from the i-th (parallel runs)")
  parser.add_argument("--merge", nargs="+", type=pathlib.Path, help="only print the table of these result files")
  args = parser.parse_args()
  if args.merge:
    results = {}
    for path in args.merge:
      for method, per_track in json.loads(path.read_text()).items():
        results.setdefault(method, {}).update(per_track)
    n = len(next(iter(results.values())))
    print(f"BSSEval v4 SDR (dB), median over {n} tracks of per-track medians")
    print(table(results))
    return
  shard, n_shards = (int(v) for v in args.shard.split("/"))
  paths = sorted((args.root / "test").glob("*.stem.mp4"))[:args.tracks][shard::n_shards]
  results = {m: {} for m in args.methods}
  start = time.perf_counter()
  for i, path in enumerate(paths):
    mixture, references = load_track(path)
    for method in args.methods:
      estimates = separate(method, mixture, references)
      results[method][path.name] = track_medians(references, estimates)
    print(f"[{i + 1}/{len(paths)}] {path.name} ({time.perf_counter() - start:.0f} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
  print(f"\nBSSEval v4 SDR (dB), median over {len(paths)} tracks of per-track medians")
  print(table(results))


if __name__ == "__main__":
  main()
