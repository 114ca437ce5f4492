"""Tests of Open-Unmix (mssjax.models.umx): shapes, the reference's parameter count, independence of the
per-target networks, and the tiny config end to end (train, separate, export, evaluate)."""

import functools
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mssjax import audio, cli, models
from mssjax.data import generate, loaders
from mssjax.deploy import export, exported
from mssjax.errors import ParameterError
from mssjax.models.umx import OpenUnmix
from mssjax.training import loop as train_lib
from mssjax.training import objective

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ folder
from configs import umx, umx_previews, umx_tiny  # pylint: disable=wrong-import-position
sys.path.insert(0, str(REPO / "tests"))
import _model_checks  # pylint: disable=wrong-import-position

EVALUATE = str(REPO / "configs" / "evaluate.py")


SMALL = dict(n_bins=20, stft_bins=33, audio_channels=2, n_targets=4, hidden_size=8, n_layers=2,
             unidirectional=False, joint=False, remat=False)


@functools.lru_cache(maxsize=None)
def _model(n_targets=4, joint=False, unidirectional=False):
  """A small model (20 of 33 bins, hidden size 8, 2 layers), built once per setting by `models.model_spec`
  (one compiled initialiser: much cheaper than an eager build; the tests never change its parameters)."""
  config = umx_tiny.get_config()
  config.targets = ("vocals", "drums", "bass", "other", "piano")[:n_targets]
  config.stft.n_fft, config.stft.hop_length = 64, 16
  config.model.bandwidth_hz = 13_500  # bins 0..19 lie below
  config.model.update(hidden_size=8, n_layers=2, joint=joint, unidirectional=unidirectional)
  spec = models.model_spec(config)
  return nnx.merge(spec.graphdef, spec.init(jax.random.key(0)))


@nnx.jit
def _apply(model, magnitude):
  return model(magnitude)


def _magnitude(shape, seed=0):
  return jnp.abs(jax.random.normal(jax.random.key(seed), shape))


@pytest.mark.parametrize("n_targets,joint", [(1, False), (2, False), (4, False), (4, True)])
def test_masks_for_every_target_and_bin(n_targets, joint):
  model = _model(n_targets=n_targets, joint=joint)
  assert models.domain_of(model) == "magnitude"
  masks = _apply(model, _magnitude((2, 2, 33, 5)))
  assert masks.shape == (2, n_targets, 2, 33, 5)
  assert bool(jnp.all(masks >= 0)) and bool(jnp.all(jnp.isfinite(masks)))
  # bins above the band have masks of their own (the output layer makes every bin, as the reference's)
  assert float(jnp.max(jnp.abs(masks[..., 21:, :] - masks[..., 20:21, :]))) > 1e-4


def _reference_count(*, hidden_size, n_bins=1487, stft_bins=2049, channels=2, layers=3):
  """A bidirectional OpenUnmix's parameters, from the layer sizes of the reference code."""
  units = hidden_size // 2
  lstm = layers * 2 * (4 * units * (hidden_size + units) + 2 * 4 * units)   # w_ih, w_hh, b_ih, b_hh per direction
  return (channels * n_bins * hidden_size + 2 * hidden_size + lstm + 2 * hidden_size * hidden_size
          + 2 * hidden_size + hidden_size * channels * stft_bins + 2 * channels * stft_bins + 2 * n_bins
          + 2 * stft_bins)


_n_parameters = _model_checks.n_parameters


@pytest.mark.parametrize("hidden_size,targets,reference", [
    (512, ("vocals",), 8_893_348), (512, ("vocals", "drums", "bass", "other"), 4 * 8_893_348),
    (128, ("vocals",), 1_251_748)])
def test_parameter_count_equals_the_reference(hidden_size, targets, reference):
  """The reference: sigsep/open-unmix-pytorch v1.3.0 (openunmix/model.py unchanged up to commit
  fb672c9584997c2b05e148eeaa65b4c23ed4693b), class OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size,
  nb_layers=3, unidirectional=False, max_bin=1487), as scripts/train.py builds it (bandwidth 16 kHz at
  44.1 kHz, n_fft 4096). Counted by instantiating that class with torch 2.13.0+cpu (in a throwaway
  environment, outside the project) and summing ``p.numel()`` over ``model.parameters()``: 8,893,348 at
  hidden size 512 (the umxhq networks) and 1,251,748 at 128; BatchNorm1d counts its weight and bias,
  nn.LSTM two bias vectors per layer and direction. One network per target: four have four times as many."""
  config = umx.get_config()
  config.targets = targets
  config.model.hidden_size = hidden_size
  assert models.model_bins(config) == 1487  # the reference's bandwidth_to_max_bin(44100, 4096, 16000)
  assert _n_parameters(config) == reference
  assert reference == len(targets) * _reference_count(hidden_size=hidden_size)


def test_the_configs_state_their_parameter_counts():
  assert "8,893,348" in umx.__doc__ and "35,573,392" in umx.__doc__
  config = umx_previews.get_config()
  assert _n_parameters(config) == 4 * 1_251_748 and "1,251,748" in umx_previews.__doc__


def test_per_target_networks_are_independent():
  """Target t's masks are those of a one-target model holding network t's parameters (one network per target)."""
  model = _model(n_targets=2)
  graphdef, state = nnx.split(_model(n_targets=1))
  params = nnx.to_pure_dict(nnx.split(model)[1])
  x = _magnitude((2, 2, 33, 6))
  masks = _apply(model, x)
  for t in range(2):
    nnx.replace_by_pure_dict(state, jax.tree.map(lambda p, t=t: p[t:t + 1], params))
    np.testing.assert_allclose(_apply(nnx.merge(graphdef, state), x)[:, 0], masks[:, t], rtol=1e-5, atol=1e-6)


def test_a_joint_network_has_one_body_and_an_output_per_target():
  per_target, joint = _model(n_targets=4), _model(n_targets=4, joint=True)
  params = nnx.to_pure_dict(nnx.split(joint)[1])
  assert params["fc1"].shape[0] == 1 and params["output_mean"].shape == (1, 4, 33)
  assert nnx.to_pure_dict(nnx.split(per_target)[1])["fc1"].shape[0] == 4


@pytest.mark.parametrize("unidirectional", [False, True])
def test_the_lstm_carries_context_in_time(unidirectional):
  """Changing the last frame changes the first frame's masks only where the LSTM is bidirectional."""
  model = _model(unidirectional=unidirectional)
  x = _magnitude((1, 2, 33, 16))
  base, changed = _apply(model, x), _apply(model, x.at[..., -1].multiply(5.0))
  assert (float(jnp.max(jnp.abs(changed[..., 0] - base[..., 0]))) > 1e-6) != unidirectional
  assert float(jnp.max(jnp.abs(changed[..., -1] - base[..., -1]))) > 1e-6


def test_an_example_does_not_depend_on_its_batch_mates():
  """No batch statistics (the normalisations work per frame)."""
  x = _magnitude((3, 2, 33, 8))
  np.testing.assert_allclose(_apply(_model(), x)[1:2], _apply(_model(), x[1:2]), rtol=1e-5, atol=1e-6)


def test_only_parameters_no_rng_or_batch_state():
  _, state = nnx.split(_model())
  kinds = {type(v).__name__ for v in jax.tree.leaves(state, is_leaf=lambda v: isinstance(v, nnx.Variable))}
  assert kinds == {"Param"}


@pytest.mark.parametrize("kwargs,message", [
    (dict(hidden_size=7), "hidden_size=7 must be even"),
    (dict(n_bins=40), "n_bins=40 must be at most stft_bins=33"),
    (dict(n_layers=0), "n_layers=0 must be a positive integer"),
])
def test_bad_sizes(kwargs, message):
  with pytest.raises(ParameterError, match=message):
    OpenUnmix(**{**SMALL, **kwargs}, rngs=nnx.Rngs(0))


def test_wrong_input_shape():
  with pytest.raises(ParameterError, match="magnitude of shape"):
    _apply(_model(), _magnitude((1, 2, 20, 4)))


def _one_song_batch():
  config = umx_tiny.get_config()
  config.data.batch_size, config.data.chunk_seconds = 1, 0.5
  return config, next(loaders.make_train_iterator(config))


@pytest.mark.slow
def test_remat_gives_the_same_gradients():
  config, batch = _one_song_batch()
  config.model.n_layers = 2  # two remat blocks, half the compile of three
  batch = {k: v[..., :4096] for k, v in batch.items()}
  state = train_lib.create_train_state(config, jax.random.key(0), stats_batches=[batch])
  config.model.remat = True
  graphdef = models.model_spec(config).graphdef
  grads = [jax.jit(jax.grad(lambda p, g=g: objective.compute_loss(g, p, batch, state.loss)))(state.params)
           for g in (state.graphdef, graphdef)]
  assert any(g != 0 for g in jax.tree.leaves(jax.tree.map(lambda x: float(jnp.max(jnp.abs(x))), grads[0])))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), *grads)


@pytest.mark.slow
def test_overfits_one_short_song():
  """40 steps on one half-second chunk of a generated song: the loss falls by more than 6x (measured: 21x)."""
  config, batch = _one_song_batch()
  config.optim.learning_rate = 1e-2
  state = train_lib.create_train_state(config, jax.random.key(0), stats_batches=[batch])
  losses = []
  for i in range(40):
    state, metrics = train_lib.train_step(state, batch, jax.random.key(i))
    losses.append(float(metrics["loss"]))
  assert losses[0] / losses[-1] > 6, losses


# --- the tiny config end to end, through the command line ---------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """The tiny config trained by ``mssjax train`` (4 steps on generated songs)."""
  return _model_checks.train_tiny(tmp_path_factory.mktemp("umx_tiny"), "umx_tiny")


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
  """Two generated 1 s test songs (musdb18hq layout)."""
  root = tmp_path_factory.mktemp("songs")
  generate.write_songs(root, n_train=0, n_test=2, seconds=1.0, seed=3)
  return root


@pytest.mark.slow
def test_trained_workdir_separates_songs(workdir, songs, tmp_path):
  song = next((songs / "test").iterdir()) / "mixture.wav"
  stems = _model_checks.separate_song(song, workdir, tmp_path)
  assert sorted(stems) == sorted(umx_tiny.get_config().targets)


@pytest.mark.slow
def test_export_round_trips(workdir, songs, tmp_path):
  module = tmp_path / "umx.jaxexport"
  (mixture,), rate = audio.read(next((songs / "test").iterdir()) / "mixture.wav")
  _model_checks.export_round_trips(["--set", f"checkpoint={workdir}", "--set", "platforms=cpu"], module, "umx",
                                   workdir, mixture, sample_rate=rate)
  document = json.loads(exported.metadata_path(module).read_text())
  assert document["targets"] == list(umx_tiny.get_config().targets)


@pytest.mark.slow
def test_onnx_masks_equal_the_jax_model(workdir, tmp_path):
  """export_masks_onnx converts the network and checks it against JAX in onnxruntime (ONNX_TOLERANCE)."""
  pytest.importorskip("jax2onnx")
  pytest.importorskip("onnxruntime")
  result = export.export_masks_onnx(tmp_path / "masks.onnx", config={"checkpoint": str(workdir)})
  assert result.path.is_file() and result.input_shape[2] == 1 + umx_tiny.get_config().stft.n_fft // 2
  assert result.max_abs_difference <= export.ONNX_TOLERANCE


@pytest.mark.slow
def test_evaluate_scores_it(workdir, songs, tmp_path, capsys):
  code = cli.main(["evaluate", "--config", EVALUATE, "--workdir", str(tmp_path / "eval"), "--set", "methods=umx",
                   "--set", f"data.root={songs}", "--set", f"separators.umx.checkpoint={workdir}",
                   "--config.report.enabled=false", "--quiet"])
  assert code == 0, capsys.readouterr().err
  assert "2 evaluated, 0 skipped, 0 failed" in capsys.readouterr().out
  table = (tmp_path / "eval" / "results.csv").read_text()
  assert all(f",{t}," in table for t in umx_tiny.get_config().targets)
