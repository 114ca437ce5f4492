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
calls. Compile times are printed on their own lines; timings are the best of
``--repeats`` runs after the compile.
"""

import argparse
import pathlib
import sys
import time

import jax
import librosa
import numpy as np
from sklearn.decomposition import NMF

import mssjax
from mssjax import separators, spectral

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import librosa_recipe  # pylint: disable=wrong-import-position

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


def best_of(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return min(times)


def first_call(fn):
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


def report(name, ours, reference, ref_name, compile_s=None):
  print(f"{name:<28} mssjax {ours:8.3f} s   {ref_name} {reference:8.3f} s   speed-up {reference / ours:6.1f}x")
  if compile_s is not None:
    print(f"{name + ' compile':<28} {compile_s:8.3f} s")


def bench_hpss(S, repeats):
  fn = lambda: mssjax.hpss(S, kernel_size=31)
  compile_s = first_call(fn)
  ours = best_of(fn, repeats)
  ref = best_of(lambda: librosa.decompose.hpss(S, kernel_size=31), 1)
  report("HPSS (kernel 31)", ours, ref, "librosa.decompose.hpss", compile_s - ours)


def bench_repet(S, config, repeats):
  r = config.repet
  fn = lambda: mssjax.repet_sim(S, sample_rate=SR, hop_length=HOP, n_neighbors=r.n_neighbors,
                                min_distance=r.min_distance, threshold=r.threshold, selection=r.selection,
                                power=r.power, margin=tuple(r.margin))
  compile_s = first_call(fn)
  ours = best_of(fn, repeats)
  ref = best_of(lambda: librosa_recipe.vocal_masks(S, sr=SR, hop_length=HOP), 1)
  report("REPET-SIM", ours, ref, "librosa nn_filter route", compile_s - ours)


def bench_nmf(V, repeats, rank=24, n_iter=100):
  rng = np.random.default_rng(0)
  W0 = np.abs(rng.standard_normal((V.shape[0], rank))).astype(np.float32)
  H0 = np.abs(rng.standard_normal((rank, V.shape[1]))).astype(np.float32)
  fn = lambda: mssjax.nmf(V, n_components=rank, beta=2.0, n_iter=n_iter, W=W0, H=H0)
  compile_s = first_call(fn)
  ours = best_of(fn, repeats)
  model = NMF(rank, solver="mu", beta_loss=2.0, init="custom", max_iter=n_iter, tol=0.0)
  ref = best_of(lambda: model.fit_transform(V, W=W0.copy(), H=H0.copy()), 1)
  report(f"NMF (rank {rank}, {n_iter} it)", ours, ref, "sklearn NMF mu", compile_s - ours)


def bench_recipe(mix, repeats):
  sep = separators.get("hpss_repet")
  fn = lambda: sep(mix)["vocals"]
  compile_s = first_call(fn)
  ours = best_of(fn, repeats)
  ref = best_of(lambda: librosa_recipe.separate(mix, n_fft=N_FFT, hop_length=HOP), 1)
  report("hpss_repet recipe", ours, ref, "librosa recipe", compile_s - ours)


def bench_batch(seconds, repeats, n_tracks=8):
  sep = separators.get("hpss_repet")
  tracks = np.stack([test_signal(seconds, seed) for seed in range(n_tracks)])
  batched = lambda: sep(tracks)["vocals"]
  one = lambda i: sep(tracks[i])["vocals"]
  compile_b = first_call(batched)
  compile_1 = first_call(lambda: one(0))
  t_batch = best_of(batched, repeats)
  t_loop = best_of(lambda: [one(i) for i in range(n_tracks)], repeats)
  print(f"{n_tracks} x {seconds:g} s tracks          one batched call {t_batch:8.3f} s   "
        f"{n_tracks} calls {t_loop:8.3f} s   speed-up {t_loop / t_batch:6.2f}x")
  print(f"{'batched recipe compile':<28} {compile_b - t_batch:8.3f} s")
  print(f"{'single recipe compile':<28} {compile_1 - t_loop / n_tracks:8.3f} s")


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
