"""The trained U-Net as a separator: masks on the mixture STFT, optional Wiener refinement.

``unet_separator(config)`` loads a training workdir (``config.checkpoint``) and
returns a `UNetSeparator` with the calling convention of `mssjax.separators`:
``separator(mixture [..., 2, n]) -> {target: [..., 2, n]}``.

The estimate of target ``j`` is ``M_j * X``: the network's mask times the
mixture's complex STFT, so each estimate keeps the mixture's phase (Stöter et
al. 2019, Open-Unmix). With ``wiener_iterations > 0`` the magnitudes
``M_j * |X|`` instead feed the multichannel Wiener filter of
`mssjax.filtering.wiener` (Nugraha et al. 2016; norbert), which refines phase
and inter-channel structure by EM.
"""

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from mssjax import TARGETS, spectral
from mssjax.errors import ParameterError


def stft_settings(config):
  """``(n_fft, hop_length)`` of a training config."""
  return int(config.stft.n_fft), int(config.stft.hop_length)


def model_bins(config):
  """Number of STFT bins the network models: those below ``config.model.bandwidth_hz`` (all if None)."""
  n_fft, _ = stft_settings(config)
  n_bins = 1 + n_fft // 2
  bandwidth = config.model.get("bandwidth_hz", None)
  if bandwidth is None:
    return n_bins
  freqs = spectral.fft_frequencies(sample_rate=config.get("sample_rate", 44100), n_fft=n_fft)
  return max(int(np.sum(freqs < bandwidth)), 1)


def estimate_spectrograms(model, mixture_stft, *, wiener_iterations=0):
  """Complex target spectrograms from a mixture STFT.

  Args:
    model: a mask network, ``[batch, channels, bins, frames]`` magnitudes ->
      ``[batch, n_targets, channels, bins, frames]`` masks.
    mixture_stft: complex ``[batch, channels, bins, frames]``.
    wiener_iterations: 0 for plain masking (mixture phase); otherwise the EM
      iterations of the multichannel Wiener filter.

  Returns:
    complex ``[batch, n_targets, channels, bins, frames]``.
  """
  masks = model(jnp.abs(mixture_stft))
  if not wiener_iterations:
    return masks * mixture_stft[:, None]
  from mssjax import filtering  # pylint: disable=import-outside-toplevel
  magnitudes = jnp.moveaxis(masks * jnp.abs(mixture_stft)[:, None], 1, 0)  # [targets, batch, ...]
  estimates = filtering.wiener(magnitudes, mixture_stft, iterations=wiener_iterations)
  return jnp.moveaxis(estimates, 0, 1)


def separate_waveforms(model, mixture, *, n_fft, hop_length, wiener_iterations=0):
  """Waveform estimates ``[batch, n_targets, channels, n]`` of a mixture ``[batch, channels, n]``."""
  mixture_stft = spectral.stft(mixture, n_fft=n_fft, hop_length=hop_length)
  estimates = estimate_spectrograms(model, mixture_stft, wiener_iterations=wiener_iterations)
  return spectral.istft(estimates, n_fft=n_fft, hop_length=hop_length, length=mixture.shape[-1])


@functools.partial(jax.jit, static_argnames=("graphdef", "n_fft", "hop_length", "wiener_iterations"))
def separate_with_params(graphdef, params, mixture, *, n_fft, hop_length, wiener_iterations=0):
  """`separate_waveforms` for a model split into ``graphdef`` (static) and ``params`` (jit-compiled)."""
  model = nnx.merge(graphdef, params)
  return separate_waveforms(model, mixture, n_fft=n_fft, hop_length=hop_length,
                            wiener_iterations=wiener_iterations)


class UNetSeparator:
  """A trained mask network with the `mssjax.separators` calling convention.

  Attributes:
    name: ``"unet"``.
    needs_references: False.
    n_parameters: the network's parameter count.
    sample_rate: the rate the network was trained at (44100).
  """

  name = "unet"
  needs_references = False

  def __init__(self, config, params, *, wiener_iterations=None, chunk_seconds=None, overlap_seconds=None):
    from mssjax import train_lib  # pylint: disable=import-outside-toplevel
    self.config = config
    self.n_fft, self.hop_length = stft_settings(config)
    self.sample_rate = int(config.get("sample_rate", 44100))
    self.graphdef = train_lib.model_graphdef(config)
    self.params = jax.tree.map(jnp.asarray, params)
    self.n_parameters = int(sum(np.size(p) for p in jax.tree.leaves(self.params)))
    sep = config.get("separate", ml_collections.ConfigDict())
    self.wiener_iterations = int(sep.get("wiener_iterations", 0) if wiener_iterations is None
                                 else wiener_iterations)
    self.chunk_seconds = float(sep.get("chunk_seconds", 12.0) if chunk_seconds is None else chunk_seconds)
    self.overlap_seconds = float(sep.get("overlap_seconds", 1.0) if overlap_seconds is None
                                 else overlap_seconds)

  def separate_chunk(self, chunk):
    """``[channels=2, n]`` numpy -> ``[n_targets, 2, n]`` numpy (one jit call, no chunking)."""
    out = separate_with_params(self.graphdef, self.params, jnp.asarray(chunk, jnp.float32)[None],
                               n_fft=self.n_fft, hop_length=self.hop_length,
                               wiener_iterations=self.wiener_iterations)
    return np.asarray(out[0])

  def __call__(self, mixture, references=None):
    """Separates ``[..., 2, n_samples]`` float32 audio at 44.1 kHz into the four targets.

    Long inputs are cut into overlapping chunks (``chunk_seconds``,
    ``overlap_seconds``) joined by windowed overlap-add, so memory stays bounded.

    Returns:
      dict ``{target: float32 [..., 2, n_samples]}`` in `mssjax.TARGETS` order.
    """
    del references
    from mssjax import separate  # pylint: disable=import-outside-toplevel
    mixture = np.asarray(mixture, dtype=np.float32)
    if mixture.ndim < 2 or mixture.shape[-2] != 2:
      raise ParameterError(f"mixture of shape {mixture.shape} must be [..., 2, n_samples]")
    flat = mixture.reshape((-1,) + mixture.shape[-2:])
    chunk = int(round(self.chunk_seconds * self.sample_rate))
    overlap = int(round(self.overlap_seconds * self.sample_rate))
    outs = [separate.separate_in_chunks(self.separate_chunk, x, chunk_samples=chunk,
                                        overlap_samples=overlap) for x in flat]
    stacked = np.stack(outs).reshape(mixture.shape[:-2] + (len(TARGETS),) + mixture.shape[-2:])
    return {target: stacked[..., i, :, :] for i, target in enumerate(TARGETS)}


def load_config(workdir):
  """The training config saved in ``workdir/config.json``."""
  path = pathlib.Path(workdir) / "config.json"
  if not path.is_file():
    raise ParameterError(f"checkpoint={str(workdir)!r} is not a training workdir (no config.json)")
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def unet_separator(config=None):
  """Builds a `UNetSeparator` from a training workdir.

  Args:
    config: a ConfigDict (or dict) with ``checkpoint`` = the training workdir;
      optional ``which`` (``"best"``, the default, falling back to
      ``"latest"``), ``wiener_iterations``, ``chunk_seconds``, ``overlap_seconds``.

  Raises:
    ParameterError: no checkpoint given, or nothing to load there.
  """
  from mssjax import train_lib  # pylint: disable=import-outside-toplevel
  config = ml_collections.ConfigDict(dict(config or {}))
  workdir = config.get("checkpoint", None)
  if not workdir:
    raise ParameterError("the unet separator needs config.checkpoint = a training workdir")
  train_config = load_config(workdir)
  params = train_lib.restore_params(train_config, workdir, which=config.get("which", "best"))
  return UNetSeparator(train_config, params, wiener_iterations=config.get("wiener_iterations", None),
                       chunk_seconds=config.get("chunk_seconds", None),
                       overlap_seconds=config.get("overlap_seconds", None))
