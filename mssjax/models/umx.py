"""Open-Unmix (Stöter, Uhlich, Liutkus & Mitsufuji 2019, JOSS 4(41) 1667), in Flax NNX.

The network of the reference implementation (sigsep/open-unmix-pytorch,
``openunmix/model.py``, class ``OpenUnmix``), one per target as the paper
trains it, or one joint network for all targets:

1. crop the mixture magnitude ``[B, C, F, N]`` to the ``n_bins`` bins below
   the bandwidth (16 kHz), normalise each bin by a learned offset and scale
   (``input_mean``, ``input_scale``: initialised from the training data);
2. ``fc1`` (the channels' bins of a frame -> ``hidden_size``, no bias),
   normalisation, tanh;
3. a 3-layer LSTM across time, bidirectional with ``hidden_size / 2`` units
   per direction (PyTorch's ``nn.LSTM``: gates i, f, g, o; two bias vectors
   per layer and direction, ``b_ih`` and ``b_hh``, so that the parameter count
   is the reference's);
4. the skip connection: ``fc1``'s output concatenated with the LSTM's;
5. ``fc2`` (``2 hidden_size -> hidden_size``, no bias), normalisation, ReLU;
6. ``fc3`` (``hidden_size -> F * C``: every bin of the STFT, not only the
   modelled ones, no bias), normalisation;
7. a learned scale and offset per output bin (``output_scale``, initialised to
   one, and ``output_mean``, to one), then ReLU.

The reference multiplies that ReLU output with the mixture magnitude
(``F.relu(x) * mix``): the ReLU output is a non-negative mask, and it is what
this module returns (the ``"magnitude"`` domain of `mssjax.models`).

With ``joint=False`` the module holds ``n_targets`` independent networks as
one stack (every parameter has a leading axis of ``n_targets``, so they run as
batched matrix products and one scan per LSTM layer); their parameters equal
``n_targets`` reference models'. With ``joint=True`` one network reads the
mixture and its ``fc3`` makes ``n_targets * F * C`` outputs (with an output
scale and offset per target and bin).

Where this deviates from the reference, and why:

- **Normalisation.** The reference's three ``BatchNorm1d`` normalise with the
  batch's statistics while training and with running statistics at inference.
  Our train step is pure and holds no batch statistics (and a separated chunk
  should not depend on its batch mates), so: after ``fc1`` and ``fc2`` a layer
  normalisation over the features of each frame (Ba et al. 2016); after
  ``fc3`` BatchNorm's inference form, a learned scale and offset per output
  feature without statistics (normalising the output bins of a frame would
  remove its overall level, which a mask must carry: a silent target). Each
  keeps BatchNorm's two parameters per feature, so the count is the
  reference's.
- **Input compression.** The reference normalises linear magnitudes by the
  mean and standard deviation of the training set's (mono) magnitudes; here
  the normalisation reads ``log1p`` magnitudes, whose per-bin statistics are
  what `mssjax.training.loop.input_statistics` computes for every network
  (the mask still multiplies the linear magnitude). ``input_mean`` holds the
  statistics' mean (the reference stores its negative) and the input is
  ``(log1p|X| - input_mean) * input_scale``.
- **No dropout.** The reference drops 40 % between LSTM layers; our train step
  gives the model no random key, so there is none.
- **Initialisation** follows PyTorch's defaults (uniform in
  ``±1/sqrt(fan_in)`` for the dense layers, ``±1/sqrt(units)`` for the LSTM).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from mssjax.errors import ParameterError, check_positive_int

EPSILON = 1e-5
"""The normalisation's epsilon (BatchNorm1d's)."""


def _uniform(rngs: nnx.Rngs, shape: tuple[int, ...], bound: float) -> nnx.Param:
  return nnx.Param(jax.random.uniform(rngs.params(), shape, jnp.float32, -bound, bound))


def _dense(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """``x [G, ..., in] @ kernel [G, in, out]`` for each of the G networks."""
  return jnp.einsum("g...i,gio->g...o", x, kernel)


def _per_network(v: jax.Array, x: jax.Array) -> jax.Array:
  """``v [G, features]`` shaped to broadcast against ``x [G, ..., features]``."""
  return v.reshape(v.shape[:1] + (1,) * (x.ndim - 2) + v.shape[1:])


class _LayerNorm(nnx.Module):
  """Layer normalisation over the last axis, a scale and an offset per feature, for G networks."""

  def __init__(self, networks: int, features: int):
    self.scale = nnx.Param(jnp.ones((networks, features), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((networks, features), jnp.float32))

  def __call__(self, x):
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    y = (x - mean) * jax.lax.rsqrt(var + EPSILON)
    return y * _per_network(self.scale[...], x) + _per_network(self.bias[...], x)


class _Affine(nnx.Module):
  """A scale and an offset per feature (BatchNorm's inference form, without statistics), for G networks."""

  def __init__(self, networks: int, features: int):
    self.scale = nnx.Param(jnp.ones((networks, features), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((networks, features), jnp.float32))

  def __call__(self, x):
    return x * _per_network(self.scale[...], x) + _per_network(self.bias[...], x)


class _LSTMLayer(nnx.Module):
  """One (bi)directional LSTM layer as PyTorch's ``nn.LSTM``, for G networks and D directions.

  Parameters ``w_ih [G, D, in, 4 units]``, ``w_hh [G, D, units, 4 units]``,
  ``b_ih`` and ``b_hh`` ``[G, D, 4 units]``, gates in PyTorch's order
  (input, forget, cell, output).
  """

  def __init__(self, networks: int, directions: int, in_features: int, units: int, *, rngs: nnx.Rngs):
    bound = 1.0 / math.sqrt(units)
    self.directions, self.units = directions, units
    self.w_ih = _uniform(rngs, (networks, directions, in_features, 4 * units), bound)
    self.w_hh = _uniform(rngs, (networks, directions, units, 4 * units), bound)
    self.b_ih = _uniform(rngs, (networks, directions, 4 * units), bound)
    self.b_hh = _uniform(rngs, (networks, directions, 4 * units), bound)

  def __call__(self, x):
    """``x [G, B, N, in]`` -> ``[G, B, N, D * units]`` (forward direction first)."""
    g, b, n, _ = x.shape
    bias = self.b_ih[...] + self.b_hh[...]
    inputs = jnp.einsum("gbni,gdio->gdbno", x, self.w_ih[...]) + bias[:, :, None, None, :]
    if self.directions == 2:  # the backward direction reads the frames last to first
      inputs = jnp.stack([inputs[:, 0], inputs[:, 1, :, ::-1]], axis=1)
    w_hh = self.w_hh[...]

    def step(carry, inputs_t):
      h, c = carry
      gates = inputs_t + jnp.einsum("gdbi,gdio->gdbo", h, w_hh)
      i, f, cell, o = jnp.split(gates, 4, axis=-1)
      c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(cell)
      h = jax.nn.sigmoid(o) * jnp.tanh(c)
      return (h, c), h

    zeros = jnp.zeros((g, self.directions, b, self.units), x.dtype)
    _, hs = jax.lax.scan(step, (zeros, zeros), jnp.moveaxis(inputs, 3, 0))   # [N, G, D, B, units]
    hs = jnp.moveaxis(hs, 0, 3)                                             # [G, D, B, N, units]
    if self.directions == 2:
      hs = jnp.stack([hs[:, 0], hs[:, 1, :, ::-1]], axis=1)
    return jnp.moveaxis(hs, 1, 3).reshape(g, b, n, self.directions * self.units)


def _check_sizes(n_bins, stft_bins, audio_channels, n_targets, hidden_size, n_layers, unidirectional):
  for name, value in (("n_bins", n_bins), ("stft_bins", stft_bins), ("audio_channels", audio_channels),
                      ("n_targets", n_targets), ("hidden_size", hidden_size), ("n_layers", n_layers)):
    check_positive_int(name, value)
  if n_bins > stft_bins:
    raise ParameterError(f"n_bins={n_bins} must be at most stft_bins={stft_bins}")
  if not unidirectional and hidden_size % 2:
    raise ParameterError(f"hidden_size={hidden_size} must be even for a bidirectional LSTM "
                         "(hidden_size / 2 units per direction)")


class OpenUnmix(nnx.Module):
  """Open-Unmix (Stöter et al. 2019): one mask per target and channel from the mixture's magnitudes.

  Every size is required: their one default lives in the experiment config
  (``configs/umx.py``), read by `mssjax.models.get_model`. The module
  docstring lists where it deviates from the reference implementation.

  Args:
    n_bins: bins the network reads (those below the bandwidth; the
      reference's ``max_bin``).
    stft_bins: bins of the STFT, ``1 + n_fft // 2``: the masks' height (the
      reference's ``nb_bins``).
    audio_channels: input channels (the reference's ``nb_channels``).
    n_targets: number of masks.
    hidden_size: width of the dense layers and of the LSTM's output.
    n_layers: LSTM layers (the reference's ``nb_layers``).
    unidirectional: a causal LSTM of ``hidden_size`` units instead of a
      bidirectional one of ``hidden_size / 2`` per direction.
    joint: one network for every target (True) or one per target (False, as
      the paper).
    remat: recompute each LSTM layer's activations in the backward pass
      (`nnx.remat`) instead of keeping them.
    rngs: `nnx.Rngs` for the initialisation.
  """

  domain = "magnitude"

  def __init__(self, *, n_bins: int, stft_bins: int, audio_channels: int, n_targets: int, hidden_size: int,
               n_layers: int, unidirectional: bool, joint: bool, remat: bool, rngs: nnx.Rngs):
    _check_sizes(n_bins, stft_bins, audio_channels, n_targets, hidden_size, n_layers, unidirectional)
    self.n_bins, self.stft_bins, self.audio_channels, self.n_targets = n_bins, stft_bins, audio_channels, n_targets
    self.remat = bool(remat)
    networks, outputs = (1, n_targets) if joint else (n_targets, 1)
    self.networks, self.outputs = networks, outputs
    directions = 1 if unidirectional else 2
    units = hidden_size // directions
    in_features = audio_channels * n_bins
    out_features = outputs * audio_channels * stft_bins
    self.input_mean = nnx.Param(jnp.zeros((networks, n_bins), jnp.float32))
    self.input_scale = nnx.Param(jnp.ones((networks, n_bins), jnp.float32))
    self.fc1 = _uniform(rngs, (networks, in_features, hidden_size), 1.0 / math.sqrt(in_features))
    self.norm1 = _LayerNorm(networks, hidden_size)
    self.lstm = nnx.List([_LSTMLayer(networks, directions, hidden_size, units, rngs=rngs)
                          for _ in range(n_layers)])
    skip = hidden_size + directions * units
    self.fc2 = _uniform(rngs, (networks, skip, hidden_size), 1.0 / math.sqrt(skip))
    self.norm2 = _LayerNorm(networks, hidden_size)
    self.fc3 = _uniform(rngs, (networks, hidden_size, out_features), 1.0 / math.sqrt(hidden_size))
    self.norm3 = _Affine(networks, out_features)
    self.output_scale = nnx.Param(jnp.ones((networks, outputs, stft_bins), jnp.float32))
    self.output_mean = nnx.Param(jnp.ones((networks, outputs, stft_bins), jnp.float32))

  def __call__(self, magnitude: jax.Array) -> jax.Array:
    """Masks for a batch of mixture magnitude spectrograms.

    Args:
      magnitude: ``[batch, audio_channels, stft_bins, n_frames]``.

    Returns:
      non-negative masks ``[batch, n_targets, audio_channels, stft_bins, n_frames]``.
    """
    b, c, bins, n = magnitude.shape
    if c != self.audio_channels or bins != self.stft_bins:
      raise ParameterError(f"magnitude of shape {magnitude.shape} must be [batch, {self.audio_channels}, "
                           f"{self.stft_bins} bins, frames]")
    g = self.networks
    x = jnp.log1p(magnitude[:, :, :self.n_bins])[None]                             # [1, B, C, n_bins, N]
    x = (x - self.input_mean[...][:, None, None, :, None]) * self.input_scale[...][:, None, None, :, None]
    x = jnp.moveaxis(x, -1, 2).reshape(g, b, n, c * self.n_bins)                   # [G, B, N, C n_bins]
    h = jnp.tanh(self.norm1(_dense(x, self.fc1[...])))
    y = h
    for layer in self.lstm:
      y = nnx.remat(lambda module, inputs: module(inputs))(layer, y) if self.remat else layer(y)
    h = jax.nn.relu(self.norm2(_dense(jnp.concatenate([h, y], axis=-1), self.fc2[...])))
    out = self.norm3(_dense(h, self.fc3[...])).reshape(g, b, n, self.outputs, c, bins)
    out = out * self.output_scale[...][:, None, None, :, None, :] + self.output_mean[...][:, None, None, :, None, :]
    masks = jax.nn.relu(out)                                                       # [G, B, N, O, C, F]
    return jnp.transpose(masks, (1, 0, 3, 4, 5, 2)).reshape(b, self.n_targets, c, bins, n)
