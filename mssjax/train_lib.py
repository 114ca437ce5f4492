"""Training the separation network: state, a pure train step, evaluation and the loop.

``train_and_evaluate(config, workdir)`` runs a whole experiment: it builds the
model from ``config.model``, trains it with optax on batches from the data
loader named by ``config.data.name``, validates every ``config.eval_every``
steps with SDR, writes TensorBoard scalars and orbax checkpoints (the latest
and the best by validation SDR: parameters, optimiser state and the data
iterator's state) to ``workdir``, and resumes from there when restarted, to the
same parameters an uninterrupted run reaches.

Data-parallel training: the batch is split over every JAX device along a
one-axis `jax.sharding.Mesh` (``"data"``), the parameters and optimiser state
are replicated, and XLA reduces the gradients across devices. Multi-host runs
call ``jax.distributed.initialize()`` first; each process then loads its own
``batch_size / process_count`` examples (grain shards per process) and the
global batch is assembled with ``jax.make_array_from_process_local_data``.
"""

import dataclasses
import functools
import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mssjax import TARGETS, models, spectral, tfevents
from mssjax.errors import ParameterError
from mssjax.models import separator as separator_lib
from mssjax.models.separator import model_bins, stft_settings

# --- state and step ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """What the loss compares (static under jit).

  Attributes:
    kind: ``"l1"`` or ``"mse"``.
    domain: ``"magnitude"`` (masked mixture magnitude against the target's
      STFT magnitude, as Open-Unmix) or ``"time"`` (waveforms through the
      differentiable iSTFT, as Demucs/X-UMX's time-domain term).
    n_fft, hop_length: the STFT settings.
  """
  kind: str
  domain: str
  n_fft: int
  hop_length: int


LOSS_KINDS = ("l1", "mse")
LOSS_DOMAINS = ("magnitude", "time")


class TrainState(struct.PyTreeNode):
  """Everything a train step changes, plus its static recipe.

  Attributes:
    step: int32 scalar, optimiser steps taken.
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


def loss_spec(config):
  """The `LossSpec` of a config (validated)."""
  kind, domain = config.loss.kind, config.loss.domain
  if kind not in LOSS_KINDS:
    raise ParameterError(f"loss.kind={kind!r} must be one of {LOSS_KINDS}")
  if domain not in LOSS_DOMAINS:
    raise ParameterError(f"loss.domain={domain!r} must be one of {LOSS_DOMAINS}")
  n_fft, hop_length = stft_settings(config)
  return LossSpec(kind, domain, n_fft, hop_length)


def _schedule(optim, num_train_steps):
  lr, warmup = float(optim.learning_rate), int(optim.get("warmup_steps", 0))
  name = optim.get("schedule", "cosine")
  if name == "constant":
    return optax.join_schedules([optax.linear_schedule(0.0, lr, max(warmup, 1)), optax.constant_schedule(lr)],
                                [max(warmup, 1)]) if warmup else optax.constant_schedule(lr)
  if name == "cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup, max(num_train_steps, warmup + 1), end_value=lr * optim.get("final_lr_fraction", 0.01))
  raise ParameterError(f"optim.schedule={name!r} must be one of ['constant', 'cosine']")


OPTIMIZERS = {
    "adam": lambda schedule, optim: optax.adam(schedule),
    "adamw": lambda schedule, optim: optax.adamw(schedule, weight_decay=optim.get("weight_decay", 1e-4)),
}


def make_optimizer(config):
  """Gradient clipping by global norm, then Adam/AdamW on a warm-up + decay schedule.

  Equal settings give the same (cached) objects, so jit-compiled steps are reused.

  Returns:
    ``(tx, schedule)``.
  """
  return _make_optimizer(_config_key(config, ("optim", "num_train_steps")))


def _config_key(config, fields):
  """A hashable JSON key of some top-level fields of a config."""
  return json.dumps({f: config.get(f).to_dict() if hasattr(config.get(f), "to_dict") else config.get(f)
                     for f in fields}, sort_keys=True, default=str)


@functools.lru_cache(maxsize=16)
def _make_optimizer(key):
  config = ml_collections.ConfigDict(json.loads(key))
  optim = config.optim
  if optim.name not in OPTIMIZERS:
    raise ParameterError(f"optim.name={optim.name!r} is not known; valid names: {sorted(OPTIMIZERS)}")
  schedule = _schedule(optim, int(config.num_train_steps))
  tx = OPTIMIZERS[optim.name](schedule, optim)
  if optim.get("grad_clip_norm", None):
    tx = optax.chain(optax.clip_by_global_norm(float(optim.grad_clip_norm)), tx)
  return tx, schedule


def create_model(config, key):
  """The model of ``config.model`` initialised from ``key`` (eagerly; see `init_params` for speed)."""
  return models.get_model(config.model, n_bins=model_bins(config), rngs=nnx.Rngs(params=key))


MODEL_FIELDS = ("model", "stft", "sample_rate")


def model_graphdef(config):
  """The model's `nnx.GraphDef` (built abstractly, nothing is initialised)."""
  return _model_factory(_config_key(config, MODEL_FIELDS))[0]


def init_params(config, key):
  """The model's initial parameters as a pure dict, from one jit-compiled initialiser per model config."""
  return _model_factory(_config_key(config, MODEL_FIELDS))[1](key)


@functools.lru_cache(maxsize=16)
def _model_factory(key):
  config = ml_collections.ConfigDict(json.loads(key))
  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: create_model(config, jax.random.key(0))))
  init = jax.jit(lambda k: nnx.to_pure_dict(nnx.split(create_model(config, k))[1]))
  # The initialiser runs once: XLA's cheapest compile (about 6x faster here) is the better trade.
  return graphdef, init.lower(jax.random.key(0)).compile(_QUICK_COMPILE), nnx.to_pure_dict(abstract)


_QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def input_statistics(batches, *, n_fft, hop_length, n_bins):
  """Per-bin mean and 1/std of ``log1p|STFT|`` of the mixtures of some batches (Open-Unmix's scaler).

  Args:
    batches: iterable of ``{"mixture": [B, 2, n]}``.

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


def create_train_state(config, key, *, stats_batches=None):
  """A fresh `TrainState`: the model from ``key``, the optimiser, step 0.

  Args:
    config: the experiment config.
    key: a `jax.random.key` for the initialisation.
    stats_batches: optional batches whose input statistics initialise the
      model's input normalisation.
  """
  graphdef, params = model_graphdef(config), init_params(config, key)
  if stats_batches is not None:
    n_fft, hop_length = stft_settings(config)
    mean, scale = input_statistics(stats_batches, n_fft=n_fft, hop_length=hop_length, n_bins=model_bins(config))
    params = {**params, "input_mean": jnp.asarray(mean), "input_scale": jnp.asarray(scale)}
  tx, _ = make_optimizer(config)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    graphdef=graphdef, tx=tx, loss=loss_spec(config))


def _distance(diff, kind):
  return jnp.mean(jnp.abs(diff)) if kind == "l1" else jnp.mean(jnp.square(diff))


def compute_loss(graphdef, params, batch, spec):
  """The training loss of one batch.

  Args:
    graphdef, params: the model, split.
    batch: ``{"mixture": [B, 2, n], "targets": [B, 4, 2, n]}``.
    spec: a `LossSpec`.

  Returns:
    float32 scalar.
  """
  model = nnx.merge(graphdef, params)
  mixture_stft = spectral.stft(batch["mixture"], n_fft=spec.n_fft, hop_length=spec.hop_length)
  if spec.domain == "time":
    estimates = separator_lib.estimate_spectrograms(model, mixture_stft)
    waves = spectral.istft(estimates, n_fft=spec.n_fft, hop_length=spec.hop_length,
                           length=batch["mixture"].shape[-1])
    return _distance(waves - batch["targets"], spec.kind)
  magnitude = jnp.abs(mixture_stft)
  estimates = model(magnitude) * magnitude[:, None]
  targets = jnp.abs(spectral.stft(batch["targets"], n_fft=spec.n_fft, hop_length=spec.hop_length))
  return _distance(estimates - targets, spec.kind)


def _train_step(state, batch, key):
  del key  # The model has no stochastic layers; the key is part of the contract for those that do.
  loss_fn = lambda params: compute_loss(state.graphdef, params, batch, state.loss)
  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


train_step = jax.jit(_train_step)
train_step.__doc__ = """One optimiser step: ``train_step(state, batch, key) -> (state, metrics)``.

Pure and jit-compiled. ``batch`` is ``{"mixture": [B, 2, n], "targets": [B, 4, 2, n]}``;
``metrics`` holds the batch's ``loss`` and the gradients' global norm ``grad_norm``.
"""


@jax.jit
def eval_step(state, batch):
  """The loss of a batch with the current parameters, without updating them."""
  return {"loss": compute_loss(state.graphdef, state.params, batch, state.loss)}


# --- devices --------------------------------------------------------------------------------------


def make_mesh(devices=None):
  """A one-axis ``("data",)`` mesh over ``devices`` (default: every device of every process)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ("data",))


@functools.lru_cache(maxsize=8)
def parallel_train_step(mesh):
  """`train_step` jit-compiled for ``mesh``: batch split on ``"data"``, state replicated."""
  replicated = NamedSharding(mesh, PartitionSpec())
  batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
  return jax.jit(_train_step, in_shardings=(replicated, batch_sharding, replicated),
                 out_shardings=(replicated, replicated))


def shard_batch(batch, mesh):
  """Places a host batch on ``mesh``, split along its leading axis.

  With several processes each passes its own slice of the global batch.
  """
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  if jax.process_count() == 1:
    return jax.device_put({k: np.asarray(v) for k, v in batch.items()}, sharding)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def replicate(tree, mesh):
  """Places a pytree on every device of ``mesh``."""
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def _check_batch_size(config, mesh):
  batch_size = int(config.data.batch_size)
  if batch_size % mesh.size:
    raise ParameterError(f"data.batch_size={batch_size} must be a multiple of the device count {mesh.size}")
  if batch_size % jax.process_count():
    raise ParameterError(f"data.batch_size={batch_size} must be a multiple of the process count "
                         f"{jax.process_count()}")


# --- data -----------------------------------------------------------------------------------------


class SyntheticIterator:
  """Deterministic training batches of generated songs (`mssjax.data.generate`), for tests and demos.

  Example ``i`` of the stream is the song of seed ``seed * 1_000_003 + i``,
  so the stream is reproducible and its state is one integer. The state
  methods follow grain's iterators, so the same checkpoint code handles both.
  """

  def __init__(self, *, seconds, batch_size, seed=0, sample_rate=44100):
    self.seconds, self.batch_size, self.seed, self.sample_rate = seconds, batch_size, seed, sample_rate
    self.index = 0

  def __iter__(self):
    return self

  def __next__(self):
    examples = [self.example(self.seed * 1_000_003 + self.index + i) for i in range(self.batch_size)]
    self.index += self.batch_size
    return {k: np.stack([e[k] for e in examples]) for k in ("mixture", "targets")}

  def example(self, seed):
    from mssjax.data import generate  # pylint: disable=import-outside-toplevel
    song = generate.generate_song(seed=seed, seconds=self.seconds, sample_rate=self.sample_rate)
    return {"mixture": song["mixture"], "targets": np.stack([song[t] for t in TARGETS])}

  def get_state(self):
    return json.dumps({"index": self.index}).encode()

  def set_state(self, state):
    self.index = int(json.loads(state)["index"])

  def start_prefetch(self):
    """Nothing to prefetch (grain's checkpoint handler calls this after a restore)."""


def _synthetic_loader(config, *, seed):
  return SyntheticIterator(seconds=config.data.chunk_seconds, seed=seed,
                           batch_size=config.data.batch_size // jax.process_count())


def _per_process(config):
  """``config`` with ``data.batch_size`` divided among the JAX processes (the pipeline's batch is local)."""
  local = ml_collections.ConfigDict(config.to_dict())
  local.data.batch_size = int(config.data.batch_size) // jax.process_count()
  return local


def _musdb_loader(config, *, seed):
  from mssjax.data import pipeline  # pylint: disable=import-outside-toplevel
  return iter(pipeline.make_train_loader(_per_process(config), seed=seed))


LOADERS = {"synthetic": _synthetic_loader, "musdb": _musdb_loader}
"""Training data by ``config.data.name``: ``loader(config, seed=...)`` -> an iterator of batches
with ``get_state()`` / ``set_state()``."""


def make_train_iterator(config, *, seed=None):
  """The training batch iterator named by ``config.data.name``."""
  name = config.data.name
  if name not in LOADERS:
    raise ParameterError(f"data.name={name!r} is not known; valid names: {sorted(LOADERS)}")
  return LOADERS[name](config, seed=int(config.seed if seed is None else seed))


def _synthetic_tracks(config):
  it = SyntheticIterator(seconds=config.eval.seconds, batch_size=1, seed=int(config.seed) + 7919)
  seeds = range(10_000_000, 10_000_000 + int(config.eval.max_tracks))
  return [(f"generated-{s}", *(it.example(s)[k] for k in ("mixture", "targets"))) for s in seeds]


def _musdb_tracks(config):
  from mssjax.data import pipeline  # pylint: disable=import-outside-toplevel
  tracks = pipeline.make_eval_source(config)
  count = min(len(tracks), int(config.eval.max_tracks)) if config.eval.get("max_tracks") else len(tracks)
  return [(t["name"], t["mixture"], t["targets"]) for t in (tracks[i] for i in range(count))]


EVAL_TRACKS = {"synthetic": _synthetic_tracks, "musdb": _musdb_tracks}
"""Validation tracks by ``config.data.name``: list of ``(name, mixture [2, n], targets [4, 2, n])``."""


# --- evaluation -----------------------------------------------------------------------------------


def global_sdr(references, estimates):
  """Whole-signal SDR in dB per source: ``10 log10(|s|^2 / |s - s_hat|^2)``, ``[n_sources, ...]`` in."""
  axes = tuple(range(1, references.ndim))
  signal = np.sum(np.square(references, dtype=np.float64), axis=axes)
  noise = np.sum(np.square(references - estimates, dtype=np.float64), axis=axes)
  eps = 1e-10
  return 10 * np.log10((signal + eps) / (noise + eps))


def bss_eval_sdr(references, estimates):
  """Median over 1 s frames of BSSEval v4 SDR per source (`mssjax.metrics.bss_eval_v4`)."""
  from mssjax import metrics  # pylint: disable=import-outside-toplevel
  out = metrics.bss_eval_v4(np.swapaxes(references, 1, 2), np.swapaxes(estimates, 1, 2))
  return np.nanmedian(np.asarray(out["SDR"]), axis=1)


METRICS = {"global_sdr": global_sdr, "bss_eval_v4": bss_eval_sdr}


def evaluate(graphdef, params, tracks, config):
  """Validation SDR: each track separated in chunks as at inference, scored, medians over tracks.

  Returns:
    ``{"sdr/vocals": ..., ..., "sdr/mean": mean of the four medians}``.
  """
  metric = METRICS[config.eval.metric]
  n_fft, hop_length = stft_settings(config)
  chunk = int(round(config.separate.chunk_seconds * config.sample_rate))
  overlap = int(round(config.separate.overlap_seconds * config.sample_rate))

  def separate_chunk(x):
    return separator_lib.separate_with_params(graphdef, params, jnp.asarray(x)[None], n_fft=n_fft,
                                              hop_length=hop_length)[0]

  from mssjax import separate  # pylint: disable=import-outside-toplevel
  scores = []
  crop = int(round(config.eval.get("crop_seconds", 0) * config.sample_rate)) or None
  for _, mixture, targets in tracks:
    mixture, targets = mixture[..., :crop], targets[..., :crop]  # one length: the metric compiles once
    estimates = separate.separate_in_chunks(separate_chunk, mixture, chunk_samples=chunk, overlap_samples=overlap)
    scores.append(metric(np.asarray(targets), estimates))
  medians = np.nanmedian(np.stack(scores), axis=0)
  out = {f"sdr/{t}": float(m) for t, m in zip(TARGETS, medians)}
  out["sdr/mean"] = float(np.mean(medians))
  return out


# --- checkpoints ----------------------------------------------------------------------------------


def checkpoint_managers(workdir, config):
  """``(latest, best)`` orbax managers under ``workdir/checkpoints`` and ``workdir/best``."""
  workdir = pathlib.Path(workdir).resolve()
  latest = ocp.CheckpointManager(
      workdir / "checkpoints",
      options=ocp.CheckpointManagerOptions(max_to_keep=int(config.checkpoint.keep), create=True))
  best = ocp.CheckpointManager(
      workdir / "best",
      options=ocp.CheckpointManagerOptions(max_to_keep=1, best_fn=lambda m: m["sdr/mean"], best_mode="max",
                                           create=True))
  return latest, best


def _save_args(state, iterator):
  return ocp.args.Composite(
      params=ocp.args.StandardSave(state.params), opt_state=ocp.args.StandardSave(state.opt_state),
      step=ocp.args.JsonSave({"step": int(host_local(state.step))}), data=grain_save(iterator))


def grain_save(iterator):
  import grain  # pylint: disable=import-outside-toplevel
  return grain.checkpoint.CheckpointSave(iterator)


def _abstract(tree, sharding=None):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.asarray(x).dtype, sharding=sharding), tree)


def restore_train_state(manager, state, iterator, *, mesh):
  """Restores the latest checkpoint of ``manager`` into ``state`` and ``iterator`` (in place)."""
  import grain  # pylint: disable=import-outside-toplevel
  step = manager.latest_step()
  replicated = NamedSharding(mesh, PartitionSpec())
  restored = manager.restore(step, args=ocp.args.Composite(
      params=ocp.args.StandardRestore(_abstract(state.params, replicated)),
      opt_state=ocp.args.StandardRestore(_abstract(state.opt_state, replicated)),
      step=ocp.args.JsonRestore(), data=grain.checkpoint.CheckpointRestore(iterator)))
  return state.replace(step=jnp.asarray(restored.step["step"], jnp.int32), params=restored.params,
                       opt_state=restored.opt_state)


def restore_params(config, workdir, *, which="best"):
  """The model parameters (pure dict of numpy arrays) saved in a training workdir.

  Args:
    config: the training config (for the parameter shapes).
    workdir: the training workdir.
    which: ``"best"`` (falls back to the latest where no validation ran) or ``"latest"``.
  """
  if which not in ("best", "latest"):
    raise ParameterError(f"which={which!r} must be 'best' or 'latest'")
  latest, best = checkpoint_managers(workdir, config)
  manager = best if which == "best" and best.latest_step() is not None else latest
  step = manager.best_step() if manager is best else manager.latest_step()
  if step is None:
    raise ParameterError(f"no checkpoint in {workdir}")
  abstract = _model_factory(_config_key(config, MODEL_FIELDS))[2]
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), abstract)
  restored = manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract)))
  return jax.tree.map(np.asarray, restored.params)


# --- the loop -------------------------------------------------------------------------------------


def host_local(tree):
  """Replicated global arrays as numpy on this host (works with several processes, where a global
  array is not fully addressable)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, tree)


def _check_finite(metrics, step, manager):
  metrics = host_local(metrics)
  loss, grad_norm = float(metrics["loss"]), float(metrics["grad_norm"])
  if math.isfinite(loss) and math.isfinite(grad_norm):
    return loss
  manager.wait_until_finished()
  raise FloatingPointError(
      f"non-finite training loss {loss} (gradient norm {grad_norm}) at step {step}: training stopped "
      f"without saving; the last good checkpoint is step {manager.latest_step()} in {manager.directory}")


def _write_config(config, workdir):
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True))


def _initial_state(config, manager, iterator, mesh):
  key = jax.random.key(int(config.seed))
  stats = None
  if manager.latest_step() is None and config.model.get("stats_batches", 0):
    stats_iterator = make_train_iterator(config, seed=int(config.seed) + 1)
    stats = [next(stats_iterator) for _ in range(int(config.model.stats_batches))]
  state = create_train_state(config, key, stats_batches=stats)
  if manager.latest_step() is not None:
    state = restore_train_state(manager, state, iterator, mesh=mesh)
  return state.replace(step=replicate(state.step, mesh), params=replicate(state.params, mesh),
                       opt_state=replicate(state.opt_state, mesh))


class _Logger:
  """Averages train metrics between writes; writes TensorBoard scalars (process 0 only)."""

  def __init__(self, workdir, schedule):
    self.writer = tfevents.SummaryWriter(workdir) if jax.process_index() == 0 else None
    self.schedule, self.losses, self.time = schedule, [], time.perf_counter()

  def record(self, loss):
    """Remembers one step's loss for the next write."""
    self.losses.append(loss)

  def train(self, step, grad_norm):
    """Writes the mean loss and the step rate since the last write."""
    now = time.perf_counter()
    rate = len(self.losses) / max(now - self.time, 1e-9)
    values = {"train/loss": float(np.mean(self.losses)), "train/grad_norm": grad_norm,
              "train/learning_rate": float(self.schedule(step - 1)), "train/steps_per_second": rate}
    self.losses, self.time = [], now
    self.scalars(step, values)
    return values

  def restart_clock(self):
    """Excludes time spent elsewhere (validation, checkpoints) from the step rate."""
    self.time = time.perf_counter()

  def scalars(self, step, values):
    if self.writer is not None:
      self.writer.scalars(step, values)

  def close(self):
    if self.writer is not None:
      self.writer.close()


def _validate(config, state, managers, iterator, logger, tracks, step):
  values = evaluate(state.graphdef, host_local(state.params), tracks, config)
  logger.scalars(step, {f"valid/{k}": v for k, v in values.items()})
  managers[1].save(step, args=_save_args(state, iterator), metrics=values)
  return values


def train_and_evaluate(config, workdir):
  """Trains ``config``'s model, validating and checkpointing in ``workdir``; resumes from it.

  Args:
    config: the experiment ConfigDict (see ``configs/unet.py``).
    workdir: folder for ``config.json``, ``checkpoints/`` (latest), ``best/``
      (best validation SDR) and TensorBoard event files.

  Returns:
    the final `TrainState`.

  Raises:
    FloatingPointError: a non-finite loss or gradient; the last good checkpoint is kept.
  """
  workdir = pathlib.Path(workdir).resolve()
  _write_config(config, workdir)
  mesh = make_mesh()
  _check_batch_size(config, mesh)
  iterator = make_train_iterator(config)
  managers = checkpoint_managers(workdir, config)
  state = _initial_state(config, managers[0], iterator, mesh)
  step_fn, logger = parallel_train_step(mesh), _Logger(workdir, make_optimizer(config)[1])
  tracks = EVAL_TRACKS[config.data.name](config) if config.eval_every else None
  base_key, start = jax.random.key(int(config.seed)), int(host_local(state.step))
  total = int(config.num_train_steps)
  try:
    with tqdm.tqdm(initial=start, total=total, unit="step", disable=not config.get("progress", True)) as bar:
      for step in range(start + 1, total + 1):
        batch = shard_batch(next(iterator), mesh)
        state, metrics = step_fn(state, batch, jax.random.fold_in(base_key, step))
        loss = _check_finite(metrics, step, managers[0])
        _after_step(config, step, total, state, metrics, loss, managers, iterator, logger, tracks, bar)
  finally:
    for manager in managers:
      manager.wait_until_finished()
    logger.close()
  return state


def _after_step(config, step, total, state, metrics, loss, managers, iterator, logger, tracks, bar):
  bar.update(1)
  logger.record(loss)
  if step % int(config.log_every) == 0 or step == total:
    values = logger.train(step, float(host_local(metrics["grad_norm"])))
    bar.set_postfix(loss=f"{values['train/loss']:.4g}", steps_per_s=f"{values['train/steps_per_second']:.2f}")
  if config.eval_every and (step % int(config.eval_every) == 0 or step == total):
    values = _validate(config, state, managers, iterator, logger, tracks, step)
    bar.write(f"step {step}: " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()))
    logger.restart_clock()
  if step % int(config.checkpoint_every) == 0 or step == total:
    managers[0].save(step, args=_save_args(state, iterator))
