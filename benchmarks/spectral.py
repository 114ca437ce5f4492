"""STFT / iSTFT speed: mssjax against librosa and scipy.signal, in the same run.

30 s of stereo 44.1 kHz noise, n_fft 4096, hop 1024 (the separators' setting).
Warm timings (median of ``--repeats`` interleaved rounds, benchmarks/timing.py) and the ratios
reference / mssjax (above 1: mssjax is faster); mssjax's compile time on its own line.

  python benchmarks/spectral.py [--seconds 30] [--repeats 15]
"""

import argparse
import pathlib
import sys

import jax
import librosa
import numpy as np
import scipy.signal

from mssjax import spectral

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from timing import format_ratio, time_call, time_calls  # pylint: disable=wrong-import-position

N_FFT, HOP = 4096, 1024


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seconds", type=float, default=30.0)
  parser.add_argument("--repeats", type=int, default=15)
  args = parser.parse_args()
  n = int(args.seconds * 44100)
  x = np.random.default_rng(0).uniform(-1, 1, (2, n)).astype(np.float32)
  xj = jax.device_put(x)

  first_stft = time_call(lambda: spectral.stft(xj, n_fft=N_FFT, hop_length=HOP), rounds=1, warmup=0)
  Z = first_stft.result
  first_istft = time_call(lambda: spectral.istft(Z, hop_length=HOP, length=n), rounds=1, warmup=0)
  Zn = np.asarray(Z)

  stft_fft = scipy.signal.ShortTimeFFT(scipy.signal.get_window("hann", N_FFT), hop=HOP, fs=44100,
                                       mfft=N_FFT, scale_to=None)
  Zs = stft_fft.stft(x)
  timings = {
      "stft": {
          "mssjax": lambda: spectral.stft(xj, n_fft=N_FFT, hop_length=HOP),
          "librosa": lambda: librosa.stft(x, n_fft=N_FFT, hop_length=HOP),
          "scipy": lambda: stft_fft.stft(x),
      },
      "istft": {
          "mssjax": lambda: spectral.istft(Z, hop_length=HOP, length=n),
          "librosa": lambda: librosa.istft(Zn, n_fft=N_FFT, hop_length=HOP, length=n),
          "scipy": lambda: stft_fft.istft(Zs, k1=n),
      },
      "stft+istft": {
          "mssjax": lambda: spectral.istft(spectral.stft(xj, n_fft=N_FFT, hop_length=HOP), hop_length=HOP,
                                           length=n),
          "librosa": lambda: librosa.istft(librosa.stft(x, n_fft=N_FFT, hop_length=HOP), n_fft=N_FFT,
                                           hop_length=HOP, length=n),
          "scipy": lambda: stft_fft.istft(stft_fft.stft(x), k1=n),
      },
      "whole*": {  # the whole-signal path (block_frames=0), which other platforms take
          "mssjax": lambda: spectral.istft(spectral.stft(xj, n_fft=N_FFT, hop_length=HOP, block_frames=0),
                                           hop_length=HOP, length=n, block_frames=0),
          "librosa": lambda: librosa.istft(librosa.stft(x, n_fft=N_FFT, hop_length=HOP), n_fft=N_FFT,
                                           hop_length=HOP, length=n),
          "scipy": lambda: stft_fft.istft(stft_fft.stft(x), k1=n),
      },
  }
  print(f"{args.seconds:g} s stereo 44.1 kHz, n_fft={N_FFT} hop={HOP}, jax {jax.__version__} on "
        f"{jax.devices()[0].platform}, median of {args.repeats}")
  print(f"compile: stft {first_stft.first:.3f} s, istft {first_istft.first:.3f} s")
  for op, fns in timings.items():
    print(format_ratio(op, time_calls(fns, rounds=args.repeats), unit="ms", width=12))
  print("* stft+istft with block_frames=0: one whole-signal transform instead of CPU blocks of frames")


if __name__ == "__main__":
  main()
