"""Tests of the training library (mssjax.training.loop) on the tiny config: checkpoints, exact resume,
NaN handling, config checks, every optimiser and schedule default, data parallelism, metrics files."""

import glob
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from mssjax import checkpoints, models
from mssjax.training import finetune
from mssjax.training import loop as train_lib
from mssjax import config as config_lib
from mssjax.data import loaders
from mssjax.errors import CheckpointError, ParameterError
from mssjax.metrics import sdr

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ folder
from configs import unet_tiny  # pylint: disable=wrong-import-position


def tiny_config():
  config = unet_tiny.get_config()
  config.num_train_steps = 6
  config.checkpoint_every = 2
  config.eval_every = 6
  return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """An uninterrupted 6-step run: ``(workdir, final state)``."""
  workdir = tmp_path_factory.mktemp("uninterrupted")
  return workdir, train_lib.train_and_evaluate(tiny_config(), workdir)


class _Faulty:
  """Wraps a training iterator: raises, or poisons a batch, at its ``at``-th batch."""

  def __init__(self, inner, at, fault):
    self.inner, self.at, self.fault, self.count = inner, at, fault, 0

  def __iter__(self):
    return self

  def __next__(self):
    self.count += 1
    batch = next(self.inner)
    if self.count == self.at:
      if self.fault == "kill":
        raise KeyboardInterrupt("simulated kill")
      batch = dict(batch, mixture=np.full_like(batch["mixture"], np.nan))
    return batch

  def __getattr__(self, name):  # get_state, set_state, start_prefetch
    return getattr(self.inner, name)


def _faulty_loader(monkeypatch, at, fault):
  original = loaders.LOADERS["synthetic"]
  monkeypatch.setitem(loaders.LOADERS, "synthetic",
                      lambda config, seed: _Faulty(original(config, seed=seed), at, fault))


def _scalars(workdir):
  """``[(step, tag, value)]`` of a workdir's event file, read with TensorBoard's own reader."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=import-outside-toplevel
  (events,) = glob.glob(str(pathlib.Path(workdir) / "events.out.tfevents.*"))
  accumulator = event_accumulator.EventAccumulator(events, size_guidance={event_accumulator.SCALARS: 0})
  accumulator.Reload()
  return [(e.step, tag, e.value) for tag in accumulator.Tags()["scalars"] for e in accumulator.Scalars(tag)]


def _restore(workdir, which):
  like = models.model_spec(tiny_config()).abstract_params
  return checkpoints.restore_params(workdir, like, which=which)


def test_workdir_holds_config_checkpoints_and_metrics(trained):
  workdir, state = trained
  assert int(state.step) == 6
  assert not config_lib.differences(checkpoints.read_config(workdir).to_dict(), tiny_config().to_dict())
  assert sorted(os.listdir(workdir / "checkpoints")) == ["4", "6"]  # keep=2
  assert os.listdir(workdir / "best") == ["6"]
  scalars = _scalars(workdir)
  assert sorted(s for s, tag, _ in scalars if tag == "train/loss") == [1, 2, 3, 4, 5, 6]
  assert {tag for _, tag, _ in scalars} >= {"train/grad_norm", "train/learning_rate", "train/steps_per_second",
                                           "valid/sdr/vocals", "valid/sdr/mean"}
  assert all(np.isfinite(v) for _, _, v in scalars)


def test_restored_parameters_equal_the_final_state(trained):
  workdir, state = trained
  for which in ("best", "latest"):
    restored = _restore(workdir, which)
    assert (restored.step, restored.which) == (6, which)
    jax.tree.map(np.testing.assert_array_equal, restored.params, jax.tree.map(np.asarray, state.params))


def test_best_falls_back_to_latest_where_no_validation_ran(tmp_path):
  config = tiny_config()
  config.eval_every = 0
  train_lib.train_and_evaluate(config, tmp_path)
  assert not (tmp_path / "best").exists() or not os.listdir(tmp_path / "best")
  restored = checkpoints.restore_params(tmp_path, models.model_spec(config).abstract_params, which="best")
  assert (restored.step, restored.which) == (6, "latest")
  with pytest.raises(CheckpointError, match="no checkpoint"):
    checkpoints.restore_params(tmp_path / "nothing", models.model_spec(config).abstract_params)


def test_resume_after_a_kill_reaches_the_same_parameters(trained, tmp_path, monkeypatch):
  """Killed during step 5 (last checkpoint: step 4), then resumed: step 6 equals the uninterrupted run."""
  _faulty_loader(monkeypatch, at=5, fault="kill")
  with pytest.raises(KeyboardInterrupt):
    train_lib.train_and_evaluate(tiny_config(), tmp_path)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]
  monkeypatch.undo()
  resumed = train_lib.train_and_evaluate(tiny_config(), tmp_path)
  assert int(resumed.step) == 6
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, resumed.params),
               jax.tree.map(np.asarray, trained[1].params))
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, resumed.opt_state),
               jax.tree.map(np.asarray, trained[1].opt_state))


def test_resuming_with_another_config_is_refused_and_keeps_config_json(trained, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained[0], workdir)
  before = (workdir / "config.json").read_text()
  config = tiny_config()
  config.model.name = "unte"  # a typo on a finished workdir: refused before config.json is touched
  with pytest.raises(ParameterError, match="model.name='unte' is not known"):
    train_lib.train_and_evaluate(config, workdir)
  assert (workdir / "config.json").read_text() == before
  config = tiny_config()
  config.model.features = (4, 16)
  with pytest.raises(ParameterError, match=r"another config \(model.features: \(4, 8\) -> \(4, 16\)\).*"
                                           r"--allow_config_change"):
    train_lib.train_and_evaluate(config, workdir)
  assert (workdir / "config.json").read_text() == before
  config = tiny_config()
  config.num_train_steps = 8
  state = train_lib.train_and_evaluate(config, workdir, allow_config_change=True)
  assert int(state.step) == 8
  assert checkpoints.read_config(workdir).num_train_steps == 8


@pytest.mark.parametrize("field,value,message", [
    ("model.name", "transformer", r"model.name='transformer' is not known; valid choices: \['bs_roformer', 'conv_tasnet', 'umx', 'unet'\]"),
    ("eval.metric", "si_sdr", r"eval.metric='si_sdr' is not known; valid choices: \['bss_eval_v4', 'global_sdr'\]"),
    ("optim.name", "sgd", r"optim.name='sgd' is not known; valid choices: \['adam', 'adamw'\]"),
    ("optim.schedule", "step", r"optim.schedule='step' is not known; valid choices: \['constant', 'cosine'\]"),
    ("loss.kind", "l3", "loss.kind='l3'"),
    ("loss.domain", "phase", "loss.domain='phase'"),
    ("data.name", "imagenet", r"data.name='imagenet' is not known; valid choices: \['musdb', 'synthetic'\]"),
    ("num_train_steps", 0, "num_train_steps=0 must be a positive integer"),
    ("separate.chunk_seconds", float("nan"), "chunk_seconds=nan must be a finite number"),
])
def test_bad_configs_fail_before_any_work(tmp_path, field, value, message):
  """Checked before the first step: nothing is written to the workdir, a finished workdir keeps its config."""
  config = tiny_config()
  section, _, name = field.rpartition(".")
  (config[section] if section else config)[name] = value
  with pytest.raises(ParameterError, match=message):
    train_lib.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  _faulty_loader(monkeypatch, at=3, fault="nan")
  with pytest.raises(FloatingPointError, match=r"non-finite training loss at step 3 \(loss nan.*last "
                                               r"checkpoint, all finite, is step 2"):
    train_lib.train_and_evaluate(tiny_config(), tmp_path)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2"]
  params = _restore(tmp_path, "latest").params
  assert all(np.all(np.isfinite(p)) for p in jax.tree.leaves(params))


def test_exploding_parameters_never_reach_a_checkpoint(tmp_path):
  """learning_rate=1e12: whatever step fails, every saved checkpoint holds finite parameters with a finite loss."""
  config = tiny_config()
  config.optim.learning_rate = 1e12
  config.optim.grad_clip_norm = 0.0
  config.checkpoint_every = 1
  with pytest.raises(FloatingPointError, match="non-finite"):
    train_lib.train_and_evaluate(config, tmp_path)
  batch = next(loaders.make_train_iterator(config))
  state = train_lib.create_train_state(config, jax.random.key(0))
  like = models.model_spec(config).abstract_params
  for step in os.listdir(tmp_path / "checkpoints"):
    manager = checkpoints.managers(tmp_path, create=False).latest
    params = manager.restore(int(step), args=ocp.args.Composite(
        params=ocp.args.StandardRestore(checkpoints.abstract(like)))).params
    assert all(np.all(np.isfinite(p)) for p in jax.tree.leaves(params))
    assert np.isfinite(float(train_lib.compute_loss(state.graphdef, params, batch, state.loss)))


def test_training_lowers_the_loss_on_a_fixed_batch():
  config = tiny_config()
  batch = next(loaders.make_train_iterator(config))
  mesh = train_lib.make_mesh()
  state = train_lib.create_train_state(config, jax.random.key(0), stats_batches=[batch])
  state = train_lib.replicate(state, mesh)  # as training places it: one compile, not two
  step = train_lib.parallel_train_step(mesh)
  losses = []
  for i in range(6):
    state, metrics = step(state, train_lib.shard_batch(batch, mesh), jax.random.key(i))
    losses.append(float(metrics["loss"]))
    assert bool(metrics["params_finite"])
  assert losses[-1] < losses[0]


def test_time_domain_loss_and_gradients_are_finite():
  config = tiny_config()
  config.loss.domain = "time"
  state = train_lib.create_train_state(config, jax.random.key(0))
  batch = {k: v[:1, ..., :2048] for k, v in next(loaders.make_train_iterator(config)).items()}
  loss, grads = jax.jit(jax.value_and_grad(
      lambda p: train_lib.compute_loss(state.graphdef, p, batch, state.loss)))(state.params)
  assert np.isfinite(float(loss)) and float(loss) > 0
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def _optimizer(**optim):
  config = tiny_config()
  config.num_train_steps = 100
  for key, value in optim.items():
    config.optim[key] = value
  return train_lib.make_optimizer(config)


def test_schedules():
  constant = _optimizer(schedule="constant", warmup_steps=0, learning_rate=0.5).schedule
  assert [float(constant(s)) for s in (0, 50, 99)] == [0.5, 0.5, 0.5]
  warm = _optimizer(schedule="constant", warmup_steps=10, learning_rate=0.5).schedule
  np.testing.assert_allclose([float(warm(s)) for s in (0, 5, 10, 90)], [0.0, 0.25, 0.5, 0.5], rtol=1e-6)
  cosine = _optimizer(schedule="cosine", warmup_steps=10, learning_rate=0.5, final_lr_fraction=0.1).schedule
  np.testing.assert_allclose([float(cosine(s)) for s in (0, 10, 55, 100)], [0.0, 0.5, 0.275, 0.05], rtol=1e-5)


@pytest.mark.parametrize("name,clip", [("adam", 0.0), ("adamw", 0.0), ("adam", 0.01), ("adamw", 0.01)])
def test_optimizers_and_clipping_equal_optax(name, clip):
  """make_optimizer is optax's adam / adamw (weight decay from the config) after clip_by_global_norm."""
  tx = _optimizer(name=name, grad_clip_norm=clip, schedule="constant", warmup_steps=0, learning_rate=1e-2,
                  weight_decay=0.3).tx
  expected = optax.adam(1e-2) if name == "adam" else optax.adamw(1e-2, weight_decay=0.3)
  if clip:
    expected = optax.chain(optax.clip_by_global_norm(clip), expected)
  params = {"w": np.linspace(-1, 1, 6, dtype=np.float32)}
  grads = {"w": np.arange(6, dtype=np.float32) * 10}
  ours, _ = tx.update(grads, tx.init(params), params)
  theirs, _ = expected.update(grads, expected.init(params), params)
  np.testing.assert_allclose(ours["w"], theirs["w"], rtol=1e-6)
  if clip:  # Adam's first moment after one step is 0.1 x the gradient: the clipped one, of norm `clip`
    _, state = tx.update(grads, tx.init(params), params)
    first_moment = jax.tree.leaves(state)[1]
    np.testing.assert_allclose(np.linalg.norm(first_moment), 0.1 * clip, rtol=1e-5)


def test_crop_seconds_scores_the_first_seconds(trained):
  workdir, state = trained
  config = tiny_config()
  tracks = loaders.validation_tracks(config)
  params = jax.tree.map(np.asarray, state.params)
  config.eval.crop_seconds = 0.25
  cropped = train_lib.evaluate(state.graphdef, params, tracks, config)
  n = int(0.25 * config.sample_rate)
  short = [t._replace(mixture=t.mixture[..., :n], targets=t.targets[..., :n]) for t in tracks]
  config.eval.crop_seconds = 0.0
  assert cropped == train_lib.evaluate(state.graphdef, params, short, config)
  assert cropped != train_lib.evaluate(state.graphdef, params, tracks, config)


def test_validation_metrics():
  rng = np.random.default_rng(0)
  references = rng.standard_normal((4, 2, 1000))
  np.testing.assert_allclose(sdr.global_sdr(references, 0.9 * references), 20.0, rtol=1e-6)
  references = rng.standard_normal((4, 2, 3 * 4000)).astype(np.float32)
  estimates = references + 0.1 * rng.standard_normal(references.shape).astype(np.float32)
  from mssjax import metrics  # pylint: disable=import-outside-toplevel
  frames = np.asarray(metrics.bss_eval_v4(np.swapaxes(references, 1, 2), np.swapaxes(estimates, 1, 2),
                                          window=4000, hop=4000)["SDR"])
  assert frames.shape == (4, 3)
  np.testing.assert_allclose(sdr.median_bss_eval_sdr(references, estimates, window=4000, hop=4000),
                             np.median(frames, axis=1))
  assert sorted(sdr.VALIDATION_METRICS) == ["bss_eval_v4", "global_sdr"]


def test_bss_eval_validation_runs_in_training(tmp_path):
  """The default validation metric of configs/unet.py, on the tiny run."""
  config = tiny_config()
  config.eval.metric = "bss_eval_v4"
  config.num_train_steps = 2
  config.eval_every = 2
  train_lib.train_and_evaluate(config, tmp_path)
  values = {tag: v for _, tag, v in _scalars(tmp_path) if tag.startswith("valid/")}
  assert set(values) == {f"valid/sdr/{t}" for t in ("vocals", "drums", "bass", "other", "mean")}
  assert all(np.isfinite(v) for v in values.values())


EIGHT_DEVICES = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    import jax, numpy as np
    from configs import unet_tiny
    from mssjax.training import loop as train_lib
    from mssjax.data import loaders
    from mssjax.errors import ParameterError
    assert jax.device_count() == 8, jax.devices()
    config = unet_tiny.get_config()
    config.data.batch_size = 8
    batch = next(loaders.make_train_iterator(config))
    state = train_lib.create_train_state(config, jax.random.key(0), stats_batches=[batch])
    results = {{}}
    for n in (1, 8):
      mesh = train_lib.make_mesh(jax.devices()[:n])
      sharded = train_lib.shard_batch(batch, mesh)
      assert len(sharded["mixture"].sharding.device_set) == n
      replicated = train_lib.replicate(state, mesh)
      new, metrics = train_lib.parallel_train_step(mesh)(replicated, sharded, jax.random.key(0))
      assert len(new.params["head"]["kernel"].sharding.device_set) == n
      results[n] = (float(metrics["loss"]), jax.tree.map(np.asarray, new.params))
    np.testing.assert_allclose(results[1][0], results[8][0], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), results[1][1], results[8][1])
    config.data.batch_size = 12
    try:
      train_lib.check_batch_size(config, train_lib.make_mesh())
      raise AssertionError("batch 12 on 8 devices was accepted")
    except ParameterError as error:
      assert "multiple of the device count 8" in str(error)
    print("EIGHT_OK", results[1][0], results[8][0])
""")


@pytest.mark.slow
def test_one_step_on_eight_devices_equals_one_device():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", EIGHT_DEVICES.format(repo=str(REPO))], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "EIGHT_OK" in out.stdout


def test_training_starts_from_init_weights_and_refuses_another_model(trained, tmp_path):
  """config.init_weights (fine-tuning): the first step starts from the file's parameters, input statistics too."""
  from mssjax import weights  # pylint: disable=import-outside-toplevel
  from mssjax.separators import network as separator  # pylint: disable=import-outside-toplevel
  path = separator.export_weights(trained[0], tmp_path / "start.safetensors")
  config = tiny_config()
  config.update(init_weights=str(path), num_train_steps=2, eval_every=0)
  config.optim.learning_rate = 1e-30  # the steps leave the parameters where the file put them
  state = train_lib.train_and_evaluate(config, tmp_path / "finetuned")
  stored = weights.read(path).params
  got = weights.flatten(jax.tree.map(np.asarray, state.params))
  assert sorted(got) == sorted(stored) and int(state.step) == 2
  for name, value in stored.items():
    np.testing.assert_allclose(got[name], value, rtol=1e-6, atol=1e-12, err_msg=name)
  config.stft.n_fft = 256  # parameters of another STFT would mean something else
  with pytest.raises(CheckpointError, match=rf"{path}: init_weights holds a model of another STFT .*n_fft|{path}: "
                     "init_weights holds a model of another STFT"):
    train_lib.train_and_evaluate(config, tmp_path / "other")
  assert not (tmp_path / "other").exists()


def test_init_weights_loads_what_fits_and_lists_the_rest(trained, tmp_path):
  """A file of another model: parameters whose path and shape fit are loaded, the others start fresh."""
  from mssjax import models, weights  # pylint: disable=import-outside-toplevel
  from mssjax.separators import network  # pylint: disable=import-outside-toplevel
  path = network.export_weights(trained[0], tmp_path / "start.safetensors")
  config = tiny_config()
  config.update(init_weights=str(path), targets=("a", "b"))
  initial = finetune.initial_params(config, models.model_spec(config).abstract_params)
  assert initial.fresh == ["head/bias", "head/kernel"] == initial.skipped
  stored = weights.read(path).params
  for name, value in initial.params.items():
    np.testing.assert_array_equal(value, stored[name])
  line = finetune.describe_initial(str(path), initial, models.model_spec(config).n_parameters)
  assert "fresh 2: head/bias, head/kernel" in line and str(path) in line
  config.model.features = (3, 5)
  config.model.lstm_hidden = 3
  config.model.bandwidth_hz = 4_000
  with pytest.raises(CheckpointError, match="fits the model"):
    finetune.initial_params(config, models.model_spec(config).abstract_params)


def test_freeze_keeps_named_parameters_and_refuses_unknown_prefixes():
  config = tiny_config()
  from mssjax import weights  # pylint: disable=import-outside-toplevel
  like = models.model_spec(config).abstract_params
  labels = weights.flatten(jax.tree.map(lambda label: np.asarray(label == "frozen"),
                                        finetune.freeze_labels(like, ("down", "input_mean"))))
  assert labels["input_mean"] and not labels["input_scale"] and not labels["head/kernel"]
  assert all(labels[k] for k in labels if k.startswith("down/")) and any(k.startswith("down/") for k in labels)
  config.optim.freeze = ("dow",)
  with pytest.raises(ParameterError, match="'dow' names no parameter of the model; its top-level names are"):
    finetune.check_freeze(config, like)


def test_a_resume_that_does_not_fit_leaves_the_workdir_as_it_was(trained, tmp_path):
  """--allow_config_change with another model: one CheckpointError, and config.json still describes the
  finished model, so separating with the workdir still works (#36, case 1)."""
  from mssjax import separators  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "w"
  shutil.copytree(trained[0], workdir)
  before = (workdir / checkpoints.CONFIG_FILE).read_text()
  config = tiny_config()
  config.model.features = (8, 16)
  config.num_train_steps = 8
  with pytest.raises(CheckpointError, match="its latest checkpoint does not fit this config"):
    train_lib.train_and_evaluate(config, workdir, allow_config_change=True)
  assert (workdir / checkpoints.CONFIG_FILE).read_text() == before
  assert separators.get("unet", {"checkpoint": str(workdir)}).n_parameters > 0
