"""``python -m mssjax score`` against ``museval.eval_mus_dir`` on the same folder of estimates, end to end.

  python benchmarks/score.py              # the 40 test previews of ../shared/data/musdb18-7
  python benchmarks/score.py --tracks 10  # fewer tracks

Both read the references from the dataset (mssjax's reader; museval's through
the ``musdb`` package and ffmpeg), the estimates from wav files, score with
BSSEval v4 (1 s windows) and write museval JSON per track, so the times cover
file reading, decoding, scoring and writing. The estimates are written once
(``outputs/bench_score/estimates``): each target is 0.8 times its reference
plus 0.1 times the mixture. mssjax runs in fresh processes: the first pays
JAX's compilation (persistent cache off), the next two are what a user running
the command again sees (cache on, in a fresh cache folder: the first fills it),
all with the default two jobs, and a last one with ``--jobs 1``. The
agreement of the two JSON sets is printed too (largest frame difference,
from the last mssjax run).
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
MUSDB = REPO.parent / "shared" / "data" / "musdb18-7"
OUT = REPO / "outputs" / "bench_score"


def _write_estimates(root, folder):
  from mssjax import TARGETS, audio  # pylint: disable=import-outside-toplevel
  from mssjax.data import load_tracks  # pylint: disable=import-outside-toplevel
  for track in load_tracks(root):
    target_folder = folder / "test" / track.name
    if all((target_folder / f"{t}.wav").is_file() for t in TARGETS):
      continue
    mixture = track.mixture()
    audio.save_set({target_folder / f"{t}.wav": 0.8 * x + 0.1 * mixture for t, x in zip(TARGETS, track.targets())},
                   subtype="PCM_16")


def _run(cmd, env=None):
  start = time.perf_counter()
  subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
  return time.perf_counter() - start


def _worst(ours_dir, theirs_dir):
  worst = {m: 0.0 for m in ("SDR", "SIR", "SAR", "ISR")}
  for path in sorted(theirs_dir.glob("test/*.json")):
    theirs = json.loads(path.read_text())
    ours = json.loads((ours_dir / "test" / path.name).read_text())
    for a, b in zip(ours["targets"], theirs["targets"]):
      for fa, fb in zip(a["frames"], b["frames"]):
        for m in worst:
          x, y = fa["metrics"][m], fb["metrics"][m]
          if x is not None and y is not None and np.isfinite(x) and np.isfinite(y):
            worst[m] = max(worst[m], abs(x - y))
  return worst


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tracks", type=int, default=40, help="test previews to score (default all 40)")
  args = parser.parse_args()
  import os  # pylint: disable=import-outside-toplevel
  root = OUT / "root"
  shutil.rmtree(root, ignore_errors=True)
  (root / "test").mkdir(parents=True)
  for path in sorted((MUSDB / "test").glob("*.stem.mp4"))[:args.tracks]:
    (root / "test" / path.name).symlink_to(path)
  estimates = OUT / "estimates"
  _write_estimates(root, estimates)
  n = len(list((root / "test").iterdir()))
  cmd = [sys.executable, "-m", "mssjax", "score", str(estimates), "--root", str(root), "--quiet", "--no-report",
         "--method", "crude"]
  times = {}
  with tempfile.TemporaryDirectory() as cache:
    for run, env, extra in (("mssjax, first run (compiles)", {"MSSJAX_COMPILATION_CACHE": "0"}, []),
                            ("mssjax, cache filled", {"MSSJAX_COMPILATION_CACHE_DIR": cache}, []),
                            ("mssjax, from the cache", {"MSSJAX_COMPILATION_CACHE_DIR": cache}, []),
                            ("mssjax, from the cache, --jobs 1", {"MSSJAX_COMPILATION_CACHE_DIR": cache},
                             ["--jobs", "1"])):
      out = OUT / "ours"
      shutil.rmtree(out, ignore_errors=True)
      times[run] = _run(cmd + extra + ["-o", str(out)], env={**os.environ, **env})
  theirs = OUT / "museval"
  shutil.rmtree(theirs, ignore_errors=True)
  script = ("import musdb, museval, sys; museval.eval_mus_dir(musdb.DB(root=sys.argv[1], subsets='test'), "
            "sys.argv[2], sys.argv[3])")
  times["museval.eval_mus_dir"] = _run([sys.executable, "-c", script, str(root), str(estimates), str(theirs)])
  print(f"score {n} test previews end to end (reading, scoring, writing JSON):")
  for name, seconds in times.items():
    ratio = times["museval.eval_mus_dir"] / seconds
    print(f"  {name:32s} {seconds:8.1f} s  {seconds / n:6.2f} s/track  museval / this = {ratio:5.1f}x")
  print("largest frame difference to museval (dB):", {k: round(v, 4) for k, v in _worst(OUT / "ours" / "crude",
                                                                                          theirs).items()})


if __name__ == "__main__":
  main()
