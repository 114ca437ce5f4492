"""Training the separation network: the train state, a pure train step, and the loop.

``train_and_evaluate(config, workdir)`` runs a whole experiment: it checks the
config, builds the model from ``config.model`` (`mssjax.models`), trains it
with optax on batches from the loader named by ``config.data.name``
(`mssjax.data.loaders`), validates every ``config.eval_every`` steps with the
SDR named by ``config.eval.metric`` (`mssjax.metrics.sdr`), writes TensorBoard
scalars (tensorboardX) and orbax checkpoints (`mssjax.checkpoints`: the latest
and the best by validation SDR, with the optimiser and data iterator states)
to ``workdir``, and resumes from there when restarted, to the same parameters
an uninterrupted run reaches.

Scaling to bigger models: ``config.precision = "bfloat16"`` computes the network
in bfloat16 from float32 parameters (`mssjax.models.precision`; the STFT and the
loss stay float32); ``config.optim.accumulate_steps = k`` makes each optimiser
update the mean gradient of k micro-batches of ``data.batch_size``
(`optax.MultiSteps`; every step count of the config counts updates); and
``config.model.remat`` recomputes the network's blocks in the backward pass.

Data-parallel training: the batch is split over every JAX device along a
one-axis `jax.sharding.Mesh` (``"data"``), the parameters and optimiser state
are replicated, and XLA reduces the gradients across devices. Multi-host runs
call `mssjax.distributed.initialize` first; each process then loads its own
``batch_size / process_count`` examples (grain shards per process) and the
global batch is assembled with ``jax.make_array_from_process_local_data``
(`global_batch` gathers it on every host where a replicated value is computed
from data: the input statistics). Only process 0 writes events and the config.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import pathlib
import time
from typing import Any, Callable, Iterable, Iterator, Mapping

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm
from flax import nnx, struct
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mssjax import checkpoints, distributed, fileio, models, separate, spectral, weights
from mssjax.sharded import replicate  # train states are placed as separators' parameters are
from mssjax.data import loaders
from mssjax.errors import ParameterError, check_choice, check_finite, check_non_negative_int, check_positive_int
from mssjax.metrics import sdr
from mssjax.separators import network as network_lib
from mssjax.training import finetune
from mssjax.training import workdir as workdir_lib
from mssjax.training.interrupts import Interrupts
# The optimiser (config.optim) and the workdir's config.json and restore live in their own modules; their
# names stay importable from here.
from mssjax.training.optimizers import OPTIMIZERS, SCHEDULES, Optimizer, make_optimizer  # pylint: disable=unused-import
from mssjax.training.workdir import prepare_workdir, write_workdir_config
# The loss (config.loss) lives in mssjax.training.objective; its names stay importable from here.
from mssjax.training.objective import (  # pylint: disable=unused-import
    LOSS_DOMAINS, LOSS_KINDS, SILENCE, WAVEFORM_TERMS, LossSpec, compute_loss, loss_spec)

# --- state and step ---------------------------------------------------------------------------------


class TrainState(struct.PyTreeNode):
  """Everything a train step changes, plus its static recipe.

  Attributes:
    step: int32 scalar, optimiser updates applied (a micro-step of gradient
      accumulation that only accumulates leaves it as it is).
    params: the model's parameters as a pure dict (`nnx.State.to_pure_dict`).
    opt_state: optax state.
    graphdef: the model's `nnx.GraphDef` (static).
    tx: the optax transformation (static).
    loss: the `LossSpec` (static).
  """
  step: jax.Array
  params: dict
  opt_state: optax.OptState
  graphdef: nnx.GraphDef = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)
  loss: LossSpec = struct.field(pytree_node=False)


def input_statistics(batches: Iterable[Mapping[str, np.ndarray]], *, n_fft: int, hop_length: int, n_bins: int
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Per-bin mean and 1/std of ``log1p|STFT|`` of the mixtures of some batches (Open-Unmix's scaler).

  Args:
    batches: iterable of ``{"mixture": [B, 2, n]}``.
    n_fft, hop_length: the STFT settings.
    n_bins: the lowest bins to keep.

  Returns:
    ``(mean, scale)`` float32 numpy ``[n_bins]``.
  """
  total = total_sq = count = 0.0
  for batch in batches:
    x = np.log1p(np.abs(np.asarray(spectral.stft(batch["mixture"], n_fft=n_fft, hop_length=hop_length))))
    x = np.moveaxis(x[..., :n_bins, :], -2, 0).reshape(n_bins, -1).astype(np.float64)
    total, total_sq, count = total + x.sum(1), total_sq + (x ** 2).sum(1), count + x.shape[1]
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
  return mean.astype(np.float32), (1.0 / np.maximum(std, 1e-2)).astype(np.float32)


def create_train_state(config: ml_collections.ConfigDict, key: jax.Array, *,
                       stats_batches: Iterable[Mapping[str, np.ndarray]] | None = None) -> TrainState:
  """A fresh `TrainState`: the model from ``key``, the optimiser, step 0.

  Args:
    config: the experiment config.
    key: a `jax.random.key` for the initialisation.
    stats_batches: optional batches whose input statistics initialise the
      model's input normalisation (its ``input_mean`` and ``input_scale``,
      ``[..., n_bins]``: each row gets the same statistics; unused by a model
      without them).
  """
  spec = models.model_spec(config)
  params = spec.init(key)
  if stats_batches is not None and "input_mean" in params:
    n_fft, hop_length = models.stft_settings(config)
    mean, scale = input_statistics(stats_batches, n_fft=n_fft, hop_length=hop_length,
                                   n_bins=models.model_bins(config))
    # [n_bins], or one row per network where a model stacks several (Open-Unmix's per-target networks)
    params = {**params, "input_mean": jnp.broadcast_to(mean, params["input_mean"].shape),
              "input_scale": jnp.broadcast_to(scale, params["input_scale"].shape)}
  tx = make_optimizer(config).tx
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    graphdef=spec.graphdef, tx=tx, loss=loss_spec(config))


def _all_finite(tree: Any) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _update_gradient(opt_state: optax.OptState, grads: Any) -> Any:
  """The gradient an update uses: ``grads``, or with accumulation the running mean of the micro-batches'
  gradients so far, this one's included (`optax.MultiSteps`' own formula)."""
  if not isinstance(opt_state, optax.MultiStepsState):
    return grads
  return jax.tree.map(lambda g, acc: acc + (g - acc) / (opt_state.mini_step + 1), grads, opt_state.acc_grads)


def _updates_applied(opt_state: optax.OptState) -> jax.Array:
  """1 where the optimiser step that returned ``opt_state`` applied an update, else 0 (accumulation)."""
  if not isinstance(opt_state, optax.MultiStepsState):
    return jnp.ones((), jnp.int32)
  return (opt_state.mini_step == 0).astype(jnp.int32)


def _train_step(state: TrainState, batch: Mapping[str, jax.Array], key: jax.Array
                ) -> tuple[TrainState, dict[str, jax.Array]]:
  del key  # The model has no stochastic layers; the key is part of the contract for those that do.
  loss_fn = lambda params: compute_loss(state.graphdef, params, batch, state.loss)
  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {"loss": loss, "grad_norm": optax.tree.norm(_update_gradient(state.opt_state, grads)),
             "params_finite": _all_finite(params)}
  step = state.step + _updates_applied(opt_state)
  return state.replace(step=step, params=params, opt_state=opt_state), metrics


@jax.jit
def loss_of(state: TrainState, batch: Mapping[str, jax.Array]) -> jax.Array:
  """The loss of ``batch`` with ``state``'s parameters (no update)."""
  return compute_loss(state.graphdef, state.params, batch, state.loss)


train_step = jax.jit(_train_step)
train_step.__doc__ = """One optimiser step: ``train_step(state, batch, key) -> (state, metrics)``.

Pure and jit-compiled. ``batch`` is ``{"mixture": [B, 2, n], "targets": [B, 4, 2, n]}``;
``metrics`` holds the batch's ``loss``, the gradients' global norm ``grad_norm``
and ``params_finite`` (whether every updated parameter is finite). With
``optim.accumulate_steps`` k > 1 it is one micro-step: ``batch`` is a micro-batch,
every k-th call updates the parameters (and ``state.step``), and ``grad_norm`` is
that of the mean gradient accumulated so far (at the k-th, the update's).
"""


# --- devices ----------------------------------------------------------------------------------------


def make_mesh(devices: Iterable[jax.Device] | None = None) -> Mesh:
  """A one-axis ``("data",)`` mesh over ``devices`` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), ("data",))


@functools.lru_cache(maxsize=8)
def parallel_train_step(mesh: Mesh) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
  """`train_step` jit-compiled for ``mesh``: batch split on ``"data"``, state replicated."""
  replicated = NamedSharding(mesh, PartitionSpec())
  batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
  return jax.jit(_train_step, in_shardings=(replicated, batch_sharding, replicated),
                 out_shardings=(replicated, replicated))


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Places a host batch on ``mesh``, split along its leading axis.

  With several processes each passes its own slice of the global batch.
  """
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  if jax.process_count() == 1:
    return jax.device_put({k: np.asarray(v) for k, v in batch.items()}, sharding)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def global_batch(batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The whole global batch on every host, from each process's slice (process order).

  Every process must see the same data where it computes a value that is then
  replicated (the input statistics), or the replicas would differ.
  """
  if jax.process_count() == 1:
    return dict(batch)
  return {k: np.asarray(multihost_utils.process_allgather(np.asarray(v), tiled=True)) for k, v in batch.items()}


def host_local(tree: Any) -> Any:
  """Replicated global arrays as numpy on this host (works with several processes, where a global
  array is not fully addressable)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, tree)


def check_batch_size(config: ml_collections.ConfigDict, mesh: Mesh) -> None:
  """Raises `ParameterError` unless the global batch splits evenly over devices and processes."""
  batch_size = check_positive_int("data.batch_size", config.data.batch_size)
  if batch_size % mesh.size:
    raise ParameterError(f"data.batch_size={batch_size} must be a multiple of the device count {mesh.size}")
  if batch_size % jax.process_count():
    raise ParameterError(f"data.batch_size={batch_size} must be a multiple of the process count "
                         f"{jax.process_count()}")


# --- validation -------------------------------------------------------------------------------------


def evaluate(graphdef: nnx.GraphDef, params: dict, tracks: Iterable[loaders.ValidationTrack],
             config: ml_collections.ConfigDict) -> dict[str, float]:
  """Validation SDR: each track separated in chunks as at inference, scored, medians over tracks.

  Args:
    graphdef, params: the model, split.
    tracks: `mssjax.data.loaders.ValidationTrack` s.
    config: the experiment config (``separate`` chunking, ``eval.metric``,
      ``eval.crop_seconds``: > 0 scores only the first seconds of each track, so
      the metric compiles for one length; the network runs in ``precision``).

  Returns:
    ``{"sdr/<target>": median over tracks for each of ``config.targets``, "sdr/mean": their mean}``.
  """
  metric = sdr.VALIDATION_METRICS[check_choice("eval.metric", config.eval.metric, sorted(sdr.VALIDATION_METRICS))]
  n_fft, hop_length = models.stft_settings(config)
  chunk = int(round(config.separate.chunk_seconds * config.sample_rate))
  overlap = int(round(config.separate.overlap_seconds * config.sample_rate))

  def separate_chunk(x: np.ndarray) -> jax.Array:
    return network_lib.separate_with_params(graphdef, params, jnp.asarray(x)[None], n_fft=n_fft,
                                            hop_length=hop_length, precision=config.precision)[0]

  crop = int(round(config.eval.crop_seconds * config.sample_rate)) or None
  scores = []
  for track in tracks:
    mixture, targets = track.mixture[..., :crop], track.targets[..., :crop]
    estimates = separate.separate_in_chunks(separate_chunk, mixture, chunk_samples=chunk, overlap_samples=overlap)
    scores.append(metric(np.asarray(targets), estimates))
  medians = np.nanmedian(np.stack(scores), axis=0)
  out = {f"sdr/{t}": float(m) for t, m in zip(models.targets_of(config), medians)}
  out["sdr/mean"] = float(np.mean(medians))
  return out


# --- checking a config before any work -------------------------------------------------------------


def check_config(config: ml_collections.ConfigDict) -> None:
  """Checks every name and number of an experiment config before any training step.

  Registry names (model, loss, optimiser, schedule, validation metric, data
  loader) must be known, with the valid choices in the message; counts must
  be positive integers; durations finite and positive.

  Raises:
    ParameterError: the first problem found.
  """
  check_choice("model.name", config.model.name, models.names())
  loss_spec(config)
  check_choice("optim.name", config.optim.name, sorted(OPTIMIZERS))
  check_choice("optim.schedule", config.optim.schedule, sorted(SCHEDULES))
  check_choice("eval.metric", config.eval.metric, sorted(sdr.VALIDATION_METRICS))
  loaders.check_name(config)
  for name in ("num_train_steps", "log_every", "checkpoint_every", "checkpoint.keep", "stft.n_fft",
               "stft.hop_length", "data.batch_size", "sample_rate", "optim.accumulate_steps"):
    check_positive_int(name, _get(config, name))
  for name in ("eval_every", "model.stats_batches", "optim.warmup_steps", "eval.max_tracks"):
    check_non_negative_int(name, _get(config, name))
  check_finite("optim.learning_rate", config.optim.learning_rate, minimum=0, strict=True)
  check_finite("data.chunk_seconds", config.data.chunk_seconds, minimum=0, strict=True)
  check_finite("eval.crop_seconds", config.eval.crop_seconds, minimum=0)
  models.targets_of(config)
  separate.check_chunking(chunk_seconds=config.separate.chunk_seconds,
                          overlap_seconds=config.separate.overlap_seconds, sample_rate=config.sample_rate)


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
  for part in dotted.split("."):
    config = config[part]
  return config


# --- the loop ---------------------------------------------------------------------------------------


class _Logger:
  """Averages train metrics between writes; writes TensorBoard scalars (process 0 only)."""

  def __init__(self, workdir: pathlib.Path, schedule: optax.Schedule):
    self.writer = None
    if jax.process_index() == 0:
      import tensorboardX  # pylint: disable=import-outside-toplevel
      self.writer = tensorboardX.SummaryWriter(str(workdir))
    self.schedule, self.losses, self.time = schedule, [], time.perf_counter()

  def record(self, loss: float) -> None:
    """Remembers one step's loss for the next write."""
    self.losses.append(loss)

  def train(self, step: int, grad_norm: float) -> dict[str, float]:
    """Writes the mean loss and the rate of optimiser updates since the last write."""
    now = time.perf_counter()
    rate = len(self.losses) / max(now - self.time, 1e-9)
    values = {"train/loss": float(np.mean(self.losses)), "train/grad_norm": grad_norm,
              "train/learning_rate": float(self.schedule(step - 1)), "train/steps_per_second": rate}
    self.losses, self.time = [], now
    self.scalars(step, values)
    return values

  def restart_clock(self) -> None:
    """Excludes time spent elsewhere (validation, checkpoints) from the step rate."""
    self.time = time.perf_counter()

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    if self.writer is not None:
      for tag, value in values.items():
        self.writer.add_scalar(tag, value, step)
      self.writer.flush()

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()


@dataclasses.dataclass
class _Run:
  """One training run's fixed parts (built once by `train_and_evaluate`)."""
  config: ml_collections.ConfigDict
  mesh: Mesh
  iterator: Iterator[dict[str, np.ndarray]]
  managers: checkpoints.Managers
  logger: _Logger
  tracks: list[loaders.ValidationTrack] | None
  init_params: finetune.InitialParams | None = None  # config.init_weights' parameters (read and checked once)
  interrupts: Interrupts = dataclasses.field(default_factory=Interrupts)
  bar: Any = None

  def save(self, manager: Any, step: int, state: TrainState, metrics: Mapping[str, float] | None = None) -> None:
    with self.interrupts.deferred():  # an interrupt inside orbax's I/O would leave a half-written save
      checkpoints.save_state(manager, step, params=state.params, opt_state=state.opt_state,
                             data=grain.checkpoint.CheckpointSave(self.iterator), metrics=metrics)

  def last_checkpoint(self, what: str = "the last complete checkpoint") -> str:
    """``"{what} is step N in W/checkpoints"`` once every save has finished (for messages)."""
    with self.interrupts.deferred():
      self.managers.wait_until_finished()
    last = self.managers.latest.latest_step()
    if last is None:
      return f"no checkpoint was saved in {self.managers.latest.directory}"
    return f"{what} is step {last} in {self.managers.latest.directory}"

  def check_finite(self, step: int, metrics: Mapping[str, jax.Array]) -> float:
    """The step's loss; raises if the loss, the gradients or the updated parameters are not finite."""
    metrics = host_local(metrics)
    loss, grad_norm = float(metrics["loss"]), float(metrics["grad_norm"])
    if not (math.isfinite(loss) and math.isfinite(grad_norm)):
      self.fail(step, f"non-finite training loss at step {step} (loss {loss}, gradient norm {grad_norm})")
    if not bool(metrics["params_finite"]):
      self.fail(step, f"non-finite parameters after the update of step {step} (loss {loss}, gradient norm "
                      f"{grad_norm})")
    return loss

  def check_savable(self, step: int, state: TrainState, batch: Mapping[str, jax.Array]) -> None:
    """Raises unless ``state``'s parameters give a finite loss on the step's batch (exploded
    parameters are finite numbers whose next forward pass overflows)."""
    loss = float(host_local(loss_of(state, batch)))
    if not math.isfinite(loss):
      self.fail(step, f"the parameters after step {step} give a non-finite loss ({loss}) on its batch")

  def fail(self, step: int, what: str) -> None:
    where = self.last_checkpoint("the last checkpoint, all finite,")
    raise FloatingPointError(f"{what}: training stopped without saving; {where} (lower optim.learning_rate "
                             "or set optim.grad_clip_norm)")

  def after_step(self, step: int, state: TrainState, batch: Mapping[str, jax.Array],
                 metrics: Mapping[str, jax.Array], loss: float) -> None:
    config, total = self.config, int(self.config.num_train_steps)
    self.bar.update(1)
    self.logger.record(loss)
    if step % int(config.log_every) == 0 or step == total:
      values = self.logger.train(step, float(host_local(metrics["grad_norm"])))
      self.bar.set_postfix(loss=f"{values['train/loss']:.4g}",
                           steps_per_s=f"{values['train/steps_per_second']:.2f}")
    validate = config.eval_every and (step % int(config.eval_every) == 0 or step == total)
    checkpoint = step % int(config.checkpoint_every) == 0 or step == total
    if validate or checkpoint:
      self.check_savable(step, state, batch)
    if validate:
      values = evaluate(state.graphdef, host_local(state.params), self.tracks, config)
      self.logger.scalars(step, {f"valid/{k}": v for k, v in values.items()})
      self.save(self.managers.best, step, state, metrics=values)
      self.bar.write(f"step {step}: " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()))
      self.logger.restart_clock()
    if checkpoint:
      self.save(self.managers.latest, step, state)


def _initial_state(config: ml_collections.ConfigDict, run: _Run) -> TrainState:
  """A fresh state (with input statistics, or ``config.init_weights``' parameters), or the latest checkpoint's.

  Replicated on the mesh.
  """
  resuming = run.managers.latest.latest_step() is not None
  from_file = not resuming and run.init_params is not None
  stats = None
  if not resuming and not from_file and config.model.stats_batches:
    stats_iterator = loaders.make_train_iterator(config, seed=int(config.seed) + 1)
    stats = [global_batch(next(stats_iterator)) for _ in range(int(config.model.stats_batches))]
  state = create_train_state(config, jax.random.key(int(config.seed)), stats_batches=stats)
  if from_file:
    flat = {**weights.flatten(jax.tree.map(np.asarray, state.params)), **run.init_params.params}
    params = jax.tree.map(jnp.asarray, weights.unflatten(flat, state.params))
    state = state.replace(params=params, opt_state=state.tx.init(params))
  if resuming:
    restored = workdir_lib.restore_latest(run.managers, params=state.params, opt_state=state.opt_state,
                                          iterator=run.iterator, mesh=run.mesh, interrupts=run.interrupts)
    state = state.replace(step=jnp.asarray(restored.step, jnp.int32), params=restored.params,
                          opt_state=restored.opt_state)
  return state.replace(step=replicate(state.step, run.mesh), params=replicate(state.params, run.mesh),
                       opt_state=replicate(state.opt_state, run.mesh))


def _update(run: _Run, state: TrainState, step_fn: Callable, step: int, base_key: jax.Array
            ) -> tuple[TrainState, dict[str, jax.Array], dict[str, jax.Array], float]:
  """Optimiser update ``step``: ``optim.accumulate_steps`` micro-steps on as many batches, each checked finite.

  Returns:
    ``(state, last micro-batch, its metrics, mean loss of the micro-batches)``.
  """
  k = int(run.config.optim.accumulate_steps)
  losses = []
  for micro in range(k):
    batch = shard_batch(next(run.iterator), run.mesh)
    new_state, metrics = step_fn(state, batch, jax.random.fold_in(base_key, (step - 1) * k + micro + 1))
    losses.append(run.check_finite(step, metrics))
    state = new_state
  return state, batch, metrics, float(np.mean(losses))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                       allow_config_change: bool = False) -> TrainState:
  """Trains ``config``'s model, validating and checkpointing in ``workdir``; resumes from it.

  Everything is checked before the first step (`check_config`, the batch
  split, the data, the workdir's config); ``workdir/config.json`` is written
  only then.

  Args:
    config: the experiment ConfigDict (see ``configs/unet.py``).
    workdir: folder for ``config.json``, ``checkpoints/`` (latest), ``best/``
      (best validation SDR) and TensorBoard event files.
    allow_config_change: resume a workdir whose saved config differs.

  Returns:
    the final `TrainState`.

  Raises:
    ParameterError: a bad config, a workdir of another config, or a workdir
      that another run holds (its lock, `mssjax.distributed.workdir_lock`).
    OSError: a workdir that cannot be written (`mssjax.fileio.check_writable`).
    CheckpointError: no readable checkpoint to resume from, or one that does
      not fit the config (an unreadable newer one is moved aside with a warning).
    FloatingPointError: a non-finite loss, gradient or parameter; the last
      (finite) checkpoint is kept.
    KeyboardInterrupt: SIGINT or SIGTERM; saves in flight finish first and
      the message says where the last complete checkpoint is.
  """
  check_config(config)
  finetune.check_freeze(config, models.model_spec(config).abstract_params)
  init_params = None  # a bad or mismatched file fails before the workdir is touched
  if config.get("init_weights"):
    spec = models.model_spec(config)
    init_params = finetune.initial_params(config, spec.abstract_params)
    tqdm.tqdm.write(finetune.describe_initial(config.init_weights, init_params, spec.n_parameters))
  workdir = pathlib.Path(workdir).resolve()
  mesh = make_mesh()
  check_batch_size(config, mesh)
  iterator = loaders.make_train_iterator(config)
  tracks = loaders.validation_tracks(config) if config.eval_every else None
  fileio.check_writable(workdir, folder=True)
  with distributed.workdir_lock(workdir), Interrupts() as interrupts:
    prepare_workdir(config, workdir, allow_config_change=allow_config_change)
    with interrupts.deferred():
      managers = checkpoints.managers(workdir, keep=int(config.checkpoint.keep))
    run = _Run(config, mesh, iterator, managers, _Logger(workdir, make_optimizer(config).schedule), tracks,
               init_params, interrupts)
    try:
      return _train(run, workdir)
    except KeyboardInterrupt as interrupt:
      raise KeyboardInterrupt(f"interrupted{interrupts.received_name()}; {run.last_checkpoint()}") from interrupt
    finally:
      with interrupts.deferred():
        run.managers.wait_until_finished()
      run.logger.close()


def _train(run: _Run, workdir: pathlib.Path) -> TrainState:
  """The run's first state (fresh or restored), then its steps; returns the last state."""
  config, mesh = run.config, run.mesh
  state = _initial_state(config, run)
  write_workdir_config(config, workdir)
  step_fn, base_key = parallel_train_step(mesh), jax.random.key(int(config.seed))
  start, total = int(host_local(state.step)), int(config.num_train_steps)
  with tqdm.tqdm(initial=start, total=total, unit="step", disable=not config.progress) as run.bar:
    for step in range(start + 1, total + 1):
      state, batch, metrics, loss = _update(run, state, step_fn, step, base_key)
      run.after_step(step, state, batch, metrics, loss)
  return state
