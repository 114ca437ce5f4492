"""Decoding speed of mssjax.audio against librosa / soundfile (and stempeg where ffmpeg exists).

    .venv/bin/python benchmarks/audio.py

Prints the median of several interleaved rounds (benchmarks/timing.py) and the
ratio reference / mssjax (above 1: mssjax is faster). Cases: the 40 MUSDB18 test
previews (5 AAC streams each, 6.8 s), the shared mp3 example, a 30 s stereo float
wav, and resampling 30 s from 44.1 to 22.05 kHz. About 30 s on a 2-core CPU (a minute with stempeg).
"""

import pathlib
import shutil
import sys
import tempfile

import librosa
import numpy as np
import soundfile

from mssjax import audio

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from timing import format_ratio, time_calls  # pylint: disable=wrong-import-position

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
REPEATS = 5


def _row(label, timings):
  print(format_ratio(label, timings, unit="ms", width=44))


def bench_stems():
  files = sorted((SHARED / "musdb18-7" / "test").glob("*.stem.mp4"))
  if not files:
    print("musdb18-7 previews not found; skipping the stem case")
    return
  timings = time_calls({"mssjax": lambda: [audio.load_stems(f) for f in files]}, rounds=3)
  _row(f"load_stems: {len(files)} previews x 5 streams", timings)
  print(f"{'':<44} = {timings['mssjax'].median / len(files) * 1e3:.1f} ms per 6.8 s stem file")
  if shutil.which("ffmpeg"):  # stempeg runs the ffmpeg program once per stream: slow, so 5 files, 1 run
    import stempeg  # pylint: disable=import-outside-toplevel
    few = files[:5]
    timings = time_calls({"mssjax": lambda: [audio.load_stems(f) for f in few],
                          "stempeg": lambda: [stempeg.read_stems(str(f)) for f in few]},
                         rounds={"mssjax": 3, "stempeg": 1})
    _row(f"load_stems: {len(few)} previews x 5 streams", timings)


def bench_mp3():
  path = SHARED / "mixtures" / "audio_example.mp3"
  if path.is_file():
    _row("load: 10.9 s mp3", time_calls({"mssjax": lambda: audio.load(path),
                                         "librosa.load": lambda: librosa.load(path, sr=None, mono=False)},
                                        rounds=REPEATS))


def bench_wav_and_resample():
  signal = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 30 * 44100)).astype(np.float32)
  with tempfile.TemporaryDirectory() as folder:
    path = pathlib.Path(folder) / "x.wav"
    audio.save(path, signal)
    _row("load: 30 s float wav", time_calls({"mssjax": lambda: audio.load(path),
                                             "soundfile.read": lambda: soundfile.read(path, dtype="float32"),
                                             "librosa.load": lambda: librosa.load(path, sr=None, mono=False)},
                                            rounds=REPEATS))
  _row("resample: 30 s 44.1 -> 22.05 kHz",
       time_calls({"mssjax": lambda: audio.resample(signal, 44100, 22050),
                   "librosa.resample": lambda: librosa.resample(signal, orig_sr=44100, target_sr=22050)},
                  rounds=REPEATS))


if __name__ == "__main__":
  bench_stems()
  bench_mp3()
  bench_wav_and_resample()
