"""The oracles of SiSEC 2018 (Stöter, Liutkus & Ito 2018) and the mixture baseline.

The oracles are upper bounds: they are given the true stems, of any number
and names (``config.targets``), and build masks from them on the mixture's
STFT (4096 points, hop 1024, as SiSEC 2018):

- ``irm1``, ``irm2``: ratio masks of the stems' magnitudes to the power 1 or 2;
- ``ibm``: the binary mask ``|Y_j| >= 0.5 |X|``;
- ``mwf``: the multichannel Wiener filter of the true stems' spatial
  covariances (`mssjax.filtering.expectation_maximization`).

``mixture`` returns the mixture as every stem: the floor every method must beat.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import ml_collections

from mssjax import TARGETS, filtering, spectral
from mssjax.separators import classical
from mssjax.separators.base import Separator

__all__ = ["ORACLES", "oracle_config", "mixture_config", "build_oracle", "build_mixture"]

ORACLES = ("irm1", "irm2", "ibm", "mwf")


def oracle_config(name: str) -> ml_collections.ConfigDict:
  """The default config of oracle ``name``: its targets and STFT."""
  config = ml_collections.ConfigDict(dict(method=name, targets=TARGETS, sample_rate=44100,
                                          stft=dict(n_fft=4096, hop_length=1024), wiener_iterations=1))
  classical.add_chunking(config)
  return config


def mixture_config() -> ml_collections.ConfigDict:
  """The default ``mixture`` config: its targets (each gets the whole mixture)."""
  config = ml_collections.ConfigDict(dict(method="mixture", targets=TARGETS, sample_rate=44100))
  classical.add_chunking(config)
  return config


def _oracle(kind, config, mixture, references):
  n_fft, hop = classical.check_stft_config(config)
  X = spectral.stft(mixture, n_fft=n_fft, hop_length=hop)
  Y = spectral.stft(references, n_fft=n_fft, hop_length=hop)  # [targets, 2, F, T]
  if kind == "mwf":
    est = filtering.expectation_maximization(Y, X, iterations=int(config.wiener_iterations))
  elif kind == "ibm":
    est = (jnp.abs(Y) >= 0.5 * jnp.abs(X)).astype(X.real.dtype) * X
  else:
    est = spectral.ratio_masks(jnp.abs(Y), power=1.0 if kind == "irm1" else 2.0) * X
  return spectral.istft(est, n_fft=n_fft, hop_length=hop, length=mixture.shape[-1])


def build_oracle(name: str, config: ml_collections.ConfigDict) -> Separator:
  """Oracle ``name`` (one of `ORACLES`) built from its config."""
  classical.check_stft_config(config)
  oracle = functools.partial(_oracle, name, config)
  return Separator(name, tuple(config.targets), int(config.sample_rate), config,
                   lambda params, mixture, references: oracle(mixture, references), needs_references=True,
                   chunk_seconds=config.chunk_seconds, overlap_seconds=config.overlap_seconds)


def build_mixture(name: str, config: ml_collections.ConfigDict) -> Separator:
  """The mixture as each of ``config.targets``."""
  n_targets = len(config.targets)
  return Separator(name, tuple(config.targets), int(config.sample_rate), config,
                   lambda params, mixture: jnp.broadcast_to(mixture, (n_targets,) + mixture.shape),
                   chunk_seconds=config.chunk_seconds, overlap_seconds=config.overlap_seconds)
