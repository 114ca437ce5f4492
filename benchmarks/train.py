"""Speed of the U-Net + BiLSTM: training steps, separation real-time factor, compile times, memory.

  python benchmarks/train.py [--config configs/unet_previews.py] [--steps 5] [--memory]

Measures, on the default JAX backend (CPU here; a GPU where there is one):
- the train step's compile time and XLA's memory analysis of it, then steps/s, samples/s and seconds of audio/s
  (batches of generated songs, prepared beforehand, so data loading is not counted);
- the same steps fed by the config's own loader (the grain pipeline over the
  prepared previews for configs/unet_previews.py): steps/s, examples/s and the
  share of step time spent waiting for data;
- separation of a 30 s stereo song with the same network (random weights; speed
  does not depend on them): compile time and the real-time factor (audio
  seconds per second of computation; above 1 is faster than real time);
- with ``--memory``, the peak resident memory of separating a 10-minute stereo
  song in a fresh process (bounded by the chunking: the song and its four stems
  alone take about 1 GB).
There is no reference implementation in JAX to compare with, so the numbers
are absolute; compare them across machines on the same config. Steps/s come from
the median step (each step awaited, benchmarks/timing.py); the other times are
single calls.
"""

import itertools
import pathlib
import subprocess
import sys
import textwrap
import time
from typing import Any, NamedTuple

from absl import app, flags
import jax
import numpy as np
from ml_collections import config_flags

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from timing import peak_memory_mb, time_call  # pylint: disable=wrong-import-position

from mssjax import separate  # pylint: disable=wrong-import-position
from mssjax.training import loop as train_lib
from mssjax.data import loaders  # pylint: disable=wrong-import-position
from mssjax.separators import network as separator_lib  # pylint: disable=wrong-import-position

config_flags.DEFINE_config_file("config", str(REPO / "configs" / "unet_previews.py"), "Model/training config.")
flags.DEFINE_integer("steps", 5, "Timed training steps (after the compiling one).")
flags.DEFINE_boolean("memory", False, "Also measure the peak memory of a 10-minute song (slow on a CPU).")
FLAGS = flags.FLAGS


def _timed(fn):
  """``(result, seconds)`` of one call of ``fn``, compilation included."""
  timing = time_call(fn, rounds=1, warmup=0)
  return timing.result, timing.median


class TrainingSpeed(NamedTuple):
  """What `measure_training` measured.

  Attributes:
    state: the replicated train state after the timed steps.
    n_parameters: trained parameters.
    init_s: model initialisation, compile included (s).
    compile_s: the train step's ahead-of-time compilation (s).
    step_s: the median train step (s).
    memory_bytes: XLA's memory analysis of the compiled step: temporaries + arguments + outputs (bytes;
      0 where the backend gives none).
  """

  state: Any
  n_parameters: int
  init_s: float
  compile_s: float
  step_s: float
  memory_bytes: int


def measure_training(config, n_steps) -> TrainingSpeed:
  """Times `train_lib.parallel_train_step` over all devices on two prepared batches of generated songs."""
  config.data.name = "synthetic"
  iterator = loaders.make_train_iterator(config)
  batches = [next(iterator) for _ in range(2)]
  mesh = train_lib.make_mesh()
  state, init_s = _timed(lambda: train_lib.replicate(train_lib.create_train_state(config, jax.random.key(0)), mesh))
  sharded = [train_lib.shard_batch(b, mesh) for b in batches]
  step, compile_s = _timed(lambda: train_lib.parallel_train_step(mesh).lower(state, sharded[0], jax.random.key(0))
                           .compile())
  stats = step.memory_analysis()
  memory = 0 if stats is None else int(stats.temp_size_in_bytes + stats.argument_size_in_bytes
                                       + stats.output_size_in_bytes)
  calls = itertools.count()

  def one_step():
    nonlocal state
    i = next(calls)
    state, metrics = step(state, sharded[i % 2], jax.random.key(i))
    return state, metrics

  steps = time_call(one_step, rounds=n_steps, warmup=1)
  n_params = sum(int(np.size(p)) for p in jax.tree.leaves(state.params))
  return TrainingSpeed(state, n_params, init_s, compile_s, steps.median, memory)


def bench_training(config, n_steps):
  """Prints compile time and throughput of `train_lib.parallel_train_step` over all devices."""
  speed = measure_training(config, n_steps)
  batch = config.data.batch_size
  print(f"parameters: {speed.n_parameters:,}")
  print(f"model init (compile + run): {speed.init_s:.2f} s")
  print(f"train step compile: {speed.compile_s:.2f} s; XLA's memory analysis of it: "
        f"{speed.memory_bytes / 2**20:.0f} MiB")
  print(f"training: {1 / speed.step_s:.3f} steps/s, {batch / speed.step_s:.2f} samples/s "
        f"(batch {batch} x {config.data.chunk_seconds:g} s = "
        f"{batch * config.data.chunk_seconds / speed.step_s:.1f} s of audio/s)")
  return speed.state


def bench_data_wait(config, state, n_steps):
  """Prints the share of step time spent waiting for the config's own loader (steps fed as in training)."""
  if config.data.name == "musdb" and not pathlib.Path(config.data.root).is_dir():
    print(f"data wait: skipped ({config.data.root!r} is not a folder; prepare the previews first)")
    return
  iterator = loaders.make_train_iterator(config)
  mesh = train_lib.make_mesh()
  step = train_lib.parallel_train_step(mesh)
  state, _ = step(state, train_lib.shard_batch(next(iterator), mesh), jax.random.key(0))  # compiled already
  jax.block_until_ready(state)
  waiting = computing = 0.0
  for i in range(n_steps):
    start = time.perf_counter()
    batch = train_lib.shard_batch(next(iterator), mesh)
    jax.block_until_ready(batch)
    loaded = time.perf_counter()
    state, metrics = step(state, batch, jax.random.key(i))
    jax.block_until_ready(metrics)
    waiting, computing = waiting + loaded - start, computing + time.perf_counter() - loaded
  total = waiting + computing
  print(f"with the {config.data.name!r} loader ({config.data.worker_count} workers): {n_steps / total:.3f} steps/s, "
        f"{n_steps * config.data.batch_size / total:.2f} examples/s, waiting for data {100 * waiting / total:.0f} % "
        "of step time")


def bench_separation(config, state, seconds=30.0):
  """Prints compile time and real-time factor of separating a ``seconds`` stereo song."""
  model = separator_lib.network_separator(config, jax.tree.map(np.asarray, state.params))
  song = np.random.default_rng(0).uniform(-0.3, 0.3, (2, int(seconds * 44100))).astype(np.float32)
  chunk = np.zeros((2, int(round(model.config.chunk_seconds * 44100))), np.float32)
  _, compile_s = _timed(lambda: model.separate_chunk(chunk))
  _, elapsed = _timed(lambda: separate.separate_array(model, song))
  print(f"separation chunk compile (+ first chunk): {compile_s:.2f} s")
  print(f"separation of a {seconds:g} s song: {elapsed:.2f} s, real-time factor {seconds / elapsed:.1f}x "
        f"(chunks of {model.config.chunk_seconds:g} s, overlap {model.config.overlap_seconds:g} s)")


TEN_MINUTES = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {repo!r} + "/benchmarks")
    from timing import peak_memory_mb
    import numpy as np, jax
    from ml_collections import ConfigDict
    from mssjax import models, separate
    from mssjax.separators import network as separator
    config = ConfigDict({config!r})
    params = jax.tree.map(np.asarray, models.model_spec(config).init(jax.random.key(0)))
    model = separator.network_separator(config, params)
    n = 600 * 44100
    song = np.random.default_rng(0).uniform(-0.3, 0.3, (2, n)).astype(np.float32)
    stems = separate.separate_array(model, song)
    print("PEAK_MB", peak_memory_mb())
""")


def bench_memory(config):
  """Prints the peak RSS of separating a 10-minute song in a fresh process."""
  script = TEN_MINUTES.format(repo=str(REPO), config=config.to_dict())
  out, wall = _timed(lambda: subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                            check=True))
  peak = float(out.stdout.split("PEAK_MB")[1])
  print(f"10-minute stereo song: peak memory {peak:.0f} MB, {wall:.0f} s wall (bound: 4096 MB)")


def main(argv):
  del argv
  config = FLAGS.config
  print(f"backend: {jax.default_backend()}, devices: {jax.device_count()} x {jax.devices()[0].device_kind}")
  data_config = FLAGS.config.copy_and_resolve_references()
  state = bench_training(config, FLAGS.steps)
  bench_data_wait(data_config, state, FLAGS.steps)
  bench_separation(config, state)
  if FLAGS.memory:
    bench_memory(config)
  print(f"this process peak memory: {peak_memory_mb():.0f} MB")


if __name__ == "__main__":
  app.run(main)
