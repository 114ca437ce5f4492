"""orbax checkpoints of a training workdir: train states, bare parameters, and the workdir's config.

A training workdir holds::

  WORKDIR/config.json     the experiment config (written once the run is set up)
  WORKDIR/checkpoints/    the latest train states (orbax; parameters, optimiser
                          state, step, the data iterator's state)
  WORKDIR/best/           the best train state by validation SDR

This module sits below both the models and the training loop: the training
loop saves and restores whole states through it, and the inference path
(`mssjax.models.separator`) restores bare parameters through it without
importing any training code. The single-file format of shipped weights is
`mssjax.weights`.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping, NamedTuple

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from mssjax import fileio, models
from mssjax.errors import CheckpointError, check_choice

CONFIG_FILE = "config.json"
BEST_METRIC = "sdr/mean"
"""The validation metric the best checkpoint maximises."""


class Managers(NamedTuple):
  """The orbax managers of a workdir.

  Attributes:
    latest: ``WORKDIR/checkpoints``, the last ``keep`` states.
    best: ``WORKDIR/best``, the state of the best validation ``sdr/mean``.
  """
  latest: ocp.CheckpointManager
  best: ocp.CheckpointManager

  def wait_until_finished(self) -> None:
    """Blocks until both managers' asynchronous saves are on disk."""
    for manager in self:
      manager.wait_until_finished()

  def close(self) -> None:
    """Finishes pending saves and releases both managers."""
    for manager in self:
      manager.close()


def managers(workdir: str | os.PathLike, *, keep: int = 1, create: bool = True) -> Managers:
  """The `Managers` of ``workdir`` (``keep`` latest states are kept; the best is one)."""
  workdir = pathlib.Path(workdir).resolve()
  # With several processes orbax names its barriers after the step; both managers save the step of a
  # validation, so each gets its own prefix (one shared name let the two saves' barriers cross and hang).
  latest = ocp.CheckpointManager(
      workdir / "checkpoints", options=ocp.CheckpointManagerOptions(
          max_to_keep=int(keep), create=create, multiprocessing_options=_barriers("latest")))
  best = ocp.CheckpointManager(
      workdir / "best", options=ocp.CheckpointManagerOptions(
          max_to_keep=1, best_fn=lambda m: m[BEST_METRIC], best_mode="max", create=create,
          multiprocessing_options=_barriers("best")))
  return Managers(latest, best)


def _barriers(prefix: str) -> ocp.options.MultiprocessingOptions:
  return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=f"mssjax_{prefix}")


def save_state(manager: ocp.CheckpointManager, step: int, *, params: Any, opt_state: Any,
               data: Any, metrics: Mapping[str, float] | None = None) -> None:
  """Saves a train state at ``step`` (asynchronously).

  Args:
    manager: one of the workdir's `Managers`.
    step: the optimiser step.
    params, opt_state: pytrees of arrays.
    data: orbax args that save the data iterator (``grain.checkpoint.CheckpointSave``).
    metrics: the validation metrics (required by the ``best`` manager).
  """
  manager.save(step, args=ocp.args.Composite(
      params=ocp.args.StandardSave(params), opt_state=ocp.args.StandardSave(opt_state),
      step=ocp.args.JsonSave({"step": int(step)}), data=data), metrics=metrics)


class RestoredState(NamedTuple):
  """A train state read back by `restore_state`."""
  step: int
  params: Any
  opt_state: Any


def restore_state(manager: ocp.CheckpointManager, *, params: Any, opt_state: Any, data: Any,
                  sharding: jax.sharding.Sharding) -> RestoredState:
  """Restores the latest state of ``manager``.

  Args:
    manager: one of the workdir's `Managers`, holding at least one state.
    params, opt_state: pytrees of the state's structure (arrays or shapes).
    data: orbax args that restore into the data iterator (``grain.checkpoint.CheckpointRestore``).
    sharding: where the restored arrays are placed.
  """
  step = manager.latest_step()
  restored = manager.restore(step, args=ocp.args.Composite(
      params=ocp.args.StandardRestore(abstract(params, sharding)),
      opt_state=ocp.args.StandardRestore(abstract(opt_state, sharding)),
      step=ocp.args.JsonRestore(), data=data))
  return RestoredState(int(restored.step["step"]), restored.params, restored.opt_state)


def abstract(tree: Any, sharding: jax.sharding.Sharding | None = None) -> Any:
  """``tree`` as `jax.ShapeDtypeStruct` leaves (placed with ``sharding``)."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.dtype(x.dtype), sharding=sharding), tree)


class RestoredParams(NamedTuple):
  """Parameters read from a workdir by `restore_params`.

  Attributes:
    params: the parameters (pure dict of numpy arrays).
    step: the optimiser step they were saved at.
    which: ``"best"`` or ``"latest"``: where they came from.
  """
  params: dict
  step: int
  which: str


def restore_params(workdir: str | os.PathLike, like: Any, *, which: str = "best") -> RestoredParams:
  """The model parameters saved in a training workdir, on the host.

  Args:
    workdir: the training workdir.
    like: the parameters' structure (arrays or `jax.ShapeDtypeStruct` leaves).
    which: ``"best"`` (the best validation checkpoint; the latest where no
      validation has run yet) or ``"latest"``.

  Raises:
    CheckpointError: nothing is saved there.
  """
  check_choice("which", which, ("best", "latest"))
  workdir = pathlib.Path(workdir)
  both = managers(workdir, create=False) if (workdir / "checkpoints").is_dir() else None
  if both is None:
    raise CheckpointError(f"{workdir}: no checkpoint (no checkpoints/ folder)")
  try:
    use_best = which == "best" and both.best.latest_step() is not None
    manager = both.best if use_best else both.latest
    step = manager.best_step() if use_best else manager.latest_step()
    if step is None:
      raise CheckpointError(f"{workdir}: no checkpoint saved yet")
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    restored = manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract(like, sharding))))
  finally:
    both.close()
  return RestoredParams(jax.tree.map(np.asarray, restored.params), int(step), "best" if use_best else "latest")


def read_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  """The experiment config saved in ``workdir/config.json``.

  Raises:
    CheckpointError: ``workdir`` is not a training workdir.
  """
  path = pathlib.Path(workdir) / CONFIG_FILE
  if not path.is_file():
    raise CheckpointError(f"{workdir}: not a training workdir (no {CONFIG_FILE})")
  try:
    return models.upgrade_config(ml_collections.ConfigDict(json.loads(path.read_text())))
  except ValueError as e:
    raise CheckpointError(f"{path}: not a readable config ({e})") from e


def write_config(workdir: str | os.PathLike, config: ml_collections.ConfigDict) -> pathlib.Path:
  """Writes ``config`` to ``workdir/config.json`` atomically."""
  return fileio.write_text(pathlib.Path(workdir) / CONFIG_FILE, config.to_json_best_effort(indent=2, sort_keys=True))
