"""Neural separation models, built from a config by name.

``get_model(config.model, n_bins=..., rngs=...)`` looks ``config.model.name`` up in
`MODELS`; an unknown name raises a `ParameterError` listing the valid ones.
`model_spec(config)` gives what training and inference share: the model's
`nnx.GraphDef`, a compiled initialiser and the parameters' shapes, built once
per model config. Every size comes from the config (``configs/unet.py``): the
modules have no defaults of their own.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from mssjax import TARGETS, spectral
from mssjax.errors import ParameterError, check_choice, check_positive_int, check_targets
from mssjax.models import bs_roformer
from mssjax.models.conv_tasnet import ConvTasNet
from mssjax.models.precision import PRECISIONS, call_model, cast_params, compute_dtype
from mssjax.models.umx import OpenUnmix
from mssjax.models.unet import UNet, count_parameters


def _unet(model_config: ml_collections.ConfigDict, *, n_bins: int, n_targets: int, stft_bins: int,
          rngs: nnx.Rngs) -> UNet:
  del stft_bins  # the U-Net repeats its top modelled bin's mask above the band, for any height
  return UNet(
      n_bins=n_bins,
      audio_channels=model_config.audio_channels,
      n_targets=n_targets,
      features=tuple(model_config.features),
      kernel_size=tuple(model_config.kernel_size),
      up_kernel_size=tuple(model_config.up_kernel_size),
      lstm_hidden=model_config.lstm_hidden,
      mask_activation=model_config.mask_activation,
      remat=model_config.remat,
      rngs=rngs,
  )


def _bs_roformer(model_config: ml_collections.ConfigDict, *, n_bins: int, n_targets: int, stft_bins: int,
                 rngs: nnx.Rngs) -> bs_roformer.BSRoformer:
  del stft_bins  # its bands cover every modelled bin, and model.bandwidth_hz is None: all of them
  return bs_roformer.BSRoformer(
      n_bins=n_bins, audio_channels=model_config.audio_channels, n_targets=n_targets,
      band_bins=bs_roformer.band_bins_of(model_config, n_bins=n_bins), dim=model_config.dim,
      depth=model_config.depth, time_transformer_depth=model_config.time_transformer_depth,
      freq_transformer_depth=model_config.freq_transformer_depth, heads=model_config.heads,
      dim_head=model_config.dim_head, ff_mult=model_config.ff_mult,
      mask_estimator_depth=model_config.mask_estimator_depth,
      mlp_expansion_factor=model_config.mlp_expansion_factor,
      norm_each_transformer=model_config.norm_each_transformer, remat=model_config.remat, rngs=rngs)



def _umx(model_config: ml_collections.ConfigDict, *, n_bins: int, n_targets: int, stft_bins: int,
         rngs: nnx.Rngs) -> OpenUnmix:
  return OpenUnmix(
      n_bins=n_bins, stft_bins=stft_bins, audio_channels=model_config.audio_channels, n_targets=n_targets,
      hidden_size=model_config.hidden_size, n_layers=model_config.n_layers,
      unidirectional=model_config.unidirectional, joint=model_config.joint, remat=model_config.remat, rngs=rngs)


def _conv_tasnet(model_config: ml_collections.ConfigDict, *, n_bins: int, n_targets: int, stft_bins: int,
                 rngs: nnx.Rngs) -> ConvTasNet:
  del n_bins, stft_bins  # a waveform model: no spectrogram
  fields = ("audio_channels", "n_filters", "filter_length", "bottleneck_channels", "hidden_channels", "skip_channels",
            "kernel_size", "n_blocks", "n_repeats", "input_norm", "bias", "mask_prelu", "mask_activation", "remat")
  return ConvTasNet(n_targets=n_targets, rngs=rngs, **{f: model_config[f] for f in fields})


MODELS = {"unet": _unet, "umx": _umx, "bs_roformer": _bs_roformer, "conv_tasnet": _conv_tasnet}

DOMAINS = ("magnitude", "complex", "waveform")
"""What a model reads and writes, its class attribute ``domain`` (`domain_of`):

- ``"magnitude"``: mixture magnitudes ``[B, C, F, N]`` -> real masks ``[B, T, C, F, N]`` (the U-Net,
  Open-Unmix), applied to the complex mixture STFT;
- ``"complex"``: the complex mixture STFT ``[B, C, F, N]`` -> complex masks ``[B, T, C, F, N]``
  (band-split models);
- ``"waveform"``: the mixture ``[B, C, n]`` -> waveforms ``[B, T, C, n]`` (Conv-TasNet).
"""

MODEL_FIELDS = ("model", "stft", "sample_rate", "targets")
"""The top-level fields of an experiment config that define the model (and its parameters' shapes)."""


def names() -> list[str]:
  """The registered model names."""
  return sorted(MODELS)


def get_model(model_config: ml_collections.ConfigDict, *, n_bins: int, n_targets: int,
              stft_bins: int | None = None, rngs: nnx.Rngs | None = None) -> nnx.Module:
  """Builds the model ``model_config.name`` with sizes from ``model_config``.

  Args:
    model_config: the ``config.model`` ConfigDict (``name``, sizes).
    n_bins: frequency bins the network models (see `model_bins`).
    n_targets: how many targets it estimates (``len(config.targets)``).
    stft_bins: the STFT's ``1 + n_fft // 2`` bins, the masks' height (a model
      with parameters per output bin, as Open-Unmix, needs it); default ``n_bins``.
    rngs: `nnx.Rngs` for the initialisation (default ``nnx.Rngs(0)``).

  Raises:
    ParameterError: unknown name, or bad sizes.
  """
  check_choice("model.name", model_config.name, names())
  check_positive_int("n_targets", n_targets)
  return MODELS[model_config.name](model_config, n_bins=n_bins, n_targets=n_targets,
                                   stft_bins=n_bins if stft_bins is None else stft_bins,
                                   rngs=rngs if rngs is not None else nnx.Rngs(0))


def domain_of(model: nnx.Module) -> str:
  """The `DOMAINS` entry of a model (``"magnitude"`` where its class names none)."""
  domain = getattr(type(model), "domain", "magnitude")
  if domain not in DOMAINS:
    raise ParameterError(f"{type(model).__name__}.domain={domain!r} must be one of {DOMAINS}")
  return domain


def spectrogram_estimates(model: nnx.Module, mixture_stft: jax.Array, *, precision: str = "float32"
                          ) -> tuple[jax.Array, jax.Array]:
  """The complex target spectrograms of a spectral model and their magnitudes.

  Args:
    model: a ``"magnitude"`` or ``"complex"`` model (`DOMAINS`).
    mixture_stft: complex ``[B, C, F, N]``.
    precision: the model's compute dtype (`PRECISIONS`, through `call_model`);
      the masks are applied in float32 whatever it is.

  Returns:
    ``(estimates, magnitudes)``: complex and real ``[B, T, C, F, N]``. A
    magnitude model's magnitudes are its (non-negative) masks times the
    mixture's magnitude, as Open-Unmix trains them.
  """
  domain = domain_of(model)
  if domain == "magnitude":
    magnitude = jnp.abs(mixture_stft)
    masks = call_model(model, magnitude, precision)
    return masks * mixture_stft[:, None], masks * magnitude[:, None]
  if domain == "complex":
    estimates = call_model(model, mixture_stft, precision) * mixture_stft[:, None]
    return estimates, jnp.abs(estimates)
  raise ParameterError(f"{type(model).__name__} is a waveform model: it makes no masks")


def targets_of(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The target names of an experiment config (``config.targets``), checked."""
  return check_targets(config.targets, what="config.targets")


UPGRADE_DEFAULTS = (("model.remat", False), ("precision", "float32"), ("optim.accumulate_steps", 1))
"""Fields added after configs were first stored, with the value that reproduces what older runs did
(``precision`` and ``optim.accumulate_steps`` only in configs of training runs: those with ``optim``)."""


def upgrade_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """An experiment config stored by an older mssjax, in today's form (the same object where it is).

  Configs of weights files and workdirs written before ``config.targets``
  existed name no targets and hold ``model.n_targets`` (always 4): they get
  MUSDB18's four, `mssjax.TARGETS`, which is what such networks were trained on.
  Fields added since (`UPGRADE_DEFAULTS`) get the value older runs used.
  """
  if "model" not in config:
    return config
  missing = [(name, value) for name, value in UPGRADE_DEFAULTS if _lacks(config, name)]
  if "targets" in config and not missing:
    return config
  config = ml_collections.ConfigDict(config.to_dict())
  for name, value in missing:
    section, _, leaf = name.rpartition(".")
    (config[section] if section else config)[leaf] = value
  if "targets" in config:
    return config
  n_targets = config.model.get("n_targets", len(TARGETS))
  if n_targets != len(TARGETS):
    raise ParameterError(f"model.n_targets={n_targets}: a config without targets must have MUSDB18's "
                         f"{len(TARGETS)}")
  if "n_targets" in config.model:
    del config.model["n_targets"]
  config.targets = TARGETS
  return config


def _lacks(config: ml_collections.ConfigDict, name: str) -> bool:
  """Whether ``config`` lacks the `UPGRADE_DEFAULTS` field ``name`` (training fields: only a training config)."""
  section, _, leaf = name.rpartition(".")
  if section != "model" and "optim" not in config:
    return False
  return leaf not in (config[section] if section else config)


def stft_settings(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """``(n_fft, hop_length)`` of an experiment config."""
  return int(config.stft.n_fft), int(config.stft.hop_length)


def model_bins(config: ml_collections.ConfigDict) -> int:
  """Number of STFT bins the network models: those below ``config.model.bandwidth_hz`` (all if None or absent,
  as for a waveform model)."""
  n_fft, _ = stft_settings(config)
  bandwidth = config.model.get("bandwidth_hz")
  if bandwidth is None:
    return 1 + n_fft // 2
  freqs = spectral.fft_frequencies(sample_rate=config.sample_rate, n_fft=n_fft)
  return max(int(np.sum(freqs < bandwidth)), 1)


class ModelSpec(NamedTuple):
  """What a model config defines, built once per config.

  Attributes:
    graphdef: the model's `nnx.GraphDef` (static structure, no parameters).
    init: ``key -> params``: the jit-compiled initialiser (pure dict of arrays).
    abstract_params: the parameters' shapes and dtypes (`jax.ShapeDtypeStruct` leaves).
    n_parameters: scalar parameter count.
  """
  graphdef: nnx.GraphDef
  init: Callable[[jax.Array], dict]
  abstract_params: dict
  n_parameters: int


def model_spec(config: ml_collections.ConfigDict) -> ModelSpec:
  """The `ModelSpec` of an experiment config (its ``model``, ``stft`` and ``sample_rate``).

  Equal model configs give the same (cached) objects, so jit-compiled steps are reused.
  """
  return _model_spec(config_key(config, MODEL_FIELDS))


def config_key(config: ml_collections.ConfigDict, fields: tuple[str, ...]) -> str:
  """A hashable JSON key of some top-level fields of a config."""
  def plain(value: Any) -> Any:
    return value.to_dict() if hasattr(value, "to_dict") else value
  return json.dumps({f: plain(config[f]) for f in fields}, sort_keys=True, default=str)


# The initialiser runs once: XLA's cheapest compile (about 6x faster here) is the better trade.
_QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@functools.lru_cache(maxsize=16)
def _model_spec(key: str) -> ModelSpec:
  config = ml_collections.ConfigDict(json.loads(key))
  n_bins, stft_bins = model_bins(config), 1 + stft_settings(config)[0] // 2

  def create(rng: jax.Array) -> nnx.Module:
    return get_model(config.model, n_bins=n_bins, n_targets=len(targets_of(config)), stft_bins=stft_bins,
                     rngs=nnx.Rngs(params=rng))

  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: create(jax.random.key(0))))
  init = jax.jit(lambda k: nnx.to_pure_dict(nnx.split(create(k))[1]))
  abstract = nnx.to_pure_dict(abstract)
  n_parameters = int(sum(np.prod(x.shape) for x in jax.tree.leaves(abstract)))
  return ModelSpec(graphdef, init.lower(jax.random.key(0)).compile(_QUICK_COMPILE), abstract, n_parameters)


__all__ = ["DOMAINS", "MODELS", "MODEL_FIELDS", "PRECISIONS", "UPGRADE_DEFAULTS", "call_model", "cast_params",
           "compute_dtype", "domain_of", "spectrogram_estimates", "ModelSpec", "UNet", "count_parameters", "get_model", "model_bins",
           "model_spec", "names", "stft_settings", "targets_of", "upgrade_config"]
