"""Tests of mssjax.filtering against a NumPy transcription of norbert."""

import jax
import numpy as np
import pytest

from mssjax import filtering
from mssjax.errors import ParameterError

EPS = float(np.finfo(np.float32).eps)


def _norbert_invert(M, eps):
  """norbert._invert, transcribed: 1 / (M + eps) for one channel, the inverse for two, else pinv(M, eps)."""
  if M.shape[-1] == 1:
    return 1.0 / (M + eps)
  if M.shape[-1] == 2:
    return np.linalg.inv(M)
  return np.linalg.pinv(M, eps)


def _norbert_em(y, x, iterations, eps):
  """norbert.expectation_maximization, transcribed (layout [frames, bins, channels, sources])."""
  (T, F, C), J = x.shape, y.shape[-1]
  R = np.zeros((F, C, C, J), x.dtype)
  v = np.zeros((T, F, J))
  for _ in range(iterations):
    for j in range(J):
      v[..., j] = np.mean(np.abs(y[..., j]) ** 2, axis=2)
      cov = np.einsum("tfa,tfb->tfab", y[..., j], np.conj(y[..., j]))
      R[..., j] = cov.sum(0) / (eps + v[..., j].sum(0)[..., None, None])
    Cxx = sum(v[..., j, None, None] * R[None, ..., j] for j in range(J)) + np.sqrt(eps) * np.eye(C)
    inv = _norbert_invert(Cxx, eps)
    for j in range(J):
      G = np.einsum("fab,tfbc->tfac", R[..., j], inv) * v[..., j, None, None]
      y[..., j] = np.einsum("tfac,tfc->tfa", G, x)
  return y


def _norbert_wiener(v, x, iterations, softmask, eps=EPS):
  """norbert.wiener, transcribed; v [frames, bins, channels, sources], x [frames, bins, channels]."""
  if softmask:
    y = v / (eps + v.sum(-1, keepdims=True)) * x[..., None]
  else:
    y = v * np.exp(1j * np.angle(x[..., None]))
  if not iterations:
    return y
  scale = max(1, np.abs(x).max() / 10.0)
  return _norbert_em(y / scale, x / scale, iterations, eps) * scale


@pytest.fixture(scope="module")
def problem():
  rng = np.random.default_rng(0)
  X = 30 * (rng.standard_normal((2, 33, 40)) + 1j * rng.standard_normal((2, 33, 40))).astype(np.complex64)
  V = np.abs(rng.standard_normal((4, 2, 33, 40))).astype(np.float32)
  return V, X


def _to_norbert(V, X):
  return V.transpose(3, 2, 1, 0).astype(np.float64), X.T.astype(np.complex128)


@pytest.mark.parametrize("iterations", [0, 1, 3])
@pytest.mark.parametrize("softmask", [True, False])
def test_wiener_matches_norbert(problem, iterations, softmask):
  V, X = problem
  expected = _norbert_wiener(*_to_norbert(V, X), iterations, softmask).transpose(3, 2, 1, 0)
  got = np.asarray(filtering.wiener(V, X, iterations=iterations, softmask=softmask))
  assert np.abs(got - expected).max() <= 2e-6 * np.abs(expected).max()


@pytest.mark.parametrize("channels", [1, 3])
def test_em_matches_norbert_for_any_channel_count(channels):
  # eps large enough that norbert's 1 / (Cxx + eps) and pinv(Cxx, eps) differ from a plain inverse
  rng = np.random.default_rng(2)
  X = 5 * (rng.standard_normal((channels, 9, 12)) + 1j * rng.standard_normal((channels, 9, 12)))
  V = np.abs(rng.standard_normal((3, channels, 9, 12))) ** 3
  expected = _norbert_wiener(*_to_norbert(V, X), 1, False, eps=1e-2).transpose(3, 2, 1, 0)
  got = np.asarray(filtering.wiener(V.astype(np.float32), X.astype(np.complex64), iterations=1, softmask=False,
                                    eps=1e-2))
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_wiener_mono_models_broadcast_and_estimates_add_up(problem):
  V, X = problem
  mono = V.mean(axis=1, keepdims=True)
  got = filtering.wiener(mono, X, iterations=2)
  expected = filtering.wiener(np.broadcast_to(mono, V.shape), X, iterations=2)
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-6)
  assert np.abs(np.asarray(got).sum(0) - X).max() < 1e-3 * np.abs(X).max()


def test_wiener_batched_and_jitted(problem):
  V, X = problem
  batch = filtering.wiener(np.stack([V, V[::-1]], axis=1), np.stack([X, X]), iterations=1)
  run = jax.jit(lambda v, x: filtering.wiener(v, x, iterations=1))
  np.testing.assert_allclose(np.asarray(batch[:, 1]), np.asarray(run(V[::-1], X)), rtol=1e-5, atol=1e-5)


def test_em_with_true_sources_is_the_mwf_oracle(problem):
  _, X = problem
  rng = np.random.default_rng(1)
  Y = (rng.standard_normal((3,) + X.shape) + 1j * rng.standard_normal((3,) + X.shape)).astype(np.complex64)
  mix = Y.sum(0)
  expected = _norbert_em(Y.transpose(3, 2, 1, 0).astype(np.complex128).copy(), mix.T.astype(np.complex128), 1, EPS)
  got = np.asarray(filtering.expectation_maximization(Y, mix, iterations=1))
  np.testing.assert_allclose(got, expected.transpose(3, 2, 1, 0), atol=1e-4 * np.abs(Y).max())


def test_silent_mixture_gives_silent_estimates():
  out = filtering.wiener(np.zeros((4, 2, 9, 7), np.float32), np.zeros((2, 9, 7), np.complex64), iterations=2)
  assert np.all(np.asarray(out) == 0)


@pytest.mark.parametrize("V_shape, X_shape, kwargs, match", [
    ((4, 2, 9, 7), (9, 7), {}, "channels, n_bins, n_frames"),
    ((4, 3, 9, 7), (2, 9, 7), {}, "broadcast"),
    ((2, 9, 7), (2, 9, 7), {}, r"n_sources"),
    ((4, 2, 9, 7), (2, 9, 7), dict(iterations=-1), "iterations"),
    ((4, 2, 9, 7), (2, 9, 7), dict(scale_factor=0.0), "scale_factor"),
])
def test_wiener_bad_input(V_shape, X_shape, kwargs, match):
  with pytest.raises(ParameterError, match=match):
    filtering.wiener(np.ones(V_shape, np.float32), np.ones(X_shape, np.complex64), **kwargs)


def test_wiener_rejects_negative_or_non_finite():
  with pytest.raises(ParameterError, match="non-negative"):
    filtering.wiener(-np.ones((2, 2, 3, 4)), np.ones((2, 3, 4), np.complex64))
  with pytest.raises(ParameterError, match="non-finite"):
    filtering.wiener(np.ones((2, 2, 3, 4)), np.full((2, 3, 4), np.nan, np.complex64))
