"""The ensemble: several separators run on the same chunk, their estimates averaged per target.

An ensemble is a `Separator` like any other (``separators.get("ensemble", config)``),
so ``python -m mssjax separate``, evaluate.py and ``python -m mssjax export``
take it by name. Its config (`ensemble_config`; ``configs/ensemble.py`` is the
example of the pretrained ``unet`` with ``hpss_repet``)::

    config.members = ("unet", "hpss_repet")     # labels, in the order of the weights
    config.member_configs.unet = <unet config>  # each member's whole config; its `method` names
    config.member_configs.hpss_repet = <...>    #   the separator, so two members may both be "unet"
    config.weights.vocals = (0.7, 0.3)          # per target, one weight per member; () equal
    config.average = "waveform"                 # or "magnitude"

A member label without an entry in ``member_configs`` must be a separator
name, and takes that separator's default config; entries of ``member_configs``
that ``members`` does not name are not built (so ``--set members=unet`` leaves
one member, as evaluate.py's ``methods`` picks from ``separators``). On the
command line ``--set member_configs.unet.weights=FILE``, ``--set
weights.vocals=0.7,0.3`` and ``--set average=magnitude`` change the config;
members of other labels or separators need a config file (``--config FILE``):
``--set`` changes keys, it never adds one.

Rules (each checked when the ensemble is built, as one `ParameterError`):

1. **Rate**: every member works at one sample rate, the ensemble's (`mssjax.separate`
   resamples the song to it once; a member cannot resample inside a compiled chunk).
2. **Targets**: the targets every member has, in the first member's order;
   each member's other stems are dropped. No common target is an error naming
   every member's targets.
3. **Weights**: per target, non-negative, not all zero, normalised to sum to one;
   a target without weights (``()``) weights its members equally.
4. **Chunking**: ``chunk_seconds`` None takes the smallest finite chunk of the
   members (a member with ``chunk_seconds=None`` takes any length), and
   ``overlap_seconds`` None that member's overlap; every member then sees the
   same chunk, so a member inside an ensemble is chunked as the ensemble is.
5. **References**: the ensemble needs references where any member does (an
   oracle member); such a member's targets must be the ensemble's.

The parameters are ``{label: member's parameters}``; ``apply`` runs every
member's ``apply`` on the chunk, then averages:

- ``"waveform"``: ``y_j = sum_i w_ij y_ij``, the weighted mean of the members'
  waveforms (what audio-separator's and UVR's "average" ensembles do).
- ``"magnitude"``: a soft mask from the weighted mean magnitudes
  ``A_j = sum_i w_ij |STFT(y_ij)|`` on the mixture's STFT ``X`` (one
  `mssjax.spectral.stft`, ``config.stft``): ``Y_j = X A_j / max(sum_k A_k, |X|)``,
  that is `mssjax.spectral.ratio_masks` (power 1) over the targets and a
  residual ``max(|X| - sum_k A_k, 0)`` whose mask is dropped. Rather than
  the mean magnitude with the mixture's phase, a mask: each estimate keeps the
  mixture's phase, no bin of a stem exceeds the mixture, and where the targets
  cover the mixture (MUSDB's four; the magnitudes of stems that add up to the
  mixture sum to at least ``|X|``) the stems add up to it; where they do not
  (a vocals-only ensemble) the residual keeps the mask from claiming the whole
  mixture. Re-masking changes even one member's estimate (its STFT magnitudes
  are not those of a masked mixture after an iSTFT), so only waveform
  averaging of one member returns that member unchanged.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax.numpy as jnp
import ml_collections
import numpy as np
from ml_collections import config_dict

from mssjax import TARGETS, spectral
from mssjax import config as config_lib
from mssjax.errors import ParameterError, check_choice, check_finite
from mssjax.separators import classical, network
from mssjax.separators.base import Separator

__all__ = ["AVERAGES", "ensemble_config", "make_ensemble_config", "build"]

AVERAGES = ("waveform", "magnitude")

ConfigDict = ml_collections.ConfigDict
MakeConfig = Callable[[str, Any], ConfigDict]


def ensemble_config(member_configs: Mapping[str, ConfigDict] | None = None) -> ConfigDict:
  """The ``ensemble`` separator's config: the pretrained ``unet`` and ``hpss_repet`` by default.

  Fields:
    method: ``"ensemble"``.
    members: the member labels, in the order of the weights.
    member_configs: ``{label: a separator's whole config}`` (its ``method`` names the separator).
    weights: ``{target: one weight per member}``; ``()``: equal weights. The
      default lists MUSDB's four targets, so ``--set weights.vocals=0.7,0.3`` works.
    average: ``"waveform"`` or ``"magnitude"`` (see the module docstring).
    stft: the STFT of magnitude averaging.
    chunk_seconds, overlap_seconds: None: the smallest finite member chunk and its overlap.

  Args:
    member_configs: the members (default: ``unet`` and ``hpss_repet``, their default configs).
  """
  if member_configs is None:
    member_configs = {"unet": network.unet_config(), "hpss_repet": classical.hpss_repet_config()}
  config = ConfigDict()
  config.method = "ensemble"
  config.members = tuple(member_configs)
  config.member_configs = ConfigDict({label: ConfigDict(c) for label, c in member_configs.items()})
  config.weights = ConfigDict({target: () for target in TARGETS})
  config.average = "waveform"
  config.stft = ConfigDict(dict(n_fft=4096, hop_length=1024))
  config.chunk_seconds = config_dict.placeholder(float)
  config.overlap_seconds = config_dict.placeholder(float)
  return config


_OPEN = ("member_configs", "weights")
"""The groups whose keys a config chooses (member labels, target names); every other key is the default's."""


def _fixed_part(config: ConfigDict) -> ConfigDict:
  return ConfigDict({key: value for key, value in config.items() if key not in _OPEN})


def make_ensemble_config(config: ConfigDict | Mapping[str, Any] | None, default: ConfigDict,
                         make_config: MakeConfig) -> ConfigDict:
  """The locked ensemble config: ``default``, a whole config, or overrides of the default.

  A whole config may list any members and targets; its other keys must be the
  default's, and each member config is checked as that separator's
  (``make_config(member.method, member)``).

  Raises:
    ParameterError: a misspelled key (the valid ones listed), a member config
      without ``method`` or of an unknown separator, or weights that are not
      tuples of numbers.
  """
  what = "ensemble config"
  if not isinstance(config, ConfigDict):
    config = config_lib.override(default, config, what=what)
  for group in _OPEN:
    if group not in config or not isinstance(config[group], ConfigDict):
      raise ParameterError(f"{what}: {group} must be a group of settings (a ConfigDict)")
  config_lib.check_same_keys(_fixed_part(config), _fixed_part(default), what=what)
  members = {}
  for label, member in config.member_configs.items():
    if not isinstance(member, ConfigDict) or "method" not in member:
      raise ParameterError(f"{what}: member_configs.{label} must be a separator's config, with its method")
    members[label] = make_config(member.method, member)
  for target, weights in config.weights.items():
    if not isinstance(weights, (tuple, list)):
      raise ParameterError(f"weights.{target}={weights!r} must be a tuple of one weight per member")
    for weight in weights:
      check_finite(f"weights.{target}", weight, minimum=0)
  out = ConfigDict(_fixed_part(config).to_dict())
  out.members = tuple(config.members) if isinstance(config.members, (tuple, list)) else config.members
  out.member_configs = ConfigDict(members)
  out.weights = ConfigDict({target: tuple(float(w) for w in weights) for target, weights in config.weights.items()})
  out.lock()
  return out


def _labels(config: ConfigDict) -> tuple[str, ...]:
  members = config.members
  if isinstance(members, str) or not isinstance(members, (tuple, list)) or not members or \
      not all(isinstance(m, str) and m for m in members):
    raise ParameterError(f"members={members!r} must be a non-empty tuple of member labels")
  if len(set(members)) != len(members):
    raise ParameterError(f"members={tuple(members)!r} names a member twice")
  return tuple(members)


def _member_config(config: ConfigDict, label: str, make_config: MakeConfig, names: list[str]) -> ConfigDict:
  """``member_configs.<label>``, or the default config of the separator named ``label``."""
  if label in config.member_configs:
    return config.member_configs[label]
  if label not in names:
    raise ParameterError(f"member {label!r} has no config (member_configs.{label}) and is not a separator name; "
                         f"member_configs holds {sorted(config.member_configs)}, separators are {names}")
  return make_config(label, None)


def _common(members: dict[str, Separator]) -> tuple[int, tuple[str, ...]]:
  """The members' one sample rate and their common targets (in the first member's order)."""
  rates = {label: m.sample_rate for label, m in members.items()}
  if len(set(rates.values())) > 1:
    listed = ", ".join(f"{label} at {rate} Hz" for label, rate in rates.items())
    raise ParameterError(f"ensemble members must work at one sample rate: {listed}")
  first = next(iter(members.values()))
  targets = tuple(t for t in first.targets if all(t in m.targets for m in members.values()))
  if not targets:
    listed = "; ".join(f"{label} {m.targets}" for label, m in members.items())
    raise ParameterError(f"ensemble members have no target in common: {listed}")
  for label, m in members.items():
    if m.needs_references and set(m.targets) != set(targets):
      raise ParameterError(f"member {label!r} is an oracle of targets {m.targets}: it needs references the "
                           f"ensemble (targets {targets}) does not have")
  return first.sample_rate, targets


def _weights(config: ConfigDict, labels: tuple[str, ...], targets: tuple[str, ...]) -> np.ndarray:
  """``[members, targets]`` float32 weights, each target's summing to one."""
  out = np.ones((len(labels), len(targets)), np.float64)
  for target, weights in config.weights.items():
    if not weights:
      continue
    if target not in targets:
      raise ParameterError(f"weights.{target} weights a target the ensemble does not have; its targets are "
                           f"{targets}")
    if len(weights) != len(labels):
      raise ParameterError(f"weights.{target}={tuple(weights)!r} must hold one weight per member {labels}")
    if not sum(weights) > 0:
      raise ParameterError(f"weights.{target}={tuple(weights)!r} must not all be zero")
    out[:, targets.index(target)] = weights
  return (out / out.sum(axis=0)).astype(np.float32)


def _chunking(config: ConfigDict, members: dict[str, Separator]) -> tuple[float | None, float]:
  """``(chunk_seconds, overlap_seconds)``: the config's, else the smallest finite member chunk and its overlap."""
  chunked = [m for m in members.values() if m.chunk_seconds is not None]
  smallest = min(chunked, key=lambda m: m.chunk_seconds) if chunked else None
  chunk = config.chunk_seconds if config.chunk_seconds is not None else \
      (smallest.chunk_seconds if smallest else None)
  overlap = config.overlap_seconds if config.overlap_seconds is not None else \
      (smallest.overlap_seconds if smallest else 0.0)
  return chunk, overlap


def build(config: ConfigDict, get: Callable[[str, ConfigDict], Separator], make_config: MakeConfig,
          names: list[str]) -> Separator:
  """The ensemble of the config's members (built with ``get``), as one `Separator`.

  Args:
    config: the checked ensemble config (`make_ensemble_config`).
    get, make_config, names: the registry's `mssjax.separators.get`, ``make_config`` and ``names``.

  Raises:
    ParameterError: a bad member list, members at different rates or without
      a common target, bad weights or a bad average (the module docstring's rules).
  """
  labels = _labels(config)
  check_choice("average", config.average, AVERAGES)
  n_fft, hop = classical.check_stft_config(config)
  members = {}
  for label in labels:
    member_config = _member_config(config, label, make_config, names)
    try:
      members[label] = get(member_config.method, member_config)
    except ParameterError as e:
      raise ParameterError(f"ensemble member {label!r} ({member_config.method}): {e}") from e
  sample_rate, targets = _common(members)
  weights = jnp.asarray(_weights(config, labels, targets))
  chunk, overlap = _chunking(config, members)
  needs_references = any(m.needs_references for m in members.values())
  picks = {label: np.asarray([m.targets.index(t) for t in targets]) for label, m in members.items()}
  orders = {label: np.asarray([targets.index(t) for t in m.targets]) for label, m in members.items()
            if m.needs_references}

  def estimates(params, mixture, references):
    """``[members, targets, 2, n]``: each member's estimates of the ensemble's targets."""
    out = []
    for label, member in members.items():
      inputs = (mixture, references[orders[label]]) if member.needs_references else (mixture,)
      out.append(member.apply(params[label], *inputs)[picks[label]])
    return jnp.stack(out)

  def apply(params, mixture, references=None):
    stems = estimates(params, mixture, references)
    if config.average == "waveform":
      return jnp.sum(weights[:, :, None, None] * stems, axis=0)
    return _magnitude_average(stems, weights, mixture, n_fft=n_fft, hop_length=hop)

  chunk_apply = apply if needs_references else (lambda params, mixture: apply(params, mixture))
  return Separator("ensemble", targets, sample_rate, config, chunk_apply,
                   params={label: m.params for label, m in members.items()}, needs_references=needs_references,
                   chunk_seconds=chunk, overlap_seconds=overlap)


def _magnitude_average(stems, weights, mixture, *, n_fft, hop_length):
  """``[targets, 2, n]``: the soft mask of the weighted mean magnitudes applied to the mixture's STFT."""
  X = spectral.stft(mixture, n_fft=n_fft, hop_length=hop_length)                       # [2, F, T]
  magnitudes = jnp.abs(spectral.stft(stems, n_fft=n_fft, hop_length=hop_length))      # [members, targets, 2, F, T]
  mean = jnp.sum(weights[:, :, None, None, None] * magnitudes, axis=0)                # [targets, 2, F, T]
  residual = jnp.maximum(jnp.abs(X) - jnp.sum(mean, axis=0), 0.0)
  masks = spectral.ratio_masks(jnp.concatenate([mean, residual[None]]), power=1.0)[:-1]
  return spectral.istft(masks * X, n_fft=n_fft, hop_length=hop_length, length=mixture.shape[-1])
