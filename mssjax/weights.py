"""The single-file weights format: a model's parameters and its config in one safetensors file.

A trained network ships as one file (``mssjax/pretrained/<name>.safetensors``):
every parameter is a tensor named by its path in the parameter tree
(``"down/0/conv/kernel"``), and the file's metadata holds the experiment
config as JSON (``"config"``) with a format tag and version, so the file alone
rebuilds the model. safetensors (Hugging Face) is a maintained, memory-safe
format with no code execution on load and readers in many languages; it is
read here with its numpy API only: no orbax, no training code.

Parameters may be stored as float16 or bfloat16 to halve the file; `unflatten`
casts them back to the model's dtypes.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Iterator, Mapping, NamedTuple

import ml_collections
import numpy as np

from mssjax import fileio, models
from mssjax.errors import CheckpointError, check_choice

FORMAT = "mssjax-weights"
FORMAT_VERSION = "1"
STORAGE_DTYPES = ("float32", "float16", "bfloat16")


class Weights(NamedTuple):
  """A weights file's contents.

  Attributes:
    params: ``{"down/0/conv/kernel": array, ...}`` as stored (see `unflatten`).
    config: the experiment config the parameters belong to.
    metadata: the file's other metadata strings.
  """
  params: dict[str, np.ndarray]
  config: ml_collections.ConfigDict
  metadata: dict[str, str]


def _leaves(tree: Mapping[Any, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
  """``("a/b/c", leaf)`` for every leaf of a nested dict, depth first."""
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      yield from _leaves(value, name + "/")
    else:
      yield name, value


def flatten(params: Mapping[Any, Any]) -> dict[str, np.ndarray]:
  """A nested parameter dict as ``{"a/b/c": numpy array}``."""
  return {name: np.asarray(leaf) for name, leaf in _leaves(params)}


def save(path: str | os.PathLike, params: Mapping[Any, Any], config: ml_collections.ConfigDict, *,
         storage_dtype: str = "float32", metadata: Mapping[str, str] | None = None) -> pathlib.Path:
  """Writes ``params`` and ``config`` to one safetensors file, atomically.

  Args:
    path: the file (``.safetensors``).
    params: the model's parameters (nested dict of arrays).
    config: the experiment config (its JSON goes into the metadata).
    storage_dtype: "float32", "float16" or "bfloat16" for floating-point parameters.
    metadata: more ``{str: str}`` to store (e.g. the step, the validation SDR).
  """
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel
  check_choice("storage_dtype", storage_dtype, STORAGE_DTYPES)
  dtype = _numpy_dtype(storage_dtype)
  tensors = {k: np.ascontiguousarray(v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v)
             for k, v in flatten(params).items()}
  meta = {**dict(metadata or {}), "format": FORMAT, "format_version": FORMAT_VERSION,
          "config": config.to_json_best_effort(sort_keys=True), "storage_dtype": storage_dtype}
  with fileio.atomic_path(path) as temporary:
    save_file(tensors, str(temporary), metadata=meta)
  return pathlib.Path(path)


def _numpy_dtype(name: str) -> np.dtype:
  if name == "bfloat16":
    import ml_dtypes  # pylint: disable=import-outside-toplevel
    return np.dtype(ml_dtypes.bfloat16)
  return np.dtype(name)


def read(path: str | os.PathLike) -> Weights:
  """Reads a weights file written by `save`.

  Raises:
    CheckpointError: the file is missing, truncated, corrupt, not an mssjax
      weights file, or of another format version (the message names the file).
  """
  from safetensors import safe_open  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(path)
  if not path.is_file():
    raise CheckpointError(f"{path}: no such weights file")
  try:
    with safe_open(str(path), framework="numpy") as handle:
      metadata = dict(handle.metadata() or {})
      params = {k: handle.get_tensor(k) for k in handle.keys()}
  except Exception as e:  # safetensors raises its own error types (and OSError) for bad files
    raise CheckpointError(f"{path}: not a readable safetensors weights file ({type(e).__name__}: {e})") from e
  if metadata.get("format") != FORMAT:
    raise CheckpointError(f"{path}: not an mssjax weights file (format {metadata.get('format')!r})")
  if metadata.get("format_version") != FORMAT_VERSION:
    raise CheckpointError(f"{path}: weights format version {metadata.get('format_version')!r}; this mssjax "
                          f"reads version {FORMAT_VERSION}")
  try:
    config = ml_collections.ConfigDict(json.loads(metadata.pop("config")))
  except (KeyError, ValueError) as e:
    raise CheckpointError(f"{path}: the weights file's config is missing or not JSON") from e
  try:
    config = models.upgrade_config(config)
  except ValueError as e:
    raise CheckpointError(f"{path}: {e}") from e
  return Weights(params, config, metadata)


def unflatten(flat: Mapping[str, np.ndarray], like: Mapping[Any, Any], *, path: str | os.PathLike = "weights"
              ) -> dict[Any, Any]:
  """The nested parameters of ``like``'s structure from ``flat``, cast to ``like``'s dtypes.

  Args:
    flat: ``{"a/b/c": array}`` (`Weights.params`).
    like: the model's parameter tree (arrays or `jax.ShapeDtypeStruct` leaves).
    path: the file, for messages.

  Raises:
    CheckpointError: a parameter is missing, extra, or of another shape.
  """
  expected = flatten_shapes(like)
  missing, extra = sorted(set(expected) - set(flat)), sorted(set(flat) - set(expected))
  if missing or extra:
    raise CheckpointError(f"{path}: parameters do not fit the model: missing {missing[:5]}, extra {extra[:5]}")
  for name, (shape, _) in expected.items():
    if tuple(flat[name].shape) != tuple(shape):
      raise CheckpointError(f"{path}: parameter {name} has shape {tuple(flat[name].shape)}, the model's is "
                            f"{tuple(shape)}")
  return _build(like, flat, "")


def flatten_shapes(like: Mapping[Any, Any]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """``{"a/b/c": (shape, dtype)}`` of a parameter tree (arrays or `jax.ShapeDtypeStruct` leaves)."""
  return {name: (tuple(leaf.shape), np.dtype(leaf.dtype)) for name, leaf in _leaves(like)}


def _build(like: Mapping[Any, Any], flat: Mapping[str, np.ndarray], prefix: str) -> dict[Any, Any]:
  out = {}
  for key, value in like.items():
    name = f"{prefix}{key}"
    out[key] = _build(value, flat, name + "/") if isinstance(value, Mapping) else \
        np.asarray(flat[name]).astype(np.dtype(value.dtype))
  return out
