"""Training that scales to bigger models (mssjax.training.loop, mssjax.models.precision): bfloat16 compute from
float32 parameters, gradient accumulation (optax.MultiSteps) and rematerialisation, on the tiny U-Net."""

import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from mssjax import models
from mssjax.data import loaders
from mssjax.errors import ParameterError
from mssjax.training import loop as train_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ folder
from configs import unet_tiny  # pylint: disable=wrong-import-position

BFLOAT16_LOSS_RTOL = 1e-3
"""Measured on the tiny U-Net at its initial parameters: 1.4e-5 to 9.7e-5 relative (four batches)."""


def tiny_config(**changes):
  config = unet_tiny.get_config()
  for dotted, value in changes.items():
    section, _, name = dotted.rpartition(".")
    (config[section] if section else config)[name] = value
  return config


def scaled_config():
  """The tiny config in bfloat16 with 2 micro-batches per update (one compiled train step for the tests)."""
  return tiny_config(precision="bfloat16", num_train_steps=4, checkpoint_every=2, eval_every=4,
                     **{"optim.accumulate_steps": 2})


@pytest.fixture(scope="module")
def batch():
  """One training batch of the tiny config (2 examples of 0.25 s)."""
  return next(loaders.make_train_iterator(tiny_config()))


def _equations(jaxpr):
  """Every equation of a jaxpr, those of its sub-jaxprs (jit, scan, remat, custom rules) included."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in (value if isinstance(value, (list, tuple)) else (value,)):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          yield from _equations(inner)


def _dtypes_of(jaxpr, primitive):
  return {str(v.aval.dtype) for e in _equations(jaxpr) if e.primitive.name == primitive for v in e.invars}


def test_bfloat16_computes_the_network_in_bfloat16_and_the_signal_processing_in_float32(batch):
  """Every convolution of the bfloat16 loss reads bfloat16; every FFT (STFT, iSTFT) reads float32 / complex64."""
  state = train_lib.create_train_state(tiny_config(precision="bfloat16"), jax.random.key(0))
  jaxpr = jax.make_jaxpr(lambda p: train_lib.compute_loss(state.graphdef, p, batch, state.loss))(state.params).jaxpr
  assert _dtypes_of(jaxpr, "conv_general_dilated") == {"bfloat16"}
  assert _dtypes_of(jaxpr, "fft") == {"float32"}
  time_domain = train_lib.create_train_state(tiny_config(precision="bfloat16", **{"loss.domain": "time"}),
                                             jax.random.key(0))
  jaxpr = jax.make_jaxpr(lambda p: train_lib.compute_loss(state.graphdef, p, batch, time_domain.loss))(
      state.params).jaxpr
  assert _dtypes_of(jaxpr, "fft") == {"float32", "complex64"}  # the iSTFT reads the masked float32 estimates
  float32 = train_lib.create_train_state(tiny_config(), jax.random.key(0))
  jaxpr = jax.make_jaxpr(lambda p: train_lib.compute_loss(state.graphdef, p, batch, float32.loss))(state.params).jaxpr
  assert _dtypes_of(jaxpr, "conv_general_dilated") == {"float32"}


def test_bfloat16_loss_is_near_float32_and_its_training_lowers_it(batch):
  """From float32 parameters: the bfloat16 loss within BFLOAT16_LOSS_RTOL of float32's, float32 finite gradients
  (their norm is finite), float32 parameters after the updates, and four updates lower the loss."""
  config = scaled_config()
  mesh = train_lib.make_mesh()
  state = train_lib.create_train_state(config, jax.random.key(0), stats_batches=[batch])
  float32_loss = float(train_lib.loss_of(state.replace(loss=train_lib.loss_spec(tiny_config())), batch))
  grads = jax.eval_shape(jax.grad(lambda p: train_lib.compute_loss(state.graphdef, p, batch, state.loss)),
                         state.params)
  assert {x.dtype for x in jax.tree.leaves(grads)} == {jnp.dtype("float32")}
  state = train_lib.replicate(state, mesh)  # as training places it: the program of the resume test below
  step, losses = train_lib.parallel_train_step(mesh), []
  for i in range(2 * config.num_train_steps):
    state, metrics = step(state, train_lib.shard_batch(batch, mesh), jax.random.key(i))
    losses.append(float(metrics["loss"]))
    assert np.isfinite(float(metrics["grad_norm"])) and bool(metrics["params_finite"])
  assert int(state.step) == config.num_train_steps
  assert losses[0] != float32_loss
  np.testing.assert_allclose(losses[0], float32_loss, rtol=BFLOAT16_LOSS_RTOL)
  assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype("float32")}
  assert losses[-1] < losses[0], losses


def test_bad_precision_and_accumulate_steps_fail_before_any_work(tmp_path):
  with pytest.raises(ParameterError, match=r"precision='float16' is not known; valid choices: \['bfloat16', "
                                           r"'float32'\]"):
    train_lib.train_and_evaluate(tiny_config(precision="float16"), tmp_path / "run")
  with pytest.raises(ParameterError, match="optim.accumulate_steps=0 must be a positive integer"):
    train_lib.train_and_evaluate(tiny_config(**{"optim.accumulate_steps": 0}), tmp_path / "run")
  assert not (tmp_path / "run").exists()


def _relative_distance(a, b, origin):
  """``|a - b| / |b - origin|`` over whole pytrees (Euclidean norms of all their leaves)."""
  def norm(x, y):
    return np.sqrt(sum(np.sum(np.square(np.asarray(u, np.float64) - np.asarray(v, np.float64)))
                       for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y))))
  return norm(a, b) / norm(b, origin)


def test_accumulated_micro_batches_equal_one_batch_of_their_size(batch):
  """Two updates from 2 x 2 micro-batches of one example equal two updates from 2 batches of two, the tiny
  clipping norm active, so that clipping must act on the accumulated gradient.

  Adam turns the rounding noise of gradients that are zero in exact arithmetic (the convolution biases
  before group normalisation) into parameter changes, so the updates are compared as a whole: measured 1.5e-5
  relative (and 0.25 to 0.33 with clipping before the accumulation), Adam's moments 1e-11.
  """
  optim = {"optim.grad_clip_norm": 1e-3, "optim.warmup_steps": 0, "optim.schedule": "constant"}
  whole = train_lib.create_train_state(tiny_config(**optim), jax.random.key(0), stats_batches=[batch])
  parts = train_lib.create_train_state(tiny_config(**optim, **{"optim.accumulate_steps": 2}), jax.random.key(0),
                                       stats_batches=[batch])
  origin = whole.params
  batches = [batch, jax.tree.map(lambda x: x[:, ..., ::-1], batch)]  # two different batches of two
  for update, full in enumerate(batches, start=1):
    whole, whole_metrics = train_lib.train_step(whole, full, jax.random.key(0))
    before = parts.params
    parts, _ = train_lib.train_step(parts, jax.tree.map(lambda x: x[:1], full), jax.random.key(0))
    assert int(parts.step) == update - 1  # a micro-step that only accumulates
    jax.tree.map(np.testing.assert_array_equal, parts.params, before)
    parts, metrics = train_lib.train_step(parts, jax.tree.map(lambda x: x[1:], full), jax.random.key(0))
    assert int(parts.step) == int(whole.step) == update
    assert float(whole_metrics["grad_norm"]) > 1e-2  # far above the clipping norm
    np.testing.assert_allclose(metrics["grad_norm"], whole_metrics["grad_norm"], rtol=1e-5)
    assert _relative_distance(parts.params, whole.params, origin) < 1e-4
  assert isinstance(parts.opt_state, optax.MultiStepsState)
  zeros = jax.tree.map(np.zeros_like, whole.opt_state)
  assert _relative_distance(parts.opt_state.inner_opt_state, whole.opt_state, zeros) < 1e-7


def test_remat_gives_the_same_loss_and_gradients(batch):
  """Each block of the U-Net under jax.checkpoint (the encoder's, the BiLSTM, the decoder's) where
  model.remat; the loss and gradients as without."""
  results = {}
  for remat in (False, True):
    config = tiny_config(**{"model.remat": remat})
    state = train_lib.create_train_state(config, jax.random.key(0), stats_batches=[batch])
    loss_fn = lambda p, s=state: train_lib.compute_loss(s.graphdef, p, batch, s.loss)
    names = [e.primitive.name for e in _equations(jax.make_jaxpr(loss_fn)(state.params).jaxpr)]
    regions = sum(name in ("checkpoint", "remat2") for name in names)  # jax.checkpoint's primitive
    assert regions == (2 * len(config.model.features) if remat else 0)  # down and up blocks, the BiLSTM
    results[remat] = jax.jit(jax.value_and_grad(loss_fn))(state.params)
  np.testing.assert_allclose(results[True][0], results[False][0], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9), results[True][1],
               results[False][1])


def test_accumulation_and_bfloat16_resume_exactly(tmp_path, monkeypatch):
  """Killed in the middle of update 3's accumulation (micro-batch 6; last checkpoint: update 2), then resumed:
  update 4 equals the uninterrupted run. Steps, checkpoints and validation count optimiser updates."""
  config = scaled_config()
  uninterrupted = train_lib.train_and_evaluate(config, tmp_path / "whole")
  assert int(uninterrupted.step) == 4
  assert sorted(os.listdir(tmp_path / "whole" / "checkpoints")) == ["2", "4"]
  assert os.listdir(tmp_path / "whole" / "best") == ["4"]
  original = loaders.LOADERS["synthetic"]

  def killed_at_six(config, seed):
    iterator = original(config, seed=seed)
    count = [0]

    class Killed:
      def __iter__(self):
        return self

      def __next__(self):
        count[0] += 1
        if count[0] == 6:
          raise KeyboardInterrupt("simulated kill")
        return next(iterator)

      def __getattr__(self, name):
        return getattr(iterator, name)
    return Killed()

  monkeypatch.setitem(loaders.LOADERS, "synthetic", killed_at_six)
  with pytest.raises(KeyboardInterrupt):
    train_lib.train_and_evaluate(config, tmp_path / "resumed")
  assert sorted(os.listdir(tmp_path / "resumed" / "checkpoints")) == ["2"]
  monkeypatch.undo()
  resumed = train_lib.train_and_evaluate(config, tmp_path / "resumed")
  for got, want in ((resumed.params, uninterrupted.params), (resumed.opt_state, uninterrupted.opt_state)):
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, got), jax.tree.map(np.asarray, want))


def test_older_configs_get_the_new_fields_as_older_runs_used_them():
  config = tiny_config()
  for section, name in (("model", "remat"), ("optim", "accumulate_steps"), ("", "precision")):
    del (config[section] if section else config)[name]
  upgraded = models.upgrade_config(config)
  assert (upgraded.model.remat, upgraded.precision, upgraded.optim.accumulate_steps) == (False, "float32", 1)
  assert models.upgrade_config(upgraded) is upgraded
  separator_only = models.upgrade_config(ml_collections.ConfigDict(dict(model=dict(name="unet"), targets=("a",))))
  assert separator_only.model.remat is False and "precision" not in separator_only


EIGHT_DEVICES = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    import jax, numpy as np
    from configs import unet_tiny
    from mssjax.training import loop as train_lib
    from mssjax.data import loaders
    assert jax.device_count() == 8, jax.devices()
    config = unet_tiny.get_config()
    config.precision = "bfloat16"
    config.optim.accumulate_steps = 2
    config.data.batch_size = 8
    iterator = loaders.make_train_iterator(config)
    batches = [next(iterator), next(iterator)]
    state = train_lib.create_train_state(config, jax.random.key(0), stats_batches=batches[:1])
    results = {{}}
    for n in (1, 8):
      mesh = train_lib.make_mesh(jax.devices()[:n])
      step = train_lib.parallel_train_step(mesh)
      new = train_lib.replicate(state, mesh)
      for i, batch in enumerate(batches):
        new, metrics = step(new, train_lib.shard_batch(batch, mesh), jax.random.key(i))
      assert int(new.step) == 1 and len(new.params["head"]["kernel"].sharding.device_set) == n
      results[n] = (float(metrics["loss"]), float(metrics["grad_norm"]), jax.tree.map(np.asarray, new.params))
    # measured: equal losses, gradient norms 2.3e-3 apart (bfloat16 sums over other splits), equal parameters
    np.testing.assert_allclose(results[1][0], results[8][0], rtol=1e-4)
    np.testing.assert_allclose(results[1][1], results[8][1], rtol=2e-2)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4), results[1][2], results[8][2])
    print("EIGHT_OK")
""")


@pytest.mark.slow
def test_accumulation_and_bfloat16_on_eight_devices_equal_one_device():
  """bfloat16 with 2 micro-batches of 8 split over 8 devices: the update one device makes."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  script = EIGHT_DEVICES.format(repo=str(REPO))
  out = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                       timeout=600, check=False)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
  assert "EIGHT_OK" in out.stdout
