"""The accelerator benchmark: one prepared run, under 8 minutes on one GPU.

  python benchmarks/device.py [--models unet,umx,bs_roformer,conv_tasnet] [--steps 10]
                              [--out outputs/device.json] [--budget 420]

For each architecture's full-size config (``configs/<name>.py``, the papers'
settings), on the default JAX backend:

- train steps per second at the config's batch and chunk, in float32 and in
  bfloat16 (``config.precision``), on generated songs prepared beforehand (no
  data loading counted), with the compile time of the first step;
- the real-time factor of separating a 60-second stereo song (chunked as the
  config says, random weights: speed does not depend on them);
- the peak device memory of each (``jax.Device.memory_stats()``'s
  ``peak_bytes_in_use``, where the backend reports it).

Then `mssjax.metrics.bss_eval_v4` against museval on a 60-second track made
of the test previews (time of each, worst frame difference in dB).

Every figure is printed as it is measured and the whole set is written to
``--out`` as JSON (under ``$OUT`` on the device machine, where that is set).
The run stops starting new measurements once ``--budget`` seconds have
passed, so that it fits the device's time; what was skipped is listed. On a
CPU backend it does nothing unless ``--allow_cpu`` (``make bench`` runs every
benchmark; the full configs would take hours there).
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import sys
import time

from absl import app, flags
import jax
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from timing import time_call  # noqa: E402  pylint: disable=wrong-import-position

from mssjax import models, separate  # noqa: E402  pylint: disable=wrong-import-position
from mssjax.data import loaders  # noqa: E402  pylint: disable=wrong-import-position
from mssjax.separators import network as separator_lib  # noqa: E402  pylint: disable=wrong-import-position
from mssjax.training import loop as train_lib  # noqa: E402  pylint: disable=wrong-import-position

flags.DEFINE_list("models", ["unet", "umx", "bs_roformer", "conv_tasnet"],
                  "configs/<name>.py to measure (those missing are skipped). mel_roformer (833 M parameters) is left "
                  "out by default: compiling its initialiser alone took 4.5 minutes on the CPU.")
flags.DEFINE_integer("steps", 10, "Timed training steps per precision (after the compiling one).")
flags.DEFINE_float("budget", 420.0, "Seconds after which no new measurement starts.")
flags.DEFINE_boolean("allow_cpu", False, "Run on a CPU backend too (the full configs take hours there).")
flags.DEFINE_string("out", "", "JSON file (default $OUT/device.json, else outputs/device.json).")
FLAGS = flags.FLAGS
START = time.perf_counter()


def _peak_bytes() -> int | None:
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


def _config(name: str):
  module = importlib.import_module(f"configs.{name}")
  config = module.get_config()
  config.data.name = "synthetic"
  config.data.worker_count = 0
  config.model.stats_batches = 0
  return config


def train_speed(config, precision: str, n_steps: int) -> dict:
  """Steps/s of the data-parallel train step over all devices, and its first step's (compile) time."""
  config = config.copy_and_resolve_references()
  config.precision = precision
  iterator = loaders.make_train_iterator(config)
  mesh = train_lib.make_mesh()
  batches = [train_lib.shard_batch(next(iterator), mesh) for _ in range(2)]
  state = train_lib.replicate(train_lib.create_train_state(config, jax.random.key(0)), mesh)
  step = train_lib.parallel_train_step(mesh)
  count = iter(range(10 ** 9))

  def one_step():
    nonlocal state
    i = next(count)
    state, metrics = step(state, batches[i % 2], jax.random.key(i))
    return state, metrics

  timing = time_call(one_step, rounds=n_steps, warmup=1)
  audio = config.data.batch_size * config.data.chunk_seconds
  return {"steps_per_second": 1 / timing.median, "audio_seconds_per_second": audio / timing.median,
          "first_step_seconds": timing.first, "batch": int(config.data.batch_size),
          "chunk_seconds": float(config.data.chunk_seconds), "peak_device_bytes": _peak_bytes()}


def separation_speed(config, seconds: float = 60.0) -> dict:
  """Real-time factor of separating a ``seconds`` stereo song with the config's network (random weights)."""
  params = jax.tree.map(np.asarray, models.model_spec(config).init(jax.random.key(0)))
  separator = separator_lib.network_separator(config, params)
  song = np.random.default_rng(0).uniform(-0.3, 0.3, (2, int(seconds * config.sample_rate))).astype(np.float32)
  first = time_call(lambda: separate.separate_array(separator, song[:, :config.sample_rate * 5],
                                                    sample_rate=config.sample_rate), rounds=1, warmup=0)
  timing = time_call(lambda: separate.separate_array(separator, song, sample_rate=config.sample_rate),
                     rounds=1, warmup=0)
  return {"real_time_factor": seconds / timing.median, "song_seconds": seconds, "compile_seconds": first.first,
          "chunk_seconds": separator.chunk_seconds, "peak_device_bytes": _peak_bytes()}


def bss_eval_speed(seconds: float = 60.0) -> dict:
  """`bss_eval_v4` against museval on a real track: times and the worst frame difference (dB)."""
  import museval  # pylint: disable=import-outside-toplevel
  from metrics import real_track  # pylint: disable=import-outside-toplevel
  from mssjax.metrics import bss_eval_v4  # pylint: disable=import-outside-toplevel
  refs, ests = real_track(seconds)
  ours = time_call(lambda: bss_eval_v4(refs, ests), rounds=2, warmup=1)
  theirs = time_call(lambda: museval.evaluate(refs, ests), rounds=1, warmup=0)
  worst = max(float(np.nanmax(np.abs(ours.result[m] - theirs.result[i])))
              for i, m in enumerate(("SDR", "ISR", "SIR", "SAR")))
  return {"track_seconds": seconds, "mssjax_seconds": ours.median, "mssjax_first_call_seconds": ours.first,
          "museval_seconds": theirs.median, "ratio": theirs.median / ours.median, "worst_frame_difference_db": worst}


def _over_budget() -> bool:
  return time.perf_counter() - START > FLAGS.budget


def main(argv):
  del argv
  device = jax.devices()[0]
  results = {"backend": jax.default_backend(), "device": device.device_kind, "device_count": jax.device_count(),
             "models": {}, "skipped": []}
  print(f"backend {results['backend']}: {results['device_count']} x {results['device']}", flush=True)
  if results["backend"] == "cpu" and not FLAGS.allow_cpu:
    print("no accelerator: this benchmark measures a GPU or TPU (--allow_cpu runs it anyway, e.g. with "
          "--models unet_tiny,umx_tiny as a smoke run)")
    return
  for name in FLAGS.models:
    if not (REPO / "configs" / f"{name}.py").is_file():
      results["skipped"].append(f"{name}: no configs/{name}.py")
      continue
    config = _config(name)
    entry = results["models"][name] = {"parameters": models.model_spec(config).n_parameters}
    for what, measure in (("float32", lambda: train_speed(config, "float32", FLAGS.steps)),
                          ("bfloat16", lambda: train_speed(config, "bfloat16", FLAGS.steps)),
                          ("separation", lambda: separation_speed(config))):
      if _over_budget():
        results["skipped"].append(f"{name} {what}: over the {FLAGS.budget:g} s budget")
        continue
      try:
        entry[what] = measure()
      except Exception as error:  # pylint: disable=broad-except  # one failure must not lose the other figures
        entry[what] = {"error": f"{type(error).__name__}: {error}"[:500]}
      print(f"{name} {what}: {json.dumps(entry[what])}", flush=True)
  if not _over_budget():
    results["bss_eval"] = bss_eval_speed()
    print(f"bss_eval_v4 vs museval: {json.dumps(results['bss_eval'])}", flush=True)
  else:
    results["skipped"].append("bss_eval: over budget")
  results["wall_seconds"] = time.perf_counter() - START
  out = pathlib.Path(FLAGS.out or (pathlib.Path(os.environ["OUT"]) / "device.json" if os.environ.get("OUT")
                                   else REPO / "outputs" / "device.json"))
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(results, indent=2))
  print(f"wrote {out} after {results['wall_seconds']:.0f} s; skipped: {results['skipped'] or 'nothing'}")


if __name__ == "__main__":
  app.run(main)
