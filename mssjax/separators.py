"""The separators, chosen by name: classical recipes, oracles, the trained network.

Every separator has one calling convention::

    sep = separators.get("hpss_repet")
    stems = sep(mixture)              # mixture [..., 2, n_samples] float32
    stems["vocals"]                   # [..., 2, n_samples], likewise drums, bass, other

Oracles (``sep.needs_references``) also take the true stems
``[..., 4, 2, n_samples]`` in `mssjax.TARGETS` order. Leading dimensions are
tracks of equal length, separated in one jit-compiled call (looped with
`jax.lax.map` on CPU, where that is faster than `jax.vmap`; vmapped elsewhere).

Every separator is built from a config (`default_config`; ``configs/<name>.py``
returns the recipes' defaults): the one place each setting has its default,
part of the library so that an installed copy needs no repository. `get`
takes overrides of it (``get("hpss_repet", {"hpss.kernel_size": (31, 17)})``);
a misspelled key is an error listing the valid ones. Every config holds
``chunk_seconds`` and ``overlap_seconds``: how `mssjax.separate` cuts a song.

- ``hpss_repet``: HPSS of the mixture (Fitzgerald 2010); bass is the harmonic
  part below a cut-off; vocals the REPET-SIM foreground (Rafii & Pardo 2012)
  of the harmonic part above it, plus the non-repeating part of the
  percussive part (the vocal residue), which drums lose; other is the rest.
- ``nmf``: HPSS, then beta-NMF (Fevotte & Idier 2011) of the harmonic and the
  percussive parts; harmonic components go to bass, vocals or other by the
  frequency band that holds most of their energy, percussive ones to drums;
  Wiener-like masks from the components' reconstructions.
- ``irm1``, ``irm2``, ``ibm``, ``mwf``: the SiSEC 2018 oracles (Stoeter,
  Liutkus & Ito 2018), upper bounds; ``mixture``: the mixture as every stem.
- ``unet``: the trained network (`mssjax.models.separator.unet_separator`):
  the pretrained network installed with the package, a training workdir
  (``checkpoint``) or a weights file (``weights``).

Masks of the classical recipes sum to one, so their stems add up to the
mixture; the optional multichannel Wiener post-filter (`mssjax.filtering`) is
followed by a mixture-consistency projection that keeps that true.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
from jax.typing import ArrayLike

from mssjax import TARGETS, decompose, filtering, spectral
from mssjax import config as config_lib
from mssjax.errors import ParameterError, check_choice, check_positive_int
from mssjax.models import separator as separator_lib

__all__ = ["Separator", "names", "get", "make_config", "default_config", "hpss_repet_config", "nmf_config"]

@dataclasses.dataclass(frozen=True)
class Separator:
  """A named separator: ``separator(mixture, references=None) -> {target: stem}``.

  Attributes:
    name: the registry name.
    needs_references: True for oracles, which need the true stems.
    n_parameters: trained parameters (0 for the classical methods).
    config: the settings it was built from.
    fn: the per-track function ``[2, n] (, [4, 2, n]) -> [4, 2, n]``.
  """

  name: str
  needs_references: bool
  n_parameters: int
  config: ml_collections.ConfigDict
  fn: Callable = dataclasses.field(repr=False)

  def __post_init__(self):
    object.__setattr__(self, "_batched", jax.jit(_over_tracks(self.fn, self.needs_references)))

  def __call__(self, mixture: ArrayLike, references: ArrayLike | None = None) -> dict[str, jax.Array]:
    """``mixture [..., 2, n]`` (and, for oracles, ``references [..., 4, 2, n]``) -> ``{target: [..., 2, n]}``."""
    mixture = _check_audio(mixture, "mixture", stems=False)
    lead, n = mixture.shape[:-2], mixture.shape[-1]
    flat = mixture.reshape((-1, 2, n))
    if self.needs_references:
      if references is None:
        raise ParameterError(f"separator {self.name!r} is an oracle: pass the true stems as references")
      references = _check_audio(references, "references", stems=True)
      if references.shape != lead + (len(TARGETS), 2, n):
        raise ParameterError(
            f"references of shape {references.shape} must be {lead + (len(TARGETS), 2, n)} for the mixture")
      out = self._batched(flat, references.reshape((-1, len(TARGETS), 2, n)))
    else:
      out = self._batched(flat)
    out = out.reshape(lead + (len(TARGETS), 2, n))
    return {target: out[..., j, :, :] for j, target in enumerate(TARGETS)}


def _over_tracks(fn, needs_references):
  """``fn`` over a leading axis of tracks: looped inside the compiled call on CPU, else vmapped.

  On CPU the batched intermediates of 8 tracks (hundreds of MB) leave the
  cache, and a `jax.vmap`-ed recipe ran slower than 8 calls (0.8-0.9x, 8 x 10 s
  stereo); `jax.lax.map` runs one track at a time in one call, so 8 tracks
  cost less than 8 calls (no per-call dispatch) and each result is exactly
  that of a single call. Accelerators get the vmapped batch.
  """
  if jax.default_backend() != "cpu":
    return jax.vmap(fn)
  if needs_references:
    return lambda mixtures, references: jax.lax.map(lambda pair: fn(*pair), (mixtures, references))
  return lambda mixtures: jax.lax.map(fn, mixtures)


def _check_audio(x, name, *, stems):
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.complexfloating):
    raise ParameterError(f"{name} must be real audio, got dtype {x.dtype}")
  x = x.astype(jnp.float32)
  shape = "[..., 4, 2, n_samples]" if stems else "[..., 2, n_samples]"
  if x.ndim < (3 if stems else 2) or x.shape[-2] != 2:
    raise ParameterError(f"{name} must be stereo {shape}, got shape {x.shape}")
  if stems and x.shape[-3] != len(TARGETS):
    raise ParameterError(f"{name} must hold the {len(TARGETS)} targets {TARGETS}: {shape}, got {x.shape}")
  if x.shape[-1] == 0 or x.size == 0:
    raise ParameterError(f"{name} of shape {x.shape} is empty")
  if not bool(jnp.all(jnp.isfinite(x))):
    raise ParameterError(f"{name} contains non-finite samples (NaN or inf)")
  return x


# ----------------------------------------------------------------------------
# Configs.


def hpss_repet_config() -> ml_collections.ConfigDict:
  """The default ``hpss_repet`` config (how to run it and its measured SDR: ``configs/hpss_repet.py``)."""
  config = ml_collections.ConfigDict()
  config.method = "hpss_repet"
  config.sample_rate = 44100
  config.stft = ml_collections.ConfigDict(dict(n_fft=4096, hop_length=1024))
  # HPSS (Fitzgerald 2010): kernels (harmonic frames, percussive bins), soft masks
  config.hpss = ml_collections.ConfigDict(dict(kernel_size=(17, 17), power=2.0, margin=1.0))
  # bass: the harmonic part below this
  config.bass_cutoff_hz = 200.0
  # REPET-SIM (Rafii & Pardo 2012) on the harmonic and on the percussive part above the cut-off
  config.repet = ml_collections.ConfigDict(dict(
      n_neighbors=100, min_distance=1.0, threshold=0.0, selection="peaks", power=2.0, margin=(1.0, 1.0)))
  # share of the percussive part's non-repeating foreground that goes to vocals (0: none)
  config.vocal_residue = 1.0
  # multichannel Wiener post-filter iterations (0: plain masks)
  config.wiener_iterations = 1
  _add_chunking(config)
  return config


def nmf_config() -> ml_collections.ConfigDict:
  """The default ``nmf`` config (how to run it and its measured SDR: ``configs/nmf.py``)."""
  config = ml_collections.ConfigDict()
  config.method = "nmf"
  config.seed = 0
  config.sample_rate = 44100
  config.stft = ml_collections.ConfigDict(dict(n_fft=4096, hop_length=1024))
  config.hpss = ml_collections.ConfigDict(dict(kernel_size=(17, 17), power=2.0, margin=1.0))
  # beta-NMF (Fevotte & Idier 2011) with multiplicative updates
  config.nmf = ml_collections.ConfigDict(dict(
      harmonic_components=48, percussive_components=8, beta=2.0, n_iter=100))
  # frequency bands [low, high) in Hz where each target's components hold their energy
  config.bands = ml_collections.ConfigDict(dict(bass=(0.0, 200.0), vocals=(200.0, 4000.0),
                                                other=(4000.0, 22050.0)))
  config.band_weights = ml_collections.ConfigDict(dict(bass=1.0, vocals=1.0, other=1.0))
  # exponent of the Wiener-like masks from the reconstructions
  config.mask_power = 1.0
  config.wiener_iterations = 1
  _add_chunking(config)
  return config


def _add_chunking(config, *, chunk_seconds=30.0, overlap_seconds=1.0):
  """Songs are separated in chunks of ``chunk_seconds`` joined over ``overlap_seconds`` (`mssjax.separate`)."""
  config.chunk_seconds = chunk_seconds
  config.overlap_seconds = overlap_seconds


def default_config(name: str) -> ml_collections.ConfigDict:
  """A fresh, locked copy of the default config of separator ``name`` (part of the library, no file read).

  Raises:
    ParameterError: an unknown name (the message lists the valid ones).
  """
  check_choice("separator", name, names())
  config = _DEFAULT_CONFIGS[name]()
  config.lock()
  return config


def _oracle_config(name):
  """STFT settings of the oracles (SiSEC 2018 used a 4096-point STFT, hop 1024)."""
  config = ml_collections.ConfigDict(dict(method=name, sample_rate=44100, stft=dict(n_fft=4096, hop_length=1024),
                                          wiener_iterations=1))
  _add_chunking(config)
  return config


def _mixture_config():
  config = ml_collections.ConfigDict(dict(method="mixture"))
  _add_chunking(config)
  return config


def _check_stft_config(config):
  n_fft, hop = config.stft.n_fft, config.stft.hop_length
  check_positive_int("stft.n_fft", n_fft)
  check_positive_int("stft.hop_length", hop)
  return int(n_fft), int(hop)


# ----------------------------------------------------------------------------
# Shared steps.


def _analyse(mixture, config):
  n_fft, hop = int(config.stft.n_fft), int(config.stft.hop_length)
  return spectral.stft(mixture, n_fft=n_fft, hop_length=hop)


def _synthesise(Y, mixture, config):
  """``[4, 2, F, T]`` complex -> ``[4, 2, n]`` waveforms of the mixture's length."""
  n_fft, hop = int(config.stft.n_fft), int(config.stft.hop_length)
  return spectral.istft(Y, n_fft=n_fft, hop_length=hop, length=mixture.shape[-1])


def _apply_masks(masks, X, config):
  """Masks ``[4, ..., F, T]`` (summing to one) -> complex estimates ``[4, 2, F, T]``.

  With ``config.wiener_iterations > 0`` the masked magnitudes feed the
  multichannel Wiener filter; the estimates are then projected so that they
  add up to the mixture (the residual shared equally).
  """
  iterations = int(config.wiener_iterations)
  if not iterations:
    return masks * X
  Y = filtering.wiener(masks * jnp.abs(X), X, iterations=iterations)
  return Y + (X - jnp.sum(Y, axis=0)) / Y.shape[0]


def _stack_targets(stems):
  return jnp.stack([stems[t] for t in TARGETS])


# ----------------------------------------------------------------------------
# hpss_repet.


def _hpss_masks(S, config):
  h = config.hpss
  return decompose.hpss(S, kernel_size=tuple(h.kernel_size), power=float(h.power), mask=True,
                        margin=float(h.margin))


def _repet_foreground(S, config, hop):
  r = config.repet
  _, fg = decompose.repet_sim(S, sample_rate=config.sample_rate, hop_length=hop, n_neighbors=int(r.n_neighbors),
                              min_distance=float(r.min_distance), threshold=float(r.threshold),
                              selection=r.selection, power=float(r.power), margin=tuple(r.margin), mask=True)
  return fg


def _hpss_repet_masks(S, config):
  """``[4, 2, F, T]`` masks (vocals, drums, bass, other) that sum to one."""
  n_fft, hop = int(config.stft.n_fft), int(config.stft.hop_length)
  mask_h, mask_p = _hpss_masks(S, config)
  low = spectral.band_mask(sample_rate=config.sample_rate, n_fft=n_fft, high_hz=float(config.bass_cutoff_hz))
  high = 1.0 - low
  harmonic, percussive = S * mask_h, S * mask_p
  voice_h = high * _repet_foreground(harmonic * high, config, hop)
  voice_p = high * _repet_foreground(percussive * high, config, hop) * float(config.vocal_residue)
  # HPSS masks with margin 1 sum to one: split each part once more.
  stems = {
      "vocals": mask_h * voice_h + mask_p * voice_p,
      "drums": mask_p * (1.0 - voice_p),
      "bass": mask_h * low,
      "other": mask_h * high * (1.0 - voice_h),
  }
  return _stack_targets(stems)


def _hpss_repet(config):
  def separate(mixture):
    X = _analyse(mixture, config)
    masks = _hpss_repet_masks(jnp.abs(X), config)
    return _synthesise(_apply_masks(masks, X, config), mixture, config)
  return separate


# ----------------------------------------------------------------------------
# nmf.


def _band_shares(W, config):
  """``[r, 3]`` share of each basis' energy in the bass, vocal and other bands."""
  n_fft = int(config.stft.n_fft)
  freqs = jnp.asarray(spectral.fft_frequencies(sample_rate=config.sample_rate, n_fft=n_fft))
  energy = W ** 2  # [F, r]
  shares = []
  for target in ("bass", "vocals", "other"):
    low, high = config.bands[target]
    band = ((freqs >= low) & (freqs < high)).astype(W.dtype)
    shares.append(band @ energy)
  shares = jnp.stack(shares, axis=-1)
  return shares * jnp.asarray([float(config.band_weights[t]) for t in ("bass", "vocals", "other")])


def _nmf_masks(S, config):
  """``[4, 2, F, T]`` Wiener-like masks (power ``config.mask_power``) that sum to one."""
  mask_h, mask_p = _hpss_masks(S, config)
  keys = jax.random.split(jax.random.PRNGKey(int(config.seed)), 2)
  n = config.nmf
  W_h, H_h = decompose.nmf(jnp.mean(S * mask_h, axis=0), n_components=int(n.harmonic_components), beta=float(n.beta),
                           n_iter=int(n.n_iter), key=keys[0])
  W_p, H_p = decompose.nmf(jnp.mean(S * mask_p, axis=0), n_components=int(n.percussive_components),
                           beta=float(n.beta), n_iter=int(n.n_iter), key=keys[1])
  owner = jax.nn.one_hot(jnp.argmax(_band_shares(W_h, config), axis=-1), 3, dtype=S.dtype)  # [r, 3]
  # reconstruction of each harmonic target: sum_k W_k H_k over its components
  harmonic = jnp.einsum("fk,kt,kj->jft", W_h, H_h, owner)  # bass, vocals, other
  models = {"bass": harmonic[0], "vocals": harmonic[1], "other": harmonic[2], "drums": W_p @ H_p}
  return spectral.ratio_masks(_stack_targets(models), power=float(config.mask_power))[:, None]


def _nmf(config):
  def separate(mixture):
    X = _analyse(mixture, config)
    masks = jnp.broadcast_to(_nmf_masks(jnp.abs(X), config), (len(TARGETS),) + X.shape)
    return _synthesise(_apply_masks(masks, X, config), mixture, config)
  return separate


# ----------------------------------------------------------------------------
# Oracles.


def _oracle(kind, config):
  def separate(mixture, references):
    X = _analyse(mixture, config)
    Y = _analyse(references, config)  # [4, 2, F, T]
    if kind == "mwf":
      est = filtering.expectation_maximization(Y, X, iterations=int(config.wiener_iterations))
    elif kind == "ibm":
      # SiSEC's IBM: |Y_j| / |X| >= 0.5
      est = (jnp.abs(Y) >= 0.5 * jnp.abs(X)).astype(X.real.dtype) * X
    else:
      est = spectral.ratio_masks(jnp.abs(Y), power=1.0 if kind == "irm1" else 2.0) * X
    return _synthesise(est, mixture, config)
  return separate


def _mixture(config):
  del config
  return lambda mixture: jnp.broadcast_to(mixture, (len(TARGETS),) + mixture.shape)


# ----------------------------------------------------------------------------
# Registry.

_RECIPES = {"hpss_repet": _hpss_repet, "nmf": _nmf}
ORACLES = ("irm1", "irm2", "ibm", "mwf")
_DEFAULT_CONFIGS = {"hpss_repet": hpss_repet_config, "nmf": nmf_config, "mixture": _mixture_config,
                    "unet": separator_lib.unet_config,
                    **{name: functools.partial(_oracle_config, name) for name in ORACLES}}


def names() -> list[str]:
  """The registered separator names."""
  return list(_RECIPES) + list(ORACLES) + ["mixture", "unet"]


def make_config(name: str, config: ml_collections.ConfigDict | Mapping[str, Any] | None = None
                ) -> ml_collections.ConfigDict:
  """The locked config of separator ``name``.

  Args:
    name: a registered name.
    config: None (the default config), a whole ConfigDict of the default's
      keys, or a mapping of overrides of the default
      (``{"hpss.kernel_size": (31, 17)}``).

  Raises:
    ParameterError: an unknown name, or a key the default config does not have
      (the message lists the valid ones).
  """
  default = default_config(name)
  what = f"{name} config"
  if isinstance(config, ml_collections.ConfigDict):
    config_lib.check_same_keys(config, default, what=what)
    return config_lib.override(default, config.to_dict(), what=what)
  return config_lib.override(default, config, what=what)


def get(name: str, config: ml_collections.ConfigDict | Mapping[str, Any] | None = None) -> Any:
  """The separator registered as ``name``, built from its config (see `make_config`).

  ``"unet"`` loads the network named by its config: the pretrained one by
  default, a training workdir (``checkpoint``) or a weights file (``weights``).

  Raises:
    ParameterError: an unknown name (the message lists the valid ones) or a
      bad config.
    CheckpointError: a network that cannot be loaded.
  """
  config = make_config(name, config)
  if name == "unet":
    return separator_lib.unet_separator(config)
  if name in _RECIPES:
    _check_stft_config(config)
    return Separator(name, False, 0, config, _RECIPES[name](config))
  if name in ORACLES:
    _check_stft_config(config)
    return Separator(name, True, 0, config, _oracle(name, config))
  return Separator(name, False, 0, config, _mixture(config))
