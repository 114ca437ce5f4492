"""mssjax.metrics.bss_eval_v4 against museval (the oracle), on synthetic and real audio."""

import warnings

import numpy as np
import pytest

museval = pytest.importorskip("museval")
import museval.metrics  # noqa: E402

from mssjax import ParameterError, spectral  # noqa: E402
from mssjax.metrics import METRICS, bss_eval_v4, n_frames_bss, pad_or_truncate  # noqa: E402
from mssjax.metrics import correlations, track_input  # noqa: E402

FRAME_TOL = 0.05      # dB, every frame where museval gives a number
MEDIAN_TOL = 0.01     # dB, every per-track median over frames


def _museval(refs, ests, window, hop, filters_len=512):
  sdr, isr, sir, sar, _ = museval.metrics.bss_eval(
      refs, ests, window=window, hop=hop, filters_len=filters_len, compute_permutation=False,
      framewise_filters=False, bsseval_sources_version=False)
  return dict(zip(METRICS, (sdr, isr, sir, sar)))


def _assert_agree(expected, actual, frame_tol=FRAME_TOL, median_tol=MEDIAN_TOL):
  """NaN exactly where museval has NaN, frames and medians within tolerance; returns the worst."""
  worst = {}
  for name in METRICS:
    e, a = np.asarray(expected[name]), np.asarray(actual[name])
    assert e.shape == a.shape, name
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"{name}: NaN pattern")
    np.testing.assert_array_equal(np.isinf(a), np.isinf(e), err_msg=f"{name}: inf pattern")
    ok = np.isfinite(e)
    frame = float(np.max(np.abs(a[ok] - e[ok]), initial=0.0))
    with np.errstate(all="ignore"):
      med_e, med_a = np.nanmedian(e, axis=-1), np.nanmedian(a, axis=-1)
    fin = np.isfinite(med_e)
    median = float(np.max(np.abs(med_a[fin] - med_e[fin]), initial=0.0))
    assert frame <= frame_tol, f"{name}: worst frame difference {frame:.4g} dB"
    assert median <= median_tol, f"{name}: worst median difference {median:.4g} dB"
    worst[name] = (frame, median)
  return worst


def _coloured(rng, shape, smooth=8):
  """Band-limited noise (a moving average), closer to music than white noise."""
  x = rng.standard_normal(shape)
  kernel = np.ones(smooth) / smooth
  return np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), -2, x)


@pytest.fixture(scope="module")
def synthetic():
  rng = np.random.default_rng(0)
  refs = _coloured(rng, (3, 12000, 2)).astype(np.float32)
  mix = refs.sum(0)
  ests = (0.7 * refs + 0.1 * mix[None] + 0.05 * rng.standard_normal(refs.shape)).astype(np.float32)
  return refs, ests


@pytest.mark.parametrize("window,hop,solver,refine_steps", [
    (3000, 3000, "cholesky", 2), (4000, 2500, "cholesky", 2), (20000, 20000, "cholesky", 2),
    (3000, 3000, "cholesky", 0), (3000, 3000, "lu", 0), (4000, 2500, "lu", 0),
    (3000, 3000, "levinson", 0), (4000, 2500, "levinson", 0), (20000, 20000, "levinson", 0),
    (3000, 3000, "levinson", 1)])
def test_matches_museval_synthetic(synthetic, window, hop, solver, refine_steps):
  refs, ests = synthetic
  expected = _museval(refs, ests, window, hop, filters_len=64)
  actual = bss_eval_v4(refs, ests, window=window, hop=hop, filters_len=64, solver=solver,
                       refine_steps=refine_steps)
  assert actual["SDR"].shape == (3, n_frames_bss(12000, window=window, hop=hop))
  _assert_agree(expected, actual, frame_tol=1e-4, median_tol=1e-4)


@pytest.mark.parametrize("framewise_dtype,frames_batch", [("float32", 16), ("float64", 16), ("float32", 1)])
def test_silent_frames_are_nan_exactly_where_museval(synthetic, framewise_dtype, frames_batch):
  """Batches of 16 windows: one batch, read by the gather; of 1: frames 1-3 read as slices."""
  refs, ests = (a.copy() for a in synthetic)
  refs[1, 3000:6000] = 0            # a silent reference: frame 1 NaN for every source
  ests[2, 9100:11999] = 0           # a silent estimate in most of frame 3: not silent
  ests[0, 6000:9000, 0] = 1e-3      # channel sum zero throughout frame 2: silent
  ests[0, 6000:9000, 1] = -1e-3
  expected = _museval(refs, ests, 3000, 3000, filters_len=64)
  actual = bss_eval_v4(refs, ests, window=3000, hop=3000, filters_len=64,
                       framewise_dtype=framewise_dtype, frames_batch=frames_batch)
  assert np.isnan(actual["SDR"][:, 1]).all() and np.isnan(actual["SAR"][:, 2]).all()
  assert np.isfinite(actual["SIR"][:, [0, 3]]).all()
  _assert_agree(expected, actual, frame_tol=1e-3, median_tol=1e-3)


def test_perfect_estimate_gives_inf_sdr_like_museval(synthetic):
  refs, _ = synthetic
  actual = bss_eval_v4(refs, refs, window=6000, hop=6000, filters_len=32)
  expected = _museval(refs, refs, 6000, 6000, filters_len=32)
  assert np.isposinf(actual["SDR"]).all() and np.isposinf(expected["SDR"]).all()


def test_batched_equals_single_tracks(synthetic):
  refs, ests = synthetic
  refs2, ests2 = refs[::-1].copy(), (ests[::-1] * 0.5).astype(np.float32)
  batch = bss_eval_v4(np.stack([refs, refs2]), np.stack([ests, ests2]), window=3000, hop=3000,
                      filters_len=64)
  for i, (r, e) in enumerate([(refs, ests), (refs2, ests2)]):
    single = bss_eval_v4(r, e, window=3000, hop=3000, filters_len=64)
    for name in METRICS:
      np.testing.assert_allclose(batch[name][i], single[name], atol=1e-9)


def test_pad_or_truncate_matches_museval(synthetic):
  refs, ests = synthetic
  for cut in (ests[:, :10000], np.concatenate([ests, ests[:, :500]], axis=1)):
    _, ours = pad_or_truncate(refs, cut)
    _, theirs = museval.pad_or_truncate(refs, cut)
    np.testing.assert_array_equal(ours, theirs)


def test_bad_input_raises(synthetic):
  refs, ests = synthetic
  with pytest.raises(ParameterError, match="must match"):
    bss_eval_v4(refs, ests[:, :11000])
  with pytest.raises(ParameterError, match="must match"):
    bss_eval_v4(refs, ests[:2])
  with pytest.raises(ParameterError, match="ndim"):
    bss_eval_v4(refs[0], ests[0])
  bad = ests.copy()
  bad[0, 10, 0] = np.nan
  with pytest.raises(ParameterError, match="non-finite"):
    bss_eval_v4(refs, bad)
  bad[0, 10, 0] = np.inf
  with pytest.raises(ParameterError, match="non-finite"):
    bss_eval_v4(refs, bad)
  from mssjax.metrics import bss_eval as core  # pylint: disable=import-outside-toplevel
  huge = ests[None].copy()
  huge[0, 0, :2] = 3e38                          # finite values whose float32 sum overflows: not an error
  with np.errstate(over="ignore"):
    assert not np.isfinite(np.sum(huge))
  with warnings.catch_warnings():
    warnings.simplefilter("error")                 # and no overflow warning reaches the caller
    core._validate(refs[None], huge, 3000, 3000, 64)
  for name in ("window", "hop", "filters_len"):
    with pytest.raises(ParameterError, match=f"{name}=0 must be a positive integer"):
      bss_eval_v4(refs, ests, **{name: 0})
  with pytest.raises(ParameterError, match="solver"):
    bss_eval_v4(refs, ests, solver="qr")
  with pytest.raises(ParameterError, match="refine_steps=-1 must be a non-negative integer"):
    bss_eval_v4(refs, ests, refine_steps=-1)
  with pytest.raises(ParameterError, match="framewise_dtype"):
    bss_eval_v4(refs, ests, framewise_dtype="float16")


def test_silent_reference_throughout_raises_like_museval(synthetic):
  refs, ests = (a.copy() for a in synthetic)
  refs[2] = 0
  with pytest.raises(ValueError, match="non-silent"):
    _museval(refs, ests, 3000, 3000, filters_len=64)
  with pytest.raises(ParameterError, match=r"references \[\(2,\)\] .* silent throughout"):
    bss_eval_v4(refs, ests, window=3000, hop=3000, filters_len=64)
  refs, ests = (a.copy() for a in synthetic)
  ests[0] = 0
  with pytest.raises(ParameterError, match=r"estimates \[\(0,\)\] .* silent throughout"):
    bss_eval_v4(refs, ests, window=3000, hop=3000, filters_len=64)


# Real audio: MUSDB18 previews, oracle-like and degraded estimates, museval.evaluate as oracle.

def _irm_estimates(targets, mixture):
  """Ideal ratio mask (power 2) estimates ``[4, 2, n]`` from the mixture."""
  spec_t = np.asarray(spectral.stft(targets))
  spec_x = np.asarray(spectral.stft(mixture))
  mask = np.asarray(spectral.ratio_masks(np.abs(spec_t), power=2.0, axis=0))
  return np.asarray(spectral.istft(mask * spec_x[None], length=mixture.shape[-1]), np.float32)


def test_mono_reference_uses_the_exact_projection(synthetic, monkeypatch):
  """An exactly mono stem makes the Gram system singular: we match museval with lstsq.

  museval's own LU returns huge coefficients there whose projections cancel only up
  to rounding, so its SIR and SAR are rounding noise; with ``np.linalg.solve``
  replaced by least squares (museval's own fallback) it gives the exact projection.
  """
  refs, ests = (a.copy() for a in synthetic)
  refs[1, :, 1] = refs[1, :, 0]
  actual = bss_eval_v4(refs, ests, window=3000, hop=3000, filters_len=64)  # levinson
  by_cholesky = bss_eval_v4(refs, ests, window=3000, hop=3000, filters_len=64, solver="cholesky")
  by_lu = bss_eval_v4(refs, ests, window=3000, hop=3000, filters_len=64, solver="lu")
  monkeypatch.setattr(museval.metrics.np.linalg, "solve",
                      lambda a, b: np.linalg.lstsq(a, b, rcond=None)[0])
  expected = _museval(refs, ests, 3000, 3000, filters_len=64)
  _assert_agree(expected, actual, frame_tol=1e-3, median_tol=1e-3)
  _assert_agree(expected, by_cholesky, frame_tol=1e-3, median_tol=1e-3)
  _assert_agree(expected, by_lu, frame_tol=1e-3, median_tol=1e-3)


def _block_toeplitz_system(rng, m, n_blocks, n_samples=4000):
  """Blocks of the (SPD) Gram matrix of ``m`` coloured signals at ``n_blocks`` lags, and a right-hand side."""
  x = _coloured(rng, (n_samples, m)).T
  lags = np.arange(-(n_blocks - 1), n_blocks)
  # R_k[p, q] = sum_n x_q[n] x_p[n + k]: block (a, b) of the Gram matrix of delayed copies is R_{a-b}.
  blocks = np.stack([
      np.array([[np.dot(x[q, max(0, -k):n_samples - max(0, k)], x[p, max(0, k):n_samples - max(0, -k)])
                 for q in range(m)] for p in range(m)]) for k in lags])
  y = rng.standard_normal((n_blocks, m, 3))
  return blocks, y


@pytest.mark.parametrize("m,n_blocks,phases", [(1, 30, 8), (3, 20, 1), (3, 20, 4), (8, 16, 50)])
def test_block_levinson_solves_block_toeplitz_systems(m, n_blocks, phases):
  import jax  # noqa: PLC0415
  from mssjax.metrics import toeplitz as core  # noqa: PLC0415
  rng = np.random.default_rng(m * 100 + n_blocks)
  blocks, y = _block_toeplitz_system(rng, m, n_blocks)
  with jax.enable_x64(True):
    dense = np.asarray(core.dense_block_toeplitz(blocks, n_blocks))
    np.testing.assert_allclose(dense, dense.T, rtol=1e-12, atol=1e-9)
    x = np.asarray(core.block_levinson(blocks, y, phases=phases))
  expected = np.linalg.solve(dense, y.reshape(n_blocks * m, 3)).reshape(n_blocks, m, 3)
  np.testing.assert_allclose(x, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())


def test_singular_block_toeplitz_falls_back_to_least_squares():
  import jax  # noqa: PLC0415
  from mssjax.metrics import toeplitz as core  # noqa: PLC0415
  rng = np.random.default_rng(3)
  good, y = _block_toeplitz_system(rng, 2, 12)
  # Two identical signals: R_k is singular at every lag and Levinson's first pivot is singular.
  singular, _ = _block_toeplitz_system(np.random.default_rng(4), 1, 12)
  singular = np.repeat(np.repeat(singular, 2, axis=1), 2, axis=2)
  with jax.enable_x64(True):
    dense = np.asarray(core.dense_block_toeplitz(singular, 12))
    expected = np.linalg.lstsq(dense, y.reshape(24, 3), rcond=None)[0].reshape(12, 2, 3)
    x = np.asarray(core.solve_block_toeplitz(singular, y, False))
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-8 * np.abs(expected).max())
    # A batch of systems: only the singular one takes the least-squares route.
    both = np.asarray(core.solve_block_toeplitz(np.stack([good, singular]), np.stack([y, y]),
                                                 np.array([False, False])))
    np.testing.assert_allclose(both[1], expected, rtol=1e-6, atol=1e-8 * np.abs(expected).max())
    np.testing.assert_allclose(both[0], np.asarray(core.block_levinson(good, y)), rtol=1e-12)


def test_null_directions_give_the_least_squares_solution_without_a_dense_solve():
  """A channel pair that is one signal in another basis (mono panned): singular at every lag.

  Turned to the covariance's eigenvectors and decoupled, Levinson gives the minimum-norm
  least-squares solution of the dense system (what museval's lstsq fallback computes),
  also for a right-hand side outside the matrix's range; a batch mixes both kinds.
  """
  import jax  # noqa: PLC0415
  from mssjax.metrics import toeplitz as core  # noqa: PLC0415
  rng = np.random.default_rng(5)
  n_blocks = 12
  x = _coloured(rng, (4000, 2)).T
  x = np.stack([x[0], 0.6 * x[1], -0.8 * x[1]])                  # channels 1 and 2: one signal, panned
  lags = np.arange(-(n_blocks - 1), n_blocks)
  n = x.shape[1]
  blocks = np.stack([np.array([[np.dot(x[q, max(0, -k):n - max(0, k)], x[p, max(0, k):n - max(0, -k)])
                                for q in range(3)] for p in range(3)]) for k in lags])
  y = rng.standard_normal((n_blocks, 3, 2))
  eig, vectors = np.linalg.eigh(blocks[n_blocks - 1])
  null = eig <= 1e-12 * eig[-1]
  assert null.tolist() == [True, False, False]
  with jax.enable_x64(True):
    dense = np.asarray(core.dense_block_toeplitz(blocks, n_blocks))
    expected = np.linalg.lstsq(dense, y.reshape(-1, 2), rcond=None)[0].reshape(n_blocks, 3, 2)
    got = np.asarray(core.solve_with_null_directions(blocks, y, vectors, null))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7 * np.abs(expected).max())
    # Batched, with a regular system (identity rotation, nothing null) beside it: solved as before.
    good, y_good = _block_toeplitz_system(rng, 3, n_blocks)
    y_good = y_good[..., :2]
    both = np.asarray(core.solve_with_null_directions(
        np.stack([good, blocks]), np.stack([y_good, y]), np.stack([np.eye(3), vectors]),
        np.stack([np.zeros(3, bool), null])))
    np.testing.assert_allclose(both[1], expected, rtol=1e-6, atol=1e-7 * np.abs(expected).max())
    np.testing.assert_array_equal(both[0], np.asarray(core.block_levinson(good, y_good)))


@pytest.mark.realdata
def test_exactly_mono_stem_of_a_real_preview_matches_museval_least_squares(musdb_root, monkeypatch):
  """8 of the 40 test previews have an exactly mono stem (L == R bit for bit; here the bass).

  museval's solve fails there and it takes lstsq; the decoupled Levinson solve gives the same
  numbers without the dense SVD (20 s per whole preview at 512 taps: score's time went there).
  """
  data = pytest.importorskip("mssjax.data")
  track = next(t for t in data.load_tracks(musdb_root, subset="test") if t.name == "Enda Reilly - Cur An Long Ag Seol")
  n = 3 * 44100
  targets, mixture = track.targets()[..., :n], track.mixture()[..., :n]
  assert np.array_equal(targets[2, 0], targets[2, 1])              # the defect, as the data has it
  refs = np.transpose(targets, (0, 2, 1))
  ests = np.transpose((0.8 * targets + 0.1 * mixture[None]).astype(np.float32), (0, 2, 1))
  actual = bss_eval_v4(refs, ests, filters_len=128)
  monkeypatch.setattr(museval.metrics.np.linalg, "solve", lambda a, b: np.linalg.lstsq(a, b, rcond=None)[0])
  expected = _museval(refs, ests, 44100, 44100, filters_len=128)
  _assert_agree(expected, actual, frame_tol=1e-3, median_tol=1e-3)
  _assert_agree(bss_eval_v4(refs, ests, filters_len=128, solver="lu"), actual, frame_tol=1e-3, median_tol=1e-3)


@pytest.fixture(scope="module")
def real_tracks(musdb_root):
  data = pytest.importorskip("mssjax.data")
  tracks = data.load_tracks(musdb_root, subset="test")
  return [tracks[0], tracks[1]]


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("index,kind,solver", [(0, "irm", "levinson"), (1, "noisy", "levinson"), (1, "noisy", "lu")])
def test_matches_museval_on_real_audio(real_tracks, index, kind, solver):
  """4-second excerpts (museval is slow); benchmarks/metrics.py --agreement sweeps whole tracks
  with IRM, mixture and noisy estimates."""
  track = real_tracks[index]
  n = 4 * 44100
  targets, mixture = track.targets()[..., :n], track.mixture()[..., :n]
  if kind == "irm":
    estimates = _irm_estimates(targets, mixture)
  elif kind == "mixture":
    estimates = np.repeat(mixture[None], 4, axis=0)
  else:
    rng = np.random.default_rng(index)
    estimates = (targets + 0.02 * rng.standard_normal(targets.shape)).astype(np.float32)
  refs = np.transpose(targets, (0, 2, 1))
  ests = np.transpose(estimates, (0, 2, 1))
  sdr, isr, sir, sar = museval.evaluate(refs, ests)
  actual = bss_eval_v4(refs, ests, solver=solver)
  worst = _assert_agree(dict(zip(METRICS, (sdr, isr, sir, sar))), actual)
  print(track.name, kind, solver, {k: tuple(f"{v:.2e}" for v in w) for k, w in worst.items()})


@pytest.mark.parametrize("n_samples, max_lag", [(40_000, 5), (16_379, 3), (100, 7), (33_000, 0), (120_000, 5)])
def test_correlations_match_direct_sums_across_block_boundaries(n_samples, max_lag):
  """Every lag of the blockwise correlations (within blocks and across their boundaries) is the direct sum."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(n_samples + max_lag)
  x = rng.standard_normal((2, n_samples, 2))
  y = rng.standard_normal((1, n_samples, 2))
  with jax.enable_x64(True):
    # 2 blocks per step: 40,000 samples are 3 blocks of 16,379 (the last one partial) in 2 steps, both
    # gathered; 120,000 samples are 4 steps, the middle two read as slices (`track_input.slices_inside`).
    out = np.asarray(correlations.correlations(jnp.asarray(x), jnp.asarray(y), max_lag, blocks_per_step=2))
  xs = np.moveaxis(x, 2, 1).reshape(4, n_samples)
  zs = np.concatenate([xs, np.moveaxis(y, 2, 1).reshape(2, n_samples)])
  expected = np.zeros((4, 6, 2 * max_lag + 1))
  for k in range(-max_lag, max_lag + 1):
    if k >= 0:
      expected[:, :, k + max_lag] = xs[:, k:] @ zs[:, :n_samples - k].T
    else:
      expected[:, :, k + max_lag] = xs[:, :n_samples + k] @ zs[:, -k:].T
  np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10 * np.abs(expected).max())


def test_host_buffer_is_aligned_and_equal_and_silence_is_found_past_the_first_chunk():
  from mssjax.metrics import bss_eval as core  # pylint: disable=import-outside-toplevel
  x = np.arange(3 * 1001 * 2, dtype=np.float32).reshape(3, 1001, 2)[:, 1:]   # not contiguous
  for dtype in (np.float32, np.float64):
    out = track_input.host_buffer(x, dtype)
    assert out.ctypes.data % 64 == 0 and out.flags.c_contiguous and out.dtype == dtype
    np.testing.assert_array_equal(out, x)
  aligned = track_input.host_buffer(x, np.float32)
  assert track_input.host_buffer(aligned, np.float32) is aligned
  signals = np.zeros((2, 3, 200_000, 2), np.float32)
  signals[0, 0, 150_000, 1] = 1.0               # silent in the first chunks only
  signals[1, :, 7] = 1.0
  signals[0, 2, 5, 0], signals[0, 2, 5, 1] = 1.0, -1.0   # channels cancel: silent channel sum
  expected = np.array([[False, True, True], [False, False, False]])
  np.testing.assert_array_equal(core._silent_signals(signals, chunk=65_536), expected)


def _at_offset(x, offset):
  """A C-contiguous copy of ``x`` starting ``offset`` elements past a 64-byte boundary."""
  flat = np.empty(x.size + offset + 64, x.dtype)
  start = (-flat.ctypes.data % 64) // x.dtype.itemsize + offset
  out = flat[start:start + x.size].reshape(x.shape)
  out[...] = x
  assert out.ctypes.data % 64 == offset * x.dtype.itemsize
  return out


def _flat_signal(x, k):
  """``x`` as the `track_input.FlatSignal` of `aligned_split` when the 64-byte boundary is ``k`` elements in."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  flat, edge = x.reshape(-1), track_input.EDGE
  return track_input.FlatSignal(jnp.asarray(flat[:edge]), jnp.asarray(flat[k:k + flat.size - edge]),
                                jnp.asarray(flat[-edge:]), jnp.int32(k), shape=x.shape)


def test_aligned_split_views_the_input_without_a_copy():
  x = np.arange(2 * 50 * 2, dtype=np.float32).reshape(2, 50, 2)
  edge = track_input.EDGE
  for offset in range(16):
    y = _at_offset(x, offset)
    head, body, tail, k = track_input.aligned_split(y, np.float32)
    assert body.ctypes.data % 64 == 0 and np.shares_memory(body, y) and k == (16 - offset) % 16
    # The shapes do not depend on the placement (k is a value): one compiled program for all.
    assert (head.shape, body.shape, tail.shape) == ((edge,), (x.size - edge,), (edge,))
    np.testing.assert_array_equal(head, x.reshape(-1)[:edge])
    np.testing.assert_array_equal(body, x.reshape(-1)[k:k + x.size - edge])
    np.testing.assert_array_equal(tail, x.reshape(-1)[-edge:])
  assert track_input.aligned_split(x, np.float64) is None                       # needs a cast
  assert track_input.aligned_split(np.asfortranarray(x), np.float32) is None    # not C-contiguous


def test_aligned_split_refuses_a_tiny_array():
  """An array shorter than the two kept ends together is copied instead, wherever it lies."""
  edge = track_input.EDGE
  for size in (2 * edge - 1, 2 * edge):
    for offset in range(16):
      parts = track_input.aligned_split(_at_offset(np.arange(size, dtype=np.float32), offset), np.float32)
      assert (parts is None) == (size < 2 * edge), (size, offset)


def test_bss_eval_v4_compiles_once_for_every_placement_of_its_inputs():
  """Inputs at any offset from a 64-byte boundary share one compiled program (so the persistent cache hits)."""
  from mssjax.metrics import bss_eval as core  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(4)
  refs = _coloured(rng, (2, 6007, 2)).astype(np.float32)
  ests = (0.8 * refs + 0.05 * rng.standard_normal(refs.shape)).astype(np.float32)
  first = bss_eval_v4(_at_offset(refs, 1), _at_offset(ests, 2), window=3000, hop=3000, filters_len=32)
  compiled = core._bss_eval_split._cache_size()
  for offset in (0, 5, 9, 15):
    out = bss_eval_v4(_at_offset(refs, offset), _at_offset(ests, (offset + 3) % 16), window=3000, hop=3000,
                      filters_len=32)
    for name in METRICS:
      np.testing.assert_array_equal(out[name], first[name], err_msg=f"{name} offset={offset}")
  assert core._bss_eval_split._cache_size() == compiled


@pytest.mark.parametrize("flat", [False, True])
def test_take_range_reads_zeros_outside_the_signal(flat):
  """Ranges inside (one slice per source) and across either end (gathered) equal numpy's padded slices."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  x = np.random.default_rng(1).standard_normal((3, 40, 2)).astype(np.float32)
  padded = np.pad(x, ((0, 0), (20, 20), (0, 0)))
  for k in (0, 5):
    if flat:
      signal = _flat_signal(x, k)
    else:
      signal = jnp.asarray(x)
    for length in (10, 40):
      read = jax.jit(lambda start, length=length, signal=signal: track_input.take_range(signal, start, length))
      for start in (-15, -1, 0, 1, 3, 17, 30, 35):
        if start + length <= 60:
          np.testing.assert_array_equal(np.asarray(read(start)), padded[:, start + 20:start + 20 + length],
                                        err_msg=f"k={k} length={length} start={start}")


@pytest.mark.parametrize("flat", [False, True])
def test_slice_range_equals_take_range_where_it_may_read(flat):
  """The branch-free slices read what the gather reads, for every range `slices_inside` admits."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  x = np.random.default_rng(2).standard_normal((3, 60, 2)).astype(np.float32)
  for k in (0, 5, 15):
    if flat:
      signal = _flat_signal(x, k)
    else:
      signal = jnp.asarray(x)
    for length in (1, 10, 28):
      sliced = jax.jit(lambda start, length=length, signal=signal: track_input.slice_range(signal, start, length))
      starts = np.arange(-3, 62)
      inside = track_input.slices_inside(starts, length, 60)
      assert inside.any() and not inside[starts < track_input.SLICE_FROM].any()
      assert not inside[starts + length > 60 - track_input.SLICE_FROM].any()
      for start in starts[inside]:
        np.testing.assert_array_equal(np.asarray(sliced(start)), x[:, start:start + length],
                                      err_msg=f"k={k} length={length} start={start}")


@pytest.mark.parametrize("dtype,offset,window,hop", [
    (np.float32, 5, 4000, 4000), (np.float32, 0, 8000, 5000), (np.float64, 3, 30000, 30000)])
def test_zero_copy_input_gives_the_copied_inputs_metrics(dtype, offset, window, hop, monkeypatch):
  """The aliased inputs (any offset from a 64-byte boundary) score exactly as aligned copies do."""
  rng = np.random.default_rng(offset)
  refs = _coloured(rng, (3, 20000, 2)).astype(dtype)
  ests = (0.8 * refs + 0.05 * rng.standard_normal(refs.shape)).astype(dtype)
  refs, ests = _at_offset(refs, offset), _at_offset(ests, (offset + 7) % 8)
  # Two windows per batch: the first batch is gathered (it holds the head), the second sliced.
  aliased = bss_eval_v4(refs, ests, window=window, hop=hop, filters_len=64, frames_batch=2)
  monkeypatch.setattr(track_input, "aligned_split", lambda x, dtype: None)
  copied = bss_eval_v4(refs, ests, window=window, hop=hop, filters_len=64, frames_batch=2)
  for name in METRICS:
    np.testing.assert_array_equal(aliased[name], copied[name], err_msg=name)


def test_correlations_of_a_flat_signal_equal_the_arrays():
  """Blocks read as slices of the aliased flat input (inner blocks) or gathered (the ends) give the same sums."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(3)
  x, y = rng.standard_normal((2, 40_000, 2)), rng.standard_normal((2, 40_000, 2))
  with jax.enable_x64(True):
    expected = np.asarray(correlations.correlations(jnp.asarray(x), jnp.asarray(y), 5, blocks_per_step=1))
    for k in (0, 3):
      out = np.asarray(jax.jit(lambda k=k: correlations.correlations(_flat_signal(x, k), _flat_signal(y, k), 5,
                                                               blocks_per_step=1))())
      np.testing.assert_array_equal(out, expected, err_msg=f"k={k}")
