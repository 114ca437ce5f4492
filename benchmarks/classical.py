"""Speed of the classical methods against the reference libraries, measured in the same run.

Run (from the repository root; about 5 minutes on a laptop CPU, most of it in librosa):
  python benchmarks/classical.py

On a 30 s stereo 44.1 kHz signal (STFT 4096 / 1024, as the recipes): HPSS
against ``librosa.decompose.hpss``; REPET-SIM (the hpss_repet config) against
librosa's nn_filter route (the gallery's vocal separation: nn_filter, cosine,
median, 2 s width, then the soft masks); NMF against scikit-learn's MU solver
at the same rank, iterations and initialisation; the whole hpss_repet recipe
against benchmarks/librosa_recipe.py at the same STFT; and 8 tracks in one
call (looped inside the jit on CPU, vmapped on accelerators) against 8
calls. Compile times (the first call less the median) are printed on their own
lines; timings are the median of ``--repeats`` runs after the compile, with the
best run beside it, in rounds interleaved with the reference's single run
(benchmarks/timing.py); ratios are reference / mssjax (above 1: mssjax is faster).
"""

import argparse
import pathlib
import sys

import jax
import librosa
import numpy as np
from sklearn.decomposition import NMF

import mssjax
from mssjax import separators, spectral

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import librosa_recipe  # pylint: disable=wrong-import-position
from timing import format_ratio, time_calls  # pylint: disable=wrong-import-position

SR = 44100
N_FFT, HOP = 4096, 1024


def test_signal(seconds, seed=0):
  """A stereo mixture with tones, a beat and noise ``[2, n]`` float32."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * SR)) / SR
  tone = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.02 * np.sin(2 * np.pi * 0.5 * t)))
  beat = (np.sin(2 * np.pi * 2 * t) > 0.97) * rng.standard_normal(t.size)
  x = tone + 0.5 * beat + 0.02 * rng.standard_normal(t.size)
  return np.stack([x, 0.8 * x + 0.01 * rng.standard_normal(t.size)]).astype(np.float32)


def compare(name, ours, reference, ref_name, repeats):
  """Times ``ours`` (compiled first, ``repeats`` rounds) beside one run of ``reference``; prints both."""
  timings = time_calls({"mssjax": ours, ref_name: reference}, rounds={"mssjax": repeats, ref_name: 1},
                       warmup={"mssjax": 1, ref_name: 0})
  print(format_ratio(name, timings, with_min=True, width=28))
  print(f"{name + ' compile':<28} {timings['mssjax'].first - timings['mssjax'].median:8.3f} s")


def bench_hpss(S, repeats):
  compare("HPSS (kernel 31)", lambda: mssjax.hpss(S, kernel_size=31),
          lambda: librosa.decompose.hpss(S, kernel_size=31), "librosa.decompose.hpss", repeats)


def bench_repet(S, config, repeats):
  r = config.repet
  fn = lambda: mssjax.repet_sim(S, sample_rate=SR, hop_length=HOP, n_neighbors=r.n_neighbors,
                                min_distance=r.min_distance, threshold=r.threshold, selection=r.selection,
                                power=r.power, margin=tuple(r.margin))
  compare("REPET-SIM", fn, lambda: librosa_recipe.vocal_masks(S, sr=SR, hop_length=HOP),
          "librosa nn_filter route", repeats)


def bench_nmf(V, repeats, rank=24, n_iter=100):
  rng = np.random.default_rng(0)
  W0 = np.abs(rng.standard_normal((V.shape[0], rank))).astype(np.float32)
  H0 = np.abs(rng.standard_normal((rank, V.shape[1]))).astype(np.float32)
  fn = lambda: mssjax.nmf(V, n_components=rank, beta=2.0, n_iter=n_iter, W=W0, H=H0)
  model = NMF(rank, solver="mu", beta_loss=2.0, init="custom", max_iter=n_iter, tol=0.0)
  compare(f"NMF (rank {rank}, {n_iter} it)", fn, lambda: model.fit_transform(V, W=W0.copy(), H=H0.copy()),
          "sklearn NMF mu", repeats)


def bench_recipe(mix, repeats):
  sep = separators.get("hpss_repet")
  compare("hpss_repet recipe", lambda: sep(mix)["vocals"],
          lambda: librosa_recipe.separate(mix, n_fft=N_FFT, hop_length=HOP), "librosa recipe", repeats)


def bench_batch(seconds, repeats, n_tracks=8):
  sep = separators.get("hpss_repet")
  tracks = np.stack([test_signal(seconds, seed) for seed in range(n_tracks)])
  loop = f"{n_tracks} calls"
  timings = time_calls({"one batched call": lambda: sep(tracks)["vocals"],
                        loop: lambda: [sep(tracks[i])["vocals"] for i in range(n_tracks)]}, rounds=repeats)
  batched, looped = timings["one batched call"], timings[loop]
  print(format_ratio(f"{n_tracks} x {seconds:g} s tracks", timings, ours="one batched call", with_min=True,
                     width=28))
  print(f"{'batched recipe compile':<28} {batched.first - batched.median:8.3f} s")
  # The loop's first run compiles once, then runs all tracks: less one median loop.
  print(f"{'single recipe compile':<28} {looped.first - looped.median:8.3f} s")


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seconds", type=float, default=30.0)
  parser.add_argument("--batch-seconds", type=float, default=10.0)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--only", nargs="+", default=["hpss", "repet", "nmf", "recipe", "batch"],
                      help="a subset of: hpss repet nmf recipe batch")
  args = parser.parse_args()
  mix = test_signal(args.seconds)
  S = np.abs(np.asarray(spectral.stft(mix, n_fft=N_FFT, hop_length=HOP)))
  print(f"signal: {args.seconds:g} s stereo at {SR} Hz; spectrogram {S.shape}; jax {jax.__version__} "
        f"on {jax.devices()[0].platform}")
  benches = {
      "hpss": lambda: bench_hpss(S, args.repeats),
      "repet": lambda: bench_repet(S, separators.default_config("hpss_repet"), args.repeats),
      "nmf": lambda: bench_nmf(S.mean(axis=0), args.repeats),
      "recipe": lambda: bench_recipe(mix, args.repeats),
      "batch": lambda: bench_batch(args.batch_seconds, args.repeats),
  }
  for name in args.only:
    benches[name]()


if __name__ == "__main__":
  main()
