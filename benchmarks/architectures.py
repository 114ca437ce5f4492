"""The complexity-quality study (issue #34): every architecture and two data levers at one training budget.

Run (from the repository root; every part resumes, so re-running after an interruption goes on)::

  python benchmarks/architectures.py [--steps 400] [--workdir outputs/architectures] [--runs unet,umx,...]
      [--data data_cache/musdb18-7-hq]

The README's table was made with ``--workdir /work/study_runs --data /work/data_cache/musdb18-7-hq``
(the data root is part of each run's config: ``train.py`` refuses to resume a workdir with another).

The budget, the same for every run: ``--steps`` (400) optimiser steps of batch 8 x 3 s chunks
(9,600 s of audio at 400 steps; the shipped unet had 2,400 steps of the same batch), each config's
optimiser, learning rate and schedule over those steps, a validation by whole-signal SDR
(``eval.metric="global_sdr"``) on MUSDB18's 14 validation previews and a checkpoint every 100 steps,
the best step by validation. The data are the 80 training previews of 7 s (data-bound: every network
here sees the same 9 minutes of music), prepared once::

  python -m mssjax data prepare --root ../shared/data/musdb18-7 -o data_cache/musdb18-7-hq --set segment=0

The runs (`RUNS`; each a config of ``configs/`` and command-line overrides, nothing else):

- ``unet``, ``umx``, ``bs_roformer``, ``conv_tasnet``: ``configs/<name>_previews.py``
  (``umx_previews``' batches of 16 x 6 s cut to 8 x 3 s, as every other run);
- ``unet_speed``: unet with Demucs v2's speed augmentation (each stem played 0.9 to 1.1 times as
  fast, tempo and pitch together: `mssjax.data.augment.Augment`);
- ``unet_pretrained``: unet pretrained ``--steps`` on generated songs (run ``unet_synthetic``,
  ``data.name="synthetic"``: a new song for every example), exported to
  ``unet_synthetic.safetensors`` and fine-tuned ``--steps`` on the previews from it
  (``init_weights``): this lever's budget is twice the others' (400 + 400 steps).

What it does, one process at a time (the machine has 2 cores):

1. trains every run of ``--runs`` not finished yet: ``train.py`` in a subprocess, its log in
   ``WORKDIR/<run>.log``, its workdir ``WORKDIR/<run>/`` (a finished workdir does nothing more;
   ``train.py`` refuses to resume a workdir made with another config); with ``--skip-training``
   the runs without a checkpoint of step ``--steps`` are left out of what follows;
2. measures each run's network (`measure`): parameters; the median train step of batch 8 x 3 s on
   prepared generated batches (``benchmarks/train.py``'s `measure_training`; data loading not
   counted); the peak memory of that compiled train step by XLA's memory analysis (temporaries +
   arguments + outputs: what XLA plans, not the process's resident memory);
3. evaluates every run's best checkpoint beside the classical recipes and the oracles on the 40
   test previews with BSSEval v4 (evaluate.py's loop, one workdir ``WORKDIR/evaluation``, so its
   report holds them all): the separation real-time factor is evaluate's audio seconds per second of
   separation over all tracks (the first chunk's compilation included); GFLOPs per second of audio
   and the separation chunk's peak memory (XLA's cost and memory analyses of one chunk) are those
   evaluate records with each result where `mssjax.separators.complexity` exists (the ``complexity``
   branch), "-" where it does not;
4. writes ``WORKDIR/architectures.md``: one table (SDR per target and average, SIR and SAR
   averages, the measurements) and SIR / SAR per target.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
from typing import Any, NamedTuple

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import configs.evaluate  # pylint: disable=wrong-import-position
from mssjax import TARGETS, compilation_cache, separators  # pylint: disable=wrong-import-position
from mssjax.evaluation import loop as evaluate_lib  # pylint: disable=wrong-import-position
from mssjax.metrics import store  # pylint: disable=wrong-import-position

ROOT = REPO.parent / "shared" / "data" / "musdb18-7"
PREPARED = REPO / "data_cache" / "musdb18-7-hq"
CLASSICAL = ("hpss_repet", "nmf", "irm2", "mixture")
"""The recipes and oracles scored beside the networks (those of configs/evaluate.py)."""
BATCH, CHUNK_SECONDS, EVERY = 8, 3.0, 100


class Run(NamedTuple):
  """One training run of the study.

  Attributes:
    config: its config file under ``configs/``.
    overrides: ``KEY=VALUE`` settings on top of the budget's (`budget_overrides`).
    pretrain: a run whose exported best weights this one starts from (``init_weights``), or None.
    data: False for generated songs (no data root).
  """

  config: str
  overrides: tuple[str, ...] = ()
  pretrain: str | None = None
  data: bool = True


RUNS: dict[str, Run] = {
    "unet": Run("unet_previews"),
    "umx": Run("umx_previews"),
    "bs_roformer": Run("bs_roformer_previews"),
    "conv_tasnet": Run("conv_tasnet_previews"),
    "unet_speed": Run("unet_previews", ("data.augment.speed=True",)),
    "unet_synthetic": Run("unet_previews", ("data.name=synthetic",), data=False),
    "unet_pretrained": Run("unet_previews", pretrain="unet_synthetic"),
}
STUDY = ("unet", "umx", "bs_roformer", "conv_tasnet", "unet_speed", "unet_pretrained")
"""The runs of the table (``unet_synthetic`` is ``unet_pretrained``'s first half)."""


def budget_overrides(steps: int) -> list[str]:
  """The settings every run shares: the budget."""
  return [f"num_train_steps={steps}", f"eval_every={min(EVERY, steps)}", f"checkpoint_every={min(EVERY, steps)}",
          "log_every=25", f"data.batch_size={BATCH}", f"data.chunk_seconds={CHUNK_SECONDS}",
          "eval.metric=global_sdr", "eval.max_tracks=0"]


def weights_path(workdir: pathlib.Path, run: str) -> pathlib.Path:
  """Where run ``run``'s best weights are exported (the file a fine-tuning run starts from)."""
  return workdir / f"{run}.safetensors"


def train_command(name: str, *, workdir: pathlib.Path, steps: int, data: pathlib.Path) -> list[str]:
  """The ``train.py`` command line of run ``name``."""
  run = RUNS[name]
  settings = [f"data.root={data}"] if run.data else []
  settings += list(run.overrides)
  if run.pretrain:
    settings.append(f"init_weights={weights_path(workdir, run.pretrain)}")
  return [sys.executable, "train.py", "--workdir", str(workdir / name), "--config", f"configs/{run.config}.py",
          *[f"--config.{s}" for s in settings + budget_overrides(steps)]]


def train(name: str, *, workdir: pathlib.Path, steps: int, data: pathlib.Path) -> None:
  """Trains run ``name`` (and its pretraining, exported) to its end; a finished workdir does nothing more."""
  pretrain = RUNS[name].pretrain
  if pretrain:
    train(pretrain, workdir=workdir, steps=steps, data=data)
    if not weights_path(workdir, pretrain).is_file():
      subprocess.run([sys.executable, "-m", "mssjax", "export-weights", str(workdir / pretrain), "-o",
                      str(weights_path(workdir, pretrain))], cwd=REPO, check=True)
  print(f"training {name}: log in {workdir / name}.log", flush=True)
  with open(workdir / f"{name}.log", "a", encoding="utf-8") as log:
    subprocess.run(train_command(name, workdir=workdir, steps=steps, data=data), cwd=REPO, stdout=log,
                   stderr=subprocess.STDOUT, check=True)


def _steps(folder: pathlib.Path) -> list[int]:
  """The steps of the orbax checkpoints in ``folder`` (none where it does not exist)."""
  return sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit()) if folder.is_dir() else []


def finished(name: str, *, workdir: pathlib.Path, steps: int) -> bool:
  """Whether run ``name`` has its checkpoint of step ``steps`` (an unfinished run is not scored)."""
  return steps in _steps(workdir / name / "checkpoints")


def best_step(name: str, workdir: pathlib.Path) -> int | None:
  """The step of run ``name``'s best checkpoint by validation."""
  best = _steps(workdir / name / "best")
  return best[-1] if best else None


def network(name: str, workdir: pathlib.Path) -> separators.Separator:
  """Run ``name``'s best checkpoint as a separator."""
  arch = json.loads((workdir / name / "config.json").read_text())["model"]["name"]
  return separators.get(arch, {"checkpoint": str(workdir / name)})


def measure(name: str, *, steps: int) -> dict[str, Any]:
  """Run ``name``'s parameters, median train step (s) and XLA's memory of the compiled train step (MiB)."""
  import importlib  # pylint: disable=import-outside-toplevel
  import train as train_benchmark  # pylint: disable=import-outside-toplevel  (benchmarks/train.py)
  config = importlib.import_module(f"configs.{RUNS[name].config}").get_config()
  config.data.batch_size, config.data.chunk_seconds = BATCH, CHUNK_SECONDS
  speed = train_benchmark.measure_training(config, steps)
  return {"parameters": speed.n_parameters, "step_s": speed.step_s, "train_mib": speed.memory_bytes / 2**20}


def measurements(names: list[str], *, workdir: pathlib.Path, steps: int) -> dict[str, dict[str, Any]]:
  """`measure` of each run, kept in ``WORKDIR/measurements.json`` (a re-run measures only the missing)."""
  path = workdir / "measurements.json"
  done = json.loads(path.read_text()) if path.is_file() else {}
  for name in names:
    if name not in done:
      print(f"measuring {name}", flush=True)
      done[name] = measure(name, steps=steps)
      path.write_text(json.dumps(done, indent=1))
  return done


def evaluate(names: list[str], *, workdir: pathlib.Path, root: pathlib.Path) -> list[dict[str, Any]]:
  """BSSEval v4 of the runs' best checkpoints, the recipes and the oracles on the test previews; the rows."""
  config = configs.evaluate.get_config()
  config.data.root, config.data.subset = str(root), "test"
  methods = {n: separators.get(n, config.separators[n]) for n in CLASSICAL}
  methods.update({n: network(n, workdir) for n in names})
  summary = evaluate_lib.evaluate(config, workdir / "evaluation", methods=methods)
  if summary["failures"]:
    raise SystemExit(f"{len(summary['failures'])} (method, track) failed: {summary['failures'][:3]}")
  return summary["rows"]


def _cell(value: Any, digits: int = 2) -> str:
  if value is None or (isinstance(value, float) and not np.isfinite(value)):
    return "-"
  return f"{value:,}" if isinstance(value, int) else f"{value:.{digits}f}"


def table(rows: list[dict[str, Any]], measured: dict[str, dict[str, Any]], *, steps: int) -> str:
  """The study's markdown: the main table, then SIR and SAR per target."""
  by = {(r["method"], r["target"]): r for r in rows}
  methods = list(dict.fromkeys(r["method"] for r in rows))
  head = ["run", "best step", "parameters", "GFLOPs / s audio", "train s / step", "separation x real time",
          "train-step memory (MiB)", "separation chunk memory (MB)", *[f"SDR {t}" for t in TARGETS], "SDR avg",
          "SIR avg", "SAR avg"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for method in methods:
    m = measured.get(method, {})
    mean = lambda metric, method=method: float(np.mean([by[method, t][metric] for t in TARGETS]))
    speed = float(np.median([by[method, t]["seconds_per_second"] for t in TARGETS]))
    first = by[method, TARGETS[0]]
    cells = [method, _cell(m.get("best_step")), _cell(m.get("parameters", first["n_parameters"])), _cell(first.get("gflops_per_second")),
             _cell(m.get("step_s")), _cell(1 / speed if speed > 0 else None, 1), _cell(m.get("train_mib"), 0),
             _cell(first.get("peak_memory_mb"), 0), *[_cell(by[method, t]["SDR"]) for t in TARGETS],
             _cell(mean("SDR")), _cell(mean("SIR")), _cell(mean("SAR"))]
    lines.append("| " + " | ".join(cells) + " |")
  budget = (f"Budget: {steps} steps x batch {BATCH} x {CHUNK_SECONDS:g} s chunks ({steps * BATCH * CHUNK_SECONDS:,.0f}"
            " s of audio; unet_pretrained: the same again on generated songs first), best step by whole-signal SDR"
            f" on the 14 validation previews every {min(EVERY, steps)} steps. Data-bound: 80 training previews of"
            " 7 s. BSSEval v4 on the 40 test previews (median over 1 s frames, then over tracks). Train step:"
            " median, prepared batches, this shared 2-core CPU; memory: XLA's memory analysis of the compiled"
            " train step; separation x real time: evaluate.py's (8 s chunks for the networks), compilation"
            " included; GFLOPs and chunk memory: XLA's analyses of one separation chunk, as evaluate.py records"
            " them (\"-\": not recorded by this version).")
  extra = []
  for metric in ("SIR", "SAR"):
    extra += ["", f"{metric} (dB) per target", "", "| run | " + " | ".join(TARGETS) + " |",
              "|---|" + "---|" * len(TARGETS)]
    extra += [f"| {m} | " + " | ".join(_cell(by[m, t][metric]) for t in TARGETS) + " |" for m in methods]
  return "\n".join([budget, "", *lines, *extra]) + "\n"


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=400, help="optimiser steps of every run")
  parser.add_argument("--workdir", default=str(REPO / "outputs" / "architectures"), help="runs, evaluation and table")
  parser.add_argument("--runs", default=",".join(STUDY), help="comma-separated names of RUNS")
  parser.add_argument("--data", default=str(PREPARED), help="the prepared training previews (MUSDB18-HQ layout)")
  parser.add_argument("--root", default=str(ROOT), help="MUSDB18 test set (here the 7 s previews)")
  parser.add_argument("--skip-training", action="store_true", help="evaluate the workdirs as they are")
  args = parser.parse_args()
  names = [n.strip() for n in args.runs.split(",") if n.strip()]
  unknown = sorted(set(names) - set(RUNS))
  if unknown:
    parser.error(f"unknown runs {unknown}; valid ones are {sorted(RUNS)}")
  compilation_cache.enable()
  workdir = pathlib.Path(args.workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if not args.skip_training:
    for name in names:
      train(name, workdir=workdir, steps=args.steps, data=pathlib.Path(args.data))
  unfinished = [n for n in names if not finished(n, workdir=workdir, steps=args.steps)]
  if unfinished:
    print(f"left out, not trained to step {args.steps}: {', '.join(unfinished)}", flush=True)
    names = [n for n in names if n not in unfinished]
  measured = measurements(names, workdir=workdir, steps=5)
  for name in names:
    measured[name]["best_step"] = best_step(name, workdir)
  rows = evaluate(names, workdir=workdir, root=pathlib.Path(args.root))
  text = table(rows, measured, steps=args.steps)
  (workdir / "architectures.md").write_text(text, encoding="utf-8")
  print(text)


if __name__ == "__main__":
  main()
