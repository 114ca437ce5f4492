"""STFT / iSTFT speed: mssjax against librosa and scipy.signal, in the same run.

30 s of stereo 44.1 kHz noise, n_fft 4096, hop 1024 (the separators' setting).
Warm timings (median of several runs); mssjax's compile time on its own line.

  python benchmarks/spectral.py [--seconds 30] [--repeats 15]
"""

import argparse
import time

import jax
import librosa
import numpy as np
import scipy.signal

from mssjax import spectral

N_FFT, HOP = 4096, 1024


def median_times(fns, repeats):
  """Median wall time of each function, run in interleaved rounds (fair under load)."""
  for fn in fns.values():
    fn()  # warm
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)
  return {name: float(np.median(t)) for name, t in times.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seconds", type=float, default=30.0)
  parser.add_argument("--repeats", type=int, default=15)
  args = parser.parse_args()
  n = int(args.seconds * 44100)
  x = np.random.default_rng(0).uniform(-1, 1, (2, n)).astype(np.float32)
  xj = jax.device_put(x)

  start = time.perf_counter()
  Z = jax.block_until_ready(spectral.stft(xj, n_fft=N_FFT, hop_length=HOP))
  compile_stft = time.perf_counter() - start
  start = time.perf_counter()
  jax.block_until_ready(spectral.istft(Z, hop_length=HOP, length=n))
  compile_istft = time.perf_counter() - start
  Zn = np.asarray(Z)

  stft_fft = scipy.signal.ShortTimeFFT(scipy.signal.get_window("hann", N_FFT), hop=HOP, fs=44100,
                                       mfft=N_FFT, scale_to=None)
  Zs = stft_fft.stft(x)
  timings = {
      "stft": {
          "mssjax": lambda: jax.block_until_ready(spectral.stft(xj, n_fft=N_FFT, hop_length=HOP)),
          "librosa": lambda: librosa.stft(x, n_fft=N_FFT, hop_length=HOP),
          "scipy": lambda: stft_fft.stft(x),
      },
      "istft": {
          "mssjax": lambda: jax.block_until_ready(spectral.istft(Z, hop_length=HOP, length=n)),
          "librosa": lambda: librosa.istft(Zn, n_fft=N_FFT, hop_length=HOP, length=n),
          "scipy": lambda: stft_fft.istft(Zs, k1=n),
      },
      "stft+istft": {
          "mssjax": lambda: jax.block_until_ready(
              spectral.istft(spectral.stft(xj, n_fft=N_FFT, hop_length=HOP), hop_length=HOP, length=n)),
          "librosa": lambda: librosa.istft(librosa.stft(x, n_fft=N_FFT, hop_length=HOP), n_fft=N_FFT,
                                           hop_length=HOP, length=n),
          "scipy": lambda: stft_fft.istft(stft_fft.stft(x), k1=n),
      },
      "whole*": {  # the whole-signal path (block_frames=0), which other platforms take
          "mssjax": lambda: jax.block_until_ready(spectral.istft(
              spectral.stft(xj, n_fft=N_FFT, hop_length=HOP, block_frames=0), hop_length=HOP, length=n,
              block_frames=0)),
          "librosa": lambda: librosa.istft(librosa.stft(x, n_fft=N_FFT, hop_length=HOP), n_fft=N_FFT,
                                           hop_length=HOP, length=n),
          "scipy": lambda: stft_fft.istft(stft_fft.stft(x), k1=n),
      },
  }
  print(f"{args.seconds:g} s stereo 44.1 kHz, n_fft={N_FFT} hop={HOP}, jax {jax.__version__} on "
        f"{jax.devices()[0].platform}, median of {args.repeats}")
  print(f"compile: stft {compile_stft:.3f} s, istft {compile_istft:.3f} s")
  print(f"{'op':<12}{'mssjax ms':>11}{'librosa ms':>12}{'scipy ms':>10}{'x librosa':>11}{'x scipy':>9}")
  for op, fns in timings.items():
    t = median_times(fns, args.repeats)
    print(f"{op:<12}{1e3 * t['mssjax']:>11.1f}{1e3 * t['librosa']:>12.1f}{1e3 * t['scipy']:>10.1f}"
          f"{t['librosa'] / t['mssjax']:>10.2f}x{t['scipy'] / t['mssjax']:>8.2f}x")
  print("* stft+istft with block_frames=0: one whole-signal transform instead of CPU blocks of frames")


if __name__ == "__main__":
  main()
