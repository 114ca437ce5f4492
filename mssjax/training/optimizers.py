"""The optimiser of a training config: the learning-rate schedule (``config.optim.schedule``), the optax
transformation (``config.optim.name``), gradient clipping, frozen parameters (`mssjax.training.finetune`) and
gradient accumulation (`optax.MultiSteps`). Used by `mssjax.training.loop`, which re-exports these names."""

from __future__ import annotations

import functools
import json
from typing import Callable, NamedTuple

import ml_collections
import optax

from mssjax import models
from mssjax.errors import check_choice, check_positive_int
from mssjax.training import finetune

__all__ = ["SCHEDULES", "OPTIMIZERS", "Optimizer", "make_optimizer"]


def _constant(optim: ml_collections.ConfigDict, num_train_steps: int) -> optax.Schedule:
  del num_train_steps
  lr, warmup = float(optim.learning_rate), int(optim.warmup_steps)
  if not warmup:
    return optax.constant_schedule(lr)
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup])


def _cosine(optim: ml_collections.ConfigDict, num_train_steps: int) -> optax.Schedule:
  lr, warmup = float(optim.learning_rate), int(optim.warmup_steps)
  return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(num_train_steps, warmup + 1),
                                            end_value=lr * float(optim.final_lr_fraction))


SCHEDULES: dict[str, Callable[[ml_collections.ConfigDict, int], optax.Schedule]] = {
    "constant": _constant, "cosine": _cosine}
"""``config.optim.schedule``: linear warm-up over ``warmup_steps``, then constant or cosine decay to
``final_lr_fraction`` of the peak at ``num_train_steps``."""

OPTIMIZERS: dict[str, Callable[[optax.Schedule, ml_collections.ConfigDict], optax.GradientTransformation]] = {
    "adam": lambda schedule, optim: optax.adam(schedule),
    "adamw": lambda schedule, optim: optax.adamw(schedule, weight_decay=float(optim.weight_decay)),
}
"""``config.optim.name``; ``adamw`` reads ``optim.weight_decay``."""


class Optimizer(NamedTuple):
  """The optax transformation of a config and its learning-rate schedule."""
  tx: optax.GradientTransformation
  schedule: optax.Schedule


def make_optimizer(config: ml_collections.ConfigDict) -> Optimizer:
  """Gradient clipping by global norm (``optim.grad_clip_norm``; 0 or None: off), then the optimiser.

  With ``optim.accumulate_steps`` k > 1 the whole chain (clipping included, so
  it clips the accumulated gradient) is wrapped in `optax.MultiSteps`: each call
  of ``update`` adds one micro-batch's gradient to a running mean, and every k-th
  applies the chain to that mean; the others return zero updates. The schedule
  counts the inner optimiser's updates.

  Equal settings give the same (cached) objects, so jit-compiled steps are reused.
  """
  return _make_optimizer(models.config_key(config, ("optim", "num_train_steps")))


@functools.lru_cache(maxsize=16)
def _make_optimizer(key: str) -> Optimizer:
  config = ml_collections.ConfigDict(json.loads(key))
  optim = config.optim
  check_choice("optim.name", optim.name, sorted(OPTIMIZERS))
  check_choice("optim.schedule", optim.schedule, sorted(SCHEDULES))
  schedule = SCHEDULES[optim.schedule](optim, int(config.num_train_steps))
  tx = OPTIMIZERS[optim.name](schedule, optim)
  if optim.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(float(optim.grad_clip_norm)), tx)
  if optim.freeze:
    prefixes = tuple(optim.freeze)
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()},
                               lambda params: finetune.freeze_labels(params, prefixes))
  accumulate_steps = check_positive_int("optim.accumulate_steps", optim.accumulate_steps)
  if accumulate_steps > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=accumulate_steps).gradient_transformation()
  return Optimizer(tx, schedule)
