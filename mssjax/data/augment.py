"""Training-time augmentations of chunks of stems (Open-Unmix, Demucs), as grain transforms.

`RandomChunk` turns a track index into an augmented chunk of a source's stems
(its targets, then the dataset's other stems, which join the mixture only);
`BatchRemix` permutes stems across a batch. `Augment` says which augmentations
run. Used by `mssjax.data.pipeline.make_train_loader`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import grain
import numpy as np
import soxr

from mssjax.errors import ParameterError


def fit(audio: np.ndarray, length: int) -> np.ndarray:
  """Zero-pads ``[..., n]`` at the end to ``length`` samples (tracks shorter than a chunk)."""
  missing = length - audio.shape[-1]
  if missing <= 0:
    return audio
  return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, missing)])


@dataclasses.dataclass(frozen=True)
class Augment:
  """Which augmentations `RandomChunk` applies (Open-Unmix / Demucs).

  Per stem: a random gain in [gain_low, gain_high], a random swap of the
  channels, with ``remix`` a stem from another random track (Open-Unmix's
  and Demucs's remixing), with ``sign_flip`` a random sign (Demucs), with
  ``speed`` a random playback speed in [speed_low, speed_high] (the chunk is
  read ``speed`` times longer and resampled to the chunk length, changing
  tempo and pitch together, as Demucs v2's speed augmentation). The mixture
  is always the sum of the augmented stems.

  Raises:
    ParameterError: not ``0 <= gain_low <= gain_high`` or not ``0 < speed_low <= speed_high``.
  """

  gain: bool = True
  gain_low: float = 0.25
  gain_high: float = 1.25
  channel_swap: bool = True
  remix: bool = True
  batch_remix: bool = False
  sign_flip: bool = False
  speed: bool = False
  speed_low: float = 0.9
  speed_high: float = 1.1

  def __post_init__(self) -> None:
    if not 0 <= self.gain_low <= self.gain_high:
      raise ParameterError(f"gain_low={self.gain_low}, gain_high={self.gain_high} must satisfy "
                           "0 <= gain_low <= gain_high")
    if not 0 < self.speed_low <= self.speed_high:
      raise ParameterError(f"speed_low={self.speed_low}, speed_high={self.speed_high} must satisfy "
                           "0 < speed_low <= speed_high")


class RandomChunk(grain.transforms.RandomMap):
  """Track index -> an augmented chunk ``{"mixture": [2, n], "targets": [T, 2, n]}`` (float32).

  ``T`` is ``len(source.target_names)``; the mixture is the sum of all the
  source's augmented stems (``source.stem_names``: the targets, then the others).
  With ``keep_rest`` the others' sum is also returned as ``"rest"`` ``[2, n]``
  (for `BatchRemix`, which remakes the mixture).

  Args:
    source: a track source (`mssjax.data.sources`).
    length: chunk length in samples.
    augment: an `Augment`.
    keep_rest: return ``"rest"`` too.
  """

  def __init__(self, source: Any, *, length: int, augment: Augment = Augment(), keep_rest: bool = False) -> None:
    self.source, self.length, self.augment, self.keep_rest = source, length, augment, keep_rest

  def random_map(self, element: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Track index ``element`` -> ``{"mixture": [2, length], "targets": [T, 2, length]}``, drawn from ``rng``."""
    index = int(element)
    augment = self.augment
    n_stems = len(self.source.stem_names)
    if augment.remix or augment.speed:
      others = rng.integers(0, len(self.source), size=n_stems - 1) if augment.remix else [index] * (n_stems - 1)
      indices = [index] + [int(i) for i in others]
      stems = np.concatenate([self._stem(i, s, rng) for s, i in enumerate(indices)])
    else:
      stems = self.source.chunk(index, length=self.length, rng=rng)
    out = _augment(stems, augment, rng)
    n_targets = len(self.source.target_names)
    example = {"mixture": out.sum(axis=0), "targets": out[:n_targets]}
    if self.keep_rest:
      example["rest"] = out[n_targets:].sum(axis=0) if n_stems > n_targets else np.zeros_like(example["mixture"])
    return example

  def _stem(self, index: int, stem: int, rng: np.random.Generator) -> np.ndarray:
    """``[1, 2, length]``: stem ``stem`` of track ``index`` at a random position (and speed)."""
    if not self.augment.speed:
      return self.source.chunk(index, length=self.length, rng=rng, stems=(stem,))
    speed = rng.uniform(self.augment.speed_low, self.augment.speed_high)
    read = max(int(round(self.length * speed)), 1)
    audio = self.source.chunk(index, length=read, rng=rng, stems=(stem,))[0]
    resampled = soxr.resample(audio.T, read, self.length, quality="HQ").T
    return fit(resampled[None, :, :self.length].astype(np.float32), self.length)


def _augment(stems: np.ndarray, augment: Augment, rng: np.random.Generator) -> np.ndarray:
  """Random gains (and signs) and channel swaps of ``stems [S, 2, n]``, in one pass."""
  n_stems = len(stems)
  gains = rng.uniform(augment.gain_low, augment.gain_high, size=n_stems) if augment.gain else np.ones(n_stems)
  if augment.sign_flip:
    gains = gains * np.where(rng.random(n_stems) < 0.5, -1.0, 1.0)
  swaps = rng.random(n_stems) < 0.5 if augment.channel_swap else np.zeros(n_stems, dtype=bool)
  out = np.empty(stems.shape, dtype=np.float32)
  for stem, (gain, swap) in enumerate(zip(gains, swaps)):
    np.multiply(stems[stem, ::-1] if swap else stems[stem], np.float32(gain), out=out[stem])
  return out


class BatchRemix(grain.transforms.RandomMap):
  """Demucs's remix: each stem of a batch ``[B, T, 2, n]`` (and the non-target ``"rest"``) is permuted
  across the batch; the mixture is remade as their sum."""

  def random_map(self, element: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``{"targets": [B, T, 2, n], "rest": [B, 2, n], ...}`` -> ``{"mixture": [B, 2, n], "targets": [B, T, 2, n]}``."""
    targets, rest = element["targets"], element["rest"]
    remixed = np.stack([targets[rng.permutation(len(targets)), s] for s in range(targets.shape[1])], axis=1)
    mixture = remixed.sum(axis=1) + rest[rng.permutation(len(rest))]
    return {"mixture": mixture, "targets": remixed}
