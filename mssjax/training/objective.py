"""The training loss: magnitude or time-domain L1 / MSE, plus weighted waveform terms from `mssjax.training.losses`.

``config.loss`` selects it (`loss_spec`); `compute_loss` is the pure function
`mssjax.training.loop`'s train step differentiates. The waveform terms go through
the differentiable iSTFT: the negative SDR, SI-SDR, ISR, SIR or SAR in dB (ISR,
SIR and SAR through BSSEval v4's distortion filters, `mssjax.training.losses.bss_eval_terms`,
one window per chunk) and the multi-resolution STFT distance. The network runs in
``config.precision`` (`mssjax.models.precision`: bfloat16 compute from float32
parameters); the STFT, the masks, the iSTFT and every term run in float32.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from mssjax import models, spectral
from mssjax.training import losses
from mssjax.errors import check_choice, check_finite, check_positive_int

WAVEFORM_TERMS = ("sdr", "si_sdr", "multi_resolution_stft", "isr", "sir", "sar")
"""Losses on the waveforms (through the differentiable iSTFT), from `mssjax.training.losses`: the negative mean
SDR, SI-SDR, ISR, SIR or SAR in dB (ISR, SIR and SAR through BSSEval v4's distortion filters, one window
per chunk), or the multi-resolution STFT distance."""
LOSS_KINDS = ("l1", "mse") + WAVEFORM_TERMS
LOSS_DOMAINS = ("magnitude", "time")
SILENCE = 1e-6
"""A target quieter than this fraction of its mixture's energy is left out of the dB terms (museval
leaves silent windows out as NaN); a chunk with such a target, or an exactly mono one (a singular
Gram matrix), is left out of the ISR, SIR and SAR terms."""


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """What the loss compares (static under jit).

  Attributes:
    kind: the main term, weight 1: ``"l1"`` or ``"mse"`` (in ``domain``) or
      one of `WAVEFORM_TERMS`.
    domain: ``"magnitude"`` (masked mixture magnitude against the target's
      STFT magnitude, as Open-Unmix) or ``"time"`` (waveforms through the
      differentiable iSTFT, as Demucs/X-UMX's time-domain term), for ``"l1"``
      and ``"mse"``.
    n_fft, hop_length: the STFT settings.
    weights: ``((term, weight), ...)``: `WAVEFORM_TERMS` added to the main
      term with these weights (``config.loss.weights``; zero weights left out).
    filters_len: taps of BSSEval's distortion filters for ISR, SIR and SAR.
    precision: the network's compute dtype (``config.precision``,
      `mssjax.models.PRECISIONS`); the loss itself is float32.
  """
  kind: str
  domain: str
  n_fft: int
  hop_length: int
  weights: tuple[tuple[str, float], ...] = ()
  filters_len: int = 512
  precision: str = "float32"


def loss_spec(config: ml_collections.ConfigDict) -> LossSpec:
  """The `LossSpec` of a config (validated)."""
  check_choice("loss.kind", config.loss.kind, LOSS_KINDS)
  check_choice("loss.domain", config.loss.domain, LOSS_DOMAINS)
  for name in config.loss.weights:
    check_choice("loss.weights", name, WAVEFORM_TERMS)
  weights = tuple((name, check_finite(f"loss.weights.{name}", config.loss.weights[name], minimum=0))
                  for name in WAVEFORM_TERMS if config.loss.weights[name])
  filters_len = check_positive_int("loss.filters_len", config.loss.filters_len)
  n_fft, hop_length = models.stft_settings(config)
  models.compute_dtype(config.precision)
  return LossSpec(config.loss.kind, config.loss.domain, n_fft, hop_length, weights, filters_len, config.precision)


def _distance(diff: jax.Array, kind: str) -> jax.Array:
  return jnp.mean(jnp.abs(diff)) if kind == "l1" else jnp.mean(jnp.square(diff))


def _masked_mean(values: jax.Array, valid: jax.Array) -> jax.Array:
  """The mean of ``values`` where ``valid`` (broadcast to their shape); 0 where none is."""
  valid = jnp.broadcast_to(valid, values.shape)
  return jnp.sum(jnp.where(valid, values, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def _bss_term(name: str, targets: jax.Array, estimates: jax.Array, audible: jax.Array, filters_len: int
              ) -> jax.Array:
  """The mean ISR, SIR or SAR (one BSSEval v4 window per chunk) over the chunks it is defined for.

  Left-out chunks are replaced by a fixed noise stand-in, so that no singular system is solved and
  their gradient is exactly zero.
  """
  channels = jnp.einsum("bsnc,bsnd->bscd", targets, targets)
  eig = jnp.linalg.eigvalsh(channels)
  valid = jnp.all(audible & (eig[..., 0] > 1e-6 * eig[..., -1]), axis=-1)                   # [B]
  stand_in = jax.random.normal(jax.random.key(0), targets.shape[1:], targets.dtype)
  refs = jnp.where(valid[:, None, None, None], targets, stand_in)
  ests = jnp.where(valid[:, None, None, None], estimates, 0.5 * stand_in + 0.5 * stand_in[::-1])
  metrics = losses.bss_eval_terms(refs, ests, filters_len=filters_len)
  return -_masked_mean(metrics[name.upper()], valid[:, None])


def _waveform_term(name: str, targets: jax.Array, estimates: jax.Array, filters_len: int) -> jax.Array:
  """One of `WAVEFORM_TERMS` for ``[B, 4, 2, n]`` waveforms."""
  targets, estimates = jnp.swapaxes(targets, -1, -2), jnp.swapaxes(estimates, -1, -2)   # museval's layout
  if name == "multi_resolution_stft":
    return jnp.mean(losses.multi_resolution_stft(targets, estimates))
  energy = jnp.sum(jnp.square(targets), axis=(-2, -1))
  audible = energy > SILENCE * jnp.sum(jnp.square(jnp.sum(targets, axis=1)), axis=(-2, -1))[:, None]
  if name in ("sdr", "si_sdr"):
    values = getattr(losses, name)(targets, estimates, eps=1e-8)
    return -_masked_mean(values, audible)
  return _bss_term(name, targets, estimates, audible, filters_len)


def compute_loss(graphdef: nnx.GraphDef, params: dict, batch: Mapping[str, jax.Array], spec: LossSpec
                 ) -> jax.Array:
  """The training loss of one batch: the main term plus the weighted waveform terms.

  Args:
    graphdef, params: the model, split (float32 parameters: a bfloat16
      ``spec.precision`` casts a copy, so their gradients are float32).
    batch: ``{"mixture": [B, 2, n], "targets": [B, 4, 2, n]}``.
    spec: a `LossSpec`.

  Returns:
    float32 scalar: a mean over the batch's examples (and every other axis), so
    the mean of the losses of equal parts of a batch is the batch's loss (which
    gradient accumulation relies on) for the L1 / MSE terms; the dB terms average
    over the audible targets, which parts of a batch may have in unequal numbers.
  """
  model = nnx.merge(graphdef, models.cast_params(params, spec.precision))
  mixture, n = batch["mixture"], batch["mixture"].shape[-1]
  terms = dict(spec.weights)
  waveform_model = models.domain_of(model) == "waveform"
  if waveform_model:
    waves = models.call_model(model, mixture, spec.precision)
  else:
    estimates, magnitudes = models.spectrogram_estimates(
        model, spectral.stft(mixture, n_fft=spec.n_fft, hop_length=spec.hop_length), precision=spec.precision)
    if spec.kind in WAVEFORM_TERMS or spec.domain == "time" or terms:
      waves = spectral.istft(estimates, n_fft=spec.n_fft, hop_length=spec.hop_length, length=n)
  if spec.kind in WAVEFORM_TERMS:
    terms[spec.kind] = terms.get(spec.kind, 0.0) + 1.0
    loss = 0.0
  elif spec.domain == "time":
    loss = _distance(waves - batch["targets"], spec.kind)
  else:
    if waveform_model:
      magnitudes = jnp.abs(spectral.stft(waves, n_fft=spec.n_fft, hop_length=spec.hop_length))
    targets = jnp.abs(spectral.stft(batch["targets"], n_fft=spec.n_fft, hop_length=spec.hop_length))
    loss = _distance(magnitudes - targets, spec.kind)
  for name, weight in terms.items():
    loss = loss + weight * _waveform_term(name, batch["targets"], waves, spec.filters_len)
  return jnp.asarray(loss, jnp.float32)
