"""A training run's workdir: refusing to resume another config's run, writing its ``config.json``, and
restoring its latest readable checkpoint (moving newer unreadable ones aside). Used by
`mssjax.training.loop`, which re-exports `prepare_workdir` and `write_workdir_config`."""

from __future__ import annotations

import pathlib
import sys
from typing import Any, Iterator

import grain
import jax
import ml_collections
import tqdm
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mssjax import checkpoints, distributed, fileio
from mssjax import config as config_lib
from mssjax.errors import CheckpointError, CheckpointMismatchError, ParameterError
from mssjax.training.interrupts import Interrupts

__all__ = ["prepare_workdir", "write_workdir_config", "restore_latest"]


def prepare_workdir(config: ml_collections.ConfigDict, workdir: pathlib.Path, *,
                    allow_config_change: bool = False) -> None:
  """Refuses to resume ``workdir`` with another config (nothing is written: see `write_workdir_config`).

  Raises:
    ParameterError: ``workdir`` holds a run of a different config (the
      differing keys are listed) and ``allow_config_change`` is False.
  """
  config_file = workdir / checkpoints.CONFIG_FILE
  if config_file.is_file():
    changed = config_lib.differences(checkpoints.read_config(workdir).to_dict(), config.to_dict())
    if changed and not allow_config_change:
      raise ParameterError(
          f"{workdir} holds a run of another config ({'; '.join(changed[:8])}"
          f"{'; ...' if len(changed) > 8 else ''}): use a new --workdir, or pass --allow_config_change "
          "to resume it with the new config")


def write_workdir_config(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  """Writes ``workdir/config.json`` (process 0), once the run's state exists: a run that fails to
  restore its checkpoint leaves the workdir's config, and so its finished model, as they were."""
  if jax.process_index() == 0:
    checkpoints.write_config(workdir, config)


def restore_latest(managers: checkpoints.Managers, *, params: Any, opt_state: Any, iterator: Iterator[Any],
                   mesh: Mesh, interrupts: Interrupts) -> checkpoints.RestoredState:
  """The latest readable checkpoint of ``managers.latest`` (replicated on ``mesh``; the data iterator's
  state restored into ``iterator``); newer unreadable ones are moved aside (process 0) with a warning naming
  each, so that their steps can be saved again.

  Raises:
    CheckpointError: the latest checkpoint does not fit ``params`` / ``opt_state`` (the workdir is left as
      it was).
  """
  try:
    with interrupts.deferred():
      restored = checkpoints.restore_state(
          managers.latest, params=params, opt_state=opt_state,
          data=grain.checkpoint.CheckpointRestore(iterator), sharding=NamedSharding(mesh, PartitionSpec()))
  except CheckpointMismatchError as error:
    raise CheckpointError(f"{managers.latest.directory}: its latest checkpoint does not fit this config "
                          f"({error}); the workdir is left as it was") from error
  if restored.unreadable:
    if distributed.is_leader():
      for path in restored.unreadable:
        tqdm.tqdm.write(f"warning: {path} moved to {fileio.move_aside(path, 'unreadable').name}; training resumes "
                        f"from step {restored.step}", file=sys.stderr)
    distributed.barrier("mssjax_unreadable_moved")
    managers.latest.reload()
  return restored
