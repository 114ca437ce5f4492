"""BSSEval v4: mssjax.metrics.bss_eval_v4 against museval, fast_bss_eval and mir_eval.

  python benchmarks/metrics.py                 # speed: 30 s and 4 min, 4 stereo sources
  python benchmarks/metrics.py --memory 600    # peak RSS of bss_eval_v4 on a 10-minute track
  python benchmarks/metrics.py --agreement     # worst difference to museval on the test previews

Tracks are built from the real MUSDB18 previews (../shared/data/musdb18-7/test)
concatenated to the length wanted; the estimates are the references with 30 %
of the other sources leaked in plus a little noise. Every time is measured in the
same run, mssjax's in rounds interleaved with museval's (benchmarks/timing.py: the
median, with the best run beside it), so the ratios hold on a loaded machine;
mssjax's first call (the jit compilation) is reported apart. museval and mir_eval run exactly as their users
call them: ``museval.evaluate(refs, ests)`` (v4, 1 s windows) and
``mir_eval.separation.bss_eval_images_framewise`` (v3: new filters in every
window, so timed on a short excerpt and scaled per second). fast_bss_eval has
no images/v4 mode: it is timed framewise (``bss_eval_sources`` on every 1 s
window of every channel), which is a different metric, for scale only.
"""

import argparse
import functools
import pathlib
import subprocess
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from timing import format_ratio, format_time, time_call, time_calls  # pylint: disable=wrong-import-position

REPO = pathlib.Path(__file__).resolve().parents[1]
MUSDB = REPO.parent / "shared" / "data" / "musdb18-7"
RATE = 44100


def real_track(seconds, seed=0):
  """``refs, ests`` ``[4, n, 2]`` float32 from concatenated previews."""
  from mssjax.data import load_tracks  # pylint: disable=import-outside-toplevel
  tracks = load_tracks(MUSDB, subset="test")
  n = int(seconds * RATE)
  parts, total, i = [], 0, seed
  while total < n:
    parts.append(tracks[i % len(tracks)].targets())
    total += parts[-1].shape[-1]
    i += 1
  refs = np.concatenate(parts, axis=-1)[..., :n]
  rng = np.random.default_rng(seed)
  leak = 0.3 * (refs.sum(0, keepdims=True) - refs)
  ests = refs + leak + 0.01 * rng.standard_normal(refs.shape).astype(np.float32)
  return np.transpose(refs, (0, 2, 1)).copy(), np.transpose(ests, (0, 2, 1)).astype(np.float32).copy()


def speed(seconds_list, mir_eval_seconds=3):
  import museval  # pylint: disable=import-outside-toplevel
  from mssjax.metrics import bss_eval_v4  # pylint: disable=import-outside-toplevel
  for seconds in seconds_list:
    refs, ests = real_track(seconds)
    # mssjax runs again after museval: load drifts on a shared machine.
    timings = time_calls({"mssjax": lambda: bss_eval_v4(refs, ests),
                          "lu": lambda: bss_eval_v4(refs, ests, solver="lu"),
                          "museval": lambda: museval.evaluate(refs, ests)},
                         rounds={"mssjax": 2, "lu": 1, "museval": 1}, warmup={"mssjax": 1, "lu": 1, "museval": 0})
    ours, lu, theirs = timings["mssjax"], timings["lu"], timings["museval"]
    metrics = ("SDR", "ISR", "SIR", "SAR")
    worst = max(np.nanmax(np.abs(ours.result[m] - theirs.result[i])) for i, m in enumerate(metrics))
    worst_lu = max(np.nanmax(np.abs(lu.result[m] - theirs.result[i])) for i, m in enumerate(metrics))
    line = format_ratio(f"{seconds:5.0f} s track:", {"mssjax": ours, "museval": theirs}, with_min=True, width=0)
    print(f"{line} (first call with jit {format_time(ours.first).strip()}); worst frame diff {worst:.2e} dB; "
          f"solver='lu' (dense, museval's solver) {format_time(lu.median).strip()}, "
          f"ratio {theirs.median / lu.median:5.1f}x, worst {worst_lu:.2e} dB", flush=True)
    _stages(refs, ests)
    _fast_bss_eval(refs, ests, ours.median)
    _mir_eval(refs, ests, mir_eval_seconds, seconds, ours.median)


def _stages(refs, ests):
  """Warm time of each stage of bss_eval_v4 (compile reported apart): correlations, solve, windows."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from mssjax.metrics import bss_eval as core  # pylint: disable=import-outside-toplevel
  from mssjax.metrics import correlations  # pylint: disable=import-outside-toplevel
  n = refs.shape[1]
  n_frames = core.n_frames_bss(n, window=RATE, hop=RATE)
  with jax.enable_x64(True):
    r, e = jax.device_put(refs), jax.device_put(ests)
    stages = {
        "correlations": jax.jit(lambda r, e: correlations.correlations(r, e, 511)),
        "filters levinson": jax.jit(lambda r, e: core._projection_filters(r, e, 512, "levinson")),
        "filters lu": jax.jit(lambda r, e: core._projection_filters(r, e, 512, "lu", 0)),
    }
    # The first warm call still pays for fresh memory; the median of three rounds leaves it out.
    times = time_calls({name: functools.partial(fn, r, e) for name, fn in stages.items()}, rounds=3)
    for name, t in times.items():
      print(f"  stage {_stage_time(name, t)}", flush=True)
    filters = times["filters lu"].result
    window_fn = jax.jit(lambda r, e, fa, fo: core._framewise_metrics(
        r, e, fa, fo, frame_len=RATE, hop=RATE, n_frames=n_frames, dtype=jnp.float32, frames_batch=16))
    windows = time_call(lambda: window_fn(r, e, *filters), rounds=3)
    print(f"  stage {_stage_time('windows', windows)}; solve alone: "
          f"levinson ~{times['filters levinson'].median - times['correlations'].median:5.2f} s, lu "
          f"~{times['filters lu'].median - times['correlations'].median:5.2f} s", flush=True)


def _stage_time(name, timing):
  return (f"{name:20s} {format_time(timing.median)} warm (min {format_time(timing.min).strip()}, "
          f"{format_time(timing.first).strip()} with compile)")


def _fast_bss_eval(refs, ests, t_ours, chunk=32):
  try:
    import fast_bss_eval  # pylint: disable=import-outside-toplevel
  except ImportError:
    print("  fast_bss_eval not installed")
    return
  n_frames = refs.shape[1] // RATE
  def frames(x):  # [S, n, C] -> [frames * C, S, RATE]
    x = x[:, :n_frames * RATE].reshape(x.shape[0], n_frames, RATE, x.shape[2])
    return np.transpose(x, (1, 3, 0, 2)).reshape(-1, x.shape[0], RATE).astype(np.float64)
  r, e = frames(refs), frames(ests)
  def run(**kwargs):
    # In chunks: one call builds a (4 * 512)^2 float64 matrix per window (32 MB each), so the 480
    # windows of a 4-minute track in one call need about 24 GB.
    for i in range(0, len(r), chunk):
      fast_bss_eval.bss_eval_sources(r[i:i + chunk], e[i:i + chunk], compute_permutation=False, **kwargs)
  try:
    t = time_call(run, rounds=1, warmup=0)
    how = "direct solve"
  except ValueError as err:  # numpy >= 2 changed np.linalg.solve's batched-vector rule
    print(f"  fast_bss_eval direct solve fails with numpy {np.__version__}: {str(err)[:80]}")
    try:
      t = time_call(functools.partial(run, use_cg_iter=10), rounds=1, warmup=0)
    except np.linalg.LinAlgError as err:  # its circulant preconditioner of a window with a silent source
      print(f"  fast_bss_eval (conjugate gradient) fails on this track: {err} (a window with a silent source)")
      return
    how = "conjugate gradient, 10 iterations"
  print(f"  fast_bss_eval ({how}; framewise bss_eval_sources per channel, not v4 images) "
        f"{format_time(t.median)} -> mssjax v4 is {t.median / t_ours:5.2f}x its speed", flush=True)


def _mir_eval(refs, ests, excerpt_seconds, seconds, t_ours):
  try:
    import mir_eval  # pylint: disable=import-outside-toplevel
  except ImportError:
    print("  mir_eval not installed")
    return
  n = excerpt_seconds * RATE
  t = time_call(lambda: mir_eval.separation.bss_eval_images_framewise(refs[:, :n], ests[:, :n], window=RATE,
                                                                        hop=RATE), rounds=1, warmup=0).median
  scaled = t / excerpt_seconds * seconds
  print(f"  mir_eval bss_eval_images_framewise (v3) {format_time(t)} for {excerpt_seconds} s "
        f"-> ~{scaled:7.1f} s scaled to the track, ~{scaled / t_ours:5.0f}x slower than mssjax", flush=True)


def memory(seconds):
  """Peak RSS of one bss_eval_v4 call on a ``seconds``-long random 4-source stereo track (subprocess)."""
  code = f"""
import resource, numpy as np
from mssjax.metrics import bss_eval_v4
rng = np.random.default_rng(0)
n = int({seconds} * {RATE})
refs = rng.standard_normal((4, n, 2), dtype=np.float32)
ests = refs + 0.3 * rng.standard_normal((4, n, 2), dtype=np.float32)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = bss_eval_v4(refs, ests)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{seconds:.0f} s track: inputs {{2 * refs.nbytes / 2**20:.0f}} MiB, RSS before {{base / 1024:.0f}} MiB, "
      f"peak {{peak / 1024:.0f}} MiB, frames {{out['SDR'].shape[1]}}")
"""
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def agreement(n_tracks, seconds=None, solver="levinson", names=None):
  """Worst differences to museval.evaluate on the test previews (IRM, mixture and noisy estimates).

  Next to ours, museval's own rounding noise: museval again with ``np.linalg.solve``
  swapped for ``scipy.linalg.solve`` (the same LU from another LAPACK build). Its
  Gram matrices have condition numbers near 1e15, so on some tracks its SIR and
  SAR move by hundredths of a dB with the LAPACK build alone.
  """
  import warnings  # pylint: disable=import-outside-toplevel
  import museval  # pylint: disable=import-outside-toplevel
  import museval.metrics  # pylint: disable=import-outside-toplevel
  import scipy.linalg  # pylint: disable=import-outside-toplevel
  from mssjax import spectral  # pylint: disable=import-outside-toplevel
  from mssjax.data import load_tracks  # pylint: disable=import-outside-toplevel
  from mssjax.metrics import bss_eval_v4  # pylint: disable=import-outside-toplevel
  worst = {}
  for index, track in enumerate(load_tracks(MUSDB, subset="test")[:n_tracks]):
    if names and not any(track.name.startswith(name) for name in names):
      continue
    targets, mixture = track.targets(), track.mixture()
    if seconds:
      targets, mixture = targets[..., :int(seconds * RATE)], mixture[..., :int(seconds * RATE)]
    spec_t, spec_x = np.asarray(spectral.stft(targets)), np.asarray(spectral.stft(mixture))
    mask = np.asarray(spectral.ratio_masks(np.abs(spec_t), power=2.0, axis=0))
    irm = np.asarray(spectral.istft(mask * spec_x[None], length=mixture.shape[-1]), np.float32)
    rng = np.random.default_rng(index)
    kinds = {"irm": irm, "mixture": np.repeat(mixture[None], 4, axis=0),
             "noisy": (targets + 0.02 * rng.standard_normal(targets.shape)).astype(np.float32)}
    mono = [t for t, x in zip(("vocals", "drums", "bass", "other"), targets) if np.array_equal(x[0], x[1])]
    for kind, est in kinds.items():
      refs, ests = np.transpose(targets, (0, 2, 1)), np.transpose(est, (0, 2, 1))
      theirs = museval.evaluate(refs, ests)
      numpy_solve = museval.metrics.np.linalg.solve
      try:
        museval.metrics.np.linalg.solve = scipy.linalg.solve
        with warnings.catch_warnings():
          warnings.simplefilter("ignore")
          floor = museval.evaluate(refs, ests)
      finally:
        museval.metrics.np.linalg.solve = numpy_solve
      ours = bss_eval_v4(refs, ests, solver=solver)
      line = []
      for i, m in enumerate(("SDR", "ISR", "SIR", "SAR")):
        a, b, c = theirs[i], ours[m], floor[i]
        nan_ok = np.array_equal(np.isnan(a), np.isnan(b))
        with np.errstate(all="ignore"):
          frame, med = _worst(a, b)
          floor_frame, floor_med = _worst(a, c)
        key = (kind, m, bool(mono))
        old = worst.get(key, (0.0, 0.0, 0.0, 0.0, True))
        worst[key] = (max(old[0], frame), max(old[1], med), max(old[2], floor_frame), max(old[3], floor_med),
                      old[4] and nan_ok)
        line.append(f"{m} {frame:.1e}/{med:.1e} ({floor_frame:.1e}/{floor_med:.1e})"
                    f"{'' if nan_ok else ' NaN-MISMATCH'}")
      print(f"{track.name[:32]:32s} {kind:8s} {'mono:' + ','.join(mono) if mono else '':12s} " + "  ".join(line),
            flush=True)
  print("worst difference to museval, frame / median dB (museval with scipy's LAPACK, frame / median), "
        "NaN pattern equal; split by tracks with an exactly mono stem:")
  for (kind, m, mono), (frame, med, floor_frame, floor_med, nan_ok) in sorted(worst.items()):
    print(f"  {kind:8s} {m} {'mono-stem tracks' if mono else 'other tracks    '} {frame:.2e} / {med:.2e} "
          f"({floor_frame:.2e} / {floor_med:.2e}) {nan_ok}")


def _worst(a, b):
  """Worst frame and worst per-source median difference between two ``[S, T]`` metric arrays."""
  if not np.isfinite(a).any():
    return 0.0, 0.0
  frame = float(np.nanmax(np.abs(a - b)))
  return frame, float(np.nanmax(np.abs(np.nanmedian(a, 1) - np.nanmedian(b, 1))))


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seconds", type=float, nargs="*", default=[30, 240])
  parser.add_argument("--memory", type=float, default=None, help="track length in seconds for the RSS check")
  parser.add_argument("--agreement", action="store_true")
  parser.add_argument("--tracks", type=int, default=40)
  parser.add_argument("--solver", default="levinson", choices=("levinson", "lu", "cholesky"))
  parser.add_argument("--names", nargs="*", default=None, help="only test tracks whose names start so")
  parser.add_argument("--excerpt", type=float, default=None, help="seconds of each preview (agreement)")
  args = parser.parse_args()
  sys.path.insert(0, str(REPO))
  if args.agreement:
    agreement(args.tracks, args.excerpt, args.solver, args.names)
  elif args.memory:
    memory(args.memory)
  else:
    speed(args.seconds)


if __name__ == "__main__":
  main()
