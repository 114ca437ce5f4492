"""Decoding speed of mssjax.audio against librosa / soundfile (and stempeg where ffmpeg exists).

    .venv/bin/python benchmarks/audio.py

Prints the median of several runs and the ratio reference / mssjax (above 1:
mssjax is faster). Cases: the 40 MUSDB18 test previews (5 AAC streams each,
6.8 s), the shared mp3 example, a 30 s stereo float wav, and resampling 30 s
from 44.1 to 22.05 kHz. About 30 s on a 2-core CPU (a minute with stempeg).
"""

import pathlib
import shutil
import statistics
import tempfile
import time

import librosa
import numpy as np
import soundfile

from mssjax import audio

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def _median_seconds(fn, repeats=5):
  fn()  # warm the caches
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _row(label, ours, reference=None, reference_name=""):
  line = f"{label:<44} mssjax {ours * 1e3:9.1f} ms"
  if reference is not None:
    line += f"   {reference_name} {reference * 1e3:9.1f} ms   ratio {reference / ours:5.2f}x"
  print(line)


def bench_stems():
  files = sorted((SHARED / "musdb18-7" / "test").glob("*.stem.mp4"))
  if not files:
    print("musdb18-7 previews not found; skipping the stem case")
    return
  ours = _median_seconds(lambda: [audio.load_stems(f) for f in files], repeats=3)
  _row(f"load_stems: {len(files)} previews x 5 streams", ours)
  print(f"{'':<44} = {ours / len(files) * 1e3:.1f} ms per 6.8 s stem file")
  if shutil.which("ffmpeg"):  # stempeg runs the ffmpeg program once per stream: slow, so 5 files, 1 run
    import stempeg  # pylint: disable=import-outside-toplevel
    few = files[:5]
    ours = _median_seconds(lambda: [audio.load_stems(f) for f in few], repeats=3)
    reference = _median_seconds(lambda: [stempeg.read_stems(str(f)) for f in few], repeats=1)
    _row(f"load_stems: {len(few)} previews x 5 streams", ours, reference, "stempeg")


def bench_mp3():
  path = SHARED / "mixtures" / "audio_example.mp3"
  if path.is_file():
    ours = _median_seconds(lambda: audio.load(path))
    reference = _median_seconds(lambda: librosa.load(path, sr=None, mono=False))
    _row("load: 10.9 s mp3", ours, reference, "librosa.load")


def bench_wav_and_resample():
  signal = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 30 * 44100)).astype(np.float32)
  with tempfile.TemporaryDirectory() as folder:
    path = pathlib.Path(folder) / "x.wav"
    audio.save(path, signal)
    ours = _median_seconds(lambda: audio.load(path))
    _row("load: 30 s float wav", ours, _median_seconds(lambda: soundfile.read(path, dtype="float32")),
         "soundfile.read")
    _row("load: 30 s float wav", ours, _median_seconds(lambda: librosa.load(path, sr=None, mono=False)),
         "librosa.load")
  ours = _median_seconds(lambda: audio.resample(signal, 44100, 22050))
  reference = _median_seconds(lambda: librosa.resample(signal, orig_sr=44100, target_sr=22050))
  _row("resample: 30 s 44.1 -> 22.05 kHz", ours, reference, "librosa.resample")


if __name__ == "__main__":
  bench_stems()
  bench_mp3()
  bench_wav_and_resample()
