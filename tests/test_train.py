"""Tests of the training library (mssjax.train_lib) on the tiny config: checkpoints, exact resume,
NaN handling, data parallelism, metrics files."""

import glob
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from mssjax import tfevents, train_lib
from mssjax.errors import ParameterError

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
  original = train_lib.LOADERS["synthetic"]
  monkeypatch.setitem(train_lib.LOADERS, "synthetic",
                      lambda config, seed: _Faulty(original(config, seed=seed), at, fault))


def test_workdir_holds_config_checkpoints_and_metrics(trained):
  workdir, state = trained
  assert int(state.step) == 6
  assert (workdir / "config.json").is_file()
  assert sorted(os.listdir(workdir / "checkpoints")) == ["4", "6"]  # keep=2
  assert os.listdir(workdir / "best") == ["6"]
  (events,) = glob.glob(str(workdir / "events.out.tfevents.*"))
  scalars = tfevents.read_scalars(events)
  assert [s for s, tag, _ in scalars if tag == "train/loss"] == [1, 2, 3, 4, 5, 6]
  assert {tag for _, tag, _ in scalars} >= {"train/grad_norm", "train/learning_rate", "train/steps_per_second",
                                           "valid/sdr/vocals", "valid/sdr/mean"}
  assert all(np.isfinite(v) for _, _, v in scalars)


def test_restored_parameters_equal_the_final_state(trained):
  workdir, state = trained
  for which in ("best", "latest"):
    params = train_lib.restore_params(tiny_config(), workdir, which=which)
    jax.tree.map(np.testing.assert_array_equal, params, jax.tree.map(np.asarray, state.params))


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


def test_best_checkpoint_is_the_best_validation_sdr(tmp_path):
  config = tiny_config()
  config.eval_every = 2
  train_lib.train_and_evaluate(config, tmp_path)
  (events,) = glob.glob(str(tmp_path / "events.out.tfevents.*"))
  sdr = {step: value for step, tag, value in tfevents.read_scalars(events) if tag == "valid/sdr/mean"}
  assert sorted(sdr) == [2, 4, 6]
  assert os.listdir(tmp_path / "best") == [str(max(sdr, key=sdr.get))]


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  _faulty_loader(monkeypatch, at=3, fault="nan")
  with pytest.raises(FloatingPointError, match=r"non-finite training loss nan .* at step 3.*last good "
                                               r"checkpoint is step 2"):
    train_lib.train_and_evaluate(tiny_config(), tmp_path)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2"]
  params = train_lib.restore_params(tiny_config(), tmp_path, which="latest")
  assert all(np.all(np.isfinite(p)) for p in jax.tree.leaves(params))


def test_training_lowers_the_loss_on_a_fixed_batch():
  config = tiny_config()
  batch = next(train_lib.make_train_iterator(config))
  mesh = train_lib.make_mesh()
  state = train_lib.create_train_state(config, jax.random.key(0), stats_batches=[batch])
  step = train_lib.parallel_train_step(mesh)
  losses = []
  for i in range(6):
    state, metrics = step(state, train_lib.shard_batch(batch, mesh), jax.random.key(i))
    losses.append(float(metrics["loss"]))
  assert losses[-1] < losses[0]


def test_time_domain_loss_and_gradients_are_finite():
  config = tiny_config()
  config.loss.domain = "time"
  state = train_lib.create_train_state(config, jax.random.key(0))
  batch = {k: v[:1, ..., :2048] for k, v in next(train_lib.make_train_iterator(config)).items()}
  loss, grads = jax.jit(jax.value_and_grad(
      lambda p: train_lib.compute_loss(state.graphdef, p, batch, state.loss)))(state.params)
  assert np.isfinite(float(loss)) and float(loss) > 0
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("field,value,message", [
    ("optim.name", "sgd", "optim.name='sgd' is not known"),
    ("optim.schedule", "step", "optim.schedule='step'"),
    ("loss.kind", "l3", "loss.kind='l3'"),
    ("loss.domain", "phase", "loss.domain='phase'"),
    ("model.name", "transformer", "model name='transformer' is not known"),
])
def test_bad_config_names(field, value, message):
  config = tiny_config()
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ParameterError, match=message):
    train_lib.create_train_state(config, jax.random.key(0))


def test_unknown_data_name():
  config = tiny_config()
  config.data.name = "imagenet"
  with pytest.raises(ParameterError, match=r"data.name='imagenet' is not known; valid names: \['musdb', "):
    train_lib.make_train_iterator(config)


def test_global_sdr():
  rng = np.random.default_rng(0)
  references = rng.standard_normal((4, 2, 1000))
  np.testing.assert_allclose(train_lib.global_sdr(references, 0.9 * references), 20.0, rtol=1e-6)


def test_tfevents_crc32c_and_round_trip(tmp_path):
  assert tfevents.crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
  with tfevents.SummaryWriter(tmp_path) as writer:
    writer.scalars(3, {"a": 1.5, "b/c": -2.0})
    writer.scalars(10**10, {"a": 0.25})
  assert tfevents.read_scalars(writer.path) == [(3, "a", 1.5), (3, "b/c", -2.0), (10**10, "a", 0.25)]


EIGHT_DEVICES = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    import jax, numpy as np
    from configs import unet_tiny
    from mssjax import train_lib
    from mssjax.errors import ParameterError
    assert jax.device_count() == 8, jax.devices()
    config = unet_tiny.get_config()
    config.data.batch_size = 8
    batch = next(train_lib.make_train_iterator(config))
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
      train_lib._check_batch_size(config, train_lib.make_mesh())
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
