"""A trained mask network as a separator: masks on the mixture STFT, optional Wiener refinement.

``unet_separator(config)`` loads a network, from a training workdir
(``config.checkpoint``, through `mssjax.checkpoints`) or from a single weights
file (``config.weights``, `mssjax.weights`), and returns a `Separator` whose
targets, rate and STFT are those the network was trained with. Nothing here
imports the training loop.

The estimate of target ``j`` is ``M_j * X``: the network's mask times the
mixture's complex STFT, so each estimate keeps the mixture's phase (Stöter et
al. 2019, Open-Unmix). With ``wiener_iterations > 0`` the magnitudes
``M_j * |X|`` instead feed the multichannel Wiener filter of
`mssjax.filtering.wiener` (Nugraha et al. 2016; norbert), which refines phase
and inter-channel structure by EM.
"""

from __future__ import annotations

import functools
import os
import pathlib
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from ml_collections import config_dict

from mssjax import filtering, models, spectral, weights
from mssjax import config as config_lib
from mssjax.errors import CheckpointError, ParameterError
from mssjax.separators.base import Network, Separator

PRETRAINED_DIR = pathlib.Path(__file__).resolve().parents[1] / "pretrained"
PRETRAINED = PRETRAINED_DIR / "unet.safetensors"
"""The weights file installed with the package (the default network)."""


def pretrained_path(name: str) -> pathlib.Path:
  """Where the pretrained weights of architecture ``name`` are installed (`PRETRAINED` for ``"unet"``)."""
  return PRETRAINED_DIR / f"{name}.safetensors"


def unet_config() -> ml_collections.ConfigDict:
  """The ``unet`` separator's config (`network_config` of ``"unet"``)."""
  return network_config("unet")


def network_config(name: str) -> ml_collections.ConfigDict:
  """The config of the separator of architecture ``name`` (``separators.default_config(name)``).

  Fields:
    method: the architecture (`mssjax.models.names`): ``"unet"``, ``"umx"``...
    checkpoint: a training workdir to load (its best checkpoint, see ``which``);
      empty: the weights file below.
    which: ``"best"`` (falls back to the latest where no validation ran) or ``"latest"``.
    weights: a weights file (`mssjax.weights`); empty: the pretrained network
      of this architecture installed with the package (`pretrained_path`).
    chunk_seconds, overlap_seconds, wiener_iterations: separation settings;
      None (the default) takes the model's own, from its experiment config's
      ``separate`` section: the one place these defaults live.
    shifts, channel_swap: test-time averaging (`separate_waveforms`): ``shifts``
      passes at equally spaced offsets within one STFT hop, each also with the
      channels swapped if ``channel_swap``; 1 and False (one pass) by default.
  """
  config = ml_collections.ConfigDict()
  config.method = name
  config.checkpoint = ""
  config.which = "best"
  config.weights = ""
  config.chunk_seconds = config_dict.placeholder(float)
  config.overlap_seconds = config_dict.placeholder(float)
  config.wiener_iterations = config_dict.placeholder(int)
  config.shifts = 1
  config.channel_swap = False
  return config


def estimate_spectrograms(model: nnx.Module, mixture_stft: jax.Array, *, wiener_iterations: int = 0,
                          precision: str = "float32") -> jax.Array:
  """Complex target spectrograms from a mixture STFT.

  Args:
    model: a spectral network (`mssjax.models.DOMAINS`): magnitudes ->
      masks, or complex STFT -> complex masks, ``[batch, n_targets, channels, bins, frames]``.
    mixture_stft: complex ``[batch, channels, bins, frames]``.
    wiener_iterations: 0 for the masked mixture; otherwise the EM
      iterations of the multichannel Wiener filter, started from the
      estimates' magnitudes.
    precision: the network's compute dtype (`mssjax.models.PRECISIONS`); the
      masks and the filter run in float32.

  Returns:
    complex ``[batch, n_targets, channels, bins, frames]``.
  """
  estimates, magnitudes = models.spectrogram_estimates(model, mixture_stft, precision=precision)
  if not wiener_iterations:
    return estimates
  return _wiener(magnitudes, mixture_stft, wiener_iterations)


def _wiener(magnitudes: jax.Array, mixture_stft: jax.Array, iterations: int) -> jax.Array:
  """`filtering.wiener` of ``[batch, targets, ...]`` magnitude estimates, in that layout."""
  estimates = filtering.wiener(jnp.moveaxis(magnitudes, 1, 0), mixture_stft, iterations=iterations)
  return jnp.moveaxis(estimates, 0, 1)


def _one_pass(model: nnx.Module, mixture: jax.Array, *, n_fft: int, hop_length: int,
              wiener_iterations: int, precision: str) -> jax.Array:
  """One pass of the network: waveforms ``[batch, n_targets, channels, n]``."""
  n = mixture.shape[-1]
  if models.domain_of(model) == "waveform":
    waves = models.call_model(model, mixture, precision)
    if not wiener_iterations:
      return waves
    mixture_stft = spectral.stft(mixture, n_fft=n_fft, hop_length=hop_length)
    magnitudes = jnp.abs(spectral.stft(waves, n_fft=n_fft, hop_length=hop_length))
    estimates = _wiener(magnitudes, mixture_stft, wiener_iterations)
  else:
    mixture_stft = spectral.stft(mixture, n_fft=n_fft, hop_length=hop_length)
    estimates = estimate_spectrograms(model, mixture_stft, wiener_iterations=wiener_iterations, precision=precision)
  return spectral.istft(estimates, n_fft=n_fft, hop_length=hop_length, length=n)


def separate_waveforms(model: nnx.Module, mixture: jax.Array, *, n_fft: int, hop_length: int,
                       wiener_iterations: int = 0, shifts: int = 1, channel_swap: bool = False,
                       precision: str = "float32") -> jax.Array:
  """Waveform estimates ``[batch, n_targets, channels, n]`` of a mixture ``[batch, channels, n]``.

  A waveform model's output is used as it is (with ``wiener_iterations``, it
  seeds the Wiener filter through its STFT); a spectral model's masked STFT
  goes through the iSTFT. With ``shifts > 1`` or ``channel_swap`` the estimate is the mean of several
  passes of the network (test-time averaging, as Demucs' "shift trick"):
  the mixture delayed by ``k * hop_length / shifts`` samples for ``k < shifts``
  (so every pass sees the audio on another STFT frame grid), each also with
  its channels swapped where ``channel_swap``; every pass's estimate is moved
  back (and swapped back) before averaging. The passes run one after the
  other in a `jax.lax.scan`, so memory is that of one pass whatever
  ``shifts`` is (1000 passes in one batch asked for 45 GB, issue #36).
  ``precision`` is the network's compute dtype (`mssjax.models.PRECISIONS`,
  its parameters already cast); the STFT, the masks and the iSTFT run in float32.
  """
  n = mixture.shape[-1]
  if shifts == 1 and not channel_swap:
    return _one_pass(model, mixture, n_fft=n_fft, hop_length=hop_length, wiener_iterations=wiener_iterations,
                     precision=precision)
  offsets = [round(k * hop_length / shifts) for k in range(shifts)] * (2 if channel_swap else 1)
  swaps = [False] * shifts + [True] * (len(offsets) - shifts)
  padded = jnp.zeros(mixture.shape[:-1] + (n + hop_length,), mixture.dtype)
  graphdef, state = nnx.split(model)
  state = nnx.to_pure_dict(state)  # a module cannot cross into the scan's trace; its arrays can

  def separate(x):  # [batch, C, n + hop] -> [batch, targets, C, n + hop]
    return _one_pass(nnx.merge(graphdef, state), x, n_fft=n_fft, hop_length=hop_length,
                     wiener_iterations=wiener_iterations, precision=precision)

  def one_pass(total, offset_swap):
    offset, swap = offset_swap
    x = jax.lax.dynamic_update_slice_in_dim(padded, mixture, offset, axis=-1)
    out = separate(jnp.where(swap, x[:, ::-1], x))
    out = jnp.where(swap, out[:, :, ::-1], out)
    return total + jax.lax.dynamic_slice_in_dim(out, offset, n, axis=-1), None

  n_targets = jax.eval_shape(separate, padded).shape[1]
  total = jnp.zeros((mixture.shape[0], n_targets) + mixture.shape[1:], jnp.float32)
  total, _ = jax.lax.scan(one_pass, total, (jnp.asarray(offsets), jnp.asarray(swaps)))
  return total / len(offsets)


@functools.partial(jax.jit, static_argnames=("graphdef", "n_fft", "hop_length", "wiener_iterations", "shifts",
                                             "channel_swap", "precision"))
def separate_with_params(graphdef: nnx.GraphDef, params: dict, mixture: jax.Array, *, n_fft: int,
                         hop_length: int, wiener_iterations: int = 0, shifts: int = 1,
                         channel_swap: bool = False, precision: str = "float32") -> jax.Array:
  """`separate_waveforms` for a model split into ``graphdef`` (static) and ``params`` (jit-compiled).

  ``precision`` (`mssjax.models.PRECISIONS`): the network computes from a copy of
  ``params`` cast to it, as training's validation does with ``config.precision``.
  """
  model = nnx.merge(graphdef, models.cast_params(params, precision))
  return separate_waveforms(model, mixture, n_fft=n_fft, hop_length=hop_length,
                            wiener_iterations=wiener_iterations, shifts=shifts, channel_swap=channel_swap,
                            precision=precision)


def network_separator(model_config: ml_collections.ConfigDict, params: Mapping[str, Any],
                      config: ml_collections.ConfigDict | None = None) -> Separator:
  """A trained mask network as a `Separator`.

  Args:
    model_config: the experiment config the network was trained with (its
      ``targets``, ``sample_rate``, ``stft``, ``model`` and ``separate`` sections).
    params: its parameters (pure dict of arrays).
    config: the separator config (`unet_config`); its None settings are
      filled from ``model_config.separate``.

  Raises:
    ParameterError: bad separation settings.
  """
  config = unet_config() if config is None else config
  resolved = {key: model_config.separate[key] if config[key] is None else config[key]
              for key in ("chunk_seconds", "overlap_seconds", "wiener_iterations")}
  config = config_lib.override(config, resolved, what="unet config")
  shifts = int(config.shifts)
  if shifts < 1:
    raise ParameterError(f"shifts={shifts} must be at least 1 (one pass)")
  n_fft, hop_length = models.stft_settings(model_config)
  network = Network(models.model_spec(model_config).graphdef, n_fft, hop_length, int(config.wiener_iterations),
                    shifts, bool(config.channel_swap), model_config)

  def apply(params, mixture):
    return separate_with_params(network.graphdef, params, mixture[None], n_fft=n_fft, hop_length=hop_length,
                                wiener_iterations=network.wiener_iterations, shifts=shifts,
                                channel_swap=network.channel_swap)[0]

  return Separator(str(config.method), models.targets_of(model_config), int(model_config.sample_rate), config, apply,
                   params=jax.tree.map(jnp.asarray, dict(params)), chunk_seconds=float(config.chunk_seconds),
                   overlap_seconds=float(config.overlap_seconds), network=network)


def load_workdir(workdir: str | os.PathLike, *, which: str = "best") -> tuple[ml_collections.ConfigDict, dict]:
  """``(experiment config, parameters)`` of a training workdir (orbax, no training code)."""
  from mssjax import checkpoints  # pylint: disable=import-outside-toplevel  # orbax only when asked for
  model_config, restored = checkpoints.restore_model(workdir, which=which)
  return model_config, restored.params


def export_weights(workdir: str | os.PathLike, path: str | os.PathLike, *, which: str = "best",
                   storage_dtype: str = "float32") -> pathlib.Path:
  """Writes a training workdir's checkpoint as a single weights file (the shipped format).

  Args:
    workdir: the training workdir.
    path: the ``.safetensors`` file to write (e.g. `PRETRAINED`).
    which: ``"best"`` (falls back to the latest) or ``"latest"``.
    storage_dtype: "float32", "float16" or "bfloat16".

  Returns:
    ``path``. Its metadata records the step and where it came from.
  """
  from mssjax import checkpoints  # pylint: disable=import-outside-toplevel  # orbax only when asked for
  model_config, restored = checkpoints.restore_model(workdir, which=which)
  metadata = {"step": str(restored.step), "checkpoint": restored.which}
  return weights.save(path, restored.params, model_config, storage_dtype=storage_dtype, metadata=metadata)


def load_weights(path: str | os.PathLike) -> tuple[ml_collections.ConfigDict, dict]:
  """``(experiment config, parameters)`` of a weights file (`mssjax.weights`).

  Raises:
    CheckpointError: a missing, corrupt or mismatched file (the message names it).
  """
  stored = weights.read(path)
  try:
    like = models.model_spec(stored.config).abstract_params
  except (ParameterError, KeyError, AttributeError) as e:
    raise CheckpointError(f"{path}: the stored model config does not build a model ({e})") from e
  return stored.config, weights.unflatten(stored.params, like, path=path)


def stored_architecture(*, checkpoint: str = "", weights_file: str = "") -> str:
  """The architecture (``config.model.name``) of a training workdir or a weights file, read without loading it.

  Raises:
    CheckpointError: not a workdir or weights file.
  """
  from mssjax import checkpoints  # pylint: disable=import-outside-toplevel  # orbax only when asked for
  config = checkpoints.read_config(checkpoint) if checkpoint else weights.read(weights_file).config
  return str(config.model.name)


def method_of(config: ml_collections.ConfigDict | Mapping[str, Any] | None, default: str = "unet") -> str:
  """The network separator a config names: its ``method``; else the architecture of its ``checkpoint`` or
  ``weights`` (`stored_architecture`) where that can be read; else ``default``."""
  config = {} if config is None else config
  if config.get("method"):
    return str(config["method"])
  if config.get("checkpoint") or config.get("weights"):
    try:
      return stored_architecture(checkpoint=config.get("checkpoint") or "", weights_file=config.get("weights") or "")
    except CheckpointError:  # the separator's own load says what is wrong with it
      pass
  return default


def unet_separator(config: ml_collections.ConfigDict | Mapping[str, Any] | None = None) -> Separator:
  """The ``unet`` network its separator config names (`named_network`)."""
  return named_network("unet", config)


def named_network(name: str, config: ml_collections.ConfigDict | Mapping[str, Any] | None = None) -> Separator:
  """The network of architecture ``name`` that a separator config names, as a `Separator`.

  Args:
    name: the architecture (`mssjax.models.names`); the loaded network must be one.
    config: the separator config (`network_config`), or a mapping of overrides of it.

  Raises:
    CheckpointError: nothing to load where the config points, or a network of
      another architecture (the message names the separator to use).
    ParameterError: a bad config.
  """
  if not isinstance(config, ml_collections.ConfigDict):
    config = config_lib.override(network_config(name), config, what=f"{name} config")
  if config.checkpoint:
    source = str(config.checkpoint)
    model_config, params = load_workdir(config.checkpoint, which=config.which)
  else:
    path = pathlib.Path(config.weights) if config.weights else pretrained_path(name)
    if not config.weights and not path.is_file():
      raise CheckpointError(f"{path}: no pretrained {name} network is installed; pass a training workdir "
                            "(checkpoint=WORKDIR) or a weights file (weights=FILE)")
    source = str(path)
    model_config, params = load_weights(path)
  if model_config.model.name != name:
    raise CheckpointError(f"{source} holds a {model_config.model.name} network, not {name}: "
                          f"separate it with --method {model_config.model.name}")
  return network_separator(model_config, params, config)
