"""A U-Net with a bidirectional LSTM at its bottleneck, in Flax NNX.

The network reads the magnitude spectrogram of a stereo mixture and predicts
one multiplicative mask per target (vocals, drums, bass, other) and channel.
The design joins three well-tried pieces:

- the input normalisation of Open-Unmix (Stöter et al. 2019): a learned
  per-bin offset and scale, initialised from the training data's statistics;
- the convolutional encoder-decoder with skip connections of the
  spectrogram U-Net (Jansson et al. 2017; Spleeter, Hennequin et al. 2020):
  5x5 convolutions with stride 2, normalisation, leaky ReLU on the way down,
  upsampling convolutions (sub-pixel, Shi et al. 2016) and ReLU on the way up,
  the last of which makes the mask logits, so that no layer runs at the full
  time-frequency resolution (the costliest place on a CPU);
- a bidirectional LSTM across time at the bottleneck (as Open-Unmix's BLSTM),
  which sees the whole chunk and so gives every frame long-range context.

Group normalisation (Wu & He 2018) is used instead of batch normalisation so
that the model has no running statistics: a separated chunk depends only on
itself, training and inference behave alike, and a data-parallel step gives
the same result on any number of devices.

With ``remat`` each encoder and decoder block and the bottleneck BiLSTM run
under `nnx.remat` (gradient checkpointing, Chen et al. 2016): their activations
are recomputed in the backward pass instead of kept, for less memory at the
cost of about one more forward pass; the results are the same.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mssjax.errors import ParameterError, check_positive_int

MASK_ACTIVATIONS = ("softmax", "sigmoid", "relu")


def _groups(features, max_groups=8):
  """The largest divisor of ``features`` not above ``max_groups``."""
  return max(g for g in range(1, max_groups + 1) if features % g == 0)


def _check_sizes(n_bins, audio_channels, n_targets, features, lstm_hidden, mask_activation):
  for name, value in (("n_bins", n_bins), ("audio_channels", audio_channels),
                      ("n_targets", n_targets), ("lstm_hidden", lstm_hidden)):
    check_positive_int(name, value)
  if not features or any(not isinstance(f, int) or f <= 0 for f in features):
    raise ParameterError(f"features={features!r} must be a non-empty sequence of positive integers")
  if mask_activation not in MASK_ACTIVATIONS:
    raise ParameterError(f"mask_activation={mask_activation!r} must be one of {MASK_ACTIVATIONS}")


class _Down(nnx.Module):
  """Strided convolution, group normalisation, leaky ReLU (halves time and frequency)."""

  def __init__(self, in_features, out_features, kernel_size, *, rngs):
    self.conv = nnx.Conv(in_features, out_features, kernel_size, strides=2, rngs=rngs)
    self.norm = nnx.GroupNorm(out_features, num_groups=_groups(out_features), rngs=rngs)

  def __call__(self, x):
    return nnx.leaky_relu(self.norm(self.conv(x)), negative_slope=0.2)


def depth_to_space(x: jax.Array) -> jax.Array:
  """``[batch, h, w, 4 c] -> [batch, 2 h, 2 w, c]`` (pixel shuffle)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c // 4)


class _Up(nnx.Module):
  """Sub-pixel convolution (Shi et al. 2016), group normalisation, ReLU (doubles time and frequency).

  A stride-1 convolution at the low resolution makes four times the features,
  rearranged into a 2x2 neighbourhood each. It upsamples as a transposed
  convolution does, but its gradients are ordinary convolutions, which XLA's CPU
  backend runs much faster than a transposed convolution's (measured in the commit that chose it).
  """

  def __init__(self, in_features, out_features, kernel_size, *, rngs):
    self.conv = nnx.Conv(in_features, 4 * out_features, kernel_size, rngs=rngs)
    self.norm = nnx.GroupNorm(out_features, num_groups=_groups(out_features), rngs=rngs)

  def __call__(self, x):
    return nnx.relu(self.norm(depth_to_space(self.conv(x))))


class _BottleneckLSTM(nnx.Module):
  """Flattens frequency and features per frame, runs a BiLSTM over time, adds the result back."""

  def __init__(self, in_features, hidden, *, rngs):
    self.proj_in = nnx.Linear(in_features, hidden, rngs=rngs)
    half = max(hidden // 2, 1)
    self.hidden = half
    forward = nnx.RNN(nnx.OptimizedLSTMCell(hidden, half, rngs=rngs), rngs=False)
    backward = nnx.RNN(nnx.OptimizedLSTMCell(hidden, half, rngs=rngs), rngs=False)
    self.lstm = nnx.Bidirectional(forward, backward, rngs=False)
    self.proj_out = nnx.Linear(2 * half, in_features, rngs=rngs)

  def __call__(self, x):
    """``x``: ``[batch, time, freq, features]`` -> same shape."""
    b, t, f, c = x.shape
    h = jnp.tanh(self.proj_in(x.reshape(b, t, f * c)))
    zeros = jnp.zeros((b, self.hidden), h.dtype)
    carry = ((zeros, zeros), (zeros, zeros))  # explicit, so the module holds no RNG state
    h = self.lstm(h, initial_carry=carry)
    return x + self.proj_out(h).reshape(b, t, f, c)


def _call(block: nnx.Module, x: jax.Array) -> jax.Array:
  return block(x)


_remat_call = nnx.remat(_call)


class UNet(nnx.Module):
  """Spectrogram U-Net + BiLSTM predicting one mask per target and channel.

  Every size is required: their one default lives in the experiment config
  (``configs/unet.py``), read by `mssjax.models.get_model`.

  Args:
    n_bins: number of frequency bins the network sees (the lowest ``n_bins``
      of the STFT; masks of higher bins repeat the top modelled bin's mask).
    audio_channels: input channels (2 for stereo).
    n_targets: number of masks (4: vocals, drums, bass, other).
    features: output features of each encoder level (depth = its length).
    kernel_size: the encoder's convolution kernel over ``(time, frequency)``.
    up_kernel_size: the decoder's (sub-pixel) convolution kernel.
    lstm_hidden: width of the bottleneck BiLSTM (both directions together).
    mask_activation: ``"softmax"`` (masks sum to one over targets),
      ``"sigmoid"`` (each in [0, 1]) or ``"relu"`` (non-negative, as Open-Unmix).
    remat: recompute each block's activations in the backward pass (`nnx.remat`).
    rngs: `nnx.Rngs` for the initialisation.
  """

  def __init__(self, *, n_bins: int, audio_channels: int, n_targets: int, features: tuple[int, ...],
               kernel_size: tuple[int, int], up_kernel_size: tuple[int, int], lstm_hidden: int,
               mask_activation: str, remat: bool, rngs: nnx.Rngs):
    features = tuple(int(f) for f in features)
    _check_sizes(n_bins, audio_channels, n_targets, features, lstm_hidden, mask_activation)
    self.n_bins, self.audio_channels, self.n_targets = n_bins, audio_channels, n_targets
    self.depth = len(features)
    self.mask_activation = mask_activation
    self.remat = bool(remat)
    kernel_size = tuple(kernel_size)
    self.input_mean = nnx.Param(jnp.zeros((n_bins,), jnp.float32))
    self.input_scale = nnx.Param(jnp.ones((n_bins,), jnp.float32))
    ins = (audio_channels,) + features[:-1]
    self.down = nnx.List([_Down(i, o, kernel_size, rngs=rngs) for i, o in zip(ins, features)])
    bottom_bins = -(-n_bins // 2 ** self.depth)
    self.bottleneck = _BottleneckLSTM(bottom_bins * features[-1], lstm_hidden, rngs=rngs)
    up_kernel_size = tuple(up_kernel_size)
    ups = []
    for level in range(self.depth - 1, 0, -1):
      in_features = features[level] * (1 if level == self.depth - 1 else 2)
      ups.append(_Up(in_features, features[level - 1], up_kernel_size, rngs=rngs))
    self.up = nnx.List(ups)
    last_in = features[0] * (2 if self.depth > 1 else 1)
    # The last upsampling makes the mask logits directly: no layer runs at full resolution.
    self.head = nnx.Conv(last_in, 4 * n_targets * audio_channels, up_kernel_size, rngs=rngs)

  def normalise(self, magnitude):
    """Log-compressed magnitudes with the learned per-bin offset and scale."""
    x = jnp.log1p(magnitude)
    return (x - self.input_mean[:, None]) * self.input_scale[:, None]

  def __call__(self, magnitude):
    """Masks for a batch of mixture magnitude spectrograms.

    Args:
      magnitude: ``[batch, audio_channels, n_bins_stft, n_frames]`` with
        ``n_bins_stft >= n_bins``.

    Returns:
      masks ``[batch, n_targets, audio_channels, n_bins_stft, n_frames]``.
    """
    b, c, full_bins, t = magnitude.shape
    if c != self.audio_channels or full_bins < self.n_bins:
      raise ParameterError(f"magnitude of shape {magnitude.shape} must be [batch, {self.audio_channels}, "
                           f">={self.n_bins} bins, frames]")
    x = self.normalise(magnitude[:, :, :self.n_bins])
    x = jnp.transpose(x, (0, 3, 2, 1))  # NHWC = [batch, time, freq, channels]
    step = 2 ** self.depth
    pad_t, pad_f = -t % step, -self.n_bins % step
    x = jnp.pad(x, ((0, 0), (0, pad_t), (0, pad_f), (0, 0)))
    logits = self._unet(x)[:, :t, :self.n_bins]
    logits = logits.reshape(b, t, self.n_bins, self.n_targets, c)
    masks = self._activate(jnp.transpose(logits, (0, 3, 4, 2, 1)))
    if full_bins > self.n_bins:
      top = jnp.repeat(masks[..., -1:, :], full_bins - self.n_bins, axis=-2)
      masks = jnp.concatenate([masks, top], axis=-2)
    return masks

  def _unet(self, x):
    call = _remat_call if self.remat else _call
    skips = []
    h = x
    for block in self.down:
      h = call(block, h)
      skips.append(h)
    h = call(self.bottleneck, h)
    for i, block in enumerate(self.up):
      h = jnp.concatenate([call(block, h), skips[-2 - i]], axis=-1)
    return depth_to_space(self.head(h))

  def _activate(self, logits):
    """``logits [batch, n_targets, channels, bins, frames]`` -> masks."""
    if self.mask_activation == "softmax":
      return jax.nn.softmax(logits, axis=1)
    if self.mask_activation == "sigmoid":
      return jax.nn.sigmoid(logits)
    return jax.nn.relu(logits)


def count_parameters(model: nnx.Module) -> int:
  """Number of scalar parameters of an NNX module."""
  return int(sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param))))
