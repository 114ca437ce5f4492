"""Multichannel Wiener filtering: turn source spectrograms into complex source estimates.

A JAX transcription of norbert (sigsep's multichannel Wiener filter, as used
by open-unmix): an initial ratio mask (or the mixture phase), refined by a few
iterations of the simplified EM of Duong, Vincent & Gribonval (2010) with the
weighted spatial covariance update of Nugraha, Liutkus & Vincent (2016):
each source is a local Gaussian with a power spectral density ``v_j(f, t)``
and a spatial covariance ``R_j(f)``, and the estimate is the posterior mean
``v_j R_j Cxx^-1 x``.

Layout follows `mssjax.spectral`: mixture STFTs ``[..., channels, n_bins,
n_frames]``, sources stacked on a leading axis.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from mssjax.errors import ParameterError, check_finite

__all__ = ["wiener", "expectation_maximization"]


def _local_gaussian_model(Y, eps):
  """PSDs ``v [J, ..., F, T]`` and spatial covariances ``R [J, ..., F, C, C]`` of estimates ``Y``."""
  v = jnp.mean(jnp.abs(Y) ** 2, axis=-3)
  # sum_t y_c1 conj(y_c2), normalised by the summed PSD (norbert's weighted update)
  cov = jnp.einsum("...aft,...bft->...fab", Y, jnp.conj(Y))
  R = cov / (eps + jnp.sum(v, axis=-1))[..., None, None]
  return v, R


def _invert(M, eps):
  """Inverse of ``[..., C, C]`` matrices, as norbert's ``_invert``.

  One channel: ``1 / (M + eps)``; two: the analytical inverse (no
  regularisation beyond the caller's); more: the pseudo-inverse, singular
  values below ``eps`` times the largest cut.
  """
  n = M.shape[-1]
  if n == 1:
    return 1.0 / (M + eps)
  if n == 2:
    det = M[..., 0, 0] * M[..., 1, 1] - M[..., 0, 1] * M[..., 1, 0]
    inv_det = 1.0 / det
    row0 = jnp.stack([M[..., 1, 1], -M[..., 0, 1]], axis=-1)
    row1 = jnp.stack([-M[..., 1, 0], M[..., 0, 0]], axis=-1)
    return jnp.stack([row0, row1], axis=-2) * inv_det[..., None, None]
  return jnp.linalg.pinv(M, rtol=eps)


def _em_step(Y, X, eps):
  v, R = _local_gaussian_model(Y, eps)
  n_channels = X.shape[-3]
  # Cxx[..., f, t, a, b] = sum_j v_j(f, t) R_j(f)[a, b] + sqrt(eps) I
  Cxx = jnp.einsum("j...ft,j...fab->...ftab", v.astype(R.dtype), R)
  Cxx = Cxx + np.sqrt(eps) * jnp.eye(n_channels, dtype=Cxx.dtype)
  inv = _invert(Cxx, eps)
  # y_j = G_j x with G_j = v_j R_j Cxx^-1, computed as v_j R_j (Cxx^-1 x)
  z = jnp.einsum("...ftbc,...cft->...bft", inv, X)
  return jnp.einsum("j...fab,...bft->j...aft", R, z) * v[..., None, :, :].astype(X.dtype)


@functools.partial(jax.jit, static_argnames=("iterations", "eps", "scale_factor"))
def _expectation_maximization(Y, X, *, iterations, eps, scale_factor):
  # Scale down for numerical stability (the 2x2 determinants), as norbert's wiener.
  scale = jnp.maximum(1.0, jnp.max(jnp.abs(X)) / scale_factor)
  Y, X = Y / scale, X / scale
  return jax.lax.fori_loop(0, iterations, lambda _, Y: _em_step(Y, X, eps), Y) * scale


def _check_mixture(X):
  X = jnp.asarray(X)
  if X.ndim < 3:
    raise ParameterError(f"mixture STFT must be [..., channels, n_bins, n_frames], got shape {X.shape}")
  if not jnp.issubdtype(X.dtype, jnp.complexfloating):
    X = X.astype(jnp.complex64)
  if not isinstance(X, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(X))):
    raise ParameterError("mixture STFT contains non-finite values")
  return X


def _check_iterations(iterations):
  if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 0:
    raise ParameterError(f"iterations={iterations!r} must be a non-negative integer")


def expectation_maximization(Y: ArrayLike, X: ArrayLike, *, iterations: int = 1, eps: float | None = None,
                             scale_factor: float = 10.0) -> jax.Array:
  """Refines complex source estimates by multichannel Wiener EM (norbert's ``expectation_maximization``).

  With the true source STFTs as ``Y`` and one iteration this is the SiSEC
  2018 multichannel Wiener filter oracle (MWF).

  Args:
    Y: complex source estimates ``[n_sources, ..., channels, n_bins, n_frames]``.
    X: complex mixture STFT ``[..., channels, n_bins, n_frames]``.
    iterations: EM iterations.
    eps: regularisation (default: float32 machine epsilon).
    scale_factor: the mixture is scaled so its peak is at most this during EM.

  Returns:
    complex ``[n_sources, ..., channels, n_bins, n_frames]``.

  Raises:
    ParameterError: shapes that do not fit, a non-finite mixture, a negative
      ``iterations`` or a non-positive ``scale_factor``.
  """
  X = _check_mixture(X)
  Y = jnp.asarray(Y).astype(X.dtype)
  if Y.shape[1:] != X.shape:
    raise ParameterError(f"estimates of shape {Y.shape} must be [n_sources, *{X.shape}]")
  _check_iterations(iterations)
  scale_factor = check_finite("scale_factor", scale_factor, minimum=0, strict=True)
  eps = float(np.finfo(np.float32).eps if eps is None else eps)
  return _expectation_maximization(Y, X, iterations=int(iterations), eps=eps, scale_factor=scale_factor)


@functools.partial(jax.jit, static_argnames=("iterations", "softmask", "eps", "scale_factor"))
def _wiener(V, X, *, iterations, softmask, eps, scale_factor):
  V = jnp.broadcast_to(V, V.shape[:1] + X.shape).astype(jnp.real(X).dtype)
  if softmask:
    Y = V / (eps + jnp.sum(V, axis=0)) * X
  else:
    phase = jnp.where(jnp.abs(X) > 0, X / jnp.where(jnp.abs(X) > 0, jnp.abs(X), 1.0), 1.0)
    Y = V * phase
  if not iterations:
    return Y
  return _expectation_maximization(Y, X, iterations=iterations, eps=eps, scale_factor=scale_factor)


def wiener(V: ArrayLike, X: ArrayLike, *, iterations: int = 1, softmask: bool = True, eps: float | None = None,
           scale_factor: float = 10.0) -> jax.Array:
  """Multichannel Wiener filter of a mixture from source spectrograms, as `norbert.wiener`.

  Args:
    V: non-negative source magnitudes (or masks) ``[n_sources, ..., n_bins,
      n_frames]``; the dimensions after the first broadcast to ``X``'s shape,
      so mono models ``[n_sources, ..., 1, n_bins, n_frames]`` are fine.
    X: complex mixture STFT ``[..., channels, n_bins, n_frames]``.
    iterations: EM iterations (0: only the initial estimate).
    softmask: start from the ratio mask ``V_j / sum V`` applied to ``X``
      (norbert's default); otherwise from ``V`` with the mixture phase.
    eps: regularisation (default: float32 machine epsilon).
    scale_factor: the mixture is scaled so its peak is at most this during EM.

  Returns:
    complex source estimates ``[n_sources, ..., channels, n_bins, n_frames]``.

  Raises:
    ParameterError: shapes that do not broadcast, negative or non-finite ``V``,
      a non-finite mixture, a negative ``iterations`` or a non-positive ``scale_factor``.
  """
  X = _check_mixture(X)
  V = jnp.asarray(V)
  if V.ndim != X.ndim + 1:
    raise ParameterError(f"V of shape {V.shape} must be [n_sources, ...] over the mixture shape {X.shape}")
  try:
    jnp.broadcast_shapes(V.shape[1:], X.shape)
  except ValueError as e:
    raise ParameterError(f"V of shape {V.shape} does not broadcast to the mixture shape {X.shape}") from e
  if not isinstance(V, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(V) & (V >= 0))):
    raise ParameterError("V must be finite and non-negative")
  _check_iterations(iterations)
  scale_factor = check_finite("scale_factor", scale_factor, minimum=0, strict=True)
  eps = float(np.finfo(np.float32).eps if eps is None else eps)
  return _wiener(V, X, iterations=int(iterations), softmask=bool(softmask), eps=eps, scale_factor=scale_factor)
