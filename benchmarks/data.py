"""Training input speed: chunks per second of the grain pipeline, 0 and 2 worker processes.

Data: generated songs (default, written to a temporary folder) or, with
``--previews``, the real MUSDB18 previews of ``../shared/data/musdb18-7`` built
once into a temporary TFDS dataset (config "stems_10s"). Every chunk is 6 s of
stereo 44.1 kHz with gain and channel swap on; wav sources remix per example
(four one-stem reads per chunk), TFDS sources remix within the batch (one record
read per chunk), as `mssjax.data.pipeline` recommends. The reference is what a
plain Python loop does without a pipeline, in the same run: read the four stems
of a random track whole (`mssjax.data.load_tracks`: soundfile for wav, PyAV for
.stem.mp4) and slice one chunk, without remix (one track per chunk).

Worker start-up (the first two batches of each worker) is excluded; the figures are chunks per second
over one timed pass of ``--batches`` batches of ``--batch-size`` (benchmarks/timing.py, one round:
a pipeline with workers delivers batches in bursts, so only a whole pass measures its throughput).

  python benchmarks/data.py [--songs 8 --seconds 30] [--previews] [--batches 12]
"""

import argparse
import pathlib
import sys
import tempfile

import numpy as np
import tensorflow_datasets as tfds

from mssjax.data import generate, load_tracks, pipeline, tfds_musdb

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from timing import time_call  # pylint: disable=wrong-import-position

PREVIEWS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "musdb18-7"


def plain_loop(tracks, *, n_chunks, length, seed=0):
  """Chunks/s of the no-pipeline reference: whole-track reads, one random chunk each."""
  rng = np.random.default_rng(seed)
  def one_pass():
    for _ in range(n_chunks):
      stems = tracks[rng.integers(len(tracks))].targets()
      start = rng.integers(0, max(stems.shape[-1] - length, 0) + 1)
      chunk = stems[..., start:start + length]
      _ = chunk.sum(0)
  return n_chunks / time_call(one_pass, rounds=1, warmup=0).median


def loader_speed(config, *, source, workers, batches, seed=0):
  """Chunks/s of `make_train_loader` with ``workers`` processes (first batch excluded)."""
  config = config.copy_and_resolve_references()
  config.worker_count = workers
  batch_remix = isinstance(source, pipeline.TfdsSource)
  config.augment.remix, config.augment.batch_remix = not batch_remix, batch_remix
  iterator = iter(pipeline.make_train_loader(config, seed=seed, source=source))
  for _ in range(2 * max(workers, 1)):  # start-up: every worker process has started and delivered
    next(iterator)
  def one_pass():
    for _ in range(batches):
      next(iterator)
  speed = batches * config.batch_size / time_call(one_pass, rounds=1, warmup=0).median
  del iterator
  return speed


def _sources(args, tmp):
  """{name: track source} for the benchmark, plus the tracks (`musdb.Track`) of the reference."""
  tfds.disable_progress_bar()
  if args.previews:
    builder = tfds_musdb.build(PREVIEWS, tmp / "tfds", config="stems_10s")
    tracks = load_tracks(PREVIEWS, subset="train")
    return {"tfds stems_10s (previews)": pipeline.TfdsSource(builder.as_data_source("train"))}, tracks
  root = tmp / "songs"
  generate.write_songs(root, n_train=args.songs, n_test=0, seconds=args.seconds)
  builder = tfds_musdb.build(root, tmp / "tfds", config="hq_10s")
  return {"wav (generated)": pipeline.WavSource(root, subset="train"),
          "tfds hq_10s (generated)": pipeline.TfdsSource(builder.as_data_source("train"))}, \
      load_tracks(root, subset="train")


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--songs", type=int, default=8)
  parser.add_argument("--seconds", type=float, default=30.0)
  parser.add_argument("--previews", action="store_true")
  parser.add_argument("--batches", type=int, default=12)
  parser.add_argument("--batch-size", type=int, default=8)
  args = parser.parse_args()
  config = pipeline.default_config()
  config.batch_size, config.shard_by_process = args.batch_size, False
  length = int(round(config.chunk_seconds * config.sample_rate))
  with tempfile.TemporaryDirectory() as tmp:
    sources, tracks = _sources(args, pathlib.Path(tmp))
    reference = plain_loop(tracks, n_chunks=args.batches * args.batch_size, length=length)
    print(f"{'plain loop (whole-track reads, no remix)':<44} {reference:8.1f} chunks/s   1.00x")
    for name, source in sources.items():
      for workers in (0, 2):
        speed = loader_speed(config, source=source, workers=workers, batches=args.batches)
        print(f"{f'grain {name}, {workers} workers':<44} {speed:8.1f} chunks/s {speed / reference:6.2f}x")


if __name__ == "__main__":
  main()
