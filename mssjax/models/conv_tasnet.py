"""Conv-TasNet, a waveform-to-waveform separator, in Flax NNX.

Luo & Mesgarani 2019, "Conv-TasNet: Surpassing Ideal Time-Frequency Magnitude
Masking for Speech Separation", IEEE/ACM TASLP 27(8); adapted to stereo music
by Défossez et al. 2019, "Music Source Separation in the Waveform Domain"
(Demucs v2's ``demucs/tasnet.py``, itself from kaituoxu/Conv-TasNet).

The network, in the paper's letters (`ConvTasNet`'s arguments in brackets):

1. encoder: a 1-D convolution of the ``C`` audio channels with ``N`` filters
   [n_filters] of ``L`` samples [filter_length], stride ``L / 2``, then ReLU:
   a non-negative representation ``w`` of ``K`` frames;
2. separator, a temporal convolutional network: layer norm of ``w``
   [input_norm], a 1x1 bottleneck to ``B`` channels [bottleneck_channels],
   then ``R`` repeats [n_repeats] of ``X`` blocks [n_blocks] with dilations
   ``1, 2, ..., 2^(X-1)``. A block is a 1x1 convolution to ``H`` channels
   [hidden_channels], PReLU, gLN, a depthwise convolution of kernel ``P``
   [kernel_size] and that dilation, PReLU, gLN, then a 1x1 convolution back
   to ``B`` added to its input (residual) and, where ``Sc > 0``
   [skip_channels], one to ``Sc`` channels summed over all blocks (skip);
3. masks: (PReLU [mask_prelu]) and a 1x1 convolution of the skip sum (or of
   the last residual output where ``Sc = 0``) to ``T * N`` channels, through
   a sigmoid (the paper), ReLU (Demucs v2) or a softmax over targets
   [mask_activation];
4. decoder: each target's masked representation ``w * m_t`` through one
   shared linear map of ``N`` to ``C * L`` samples per frame, overlap-added at
   stride ``L / 2`` (a transposed convolution of ``N`` to ``C`` channels).

The two references differ in details that change the parameter count, each a
config field: Demucs v2 (and kaituoxu) has no biases, no skip path, no PReLU
before the mask convolution and a channel-wise layer norm (cLN) on ``w``;
the paper's own code and asteroid's ``TDConvNet`` have biases on every 1x1
and depthwise convolution, the skip path, that PReLU and a global one (gLN).
The encoder and decoder have no bias in either.

Where this module deviates from them:

- the input is zero-padded by ``L / 2`` samples in front and by ``L / 2``
  plus what makes its length a multiple of ``L / 2`` behind, and the output
  is cropped back, so any length ``n`` gives ``n`` samples and every sample
  lies under two encoder frames; Demucs v2 pads nothing and zero-fills the
  last samples its frames do not reach;
- only gLN and cLN are offered: no batch norm, so the model holds no running
  statistics (the train step is pure, a chunk's output depends on it alone);
- the encoder keeps the ReLU of the paper and Demucs v2, which asteroid's
  ``ConvTasNet`` leaves out by default.

Neither changes the parameter count. The initialisation is Demucs v2's:
Xavier-normal kernels (Glorot & Bengio 2010), PReLU slopes 0.25, norm gains
one, biases zero.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mssjax.errors import ParameterError, check_choice, check_non_negative_int, check_positive_int

NORMS = ("gLN", "cLN")
MASK_ACTIVATIONS = ("sigmoid", "relu", "softmax")
EPSILON = 1e-8
"""Added to the variance in the layer norms, as the references do."""
PRELU_SLOPE = 0.25
"""PyTorch's ``nn.PReLU`` initial slope, one slope per PReLU as in the references."""
_KERNEL_INIT = jax.nn.initializers.glorot_normal()  # PyTorch's xavier_normal_: the same fans for Conv/Linear


class _LayerNorm(nnx.Module):
  """Layer norm of ``[batch, frames, features]`` with a per-feature gain and bias (Luo & Mesgarani 2019, III-B).

  ``"gLN"`` normalises each example over frames and features, ``"cLN"`` each
  frame over features. The statistics are taken in float32 whatever the input.
  """

  def __init__(self, features: int, *, kind: str):
    self.axes = (1, 2) if kind == "gLN" else (2,)
    self.scale = nnx.Param(jnp.ones((features,), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((features,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=self.axes, keepdims=True)
    variance = jnp.mean(jnp.square(x32 - mean), axis=self.axes, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(variance + EPSILON) * self.scale[...] + self.bias[...]
    return y.astype(x.dtype)


class _DepthwiseConv(nnx.Module):
  """A depthwise dilated 1-D convolution with "same" padding, ``[batch, frames, features]`` -> same shape.

  Computed as ``kernel_size`` shifted, weighted copies of the input: XLA's CPU
  grouped convolution (``feature_group_count``) ran 49x slower, forward and
  backward, at ``[16, 4134, 256]`` with dilation 8 (6.7 s against 0.14 s,
  measured in the commit that chose this). The parameters are `nnx.Conv`'s:
  ``kernel [kernel_size, 1, features]`` and ``bias [features]``.
  """

  def __init__(self, features: int, kernel_size: int, *, dilation: int, bias: bool, rngs: nnx.Rngs):
    self.kernel = nnx.Param(_KERNEL_INIT(rngs.params(), (kernel_size, 1, features), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((features,), jnp.float32)) if bias else None
    self.dilation = dilation

  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.kernel[...].astype(x.dtype)
    size, n = kernel.shape[0], x.shape[1]
    total = (size - 1) * self.dilation
    x = jnp.pad(x, ((0, 0), (total // 2, total - total // 2), (0, 0)))  # lax's "SAME" split
    y = sum(x[:, j * self.dilation:j * self.dilation + n] * kernel[j, 0] for j in range(size))
    return y if self.bias is None else y + self.bias[...].astype(x.dtype)


class _Block(nnx.Module):
  """One dilated block: 1x1 to H, PReLU, gLN, depthwise conv, PReLU, gLN, then residual (and skip) 1x1s."""

  def __init__(self, *, bottleneck: int, hidden: int, skip: int, kernel_size: int, dilation: int, bias: bool,
               rngs: nnx.Rngs):
    self.expand = nnx.Linear(bottleneck, hidden, use_bias=bias, kernel_init=_KERNEL_INIT, rngs=rngs)
    self.prelu_expand = nnx.PReLU(PRELU_SLOPE)
    self.norm_expand = _LayerNorm(hidden, kind="gLN")
    self.depthwise = _DepthwiseConv(hidden, kernel_size, dilation=dilation, bias=bias, rngs=rngs)
    self.prelu_depthwise = nnx.PReLU(PRELU_SLOPE)
    self.norm_depthwise = _LayerNorm(hidden, kind="gLN")
    self.residual = nnx.Linear(hidden, bottleneck, use_bias=bias, kernel_init=_KERNEL_INIT, rngs=rngs)
    self.skip = nnx.Linear(hidden, skip, use_bias=bias, kernel_init=_KERNEL_INIT, rngs=rngs) if skip else None

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """``x [batch, frames, B]`` -> (``x`` plus the residual, the skip ``[batch, frames, Sc]`` or None)."""
    h = self.norm_expand(self.prelu_expand(self.expand(x)))
    h = self.norm_depthwise(self.prelu_depthwise(self.depthwise(h)))
    return x + self.residual(h), (self.skip(h) if self.skip is not None else None)


def _run_block(block: _Block, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
  return block(x)


def overlap_add(frames: jax.Array, hop_length: int) -> jax.Array:
  """Overlap-add of frames of twice the hop: ``[..., K, 2 hop] -> [..., (K + 1) hop]``."""
  *lead, k, length = frames.shape
  if length != 2 * hop_length:
    raise ParameterError(f"frames of {length} samples must be twice hop_length={hop_length}")
  halves = frames.reshape(*lead, k, 2, hop_length)
  pad = [(0, 0)] * len(lead)
  first = jnp.pad(halves[..., 0, :], pad + [(0, 1), (0, 0)])
  second = jnp.pad(halves[..., 1, :], pad + [(1, 0), (0, 0)])
  return (first + second).reshape(*lead, (k + 1) * hop_length)


def _check_sizes(sizes: dict, input_norm: str, mask_activation: str, flags: dict) -> None:
  for name, value in sizes.items():
    if name == "skip_channels":
      check_non_negative_int(name, value)
    else:
      check_positive_int(name, value)
  if sizes["filter_length"] % 2:
    raise ParameterError(f"filter_length={sizes['filter_length']!r} must be even (the encoder's stride is half of it)")
  check_choice("input_norm", input_norm, NORMS)
  check_choice("mask_activation", mask_activation, MASK_ACTIVATIONS)
  for name, value in flags.items():
    if not isinstance(value, bool):
      raise ParameterError(f"{name}={value!r} must be True or False")


class ConvTasNet(nnx.Module):
  """Conv-TasNet (Luo & Mesgarani 2019): mixture waveforms -> one waveform per target and channel.

  Every size is required: their defaults live in the experiment config
  (``configs/conv_tasnet.py``), read by `mssjax.models.get_model`. See the
  module docstring for the layout and where it deviates from the references.

  Args:
    audio_channels: ``C``, input and output channels (2 for stereo).
    n_targets: ``T``, the number of waveforms estimated per mixture.
    n_filters: ``N``, encoder filters (and decoder basis signals).
    filter_length: ``L``, their length in samples (even; the stride is ``L / 2``).
    bottleneck_channels: ``B``, channels of the residual path.
    hidden_channels: ``H``, channels inside a block.
    skip_channels: ``Sc``, channels of the skip path; 0 for none (the masks
      then read the last residual output, as Demucs v2).
    kernel_size: ``P``, the depthwise convolutions' kernel.
    n_blocks: ``X``, blocks per repeat (dilations ``1 ... 2^(X-1)``).
    n_repeats: ``R``, repeats.
    input_norm: ``"gLN"`` or ``"cLN"``, the norm before the bottleneck.
    bias: biases on the bottleneck, the blocks' convolutions and the mask
      convolution (the paper's code and asteroid: True; Demucs v2: False).
    mask_prelu: a PReLU before the mask convolution (paper's code, asteroid).
    mask_activation: ``"sigmoid"``, ``"relu"`` or ``"softmax"`` (over targets).
    remat: recompute each block's activations in the backward pass
      (`nnx.remat`) instead of storing them.
    rngs: `nnx.Rngs` for the initialisation.
  """

  domain = "waveform"

  def __init__(self, *, audio_channels: int, n_targets: int, n_filters: int, filter_length: int,
               bottleneck_channels: int, hidden_channels: int, skip_channels: int, kernel_size: int,
               n_blocks: int, n_repeats: int, input_norm: str, bias: bool, mask_prelu: bool,
               mask_activation: str, remat: bool, rngs: nnx.Rngs):
    sizes = dict(audio_channels=audio_channels, n_targets=n_targets, n_filters=n_filters,
                 filter_length=filter_length, bottleneck_channels=bottleneck_channels,
                 hidden_channels=hidden_channels, skip_channels=skip_channels, kernel_size=kernel_size,
                 n_blocks=n_blocks, n_repeats=n_repeats)
    _check_sizes(sizes, input_norm, mask_activation, dict(bias=bias, mask_prelu=mask_prelu, remat=remat))
    self.audio_channels, self.n_targets, self.n_filters = audio_channels, n_targets, n_filters
    self.filter_length, self.hop_length = filter_length, filter_length // 2
    self.skip_channels, self.mask_activation, self.remat = skip_channels, mask_activation, remat
    self.encoder = nnx.Conv(audio_channels, n_filters, (filter_length,), strides=(self.hop_length,),
                            padding="VALID", use_bias=False, kernel_init=_KERNEL_INIT, rngs=rngs)
    self.norm = _LayerNorm(n_filters, kind=input_norm)
    self.bottleneck = nnx.Linear(n_filters, bottleneck_channels, use_bias=bias, kernel_init=_KERNEL_INIT, rngs=rngs)
    self.blocks = nnx.List([
        _Block(bottleneck=bottleneck_channels, hidden=hidden_channels, skip=skip_channels, kernel_size=kernel_size,
               dilation=2 ** x, bias=bias, rngs=rngs)
        for _ in range(n_repeats) for x in range(n_blocks)])
    self.mask_prelu = nnx.PReLU(PRELU_SLOPE) if mask_prelu else None
    self.mask = nnx.Linear(skip_channels or bottleneck_channels, n_targets * n_filters, use_bias=bias,
                           kernel_init=_KERNEL_INIT, rngs=rngs)
    self.decoder = nnx.Linear(n_filters, audio_channels * filter_length, use_bias=False, kernel_init=_KERNEL_INIT,
                              rngs=rngs)

  def __call__(self, mixture: jax.Array) -> jax.Array:
    """Target waveforms of a batch of mixtures.

    Args:
      mixture: ``[batch, audio_channels, n]``, any ``n``.

    Returns:
      ``[batch, n_targets, audio_channels, n]``.
    """
    if mixture.ndim != 3 or mixture.shape[1] != self.audio_channels:
      raise ParameterError(f"mixture of shape {mixture.shape} must be [batch, {self.audio_channels}, samples]")
    b, c, n = mixture.shape
    hop = self.hop_length
    x = jnp.pad(mixture, ((0, 0), (0, 0), (hop, hop + (-n % hop))))
    w = nnx.relu(self.encoder(jnp.swapaxes(x, 1, 2)))                       # [B, K, N]
    masks = self.masks(w)                                                   # [B, K, T, N]
    frames = self.decoder(w[:, :, None] * masks)                            # [B, K, T, C * L]
    frames = frames.reshape(b, -1, self.n_targets, c, self.filter_length)
    y = overlap_add(jnp.transpose(frames, (0, 2, 3, 1, 4)), hop)             # [B, T, C, n + padding]
    return y[..., hop:hop + n]

  def masks(self, w: jax.Array) -> jax.Array:
    """The separator: encoder output ``w [batch, frames, N]`` -> masks ``[batch, frames, T, N]``."""
    x = self.bottleneck(self.norm(w))
    run = nnx.remat(_run_block) if self.remat else _run_block
    skips = None
    for block in self.blocks:
      x, skip = run(block, x)
      if skip is not None:
        skips = skip if skips is None else skips + skip
    h = skips if self.skip_channels else x
    if self.mask_prelu is not None:
      h = self.mask_prelu(h)
    logits = self.mask(h).reshape(*w.shape[:2], self.n_targets, self.n_filters)
    if self.mask_activation == "softmax":
      return jax.nn.softmax(logits, axis=2)
    if self.mask_activation == "sigmoid":
      return jax.nn.sigmoid(logits)
    return jax.nn.relu(logits)
