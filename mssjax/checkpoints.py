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

**Unreadable checkpoints.** A checkpoint whose files were truncated, changed or
deleted is unreadable; restoring tries the next older one (`restore_state`,
`restore_params`) and says which was skipped; only when none is left is it a
`CheckpointError`, one line naming each. A readable checkpoint whose arrays
do not fit the model (a ``config.json`` that does not describe the workdir) is
a `CheckpointMismatchError` at once: it is checked from the checkpoint's
metadata before any array is read.

A failed read leaves orbax's other reads of the same checkpoint pending on an
asyncio loop that orbax has closed; each one then reports "Event loop is
closed", an exception never retrieved or a coroutine's exception, dozens of
tracebacks after the one error. `managers` installs filters (`quiet_orbax`)
that drop exactly those reports and nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import sys
import types
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import tqdm

from mssjax import fileio, models
from mssjax.errors import CheckpointError, CheckpointMismatchError, check_choice

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


def _from_orbax(traceback: types.TracebackType | None) -> bool:
  while traceback is not None:
    if f"{os.sep}orbax{os.sep}" in traceback.tb_frame.f_code.co_filename:
      return True
    traceback = traceback.tb_next
  return False


def _unraisable_hook(previous: Callable[[Any], None]) -> Callable[[Any], None]:
  def hook(unraisable: Any) -> None:
    error, code = unraisable.exc_value, getattr(unraisable.object, "cr_code", None)
    if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
      return  # TensorStore finishing a read for a loop that orbax closed after another read failed
    if code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename:
      return  # an orbax coroutine's exception, already raised once by the read that failed
    previous(unraisable)
  hook.mssjax_quiet_orbax = True
  return hook


class _NeverRetrieved(logging.Filter):
  """Drops asyncio's "exception was never retrieved" of a future that orbax's failed read abandoned."""

  def filter(self, record: logging.LogRecord) -> bool:
    exc = record.exc_info[2] if record.exc_info else None
    return not ("never retrieved" in str(record.msg) and _from_orbax(exc))


def quiet_orbax() -> None:
  """Installs (once per process) the filters of the module docstring: `sys.unraisablehook` drops
  "Event loop is closed" and orbax coroutines' exceptions; the ``asyncio`` logger drops futures of orbax
  whose exception was never retrieved."""
  if not getattr(sys.unraisablehook, "mssjax_quiet_orbax", False):
    sys.unraisablehook = _unraisable_hook(sys.unraisablehook)
  asyncio_logger = logging.getLogger("asyncio")
  if not any(isinstance(f, _NeverRetrieved) for f in asyncio_logger.filters):
    asyncio_logger.addFilter(_NeverRetrieved())


def managers(workdir: str | os.PathLike, *, keep: int = 1, create: bool = True) -> Managers:
  """The `Managers` of ``workdir`` (``keep`` latest states are kept; the best is one).

  Args:
    workdir: the training workdir.
    keep: how many latest states to keep.
    create: True for the run that writes the workdir (and holds its lock,
      `mssjax.distributed.workdir_lock`): the folders are created and the
      unfinished saves of a run that was killed (``N.orbax-checkpoint-tmp``)
      removed. False for a reader, which changes nothing.
  """
  quiet_orbax()
  workdir = pathlib.Path(workdir).resolve()
  # With several processes orbax names its barriers after the step; both managers save the step of a
  # validation, so each gets its own prefix (one shared name let the two saves' barriers cross and hang).
  latest = ocp.CheckpointManager(
      workdir / "checkpoints", options=ocp.CheckpointManagerOptions(
          max_to_keep=int(keep), create=create, cleanup_tmp_directories=create,
          multiprocessing_options=_barriers("latest")))
  best = ocp.CheckpointManager(
      workdir / "best", options=ocp.CheckpointManagerOptions(
          max_to_keep=1, best_fn=lambda m: m[BEST_METRIC], best_mode="max", create=create,
          cleanup_tmp_directories=create, multiprocessing_options=_barriers("best")))
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
  """A train state read back by `restore_state`.

  Attributes:
    step, params, opt_state: the state.
    unreadable: the folders of the newer checkpoints that could not be read
      (and were skipped), newest first.
  """
  step: int
  params: Any
  opt_state: Any
  unreadable: tuple[pathlib.Path, ...] = ()


def restore_state(manager: ocp.CheckpointManager, *, params: Any, opt_state: Any, data: Any,
                  sharding: jax.sharding.Sharding) -> RestoredState:
  """Restores the latest readable state of ``manager``.

  Args:
    manager: one of the workdir's `Managers`, holding at least one state.
    params, opt_state: pytrees of the state's structure (arrays or shapes).
    data: orbax args that restore into the data iterator (``grain.checkpoint.CheckpointRestore``).
    sharding: where the restored arrays are placed.

  Raises:
    CheckpointMismatchError: the latest checkpoint's arrays do not fit ``params`` or ``opt_state``.
    CheckpointError: no checkpoint is readable (each is named with its problem).
  """
  args = ocp.args.Composite(
      params=ocp.args.StandardRestore(abstract(params, sharding)),
      opt_state=ocp.args.StandardRestore(abstract(opt_state, sharding)),
      step=ocp.args.JsonRestore(), data=data)
  found = _first_readable([(manager, step) for step in sorted(manager.all_steps(), reverse=True)],
                          lambda m, step: _restore(m, step, args, params=params, opt_state=opt_state),
                          where=pathlib.Path(manager.directory))
  restored = found.restored
  return RestoredState(int(restored.step["step"]), restored.params, restored.opt_state,
                       tuple(u.path for u in found.unreadable))


def step_folder(manager: ocp.CheckpointManager, step: int) -> pathlib.Path:
  """The folder of ``manager``'s checkpoint at ``step``."""
  return pathlib.Path(manager.directory) / str(step)


class Unreadable(NamedTuple):
  """A checkpoint that could not be read: its folder and why (one line)."""
  path: pathlib.Path
  reason: str


class _UnreadableError(Exception):
  def __init__(self, unreadable: Unreadable):
    super().__init__(f"{unreadable.path}: {unreadable.reason}")
    self.unreadable = unreadable


def _reason(error: BaseException) -> str:
  """The first line of the innermost cause of ``error`` (TensorStore's own message, not orbax's wrapping)."""
  seen, visited = error, {id(error)}
  while (seen.__cause__ or seen.__context__) is not None and id(seen.__cause__ or seen.__context__) not in visited:
    seen = seen.__cause__ or seen.__context__
    visited.add(id(seen))
  text = (str(seen).strip().splitlines() or [""])[0]
  text = text if len(text) <= 240 else text[:240] + "..."
  return f"{type(seen).__name__}: {text}" if text else type(seen).__name__


def _restore(manager: ocp.CheckpointManager, step: int, args: ocp.args.Composite, **likes: Any) -> Any:
  """``manager.restore(step, args)`` once the saved arrays of each item in ``likes`` are checked to fit.

  Raises:
    CheckpointMismatchError: they do not fit.
    _UnreadableError: any failure to read the checkpoint's files.
  """
  folder = step_folder(manager, step)
  try:
    saved = {name: ocp.StandardCheckpointHandler().metadata(folder / name) for name in likes}
  except MemoryError:
    raise
  except Exception as error:  # pylint: disable=broad-except  # whatever a damaged file makes orbax raise
    raise _UnreadableError(Unreadable(folder, _reason(error))) from error
  for name, like in likes.items():
    _check_fits(folder / name, saved[name], like)
  try:
    return manager.restore(step, args=args)
  except MemoryError:
    raise
  except Exception as error:  # pylint: disable=broad-except
    raise _UnreadableError(Unreadable(folder, _reason(error))) from error


def _shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
  """``{"a/b/c": (shape, dtype name)}`` of the array leaves of ``tree`` (arrays, shapes or orbax metadata)."""
  def name(path: Sequence[Any]) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {name(path): (tuple(leaf.shape), np.dtype(leaf.dtype).name) for path, leaf in leaves if hasattr(leaf, "shape")}


def _check_fits(folder: pathlib.Path, metadata: Any, like: Any) -> None:
  saved, wanted = _shapes(metadata), _shapes(like)
  if saved == wanted:
    return
  problems = [f"{k}: saved {saved[k][0]} {saved[k][1]}, the model's {wanted[k][0]} {wanted[k][1]}"
              for k in sorted(set(saved) & set(wanted)) if saved[k] != wanted[k]]
  if set(wanted) - set(saved):
    problems.append(f"not saved: {', '.join(sorted(set(wanted) - set(saved))[:4])}")
  if set(saved) - set(wanted):
    problems.append(f"not in the model: {', '.join(sorted(set(saved) - set(wanted))[:4])}")
  more = "; ..." if len(problems) > 3 else ""
  raise CheckpointMismatchError(f"{folder}: the saved arrays do not fit ({'; '.join(problems[:3])}{more})")


class _Found(NamedTuple):
  restored: Any
  manager: ocp.CheckpointManager
  step: int
  unreadable: list[Unreadable]


def _first_readable(candidates: Sequence[tuple[ocp.CheckpointManager, int]],
                    restore: Callable[[ocp.CheckpointManager, int], Any], *, where: pathlib.Path) -> _Found:
  """``restore`` of the first candidate ``(manager, step)`` that reads; a warning names each unreadable
  one before it."""
  unreadable = []
  for manager, step in candidates:
    try:
      restored = restore(manager, step)
    except _UnreadableError as error:
      unreadable.append(error.unreadable)
      continue
    for skipped in unreadable:
      tqdm.tqdm.write(f"warning: {skipped.path}: unreadable checkpoint ({skipped.reason}); using "
                      f"{step_folder(manager, step)} instead", file=sys.stderr)
    return _Found(restored, manager, step, unreadable)
  if not unreadable:
    raise CheckpointError(f"{where}: no checkpoint saved yet")
  raise CheckpointError(f"{where}: no readable checkpoint (" + "; ".join(f"{u.path}: {u.reason}" for u in unreadable)
                        + ")")


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

  An unreadable checkpoint is skipped with a warning naming it, for the next
  older one (``best``: then the latest ones).

  Args:
    workdir: the training workdir.
    like: the parameters' structure (arrays or `jax.ShapeDtypeStruct` leaves).
    which: ``"best"`` (the best validation checkpoint; the latest where no
      validation has run yet, or where the best is unreadable) or ``"latest"``.

  Raises:
    CheckpointMismatchError: the saved parameters do not fit ``like``.
    CheckpointError: nothing is saved there, or nothing readable.
  """
  check_choice("which", which, ("best", "latest"))
  workdir = pathlib.Path(workdir)
  both = managers(workdir, create=False) if (workdir / "checkpoints").is_dir() else None
  if both is None:
    raise CheckpointError(f"{workdir}: no checkpoint (no checkpoints/ folder)")
  try:
    candidates = [(both.latest, step) for step in sorted(both.latest.all_steps(), reverse=True)]
    if which == "best" and both.best.best_step() is not None:
      candidates.insert(0, (both.best, both.best.best_step()))
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    args = ocp.args.Composite(params=ocp.args.StandardRestore(abstract(like, sharding)))
    found = _first_readable(candidates, lambda m, step: _restore(m, step, args, params=like), where=workdir)
  finally:
    both.close()
  return RestoredParams(jax.tree.map(np.asarray, found.restored.params), int(found.step),
                        "best" if found.manager is both.best else "latest")


def restore_model(workdir: str | os.PathLike, *, which: str = "best"
                  ) -> tuple[ml_collections.ConfigDict, RestoredParams]:
  """``(experiment config, parameters)`` of a training workdir: `read_config`, then `restore_params` of its model.

  Raises:
    CheckpointMismatchError: ``config.json`` does not describe the saved model.
    CheckpointError: no config, or no readable checkpoint.
  """
  config = read_config(workdir)
  try:
    return config, restore_params(workdir, models.model_spec(config).abstract_params, which=which)
  except CheckpointMismatchError as error:
    raise CheckpointMismatchError(f"{pathlib.Path(workdir) / CONFIG_FILE} does not describe the saved model: "
                                  f"{error}") from error


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
