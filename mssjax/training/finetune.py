"""Fine-tuning: starting from a weights file of another model, and keeping parameters fixed.

``config.init_weights`` names a weights file (`mssjax.weights`) of the same STFT and
rate; `initial_params` takes every parameter whose path and shape fit the model
being trained, so MUSDB18's 4-target network seeds a 2- or 6-target one (all but
the output head), and the rest start fresh. ``config.optim.freeze`` lists parameter
path prefixes that are not trained (`freeze_labels`, for `optax.multi_transform`).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import jax
import ml_collections
import numpy as np

from mssjax import config as config_lib
from mssjax import models, weights
from mssjax.errors import CheckpointError, ParameterError

__all__ = ["InitialParams", "initial_params", "describe_initial", "freeze_labels", "check_freeze"]


class InitialParams(NamedTuple):
  """What `initial_params` took from ``config.init_weights``.

  Attributes:
    params: ``{"a/b/c": array}`` of the parameters that fit the model (path and shape), in its dtypes.
    fresh: the model's parameter paths the file has no fitting value for (they start fresh).
    skipped: the file's parameter paths the model has no place of that shape for.
  """
  params: dict[str, np.ndarray]
  fresh: list[str]
  skipped: list[str]


def initial_params(config: ml_collections.ConfigDict, like: Mapping[str, Any]) -> InitialParams:
  """The parameters of the weights file ``config.init_weights`` that fit ``like`` (path and shape).

  The file's model may differ (other targets, another head, more layers):
  every parameter whose path and shape match is loaded and the rest start
  fresh, so MUSDB18's 4-target network seeds a 2- or 6-target one.

  Raises:
    CheckpointError: the file is unreadable (`mssjax.weights.read`), was
      trained on another STFT or sample rate (its parameters would mean
      something else), or not one of its parameters fits (the message names the file).
  """
  path = config.init_weights
  stored = weights.read(path)
  changed = config_lib.differences(
      {"stft": models.stft_settings(stored.config), "sample_rate": stored.config.sample_rate},
      {"stft": models.stft_settings(config), "sample_rate": config.sample_rate})
  if changed:
    raise CheckpointError(f"{path}: init_weights holds a model of another STFT or rate ({'; '.join(changed)}); "
                          "train with the file's stft and sample_rate settings")
  shapes = weights.flatten_shapes(like)
  fits = {name: np.asarray(value).astype(shapes[name][1]) for name, value in stored.params.items()
          if name in shapes and tuple(value.shape) == shapes[name][0]}
  if not fits:
    raise CheckpointError(f"{path}: none of init_weights' {len(stored.params)} parameters fits the model "
                          f"(model {stored.config.model.get('name')!r}, targets {tuple(stored.config.targets)})")
  return InitialParams(fits, sorted(set(shapes) - set(fits)), sorted(set(stored.params) - set(fits)))


def describe_initial(path: str, initial: InitialParams, n_parameters: int) -> str:
  """The one log line that says what a fine-tuning run took from its weights file and what starts fresh."""
  loaded = int(sum(np.size(v) for v in initial.params.values()))
  return (f"init_weights {path}: loaded {len(initial.params)} tensors ({loaded:,} of {n_parameters:,} "
          f"parameters): {', '.join(sorted(initial.params))}; fresh {len(initial.fresh)}: "
          f"{', '.join(initial.fresh) or 'none'}; not used from the file: {', '.join(initial.skipped) or 'none'}")


def _path_name(path: tuple) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _under(name: str, prefix: str) -> bool:
  """Whether parameter path ``name`` lies under ``prefix`` (whole components: "down" is not "downsample")."""
  return name == prefix or name.startswith(prefix.rstrip("/") + "/")


def freeze_labels(params: Any, prefixes: tuple[str, ...]) -> Any:
  """``"frozen"`` for every parameter whose path (``"down/0/conv/kernel"``) starts with one of ``prefixes``.

  A prefix names whole path components: ``"down"`` freezes ``down/...``, not ``downsample/...``.
  """
  def label(path, _):
    name = _path_name(path)
    return "frozen" if any(_under(name, p) for p in prefixes) else "train"
  return jax.tree_util.tree_map_with_path(label, params)


def check_freeze(config: ml_collections.ConfigDict, like: Mapping[str, Any]) -> None:
  """Every prefix of ``optim.freeze`` names some parameter of the model.

  Raises:
    ParameterError: a prefix that freezes nothing (the top-level names listed).
  """
  names = list(weights.flatten_shapes(like))
  for prefix in config.optim.freeze:
    if not any(_under(n, prefix) for n in names):
      raise ParameterError(f"optim.freeze: {prefix!r} names no parameter of the model; its top-level names are "
                           f"{sorted({n.split('/')[0] for n in names})}")
