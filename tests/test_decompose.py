"""Tests of mssjax.decompose against scipy, librosa, scikit-learn and NumPy transcriptions."""

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import scipy.ndimage
from sklearn.decomposition import NMF

import mssjax
from mssjax import decompose
from mssjax.errors import ParameterError


@pytest.fixture(scope="module")
def spec():
  rng = np.random.default_rng(0)
  return (np.abs(rng.standard_normal((2, 65, 90))) ** 2).astype(np.float32)


def _max_err(a, b):
  return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(a, b))


# ----------------------------------------------------------------------------
# median_filter


@pytest.mark.parametrize("size", [1, 2, 7, 8, 31, 33, 45])  # the network up to 32 values, bisection above
@pytest.mark.parametrize("axis", [-1, -2])
def test_median_filter_matches_scipy(spec, size, axis):
  sizes = [1, 1, 1]
  sizes[axis] = size
  expected = scipy.ndimage.median_filter(spec, size=sizes, mode="reflect")
  np.testing.assert_array_equal(np.asarray(decompose.median_filter(spec, size=size, axis=axis)), expected)


def test_median_filter_whole_axis_and_under_jit(spec):
  x = spec[0, :5]  # [5, 90]: a window as long as the axis
  expected = scipy.ndimage.median_filter(x, size=(5, 1), mode="reflect")
  jitted = jax.jit(lambda x: decompose.median_filter(x, size=5, axis=0))
  np.testing.assert_array_equal(np.asarray(jitted(x)), expected)


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, np.float16])
def test_median_filter_keeps_other_dtypes_exact(dtype, size=41):
  rng = np.random.default_rng(1)
  x = (rng.standard_normal((3, 120)) * 60).clip(-128, 127)
  x = (x + 128 if dtype == np.uint8 else x).astype(dtype)
  as_scipy = np.float32 if dtype == np.float16 else dtype  # scipy has no float16 median
  expected = scipy.ndimage.median_filter(x.astype(as_scipy), size=(1, size), mode="reflect").astype(dtype)
  got = np.asarray(decompose.median_filter(x, size=size, axis=1))
  assert got.dtype == dtype
  np.testing.assert_array_equal(got, expected)


def test_median_filter_program_does_not_grow_with_the_window():
  # A sorting network of 151 values took 8 GB to compile (#36 case 6); past 32 values the program is one
  # loop whose body does not depend on the window's length.
  x = jnp.ones((2, 400), jnp.float32)
  sizes = {size: len(jax.jit(lambda x, size=size: decompose.median_filter(x, size=size)).lower(x).as_text())
           for size in (33, 151, 399)}
  assert max(sizes.values()) < 1.2 * min(sizes.values()), sizes


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=0), "size=0"),
    (dict(size=91), "longer than the signal"),
    (dict(size=3, axis=3), "axis=3"),
    (dict(size=2.5), "size=2.5"),
])
def test_median_filter_bad_parameters(spec, kwargs, match):
  with pytest.raises(ParameterError, match=match):
    decompose.median_filter(spec, **kwargs)


# ----------------------------------------------------------------------------
# hpss


@pytest.mark.parametrize("kernel_size, power, margin", [
    (31, 2.0, 1.0), (31, np.inf, (2.0, 3.0)), ((17, 8), 1.0, 1.0), ((17, 8), 2.0, (2.0, 3.0)),
    (4, 2.0, 1.0), (4, 1.0, 3.0), ((6, 5), np.inf, 1.0)])
def test_hpss_matches_librosa(spec, kernel_size, power, margin):
  for mask in (False, True):
    expected = librosa.decompose.hpss(spec, kernel_size=kernel_size, power=power, margin=margin, mask=mask)
    got = decompose.hpss(spec, kernel_size=kernel_size, power=power, margin=margin, mask=mask)
    assert _max_err(expected, got) <= 1e-5 * spec.max()


def test_hpss_complex_matches_librosa_and_sums_to_input():
  rng = np.random.default_rng(1)
  Z = (rng.standard_normal((65, 70)) + 1j * rng.standard_normal((65, 70))).astype(np.complex64)
  H, P = decompose.hpss(Z, kernel_size=(9, 13))
  assert _max_err(librosa.decompose.hpss(Z, kernel_size=(9, 13)), (H, P)) <= 1e-5 * np.abs(Z).max()
  np.testing.assert_allclose(np.asarray(H + P), Z, atol=1e-5 * np.abs(Z).max())


def test_hpss_vmaps_and_jits(spec):
  tracks = np.stack([spec, spec[:, ::-1] * 2])
  batched = jax.jit(jax.vmap(lambda S: decompose.hpss(S, kernel_size=7)))(tracks)
  for i in range(2):
    assert _max_err(decompose.hpss(tracks[i], kernel_size=7), (batched[0][i], batched[1][i])) < 1e-6


def test_hpss_silent_input_is_silent():
  H, P = decompose.hpss(np.zeros((33, 40), np.float32), kernel_size=5)
  assert not np.any(np.isnan(H)) and np.all(np.asarray(H) == 0) and np.all(np.asarray(P) == 0)


def test_reexported_at_package_level():
  assert mssjax.hpss is decompose.hpss and mssjax.repet_sim is decompose.repet_sim and mssjax.nmf is decompose.nmf


@pytest.mark.parametrize("S, kwargs, match", [
    (np.ones((33, 40)), dict(margin=0.5), "margin"),
    (np.ones((33, 40)), dict(kernel_size=41), "longer than n_frames"),
    (np.ones((33, 40)), dict(kernel_size=(3, 34)), "longer than n_bins"),
    (np.ones((33, 40)), dict(kernel_size=0), "kernel_size"),
    (np.ones((33, 40)), dict(power=0.0), "power"),
    (np.full((33, 40), np.nan), {}, "non-finite"),
    (np.ones(40), {}, "n_bins, n_frames"),
])
def test_hpss_bad_input(S, kwargs, match):
  with pytest.raises(ParameterError, match=match):
    decompose.hpss(S, **kwargs)


# ----------------------------------------------------------------------------
# nn_median / repet_sim


def _np_nn_median(S, k, width, threshold, selection):
  """NumPy transcription: neighbours by cosine similarity, then np.median."""
  n = S.shape[-1]
  F = S.reshape(-1, n).astype(np.float64)
  norms = np.linalg.norm(F, axis=0)
  U = F / np.where(norms > 0, norms, 1)
  sim = U.T @ U
  out = np.empty_like(F)
  for i in range(n):
    if selection == "nearest":
      order = [j for j in np.argsort(-sim[i], kind="stable") if abs(i - j) >= width][:k]
      chosen = [j for j in order if sim[i, j] > threshold]
    else:
      row = sim[i]
      peaks = [j for j in range(n) if j == i or ((j == 0 or row[j] >= row[j - 1])
                                                 and (j == n - 1 or row[j] >= row[j + 1]))]
      peaks = [j for j in peaks if row[j] > threshold]
      chosen = []
      for j in sorted(peaks, key=lambda j: -row[j]):
        if len(chosen) < k and all(abs(j - c) >= width for c in chosen):
          chosen.append(j)
    out[:, i] = np.median(F[:, chosen], axis=1) if chosen else F[:, i]
  return out.reshape(S.shape)


@pytest.mark.parametrize("k, width", [(5, 3), (10, 7), (7, 1)])
def test_nn_median_matches_librosa_nn_filter(spec, k, width):
  # librosa's default "connectivity" mode keeps k of the k + 2 * width nearest by index;
  # "affinity" ranks them by distance, which is the k nearest.
  expected = librosa.decompose.nn_filter(spec, aggregate=np.median, metric="cosine", k=k, width=width,
                                         mode="affinity")
  got = decompose.nn_median(spec, n_neighbors=k, width=width)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("selection", ["nearest", "peaks"])
@pytest.mark.parametrize("k, width, threshold", [(6, 3, 0.75), (9, 5, 0.8), (4, 2, -1.0)])
def test_nn_median_matches_numpy(spec, selection, k, width, threshold):
  got = decompose.nn_median(spec, n_neighbors=k, width=width, threshold=threshold, selection=selection)
  expected = _np_nn_median(spec, k, width, threshold, selection)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


def test_repet_sim_paper_masks(spec):
  bg, fg = decompose.repet_sim(spec, sample_rate=100, hop_length=10, n_neighbors=8, min_distance=0.3)
  model = np.minimum(_np_nn_median(spec, 8, 3, 0.0, "peaks"), spec)
  np.testing.assert_allclose(np.asarray(bg), model, rtol=1e-4, atol=1e-5)  # W / S * S
  np.testing.assert_allclose(np.asarray(bg + fg), spec, rtol=1e-5, atol=1e-5)


def test_repet_sim_margins_and_masks(spec):
  bg, fg = decompose.repet_sim(spec, sample_rate=100, hop_length=10, margin=(2.0, 10.0), power=2.0, mask=True)
  assert np.all((np.asarray(bg) >= 0) & (np.asarray(bg) <= 1)) and np.all(np.asarray(bg + fg) <= 1 + 1e-6)
  assert float(np.min(np.asarray(bg + fg))) < 0.99  # margins leave a residual


def test_repet_sim_complex_silent_and_vmapped(spec):
  Z = spec * np.exp(1j * np.linspace(0, 3, spec.size).reshape(spec.shape)).astype(np.complex64)
  bg, fg = decompose.repet_sim(Z, sample_rate=100, hop_length=10)
  np.testing.assert_allclose(np.asarray(bg + fg), Z, atol=1e-4)
  zeros = decompose.repet_sim(np.zeros_like(spec), sample_rate=100, hop_length=10)
  assert all(np.all(np.asarray(z) == 0) for z in zeros)
  tracks = np.stack([spec, spec[..., ::-1]])
  run = lambda S: decompose.repet_sim(S, sample_rate=100, hop_length=10, n_neighbors=5)[1]
  batched = jax.vmap(run)(tracks)
  np.testing.assert_allclose(np.asarray(batched[1]), np.asarray(run(tracks[1])), atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_neighbors=0), "n_neighbors"),
    (dict(min_distance=0.0), "min_distance"),
    (dict(threshold=1.5), "threshold"),
    (dict(selection="best"), "selection"),
    (dict(margin=0.9), "margin"),
    (dict(hop_length=-1), "hop_length"),
])
def test_repet_sim_bad_parameters(spec, kwargs, match):
  with pytest.raises(ParameterError, match=match):
    decompose.repet_sim(spec, **kwargs)


# ----------------------------------------------------------------------------
# nmf


@pytest.fixture(scope="module")
def nmf_problem():
  rng = np.random.default_rng(2)
  V = (rng.random((40, 6)) @ rng.random((6, 50)) + 0.01).astype(np.float32)
  W0 = rng.random((40, 5)).astype(np.float32) + 0.1
  H0 = rng.random((5, 50)).astype(np.float32) + 0.1
  return V, W0, H0


def _np_mu(V, W, H, beta, n_iter):
  """NumPy transcription of Fevotte & Idier (2011) MU (W then H), with MM exponents."""
  eps = np.finfo(np.float32).eps
  gamma = 1 / (2 - beta) if beta < 1 else (1 / (beta - 1) if beta > 2 else 1.0)
  V, W, H = (a.astype(np.float64) for a in (V, W, H))
  for _ in range(n_iter):
    WH = np.maximum(W @ H, eps)
    W = W * (((V * WH ** (beta - 2)) @ H.T) / (WH ** (beta - 1) @ H.T)) ** gamma
    WH = np.maximum(W @ H, eps)
    H = H * ((W.T @ (V * WH ** (beta - 2))) / (W.T @ WH ** (beta - 1))) ** gamma
  return W, H


@pytest.mark.parametrize("beta", [2.0, 1.0])
def test_nmf_matches_sklearn(nmf_problem, beta):
  V, W0, H0 = nmf_problem
  model = NMF(5, solver="mu", beta_loss=beta, init="custom", max_iter=60, tol=0.0)
  W_ref = model.fit_transform(V.astype(np.float64), W=W0.astype(np.float64), H=H0.astype(np.float64))
  W, H = decompose.nmf(V, n_components=5, beta=beta, n_iter=60, W=W0, H=H0)
  np.testing.assert_allclose(np.asarray(W @ H), W_ref @ model.components_, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.5, 3.0])
def test_nmf_matches_numpy(nmf_problem, beta):
  V, W0, H0 = nmf_problem
  W_ref, H_ref = _np_mu(V, W0, H0, beta, 30)
  W, H = decompose.nmf(V, n_components=5, beta=beta, n_iter=30, W=W0, H=H0)
  np.testing.assert_allclose(np.asarray(W @ H), W_ref @ H_ref, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_nmf_objective_never_increases(nmf_problem, beta):
  V, _, _ = nmf_problem
  W, H = decompose.nmf(V, n_components=4, beta=beta, n_iter=0, key=jax.random.PRNGKey(0))
  losses = [float(decompose.beta_divergence(V, W, H, beta=beta))]
  for _ in range(25):
    W, H = decompose.nmf(V, n_components=4, beta=beta, n_iter=1, W=W, H=H)
    losses.append(float(decompose.beta_divergence(V, W, H, beta=beta)))
  assert all(b <= a * (1 + 1e-5) for a, b in zip(losses, losses[1:]))
  assert losses[-1] < 0.5 * losses[0]


def test_nmf_key_fixed_bases_and_vmap(nmf_problem):
  V, W0, _ = nmf_problem
  key = jax.random.PRNGKey(3)
  a = decompose.nmf(V, n_components=5, n_iter=10, key=key)
  b = decompose.nmf(V, n_components=5, n_iter=10, key=key)
  np.testing.assert_array_equal(np.asarray(a[1]), np.asarray(b[1]))
  W, H = decompose.nmf(V, n_components=5, n_iter=10, W=W0, update_W=False, key=key)
  np.testing.assert_array_equal(np.asarray(W), W0)
  batch, H1 = np.stack([V, 2 * V]), np.ones((5, 50), np.float32)
  Wb, Hb = decompose.nmf(batch, n_components=5, n_iter=10, W=W0, H=H1)  # broadcast over the batch
  Wv, Hv = jax.vmap(lambda v: decompose.nmf(v, n_components=5, n_iter=10, W=W0, H=H1))(batch)
  assert Wb.shape == (2, 40, 5) and Hb.shape == (2, 5, 50)
  np.testing.assert_allclose(np.asarray(Wv), np.asarray(Wb), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(Hv), np.asarray(Hb), rtol=1e-5)


def test_nmf_silent_input_gives_zeros():
  W, H = decompose.nmf(np.zeros((20, 30), np.float32), n_components=3, n_iter=20, beta=1.0,
                       key=jax.random.PRNGKey(0))
  assert np.all(np.isfinite(np.asarray(W @ H))) and float(jnp.abs(W @ H).max()) == 0.0


@pytest.mark.parametrize("V, kwargs, match", [
    (-np.ones((4, 5)), {}, "non-negative"),
    (np.full((4, 5), np.inf), {}, "non-finite"),
    (np.ones((4, 5)), dict(n_components=0), "n_components"),
    (np.ones((4, 5)), dict(n_iter=-1), "n_iter"),
    (np.zeros((4, 5)), dict(beta=0.0), "strictly positive"),
    (np.ones((4, 5)), dict(key=None), "key"),
    (np.ones((4, 5)), dict(W=np.ones((3, 2))), "W of shape"),
    (np.ones((4, 5)), dict(update_W=False), "fixed bases"),
])
def test_nmf_bad_input(V, kwargs, match):
  args = dict(n_components=2, key=jax.random.PRNGKey(0))
  args.update(kwargs)
  with pytest.raises(ParameterError, match=match):
    decompose.nmf(V, **args)
