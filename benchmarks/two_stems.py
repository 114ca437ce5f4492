"""``--two-stems X``: is ``no_X`` better as the mixture minus X's estimate, or as the sum of the other estimates?

Run (from the repository root):
  python benchmarks/two_stems.py                      # all 40 MUSDB18 7 s test previews: the README's table
  python benchmarks/two_stems.py --tracks 5           # a quick look

For each test preview, each separator (the shipped ``unet`` and the classical
``hpss_repet``) and each target X (vocals, drums, bass, other), ``no_X`` is
formed both ways from the same separation:

- ``minus``: the mixture minus X's estimate (what demucs writes);
- ``sum``: the sum of the other targets' estimates.

Each is scored with BSSEval v4 (`mssjax.metrics.bss_eval.bss_eval_v4`, 1 s
windows and hops, the two sources X and no_X scored together, as a two-stem
separation) against the sum of the other reference stems; the SDR of ``no_X``
is the median over frames, then the median over tracks (SiSEC's). The
previews' mixture is not exactly the sum of its stems (each stream is coded on
its own: a residual near -27 dB), so ``minus`` carries that residual.

Prints a markdown table (median SDR in dB, the mean per-track difference, and
on how many tracks ``minus`` beats ``sum``) and writes it to ``--out``.
"""

import argparse
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mssjax import TARGETS, compilation_cache, separate, separators  # pylint: disable=wrong-import-position
from mssjax.data import musdb  # pylint: disable=wrong-import-position
from mssjax.metrics import sdr  # pylint: disable=wrong-import-position

ROOT = REPO.parent / "shared" / "data" / "musdb18-7"
METHODS = ("unet", "hpss_repet")
WAYS = ("minus", "sum")


def no_stem(way: str, mixture: np.ndarray, estimates: dict[str, np.ndarray], target: str) -> np.ndarray:
  """``no_target`` from one separation, ``[channels, n]``: the mixture minus the stem, or the other stems' sum."""
  if way == "minus":
    return mixture - estimates[target]
  return sum(estimate for name, estimate in estimates.items() if name != target)


def score_track(mixture: np.ndarray, references: np.ndarray, estimates: dict[str, np.ndarray]
                ) -> dict[tuple[str, str], float]:
  """``{(target, way): median SDR of no_target over frames}`` for one track; ``references`` is ``[4, 2, n]``."""
  out = {}
  for i, target in enumerate(TARGETS):
    rest = references.sum(axis=0) - references[i]
    for way in WAYS:
      pair_ref = np.stack([references[i], rest])
      pair_est = np.stack([estimates[target], no_stem(way, mixture, estimates, target)])
      out[target, way] = float(sdr.median_bss_eval_sdr(pair_ref, pair_est)[1])
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", default=str(ROOT), help="MUSDB18 (here the 7 s previews)")
  parser.add_argument("--tracks", type=int, default=0, help="the first N test tracks (0: all)")
  parser.add_argument("--out", default=str(REPO / "outputs" / "two_stems.md"))
  args = parser.parse_args()
  compilation_cache.enable()
  tracks = musdb.load_tracks(args.root, subset="test")
  tracks = tracks[:args.tracks] if args.tracks else tracks
  scores = {method: [] for method in METHODS}
  start = time.perf_counter()
  for method in METHODS:
    separator = separators.get(method)
    for track in tracks:
      mixture, references = track.mixture(), track.targets()
      estimates = separate.separate_array(separator, mixture, sample_rate=track.sample_rate)
      scores[method].append(score_track(mixture, references, estimates))
    print(f"{method}: {time.perf_counter() - start:.0f} s", flush=True)
  lines = [f"SDR (dB) of no_X against the sum of the other reference stems, median over {len(tracks)} "
           "MUSDB18 7 s test previews; wins: tracks on which `minus` beats `sum`", "",
           "| separator | X | mixture minus X | sum of the others | mean of minus - sum | minus wins |",
           "|---|---|---|---|---|---|"]
  for method in METHODS:
    for target in TARGETS:
      values = {way: np.array([s[target, way] for s in scores[method]]) for way in WAYS}
      wins = int(np.sum(values["minus"] > values["sum"]))
      difference = np.nanmean(values["minus"] - values["sum"])
      lines.append(f"| {method} | {target} | {np.nanmedian(values['minus']):.3f} | {np.nanmedian(values['sum']):.3f} "
                   f"| {difference:+.4f} | {wins} / {len(tracks)} |")
  text = "\n".join(lines) + "\n"
  print(text)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
  main()
