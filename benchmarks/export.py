"""Exported separators (mssjax.deploy.export / mssjax.deploy.exported): sizes, load and run times, equality with mssjax.

    .venv/bin/python benchmarks/export.py [--methods unet,hpss_repet,nmf] [--no-onnx]

For each method, with its default config (its own chunk: 8 s for the network, 30 s for the
classical recipes), prints

- the export time and the module's size (lowered for CPU and CUDA);
- in a fresh interpreter that imports only jax, numpy and ``exported.py`` (copied alone): the
  import time, `exported.load` (read, checksum, deserialise), the first chunk (XLA compiles
  the module) and the median of further chunks (benchmarks/timing.py);
- the same chunk through mssjax's own separator (median), and the largest absolute difference
  of the two on a chunk of the example mixture (or of noise where it is absent);

and for the network the ONNX masks: conversion time, file size, onnxruntime's median against
the jitted JAX model's on one chunk's magnitude, and their largest difference. A few minutes on
a 2-core CPU.
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np

from mssjax import TARGETS, audio, separate, separators, spectral
from mssjax.deploy import export

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from timing import format_time, time_call  # pylint: disable=wrong-import-position

REPO = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = REPO.parent / "shared" / "data" / "mixtures" / "audio_example.mp3"
ROUNDS = 3

STANDALONE = textwrap.dedent("""
    import json, statistics, sys, time
    start = time.perf_counter()
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import exported
    imported = time.perf_counter()
    separator = exported.load(sys.argv[2])
    loaded = time.perf_counter()
    chunk = np.load(sys.argv[3])
    out = separator.separate_chunk(chunk)
    first = time.perf_counter()
    times = []
    for _ in range(int(sys.argv[5])):
      t = time.perf_counter()
      separator.separate_chunk(chunk)
      times.append(time.perf_counter() - t)
    np.save(sys.argv[4], out)
    print(json.dumps({"import": imported - start, "load": loaded - imported, "first": first - loaded,
                      "median": statistics.median(times)}))
""")


def _chunk(samples):
  """The first ``samples`` of the example mixture (zero-padded), or noise where it is absent."""
  if EXAMPLE.is_file():
    (mixture,), _ = audio.read(EXAMPLE, streams=[0])
    mixture = mixture[:, :samples]
    return np.pad(mixture, ((0, 0), (0, samples - mixture.shape[-1]))).astype(np.float32)
  return 0.1 * np.random.default_rng(0).standard_normal((2, samples)).astype(np.float32)


def _mssjax_chunk(separator):
  if hasattr(separator, "separate_chunk"):
    return separator.separate_chunk
  return lambda chunk: np.stack([np.asarray(separator(chunk)[t]) for t in TARGETS])


def bench_method(method, folder):
  start = time.perf_counter()
  result = export.export_separator(method, folder / f"{method}.jaxexport")
  exported_seconds = time.perf_counter() - start
  separator = separators.get(method)
  samples, _ = separate.chunk_samples(separator)
  chunk = _chunk(samples)
  np.save(folder / "chunk.npy", chunk)
  app = folder / "app"
  app.mkdir(exist_ok=True)
  shutil.copy(REPO / "mssjax" / "exported.py", app / "exported.py")
  done = subprocess.run([sys.executable, "-c", STANDALONE, str(app), str(result.module), str(folder / "chunk.npy"),
                         str(folder / "out.npy"), str(ROUNDS)], capture_output=True, text=True, check=True)
  standalone = json.loads(done.stdout.strip().splitlines()[-1])
  ours = time_call(lambda: _mssjax_chunk(separator)(chunk), rounds=ROUNDS)
  difference = float(np.max(np.abs(np.load(folder / "out.npy") - ours.result)))
  print(f"{method} ({samples / separator.sample_rate:.0f} s chunk): export {format_time(exported_seconds)}, "
        f"module {result.module_bytes / 1e6:.2f} MB")
  print(f"  standalone: import {format_time(standalone['import'])}, load {format_time(standalone['load'])}, "
        f"first chunk {format_time(standalone['first'])}, then {format_time(standalone['median'])} per chunk")
  print(f"  mssjax:     {format_time(ours.median)} per chunk (first {format_time(ours.first)}); "
        f"max |exported - mssjax| = {difference:.2e}")


def bench_onnx(folder):
  try:
    import onnxruntime  # pylint: disable=import-outside-toplevel
  except ImportError:
    print("onnxruntime not installed; skipping the ONNX case")
    return
  start = time.perf_counter()
  result = export.export_masks_onnx(folder / "masks.onnx")
  converted = time.perf_counter() - start
  unet = separators.get("unet")
  samples, _ = separate.chunk_samples(unet)
  magnitude = np.asarray(jnp.abs(spectral.stft(_chunk(samples), n_fft=unet.n_fft, hop_length=unet.hop_length)))[None]
  options = onnxruntime.SessionOptions()
  options.log_severity_level = 3  # errors only
  session = onnxruntime.InferenceSession(str(result.path), options, providers=["CPUExecutionProvider"])
  runtime = time_call(lambda: session.run(["masks"], {"magnitude": magnitude})[0], rounds=ROUNDS)
  masks = jax.jit(export.mask_function(unet))
  ours = time_call(lambda: masks(magnitude), rounds=ROUNDS)
  difference = float(np.max(np.abs(runtime.result - np.asarray(ours.result))))
  print(f"unet masks as ONNX: conversion {format_time(converted)} (jax2onnx, its plugins' import included), "
        f"file {result.size_bytes / 1e6:.2f} MB, magnitude {list(result.input_shape)}")
  print(f"  onnxruntime {format_time(runtime.median)}, JAX {format_time(ours.median)} per chunk; "
        f"max |onnx - jax| = {difference:.2e} (noise check at export: {result.max_abs_difference:.2e})")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="unet,hpss_repet,nmf")
  parser.add_argument("--no-onnx", action="store_true")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    for method in args.methods.split(","):
      folder = pathlib.Path(tmp) / method
      folder.mkdir()
      bench_method(method, folder)
    if not args.no_onnx:
      bench_onnx(pathlib.Path(tmp))


if __name__ == "__main__":
  main()
