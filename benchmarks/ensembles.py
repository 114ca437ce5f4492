"""Does an ensemble beat its best member? The pretrained unet, hpss_repet and their ensembles on real music.

Run (from the repository root):
  python benchmarks/ensembles.py --tracks 20 --workdir outputs/ensembles_20   # the README's table
  python benchmarks/ensembles.py                                            # all 40 MUSDB18 7 s test previews

Evaluates with evaluate.py's loop (`mssjax.evaluation.loop.evaluate`, the
config of ``configs/evaluate.py``: BSSEval v4, 1 s windows and hops, median
over frames then tracks), one workdir per run under ``--workdir`` (a re-run
skips finished tracks):

- ``members``: ``unet`` (pretrained) and ``hpss_repet``, each alone;
- ``waveform``: ``configs/ensemble.py``, their waveforms averaged, equal weights;
- ``magnitude``: the same members, a soft mask from their mean magnitudes;
- ``weighted``: waveform averaging with weights (0.75, 0.25) on every target:
  unet leads hpss_repet on every target in the README's table, so "favouring
  the better member per stem" favours unet on all four. That table is of the
  same test previews: the weights were chosen on test (mildly; one guess, no search).

Prints the SDR pivot (per target and average) of all five, and per ensemble
and target the tracks on which it beats the better member of that track;
writes ``WORKDIR/ensembles.md``. Inside an ensemble hpss_repet runs in the
ensemble's 8 s chunks (the network's) rather than its own 30 s ones.
"""

import argparse
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import configs.evaluate  # pylint: disable=wrong-import-position
from mssjax import TARGETS, compilation_cache  # pylint: disable=wrong-import-position
from mssjax.evaluation import loop as evaluate_lib  # pylint: disable=wrong-import-position
from mssjax.metrics import store  # pylint: disable=wrong-import-position

ROOT = REPO.parent / "shared" / "data" / "musdb18-7"
MEMBERS = ("unet", "hpss_repet")
ENSEMBLES = {
    "waveform": dict(average="waveform"),
    "magnitude": dict(average="magnitude"),
    "weighted": dict(average="waveform", weights={t: (0.75, 0.25) for t in TARGETS}),
}


def run_config(run: str, *, root: pathlib.Path, tracks: int):
  """The evaluation config of one run: the members alone, or one ensemble."""
  config = configs.evaluate.get_config()
  config.data.root, config.data.subset, config.data.max_tracks = str(root), "test", tracks
  config.report.enabled = False
  if run == "members":
    config.methods = ",".join(MEMBERS)
    return config
  config.methods = "ensemble"
  ensemble = config.separators.ensemble
  assert ensemble.members == MEMBERS
  ensemble.average = ENSEMBLES[run]["average"]
  for target, weights in ENSEMBLES[run].get("weights", {}).items():
    ensemble.weights[target] = weights
  return config


def track_sdr(workdir: pathlib.Path, method: str) -> dict[tuple[str, str], float]:
  """``{(track, target): median SDR over frames}``."""
  return {(r["track"], r["target"]): float(np.nanmedian(r["frames"]))
          for r in store.load_scores(workdir, [method]) if r["metric"] == "SDR"}


def wins(ensemble: dict, members: list[dict]) -> dict[str, str]:
  """Per target, ``"k / n"``: the tracks on which the ensemble beats the better member of that track."""
  out = {}
  for target in TARGETS:
    keys = [k for k in ensemble if k[1] == target]
    won = sum(ensemble[k] > max(m[k] for m in members) for k in keys)
    out[target] = f"{won} / {len(keys)}"
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", default=str(ROOT), help="MUSDB18 (here the 7 s previews)")
  parser.add_argument("--tracks", type=int, default=0, help="the first N test tracks (0: all)")
  parser.add_argument("--workdir", default=str(REPO / "outputs" / "ensembles"))
  args = parser.parse_args()
  compilation_cache.enable()
  workdir = pathlib.Path(args.workdir)
  rows, seconds = [], {}
  for run in ("members", *ENSEMBLES):
    start = time.perf_counter()
    summary = evaluate_lib.evaluate(run_config(run, root=pathlib.Path(args.root), tracks=args.tracks), workdir / run)
    seconds[run] = time.perf_counter() - start
    if summary["failures"]:
      raise SystemExit(f"{run}: {len(summary['failures'])} tracks failed: {summary['failures'][:3]}")
    rows += [dict(row, method=row["method"] if run == "members" else f"ensemble ({run})") for row in summary["rows"]]
    print(f"{run}: {seconds[run]:.0f} s", flush=True)
  members = [track_sdr(workdir / "members", m) for m in MEMBERS]
  lines = [store.markdown_pivot(rows, "SDR"), "Tracks on which the ensemble beats the better member (SDR):", "",
           "| ensemble | " + " | ".join(TARGETS) + " |", "|---|" + "---|" * len(TARGETS)]
  for run in ENSEMBLES:
    counts = wins(track_sdr(workdir / run, "ensemble"), members)
    lines.append(f"| {run} | " + " | ".join(counts[t] for t in TARGETS) + " |")
  n_tracks = sorted({row["n_tracks"] for row in rows})
  lines += ["", f"tracks scored per method: {', '.join(map(str, n_tracks))}",
            "seconds per run (evaluation wall clock, compilation included): "
            + ", ".join(f"{run} {s:.0f}" for run, s in seconds.items())]
  text = "\n".join(lines) + "\n"
  print(text)
  (workdir / "ensembles.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
  main()
