"""Training batches and validation tracks, by ``config.data.name``.

- ``"musdb"``: the grain pipeline over a dataset folder in any layout
  (musdb18hq, trackfolder, sourcefolder) or the MUSDB18 TFDS dataset
  (`mssjax.data.pipeline`);
- ``"synthetic"``: generated songs (`mssjax.data.generate`), deterministic,
  for tests and demos; no files needed.

Both follow the experiment's ``config.targets`` (`pipeline.targets_of`; MUSDB18's
four by default). `make_train_iterator(config)` gives an endless iterator of batches
``{"mixture": float32 [B, 2, n], "targets": float32 [B, len(config.targets), 2, n]}`` with
``get_state()`` / ``set_state()`` (grain's iterator protocol, so one
checkpoint path serves both), where ``B`` is this JAX process's share of
``config.data.batch_size``. `validation_tracks(config)` gives the whole tracks
training is validated on.
"""

from __future__ import annotations

import json
from typing import Callable, Iterator, NamedTuple

import jax
import ml_collections
import numpy as np

from mssjax import TARGETS
from mssjax.data import generate, layouts, pipeline
from mssjax.errors import check_choice, check_positive_int


class SyntheticIterator:
  """Deterministic training batches of generated songs.

  Example ``i`` of the stream is the song of seed ``seed * 1_000_003 + i``
  (`generate.generate_song` with the targets as its stems), so the stream is
  reproducible and its state is one integer. The state
  methods follow grain's iterators, so the same checkpoint code handles both.

  Sharded (one shard per JAX process), the stream is cut in global batches of
  ``batch_size * shard_count`` examples and shard ``k`` takes the ``k``-th
  ``batch_size`` of each: the shards are disjoint, together they are the
  unsharded stream of global batches, and the global batch that
  ``jax.make_array_from_process_local_data`` assembles from them (process
  order) is the one a single process would read.

  Args:
    seconds: length of each example.
    batch_size: examples per batch (of this shard).
    seed: the stream's seed.
    sample_rate: Hz.
    shard_index, shard_count: this shard and the number of shards.
    targets: the stem names, in batch order.
  """

  def __init__(self, *, seconds: float, batch_size: int, seed: int = 0, sample_rate: int = 44100,
               shard_index: int = 0, shard_count: int = 1, targets: tuple[str, ...] = TARGETS):
    self.seconds, self.batch_size, self.seed, self.sample_rate = seconds, batch_size, seed, sample_rate
    self.targets = layouts.check_targets(targets)
    self.shard_index, self.shard_count = shard_index, shard_count
    self.index = 0

  def __iter__(self) -> "SyntheticIterator":
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    first = self.index * self.shard_count + self.shard_index * self.batch_size
    examples = [self.example(self.seed * 1_000_003 + first + i) for i in range(self.batch_size)]
    self.index += self.batch_size
    return {k: np.stack([e[k] for e in examples]) for k in ("mixture", "targets")}

  def example(self, seed: int) -> dict[str, np.ndarray]:
    """The generated song of ``seed``: ``{"mixture": [2, n], "targets": [len(targets), 2, n]}``."""
    song = generate.generate_song(seed=seed, seconds=self.seconds, sample_rate=self.sample_rate,
                                  stems=self.targets)
    return {"mixture": song["mixture"], "targets": np.stack([song[t] for t in self.targets])}

  def get_state(self) -> bytes:
    return json.dumps({"index": self.index}).encode()

  def set_state(self, state: bytes) -> None:
    self.index = int(json.loads(state)["index"])

  def start_prefetch(self) -> None:
    """Nothing to prefetch (grain's checkpoint handler calls this after a restore)."""


def local_batch_size(config: ml_collections.ConfigDict) -> int:
  """This process's share of the global ``config.data.batch_size``."""
  return check_positive_int("data.batch_size", config.data.batch_size) // jax.process_count()


def _synthetic_loader(config: ml_collections.ConfigDict, *, seed: int) -> Iterator[dict[str, np.ndarray]]:
  return SyntheticIterator(seconds=config.data.chunk_seconds, seed=seed, batch_size=local_batch_size(config),
                           sample_rate=config.sample_rate, shard_index=jax.process_index(),
                           shard_count=jax.process_count(), targets=pipeline.targets_of(config))


def _musdb_loader(config: ml_collections.ConfigDict, *, seed: int) -> Iterator[dict[str, np.ndarray]]:
  data = ml_collections.ConfigDict(config.data.to_dict())
  data.batch_size = local_batch_size(config)
  return iter(pipeline.make_train_loader(data, seed=seed, targets=pipeline.targets_of(config)))


LOADERS: dict[str, Callable[..., Iterator[dict[str, np.ndarray]]]] = {
    "synthetic": _synthetic_loader, "musdb": _musdb_loader}
"""``config.data.name`` -> ``loader(config, seed=...)``: an iterator of batches with ``get_state`` /
``set_state``."""


def check_name(config: ml_collections.ConfigDict) -> None:
  """Raises `ParameterError` unless ``config.data.name`` is a registered loader."""
  check_choice("data.name", config.data.name, sorted(LOADERS))


def make_train_iterator(config: ml_collections.ConfigDict, *, seed: int | None = None
                        ) -> Iterator[dict[str, np.ndarray]]:
  """The training batch iterator named by ``config.data.name`` (seed: ``config.seed`` by default)."""
  check_name(config)
  return LOADERS[config.data.name](config, seed=int(config.seed if seed is None else seed))


class ValidationTrack(NamedTuple):
  """A whole validation track.

  Attributes:
    name: the track's name.
    mixture: float32 ``[2, n]``.
    targets: float32 ``[len(config.targets), 2, n]`` in ``config.targets`` order.
  """
  name: str
  mixture: np.ndarray
  targets: np.ndarray


def _synthetic_tracks(config: ml_collections.ConfigDict) -> list[ValidationTrack]:
  songs = SyntheticIterator(seconds=config.eval.seconds, batch_size=1, seed=int(config.seed) + 7919,
                            sample_rate=config.sample_rate, targets=pipeline.targets_of(config))
  count = int(config.eval.max_tracks) or 1
  tracks = []
  for seed in range(10_000_000, 10_000_000 + count):
    song = songs.example(seed)
    tracks.append(ValidationTrack(f"generated-{seed}", song["mixture"], song["targets"]))
  return tracks


def _musdb_tracks(config: ml_collections.ConfigDict) -> list[ValidationTrack]:
  tracks = pipeline.make_eval_source(config.data, targets=pipeline.targets_of(config))
  count = min(len(tracks), int(config.eval.max_tracks)) if config.eval.max_tracks else len(tracks)
  return [ValidationTrack(t["name"], t["mixture"], t["targets"]) for t in (tracks[i] for i in range(count))]


VALIDATION_TRACKS: dict[str, Callable[[ml_collections.ConfigDict], list[ValidationTrack]]] = {
    "synthetic": _synthetic_tracks, "musdb": _musdb_tracks}


def validation_tracks(config: ml_collections.ConfigDict) -> list[ValidationTrack]:
  """The validation tracks of ``config.data.name`` (at most ``config.eval.max_tracks``; 0: all).

  Generated songs (``"synthetic"``) are ``config.eval.seconds`` long; a dataset's
  are chosen by ``data.eval_subset`` / ``data.eval_split`` and ``data.valid_*``
  (`mssjax.data.splits`: a valid/ folder, a list file, a seeded fraction, or
  MUSDB18's 14 validation tracks for MUSDB18).
  """
  check_name(config)
  return VALIDATION_TRACKS[config.data.name](config)


__all__ = ["LOADERS", "SyntheticIterator", "ValidationTrack", "local_batch_size", "make_train_iterator",
           "validation_tracks"]

