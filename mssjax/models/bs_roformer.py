"""Band-Split RoFormer (and its Mel-band layout) in Flax NNX: complex masks from the complex STFT.

BS-RoFormer (Lu, Wang, Kong & Hung 2023, "Music Source Separation with
Band-Split RoPE Transformer") separates in the complex spectrogram domain:

1. **Band split.** The complex mixture STFT ``[C, F, N]`` is cut along
   frequency into ``K`` bands; each band's bins, channels and (real,
   imaginary) parts make one vector per frame, which a per-band RMSNorm and
   Linear project to ``dim`` features: ``[N, K, dim]``.
2. **Interleaved transformers.** ``depth`` blocks, each a transformer along
   time (the sequence of ``N`` frames, for every band) then a transformer
   along the bands (the sequence of ``K`` bands, for every frame). Every
   layer is pre-norm attention then a pre-norm GELU feed-forward, each with a
   residual; attention rotates its queries and keys by rotary position
   embeddings (RoPE, Su et al. 2021), one set of frequencies for the time
   axis and one for the band axis, shared by all blocks, and gates each
   head's output with a sigmoid of the layer's input.
3. **Mask estimation.** After a final RMSNorm, one MLP per target and band
   (``mask_estimator_depth`` Linear layers with tanh between, then a GLU)
   maps the ``dim`` features back to the band's bins x channels x (real,
   imaginary): a complex mask, multiplied with the mixture STFT by
   `mssjax.models.spectrogram_estimates`.

Mel-RoFormer (Wang, Lu & Won 2023, "Mel-Band RoFormer for Music Source
Separation") is the same network with another band layout (``bands="mel"``):
the bands are the supports of ``num_bands`` mel filters (`mssjax.spectral.mel_filters`,
librosa's Slaney filters), which overlap; a bin's mask is the mean of the
masks of the bands that hold it. Its transformers each end with an RMSNorm
and there is no final one (``norm_each_transformer``), as the reference's
MelBandRoformer.

The reference implementation is lucidrains' BS-RoFormer, version 0.4.1
(``bs_roformer/bs_roformer.py`` and ``bs_roformer/mel_band_roformer.py`` at
commit c05f497, the last before value residuals and hyper-connections; the
copies in ZFTurbo's Music-Source-Separation-Training have the same
parameters with its defaults). Parameters, their shapes and their count are
the reference's (tests/test_model_bs_roformer.py). Where we differ:

- the STFT is mssjax's (`mssjax.spectral`, Hann window, centred), outside the
  model, as for every spectral model here; the model maps the STFT to masks;
- no dropout: the train step is pure and gives the model no random key (the
  reference's MUSDB configs use 0.1; dropout has no parameters);
- no linear-attention transformer (the reference MelBandRoformer's optional
  ``linear_transformer_depth``, 0 in MSST's configs);
- the rotary embeddings' frequencies are parameters, as the reference's
  ``RotaryEmbedding.freqs`` (an ``nn.Parameter`` with ``requires_grad=False``,
  counted by ``model.parameters()``), but never trained: the model stops
  their gradient, so Adam (the configs' optimiser) leaves them as they are
  (with AdamW's weight decay, list ``time_rotary`` and ``freq_rotary`` in
  ``optim.freeze``);
- Linear layers start from PyTorch's default initialisation (uniform in
  ``±1 / sqrt(fan_in)``), so training starts where the reference's does.

MelBandRoformer's MLP makes ``mask_estimator_depth + 1`` Linear layers where
BSRoformer's makes ``mask_estimator_depth``; here ``mask_estimator_depth`` is
always the number of Linear layers (BSRoformer's meaning), so the reference
MelBandRoformer's ``mask_estimator_depth=2`` is our 3 (``configs/mel_roformer.py``).

Bands of equal width share one batched matrix product (their weights stacked
at call time), so a 62-band model compiles a handful of products rather
than hundreds; the arithmetic is the reference's.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mssjax import spectral
from mssjax.errors import ParameterError, check_choice, check_positive_int

BAND_LAYOUTS = ("bs", "mel")

DEFAULT_FREQS_PER_BANDS = (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)
"""The reference's 62-band split of the 1025 bins of a 2048-point STFT (lucidrains' ``DEFAULT_FREQS_PER_BANDS``)."""


class _Keys:
  """Initialisation keys folded from one key: ``keys()`` gives the next (cheaper to trace than an
  `nnx.Rngs` stream, whose every draw updates a variable: tracing the 62-band model took minutes)."""

  def __init__(self, key: jax.Array):
    self.key, self.count = key, 0

  def __call__(self) -> jax.Array:
    self.count += 1
    return jax.random.fold_in(self.key, self.count)


class Linear(nnx.Module):
  """``x @ kernel + bias`` (as `nnx.Linear`), initialised as PyTorch's: uniform in ``±1 / sqrt(fan_in)``."""

  def __init__(self, in_features: int, out_features: int, *, use_bias: bool = True, keys: _Keys):
    bound = 1.0 / math.sqrt(in_features)
    self.kernel = nnx.Param(jax.random.uniform(keys(), (in_features, out_features), jnp.float32, -bound, bound))
    self.bias = nnx.Param(jax.random.uniform(keys(), (out_features,), jnp.float32, -bound, bound)) if use_bias \
        else None

  def __call__(self, x: jax.Array) -> jax.Array:
    y = x @ self.kernel[...]
    return y + self.bias[...] if self.bias is not None else y


def _rms_normalise(x: jax.Array) -> jax.Array:
  """``x / max(|x|, 1e-12) * sqrt(d)`` over the last axis (the reference's ``F.normalize(x) * d ** 0.5``)."""
  squares = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(squares, 1e-24)) * math.sqrt(x.shape[-1])


class RMSNorm(nnx.Module):
  """RMS normalisation with a learned gain (the reference's ``RMSNorm``: L2-normalise, times ``sqrt(dim)``)."""

  def __init__(self, dim: int):
    self.gamma = nnx.Param(jnp.ones((dim,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    return _rms_normalise(x) * self.gamma


class RotaryEmbedding(nnx.Module):
  """Rotary position embedding (Su et al. 2021) as rotary_embedding_torch's, pairs interleaved.

  ``frequencies`` ``[dim_head // 2]`` are ``10000 ** (-2 i / dim_head)``: a
  parameter as the reference's (counted, never trained: its gradient is stopped).
  """

  def __init__(self, dim_head: int):
    self.dim_head = dim_head
    self.frequencies = nnx.Param(_rotary_frequencies(dim_head))

  def angles(self, length: int) -> tuple[jax.Array, jax.Array]:
    """``(cos, sin)`` ``[length, dim_head]`` of positions ``0 .. length - 1``, in float32.

    The angles come from the formula, which ``frequencies`` holds and which is never trained: a
    bfloat16 copy of ``frequencies`` (``config.precision``) would be off by a radian at position 250.
    """
    angles = jnp.arange(length, dtype=jnp.float32)[:, None] * _rotary_frequencies(self.dim_head)
    angles = jnp.repeat(angles, 2, axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


def _rotary_frequencies(dim_head: int) -> jax.Array:
  return 1.0 / 10000.0 ** (jnp.arange(0, dim_head, 2, dtype=jnp.float32) / dim_head)


def rotate(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """Rotates ``x [..., n, heads, d]`` by ``cos, sin [n, d]`` (cast to ``x``'s dtype): pairs ``(x1, x2) -> (-x2, x1)``."""
  pairs = x.reshape(x.shape[:-1] + (x.shape[-1] // 2, 2))
  half = jnp.stack([-pairs[..., 1], pairs[..., 0]], axis=-1).reshape(x.shape)
  return x * cos[:, None].astype(x.dtype) + half * sin[:, None].astype(x.dtype)


class Attention(nnx.Module):
  """Pre-norm multi-head self-attention with rotary queries and keys and a sigmoid gate per head."""

  def __init__(self, dim: int, heads: int, dim_head: int, *, keys: _Keys):
    self.heads, self.dim_head = heads, dim_head
    self.norm = RMSNorm(dim)
    self.to_qkv = Linear(dim, 3 * heads * dim_head, use_bias=False, keys=keys)
    self.to_gates = Linear(dim, heads, keys=keys)
    self.to_out = Linear(heads * dim_head, dim, use_bias=False, keys=keys)

  def __call__(self, x: jax.Array, rotary: tuple[jax.Array, jax.Array]) -> jax.Array:
    """``x [batch, n, dim]`` -> ``[batch, n, dim]`` (the residual is added by the caller)."""
    b, n, _ = x.shape
    x = self.norm(x)
    qkv = self.to_qkv(x).reshape(b, n, 3, self.heads, self.dim_head)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    q, k = rotate(q, *rotary), rotate(k, *rotary)
    out = jax.nn.dot_product_attention(q, k, v)                           # [b, n, heads, dim_head]
    out = out * jax.nn.sigmoid(self.to_gates(x))[..., None]
    return self.to_out(out.reshape(b, n, self.heads * self.dim_head))


class FeedForward(nnx.Module):
  """Pre-norm feed-forward: RMSNorm, Linear to ``ff_mult * dim``, GELU (exact), Linear back."""

  def __init__(self, dim: int, ff_mult: int, *, keys: _Keys):
    self.norm = RMSNorm(dim)
    self.linear_in = Linear(dim, ff_mult * dim, keys=keys)
    self.linear_out = Linear(ff_mult * dim, dim, keys=keys)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.linear_out(jax.nn.gelu(self.linear_in(self.norm(x)), approximate=False))


class Transformer(nnx.Module):
  """``depth`` residual (attention, feed-forward) layers, optionally ending with an RMSNorm."""

  def __init__(self, dim: int, depth: int, heads: int, dim_head: int, ff_mult: int, norm_output: bool, *,
               keys: _Keys):
    self.attention = nnx.List([Attention(dim, heads, dim_head, keys=keys) for _ in range(depth)])
    self.feed_forward = nnx.List([FeedForward(dim, ff_mult, keys=keys) for _ in range(depth)])
    self.norm = RMSNorm(dim) if norm_output else None

  def __call__(self, x: jax.Array, rotary: tuple[jax.Array, jax.Array]) -> jax.Array:
    for attention, feed_forward in zip(self.attention, self.feed_forward):
      x = attention(x, rotary) + x
      x = feed_forward(x) + x
    return self.norm(x) if self.norm is not None else x


class Block(nnx.Module):
  """A transformer along time (per band), then one along the bands (per frame)."""

  def __init__(self, dim: int, time_depth: int, freq_depth: int, heads: int, dim_head: int, ff_mult: int,
               norm_output: bool, *, keys: _Keys):
    self.time_transformer = Transformer(dim, time_depth, heads, dim_head, ff_mult, norm_output, keys=keys)
    self.freq_transformer = Transformer(dim, freq_depth, heads, dim_head, ff_mult, norm_output, keys=keys)

  def __call__(self, x: jax.Array, time_rotary, band_rotary) -> jax.Array:
    """``x [batch, frames, bands, dim]`` -> same shape."""
    b, n, k, d = x.shape
    x = jnp.swapaxes(x, 1, 2).reshape(b * k, n, d)
    x = self.time_transformer(x, time_rotary)
    x = jnp.swapaxes(x.reshape(b, k, n, d), 1, 2).reshape(b * n, k, d)
    return self.freq_transformer(x, band_rotary).reshape(b, n, k, d)


class BandSplit(nnx.Module):
  """Per band: RMSNorm and Linear from its ``2 * channels * width`` inputs to ``dim`` features."""

  def __init__(self, dim: int, band_inputs: Sequence[int], *, keys: _Keys):
    self.norms = nnx.List([RMSNorm(i) for i in band_inputs])
    self.linears = nnx.List([Linear(i, dim, keys=keys) for i in band_inputs])


class MaskEstimator(nnx.Module):
  """One target's per-band MLPs: ``depth`` Linear layers (hidden ``dim * mlp_expansion_factor``, tanh
  between), the last making ``2 x`` the band's inputs, halved by a GLU."""

  def __init__(self, dim: int, band_inputs: Sequence[int], depth: int, mlp_expansion_factor: int, *,
               keys: _Keys):
    hidden = dim * mlp_expansion_factor
    self.bands = nnx.List([
        nnx.List([Linear(a, b, keys=keys) for a, b in zip((dim,) + (hidden,) * (depth - 1),
                                                            (hidden,) * (depth - 1) + (2 * i,))])
        for i in band_inputs])


def mel_band_bins(*, sample_rate: float, n_fft: int, num_bands: int) -> tuple[tuple[int, ...], ...]:
  """The bins of each mel band: the support of librosa's Slaney mel filters, as MelBandRoformer takes it.

  The first filter also takes bin 0 and the last the top bin (the reference
  forces both), so every bin lies in at least one band.

  Raises:
    ParameterError: a bin in no band (too many bands for ``n_fft``), or an empty band.
  """
  support = spectral.mel_filters(sample_rate=sample_rate, n_fft=n_fft, n_mels=num_bands) > 0
  support[0, 0] = support[-1, -1] = True
  if not support.any(axis=0).all() or not support.any(axis=1).all():
    raise ParameterError(f"num_bands={num_bands} mel bands must cover every bin of n_fft={n_fft} and hold "
                         "at least one bin each; use fewer bands or a larger n_fft")
  return tuple(tuple(int(f) for f in np.flatnonzero(row)) for row in support)


def split_bins(freqs_per_bands: Sequence[int]) -> tuple[tuple[int, ...], ...]:
  """The bins of each band of a contiguous split (``freqs_per_bands`` bins each, from bin 0)."""
  edges = np.cumsum((0,) + tuple(freqs_per_bands))
  return tuple(tuple(range(int(a), int(b))) for a, b in zip(edges[:-1], edges[1:]))


def _groups(widths: Sequence[int]) -> tuple[tuple[int, tuple[int, ...]], ...]:
  """``((width, band indices), ...)``: the bands of each width, widths ascending."""
  return tuple((w, tuple(i for i, x in enumerate(widths) if x == w)) for w in sorted(set(widths)))


class BSRoformer(nnx.Module):
  """Band-Split RoFormer: complex STFT -> one complex mask per target (Lu et al. 2023).

  Every size is required: the one default of each lives in the experiment
  config (``configs/bs_roformer.py``), read by `mssjax.models.get_model`.

  Args:
    n_bins: STFT bins (``1 + n_fft // 2``); the bands must cover each.
    audio_channels: input channels (2 for stereo).
    n_targets: number of masks.
    band_bins: the bins of each band (`split_bins` or `mel_band_bins`),
      each ascending; bands may overlap (their masks are then averaged).
    dim: features per band and frame.
    depth: number of (time, band) transformer blocks.
    time_transformer_depth, freq_transformer_depth: layers of each.
    heads, dim_head: attention heads and their width.
    ff_mult: the feed-forward's expansion.
    mask_estimator_depth: Linear layers of each mask MLP.
    mlp_expansion_factor: the mask MLP's hidden width over ``dim``.
    norm_each_transformer: an RMSNorm ends every transformer and none follows
      the last block (MelBandRoformer), else one final RMSNorm (BSRoformer).
    remat: rematerialise each block in the backward pass (`nnx.remat`).
    rngs: `nnx.Rngs` for the initialisation.
  """

  domain = "complex"

  def __init__(self, *, n_bins: int, audio_channels: int, n_targets: int, band_bins: Sequence[Sequence[int]],
               dim: int, depth: int, time_transformer_depth: int, freq_transformer_depth: int, heads: int,
               dim_head: int, ff_mult: int, mask_estimator_depth: int, mlp_expansion_factor: int,
               norm_each_transformer: bool, remat: bool, rngs: nnx.Rngs):
    for name, value in (("n_bins", n_bins), ("audio_channels", audio_channels), ("n_targets", n_targets),
                        ("dim", dim), ("depth", depth), ("time_transformer_depth", time_transformer_depth),
                        ("freq_transformer_depth", freq_transformer_depth), ("heads", heads),
                        ("dim_head", dim_head), ("ff_mult", ff_mult),
                        ("mask_estimator_depth", mask_estimator_depth),
                        ("mlp_expansion_factor", mlp_expansion_factor)):
      check_positive_int(name, value)
    if dim_head % 2:
      raise ParameterError(f"dim_head={dim_head} must be even (rotary embeddings rotate pairs)")
    band_bins = tuple(tuple(int(f) for f in band) for band in band_bins)
    _check_bands(band_bins, n_bins)
    self.n_bins, self.audio_channels, self.n_targets = n_bins, audio_channels, n_targets
    self.band_bins, self.remat = band_bins, bool(remat)
    band_inputs = [2 * audio_channels * len(band) for band in band_bins]
    keys = _Keys(rngs.params())
    self.band_split = BandSplit(dim, band_inputs, keys=keys)
    self.time_rotary = RotaryEmbedding(dim_head)
    self.freq_rotary = RotaryEmbedding(dim_head)
    self.blocks = nnx.List([Block(dim, time_transformer_depth, freq_transformer_depth, heads, dim_head, ff_mult,
                                  norm_each_transformer, keys=keys) for _ in range(depth)])
    self.final_norm = None if norm_each_transformer else RMSNorm(dim)
    self.mask_estimators = nnx.List([MaskEstimator(dim, band_inputs, mask_estimator_depth, mlp_expansion_factor,
                                                   keys=keys) for _ in range(n_targets)])

  def __call__(self, mixture_stft: jax.Array) -> jax.Array:
    """Complex masks for a batch of mixture STFTs.

    Args:
      mixture_stft: complex ``[batch, audio_channels, n_bins, frames]``.

    Returns:
      complex masks ``[batch, n_targets, audio_channels, n_bins, frames]``.
    """
    b, c, f, n = mixture_stft.shape
    if c != self.audio_channels or f != self.n_bins:
      raise ParameterError(f"mixture_stft of shape {mixture_stft.shape} must be [batch, {self.audio_channels}, "
                           f"{self.n_bins}, frames]")
    x = jnp.stack([jnp.real(mixture_stft), jnp.imag(mixture_stft)], axis=-1)    # [b, c, f, n, 2]
    # the parameters' dtype: bfloat16 under config.precision="bfloat16" (mssjax.models.precision casts them;
    # a complex STFT has no bfloat16 form, so its real view is cast here)
    dtype = self.band_split.linears[0].kernel[...].dtype
    x = jnp.transpose(x, (0, 3, 2, 1, 4)).astype(dtype)                        # [b, n, f, c, 2]: (f s c) per band
    h = self._split(x)                                                         # [b, n, bands, dim]
    time_rotary = self.time_rotary.angles(n)
    band_rotary = self.freq_rotary.angles(len(self.band_bins))
    run = nnx.remat(_run_block) if self.remat else _run_block
    for block in self.blocks:
      h = run(block, h, time_rotary, band_rotary)
    if self.final_norm is not None:
      h = self.final_norm(h)
    masks = self._masks(h)                                                     # [targets, b, n, f, c]
    return jnp.transpose(masks, (1, 0, 4, 3, 2))

  def _split(self, x: jax.Array) -> jax.Array:
    """``[b, n, f, c, 2]`` -> band features ``[b, n, bands, dim]`` (bands of one width in one product)."""
    b, n = x.shape[:2]
    outs, order = [], []
    for width, bands in _groups([len(band) for band in self.band_bins]):
      index = np.array([self.band_bins[k] for k in bands])                     # [g, width]
      inputs = x[:, :, index].reshape(b, n, len(bands), -1)                    # [b, n, g, width * c * 2]
      gamma = jnp.stack([self.band_split.norms[k].gamma[...] for k in bands])
      kernel = jnp.stack([self.band_split.linears[k].kernel[...] for k in bands])
      bias = jnp.stack([self.band_split.linears[k].bias[...] for k in bands])
      outs.append(jnp.einsum("bngi,gio->bngo", _rms_normalise(inputs) * gamma, kernel) + bias)
      order.extend(bands)
    return jnp.take(jnp.concatenate(outs, axis=2), np.argsort(order), axis=2)

  def _masks(self, h: jax.Array) -> jax.Array:
    """Band features ``[b, n, bands, dim]`` -> complex masks ``[targets, b, n, f, c]``."""
    b, n = h.shape[:2]
    c = self.audio_channels
    values, bins = [], []
    for width, bands in _groups([len(band) for band in self.band_bins]):
      y = jnp.broadcast_to(h[:, :, np.array(bands)], (self.n_targets,) + h.shape[:2] + (len(bands), h.shape[-1]))
      layers = [[estimator.bands[k][i] for estimator in self.mask_estimators for k in bands]
                for i in range(len(self.mask_estimators[0].bands[0]))]        # [layer][target * band]
      y = y.reshape(self.n_targets, b, n, len(bands), -1)
      for i, linears in enumerate(layers):
        if i:
          y = jnp.tanh(y)
        kernel = jnp.stack([lin.kernel[...] for lin in linears]).reshape((self.n_targets, len(bands)) +
                                                                           linears[0].kernel.shape)
        bias = jnp.stack([lin.bias[...] for lin in linears]).reshape(self.n_targets, len(bands), -1)
        y = jnp.einsum("tbngi,tgio->tbngo", y, kernel) + bias[:, None, None]
      y = jax.nn.glu(y, axis=-1).reshape(self.n_targets, b, n, len(bands), width, c, 2)
      y = y.astype(jnp.float32)  # complex masks from float32 parts, whatever the compute dtype
      values.append(jax.lax.complex(y[..., 0], y[..., 1]).reshape(self.n_targets, b, n, len(bands) * width, c))
      bins.extend(f for k in bands for f in self.band_bins[k])
    values = jnp.concatenate(values, axis=3)
    bins = np.array(bins)
    counts = np.bincount(bins, minlength=self.n_bins)
    if np.all(counts == 1):
      return jnp.take(values, np.argsort(bins), axis=3)
    summed = jnp.zeros(values.shape[:3] + (self.n_bins, c), values.dtype).at[:, :, :, bins].add(values)
    return summed / counts[:, None].astype(np.float32)


def _run_block(block: Block, h: jax.Array, time_rotary, band_rotary) -> jax.Array:
  return block(h, time_rotary, band_rotary)


def _check_bands(band_bins: tuple[tuple[int, ...], ...], n_bins: int) -> None:
  if len(band_bins) < 2:
    raise ParameterError(f"{len(band_bins)} band(s): a band-split model needs at least two")
  covered = np.zeros(n_bins, bool)
  for band in band_bins:
    if not band or list(band) != sorted(set(band)) or band[0] < 0 or band[-1] >= n_bins:
      raise ParameterError(f"band {band!r} must be ascending bins in [0, {n_bins})")
    covered[list(band)] = True
  if not covered.all():
    raise ParameterError(f"the bands leave bins {np.flatnonzero(~covered)[:8].tolist()}... of {n_bins} uncovered")


def band_bins_of(model_config, *, n_bins: int) -> tuple[tuple[int, ...], ...]:
  """The band layout of a ``bs_roformer`` model config (``bands``: ``"bs"`` or ``"mel"``).

  ``"bs"``: contiguous bands of ``freqs_per_bands`` bins (their sum must be
  ``n_bins``); ``"mel"``: the supports of ``num_bands`` mel filters of
  ``n_fft = 2 (n_bins - 1)`` at ``sample_rate``. The other layout's fields must be None.

  Raises:
    ParameterError: a bad layout.
  """
  check_choice("model.bands", model_config.bands, BAND_LAYOUTS)
  if model_config.bandwidth_hz is not None:
    raise ParameterError(f"model.bandwidth_hz={model_config.bandwidth_hz!r} must be None: the bands of a "
                         "band-split model cover every bin")
  if model_config.bands == "bs":
    _check_unused(model_config, ("num_bands", "sample_rate"), "bs")
    freqs = tuple(model_config.freqs_per_bands or ())
    if not freqs or any(not isinstance(w, int) or w <= 0 for w in freqs) or sum(freqs) != n_bins:
      raise ParameterError(f"model.freqs_per_bands={freqs!r} must be positive integers that sum to the "
                           f"{n_bins} bins of the STFT")
    return split_bins(freqs)
  _check_unused(model_config, ("freqs_per_bands",), "mel")
  num_bands = check_positive_int("model.num_bands", model_config.num_bands)
  if model_config.sample_rate is None:
    raise ParameterError("model.sample_rate=None must be the sample rate with bands='mel'")
  return mel_band_bins(sample_rate=float(model_config.sample_rate), n_fft=2 * (n_bins - 1), num_bands=num_bands)


def _check_unused(model_config, names: tuple[str, ...], layout: str) -> None:
  for name in names:
    if model_config[name] is not None:
      raise ParameterError(f"model.{name}={model_config[name]!r} must be None with bands={layout!r} "
                           "(it belongs to the other layout)")
