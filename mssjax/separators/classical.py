"""The classical recipes: ``hpss_repet`` and ``nmf``, masks on one STFT that sum to one.

Both return MUSDB18's four targets (vocals, drums, bass, other): each recipe
assigns parts of the spectrum to those instruments by how they behave, so its
targets are its own, not a setting.

- ``hpss_repet``: HPSS of the mixture (Fitzgerald 2010); bass is the harmonic
  part below a cut-off; vocals the REPET-SIM foreground (Rafii & Pardo 2012)
  of the harmonic part above it, plus the non-repeating part of the
  percussive part (the vocal residue), which drums lose; other is the rest.
- ``nmf``: frequency-informed NMF after the same first steps, in order:

  1. HPSS splits the mixture into a harmonic and a percussive part; the
     percussive part is drums, less its non-repeating part above the cut-off.
  2. Vocals first: the REPET-SIM foreground of the harmonic part above the
     cut-off (and that vocal residue). Repetition is what tells a voice from
     a guitar or keys in the same band (Rafii & Pardo 2012): band energy
     alone cannot, since both live between 200 Hz and 4 kHz.
  3. The harmonic background (the harmonic part less the voice) is factored
     by beta-NMF (Lee & Seung 2001; Fevotte & Idier 2011). A basis belongs to
     bass when at least ``bass_share`` of its energy lies below the cut-off
     (`bass_ownership`): a bass note's basis holds its fundamental there, and
     then takes its overtones above the cut-off with it; every other basis
     belongs to other. Above the cut-off the background is split between bass
     and other by the Wiener-like ratio of the two reconstructions (power
     ``mask_power``); below it, all of it is bass.

  Every stem is non-zero wherever its part is (no silent stem on real music).
  The search (benchmarks/search_classical.py) found the overtones worth
  taking only from bases that hold nearly all their energy low (``bass_share``
  0.95): a lower share hands bass the partials of other instruments that NMF
  folds into the same bases (bass 3.18 dB at 0.95, 2.65 at 0.7, on the
  training previews), and even at 0.95 the split costs other 0.2 dB against
  a plain band split (``bass_share`` above 1, hpss_repet's masks).

- ``irm1``, ``irm2``, ``ibm``, ``mwf``: the SiSEC 2018 oracles (Stoeter,
  Liutkus & Ito 2018), upper bounds; ``mixture``: the mixture as every stem.
- ``unet``: the trained network (`mssjax.models.separator.unet_separator`):
  the pretrained network installed with the package, a training workdir
  (``checkpoint``) or a weights file (``weights``).

Bass. Both recipes take it from the harmonic part below the cut-off, with a
long harmonic median filter (45 frames of 1024 samples, 1.0 s) so that only
what sustains counts as harmonic, and no multichannel Wiener post-filter: the
measurements behind these choices are in the README ("Classical recipes")
and ``benchmarks/search_classical.py``.

Masks of the classical recipes sum to one, so their stems add up to the
mixture; the optional multichannel Wiener post-filter (`mssjax.filtering`) is
followed by a mixture-consistency projection that keeps that true.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from mssjax import TARGETS, decompose, filtering, spectral
from mssjax.errors import check_memory, check_positive_int
from mssjax.separators.base import Separator

__all__ = ["hpss_repet_config", "nmf_config", "bass_ownership", "build", "add_chunking", "check_stft_config"]

# ----------------------------------------------------------------------------
# Configs.


def hpss_repet_config() -> ml_collections.ConfigDict:
  """The default ``hpss_repet`` config (how to run it and its measured SDR: ``configs/hpss_repet.py``)."""
  config = ml_collections.ConfigDict()
  config.method = "hpss_repet"
  _add_hpss_repet_front(config)
  # multichannel Wiener post-filter iterations (0: plain masks; 1 lost 0.2 dB on the training previews)
  config.wiener_iterations = 0
  add_chunking(config)
  return config


def nmf_config() -> ml_collections.ConfigDict:
  """The default ``nmf`` config (how to run it and its measured SDR: ``configs/nmf.py``)."""
  config = ml_collections.ConfigDict()
  config.method = "nmf"
  config.seed = 0
  _add_hpss_repet_front(config)  # HPSS and vocals (the REPET-SIM foreground above the cut-off) as hpss_repet
  # beta-NMF (Fevotte & Idier 2011) of the harmonic background, multiplicative updates
  config.nmf = ml_collections.ConfigDict(dict(n_components=32, beta=2.0, n_iter=100))
  # a basis goes to bass when at least this share of its energy lies below the cut-off, else to other
  # (above 1: none does, and the recipe's bass / other split is hpss_repet's)
  config.bass_share = 0.95
  # exponent of the Wiener-like bass / other split from the reconstructions
  config.mask_power = 1.0
  config.wiener_iterations = 0
  add_chunking(config)
  return config


def _add_hpss_repet_front(config):
  """The settings ``hpss_repet`` and ``nmf`` share: rate, STFT, HPSS, bass cut-off, REPET-SIM, vocals."""
  config.sample_rate = 44100
  config.stft = ml_collections.ConfigDict(dict(n_fft=4096, hop_length=1024))
  # HPSS (Fitzgerald 2010): kernels (harmonic frames, percussive bins; the harmonic one capped at the
  # mixture's frames), soft masks; 45 frames (1.0 s): only what sustains is harmonic (and bass)
  config.hpss = ml_collections.ConfigDict(dict(kernel_size=(45, 17), power=2.0, margin=1.0))
  # bass: the harmonic part below this
  config.bass_cutoff_hz = 200.0
  # REPET-SIM (Rafii & Pardo 2012) on the harmonic and on the percussive part above the cut-off
  config.repet = ml_collections.ConfigDict(dict(
      n_neighbors=100, min_distance=1.0, threshold=0.0, selection="peaks", power=2.0, margin=(1.0, 1.0)))
  # share of the percussive part's non-repeating foreground that goes to vocals (0: none)
  config.vocal_residue = 1.0


def add_chunking(config, *, chunk_seconds=30.0, overlap_seconds=1.0):
  """Songs are separated in chunks of ``chunk_seconds`` joined over ``overlap_seconds`` (`mssjax.separate`)."""
  config.chunk_seconds = chunk_seconds
  config.overlap_seconds = overlap_seconds


def check_stft_config(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """``(n_fft, hop_length)`` of a config's ``stft``, checked."""
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
  """HPSS masks; a mixture shorter than the harmonic filter gets a filter as long as itself."""
  h = config.hpss
  win_harm, win_perc = tuple(h.kernel_size)
  return decompose.hpss(S, kernel_size=(min(int(win_harm), S.shape[-1]), win_perc), power=float(h.power),
                        mask=True, margin=float(h.margin))


def _repet_foreground(S, config, hop):
  r = config.repet
  _, fg = decompose.repet_sim(S, sample_rate=config.sample_rate, hop_length=hop, n_neighbors=int(r.n_neighbors),
                              min_distance=float(r.min_distance), threshold=float(r.threshold),
                              selection=r.selection, power=float(r.power), margin=tuple(r.margin), mask=True)
  return fg


def _voice_masks(harmonic, percussive, high, config, hop):
  """``(voice_h, voice_p)``: REPET-SIM foreground masks of each HPSS part above the bass cut-off.

  ``voice_p`` (the non-repeating part of the percussive part: consonants,
  vocal onsets) is scaled by ``config.vocal_residue``.
  """
  voice_h = high * _repet_foreground(harmonic * high, config, hop)
  voice_p = high * _repet_foreground(percussive * high, config, hop) * float(config.vocal_residue)
  return voice_h, voice_p


def _bass_band(config):
  """``(low, high)`` ``[F, 1]`` masks below and above ``config.bass_cutoff_hz``."""
  low = spectral.band_mask(sample_rate=config.sample_rate, n_fft=int(config.stft.n_fft),
                           high_hz=float(config.bass_cutoff_hz))
  return low, 1.0 - low


def _hpss_repet_masks(S, config):
  """``[4, 2, F, T]`` masks (vocals, drums, bass, other) that sum to one."""
  hop = int(config.stft.hop_length)
  mask_h, mask_p = _hpss_masks(S, config)
  low, high = _bass_band(config)
  voice_h, voice_p = _voice_masks(S * mask_h, S * mask_p, high, config, hop)
  # HPSS masks with margin 1 sum to one: split each part once more.
  stems = {
      "vocals": mask_h * voice_h + mask_p * voice_p,
      "drums": mask_p * (1.0 - voice_p),
      "bass": mask_h * low,
      "other": mask_h * high * (1.0 - voice_h),
  }
  return _stack_targets(stems)


# ----------------------------------------------------------------------------
# nmf.


def bass_ownership(W: jax.Array, *, sample_rate: float, n_fft: int, cutoff_hz: float,
                   share: float) -> jax.Array:
  """``[r]`` 1.0 for the bases that hold at least ``share`` of their energy below ``cutoff_hz``, else 0.0.

  A bass note's basis holds its fundamental (and most of its energy) below
  the cut-off and its overtones above it; a guitar or piano basis holds most
  of its energy above. The owner of the whole basis takes its overtones too.

  Args:
    W: bases ``[n_bins, r]`` of an STFT of ``n_fft`` points at ``sample_rate``.
    sample_rate, n_fft: the STFT's rate (Hz) and size.
    cutoff_hz: the top of the bass band.
    share: the least share of a basis' energy (``W ** 2``) in the band.
  """
  freqs = jnp.asarray(spectral.fft_frequencies(sample_rate=sample_rate, n_fft=n_fft))
  energy = W ** 2
  low = jnp.sum(jnp.where((freqs < cutoff_hz)[:, None], energy, 0.0), axis=0)
  return (low >= share * jnp.maximum(jnp.sum(energy, axis=0), _TINY)).astype(W.dtype)


_TINY = 1e-12


def _nmf_masks(S, config):
  """``[4, 2, F, T]`` masks (vocals, drums, bass, other) that sum to one."""
  hop, n = int(config.stft.hop_length), config.nmf
  mask_h, mask_p = _hpss_masks(S, config)
  low, high = _bass_band(config)
  voice_h, voice_p = _voice_masks(S * mask_h, S * mask_p, high, config, hop)
  background = mask_h * (1.0 - voice_h)  # the harmonic part that is not the voice
  W, H = decompose.nmf(jnp.mean(S * background, axis=0), n_components=int(n.n_components), beta=float(n.beta),
                       n_iter=int(n.n_iter), key=jax.random.PRNGKey(int(config.seed)))
  bass = bass_ownership(W, sample_rate=config.sample_rate, n_fft=int(config.stft.n_fft),
                        cutoff_hz=float(config.bass_cutoff_hz), share=float(config.bass_share))
  models = jnp.stack([W @ (bass[:, None] * H), W @ ((1.0 - bass)[:, None] * H)])  # bass, other: [2, F, T]
  split = spectral.ratio_masks(models, power=float(config.mask_power))[:, None]  # [2, 1, F, T]
  # below the cut-off all is bass, as in hpss_repet; above it the bass bases take their overtones
  split = jnp.stack([low + high * split[0], high * split[1]])
  stems = {
      "vocals": mask_h * voice_h + mask_p * voice_p,
      "drums": mask_p * (1.0 - voice_p),
      "bass": background * split[0],
      "other": background * split[1],
  }
  return _stack_targets(stems)


# ----------------------------------------------------------------------------
# The recipes: masks of the mixture's magnitude applied to its STFT.


def _masking(masks_of, config):
  """``mixture [2, n] -> [4, 2, n]``: ``masks_of(|X|, config)`` applied to the mixture's STFT ``X``."""
  def separate(mixture):
    X = _analyse(mixture, config)
    return _synthesise(_apply_masks(masks_of(jnp.abs(X), config), X, config), mixture, config)
  return separate


_MASKS = {"hpss_repet": _hpss_repet_masks, "nmf": _nmf_masks}


def build(name: str, config: ml_collections.ConfigDict) -> Separator:
  """The recipe ``name`` (``"hpss_repet"`` or ``"nmf"``) built from its checked config."""
  n_fft, _ = check_stft_config(config)
  if name == "nmf":  # the rank's own memory (r x r), before any work: the least a chunk of any length needs
    rank = check_positive_int("nmf.n_components", config.nmf.n_components)
    check_memory(f"nmf.n_components={rank}",
                 decompose.nmf_memory(n_bins=n_fft // 2 + 1, n_frames=1, n_components=rank))
  recipe = _masking(_MASKS[name], config)
  return Separator(name, TARGETS, int(config.sample_rate), config, lambda params, mixture: recipe(mixture),
                   chunk_seconds=config.chunk_seconds, overlap_seconds=config.overlap_seconds)
