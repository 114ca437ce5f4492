"""Tests of the Band-Split RoFormer (mssjax.models.bs_roformer) and its Mel-band layout.

The reference is lucidrains' BS-RoFormer, pypi ``BS-RoFormer==0.4.1`` (github.com/lucidrains/BS-RoFormer
at commit c05f497215b41c26beacd2aea4d7207c2b60c255, with gated attention and without value residuals or
hyper-connections). Its counts below were taken once with torch 2.13 (CPU) and rotary-embedding-torch
0.9.1 as ``sum(p.numel() for p in model.parameters())`` on ``BSRoformer(...)`` / ``MelBandRoformer(...)``
built with the settings named in each case; that sum includes the two ``RotaryEmbedding.freqs`` (an
``nn.Parameter`` with ``requires_grad=False``, ``dim_head // 2`` values each, shared by every layer),
the only parameters of the reference that are not trained. Ours holds them too (never trained).
"""

import functools
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import optax
import pytest
from flax import nnx

from mssjax import audio, models, separate, separators, spectral
from mssjax.__main__ import main
from mssjax.data import loaders
from mssjax.deploy import export
from mssjax.errors import ParameterError
from mssjax.models import bs_roformer
from mssjax.separators import network
from mssjax.training import objective

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ folder
from configs import bs_roformer as bs_config  # pylint: disable=wrong-import-position
from configs import bs_roformer_previews, bs_roformer_tiny, mel_roformer  # pylint: disable=wrong-import-position
sys.path.insert(0, str(REPO / "tests"))
import _model_checks  # pylint: disable=wrong-import-position
import _musdb_synth  # pylint: disable=wrong-import-position


def _count(config, n_targets):
  """Every scalar of the model's state (parameters and the rotary frequencies), shapes only (no allocation)."""
  return _model_checks.n_parameters(config, n_targets=n_targets, variables=...)


def _msst(layout):
  """ZFTurbo/Music-Source-Separation-Training's configs/config_musdb18_{bs,mel_band}_roformer.yaml (model section;
  commit ccc011a): dim 192, depth 6 (bs) / 8 (mel), one time and one band layer per block, 8 heads of 64,
  the 62 default bands / 60 mel bands, n_fft 2048, mask_estimator_depth 2, no linear transformer."""
  config = bs_config.get_config()
  config.model.dim, config.model.depth = 192, 6
  if layout == "mel":
    config.model.bands, config.model.freqs_per_bands = "mel", None
    config.model.num_bands, config.model.sample_rate = 60, 44100
    config.model.depth, config.model.norm_each_transformer = 8, True
    config.model.mask_estimator_depth = 3  # MelBandRoformer(mask_estimator_depth=2) builds 3 Linear layers
  return config


@pytest.mark.parametrize("name,config,n_targets,reference", [
    # BSRoformer(dim=192, depth=6, stereo=True, num_stems=1, time_transformer_depth=1, freq_transformer_depth=1,
    #            freqs_per_bands=DEFAULT_FREQS_PER_BANDS, dim_head=64, heads=8, mask_estimator_depth=2)
    ("msst bs_roformer", lambda: _msst("bs"), 1, 24_591_340),
    # MelBandRoformer(dim=192, depth=8, stereo=True, num_stems=1, time_transformer_depth=1,
    #                 freq_transformer_depth=1, linear_transformer_depth=0, num_bands=60, dim_head=64, heads=8,
    #                 sample_rate=44100, stft_n_fft=2048, mask_estimator_depth=2)
    ("msst mel_band_roformer", lambda: _msst("mel"), 1, 69_102_468),
    # configs/bs_roformer.py: BSRoformer(dim=384, depth=6, stereo=True, num_stems=4, time_transformer_depth=1,
    #                                    freq_transformer_depth=1, mask_estimator_depth=2), other defaults
    ("configs/bs_roformer.py", bs_config.get_config, 4, 222_335_812),
    # configs/mel_roformer.py: MelBandRoformer(dim=384, depth=6, stereo=True, num_stems=4, time_transformer_depth=1,
    #     freq_transformer_depth=1, linear_transformer_depth=0, num_bands=60, sample_rate=44100,
    #     stft_n_fft=2048, mask_estimator_depth=2), other defaults
    ("configs/mel_roformer.py", mel_roformer.get_config, 4, 832_598_764),
    # configs/bs_roformer_previews.py's earlier 32 bands: BSRoformer(dim=32, depth=2, stereo=True, num_stems=4,
    #     time_transformer_depth=1, freq_transformer_depth=1, freqs_per_bands=<the 32 bands below>, dim_head=16,
    #     heads=2, mask_estimator_depth=2) with MaskEstimator(mlp_expansion_factor=1) (MSST's BSRoformer argument;
    #     patched into 0.4.1's MaskEstimator)
    ("32-band previews", lambda: _previews((4,) * 12 + (8,) * 6 + (24,) * 4 + (48,) * 4 + (96,) * 4 + (128, 129)),
     4, 1_404_252),
])
def test_parameter_count_equals_the_reference(name, config, n_targets, reference):
  del name
  assert _count(config(), n_targets) == reference


def _previews(freqs_per_bands):
  config = bs_roformer_previews.get_config()
  config.model.freqs_per_bands = freqs_per_bands
  return config


def test_the_configs_state_their_counts():
  assert "222,335,812" in bs_config.__doc__ and "832,598,764" in mel_roformer.__doc__
  # our count (not taken with the reference; the same count code equals it on the five settings above)
  assert _count(bs_roformer_previews.get_config(), 4) == 1_336_156
  assert "1,336,156" in bs_roformer_previews.__doc__


@pytest.mark.parametrize("sample_rate,n_fft,n_mels", [(44100, 2048, 60), (44100, 512, 8), (22050, 1024, 40)])
def test_mel_filters_equal_librosa(sample_rate, n_fft, n_mels):
  ours = spectral.mel_filters(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels)
  want = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
  np.testing.assert_array_equal(ours > 0, want > 0)
  np.testing.assert_allclose(ours, want, rtol=1e-6, atol=0)


def _tiny(layout="bs", **changes):
  config = bs_roformer_tiny.get_config()
  if layout == "mel":
    config.model.bands, config.model.freqs_per_bands = "mel", None
    config.model.num_bands, config.model.sample_rate = 8, config.sample_rate
    config.model.norm_each_transformer = True
  config.model.update(changes)
  return config


@functools.lru_cache(maxsize=None)
def _model(layout="bs", n_targets=4):
  config = _tiny(layout)
  return models.get_model(config.model, n_bins=257, n_targets=n_targets, rngs=nnx.Rngs(0))


@nnx.jit
def _apply(model, stft):
  return model(stft)


def _stft(batch=2, n=4000, seed=0):
  x = jax.random.normal(jax.random.key(seed), (batch, 2, n))
  return spectral.stft(x, n_fft=512, hop_length=128)


@pytest.mark.parametrize("layout,n_targets", [("bs", 1), ("bs", 4), ("mel", 2)])
def test_complex_masks_for_any_number_of_targets(layout, n_targets):
  model = _model(layout, n_targets)
  assert models.domain_of(model) == "complex"
  stft = _stft()
  masks = _apply(model, stft)
  assert masks.shape == (2, n_targets, 2, 257, stft.shape[-1]) and masks.dtype == jnp.complex64
  assert bool(jnp.all(jnp.isfinite(masks)))


def test_estimates_are_the_complex_masks_times_the_mixture():
  model, stft = _model("mel", 2), _stft()
  estimates, magnitudes = nnx.jit(models.spectrogram_estimates)(model, stft)
  np.testing.assert_allclose(estimates, _apply(model, stft) * stft[:, None], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(magnitudes, jnp.abs(estimates), rtol=1e-6)


def test_mel_bands_overlap_and_cover_every_bin():
  bands = bs_roformer.mel_band_bins(sample_rate=44100, n_fft=2048, num_bands=60)
  counts = np.bincount(np.concatenate(bands), minlength=1025)
  assert len(bands) == 60 and counts.min() >= 1 and counts.max() == 2  # neighbouring triangles overlap
  assert bands[0][0] == 0 and bands[-1][-1] == 1024


def test_every_frame_and_band_sees_the_whole_chunk_and_batch_mates_do_not_matter():
  """Inputs of the shape of the masks test (one compiled program for both)."""
  model = _model("mel", 2)
  stft = _stft()
  other = _stft(seed=1)  # new content (a louder copy would not do: the band split's RMSNorm removes scale)
  base = _apply(model, stft)
  last = _apply(model, stft.at[..., -1].set(other[..., -1]))
  assert float(jnp.max(jnp.abs(last[..., 0] - base[..., 0]))) > 1e-5  # time attention
  top = _apply(model, stft.at[:, :, -40:].set(other[:, :, -40:]))
  assert float(jnp.max(jnp.abs(top[:, :, :, :8] - base[:, :, :, :8]))) > 1e-5  # band attention
  mate = _apply(model, stft.at[0].set(other[0]))  # another first example
  assert float(jnp.max(jnp.abs(mate[0] - base[0]))) > 1e-5
  np.testing.assert_allclose(mate[1:], base[1:], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("changes,message", [
    (dict(freqs_per_bands=(8, 8, 16)), r"freqs_per_bands=\(8, 8, 16\) must be positive integers that sum to the "
                                       r"257 bins"),
    (dict(bands="linear"), "model.bands='linear' is not known"),
    (dict(num_bands=8), r"model.num_bands=8 must be None with bands='bs'"),
    (dict(bandwidth_hz=8000.0), "model.bandwidth_hz=8000.0 must be None"),
    (dict(dim_head=7), "dim_head=7 must be even"),
    (dict(depth=0), "depth=0 must be a positive integer"),
])
def test_bad_configs(changes, message):
  config = _tiny(**changes)
  with pytest.raises(ParameterError, match=message):
    models.get_model(config.model, n_bins=257, n_targets=2)


def test_bad_mel_layout_and_input():
  with pytest.raises(ParameterError, match="num_bands=200 mel bands must cover every bin"):
    bs_roformer.mel_band_bins(sample_rate=44100, n_fft=512, num_bands=200)
  with pytest.raises(ParameterError, match=r"model.sample_rate=None must be"):
    models.get_model(_tiny("mel", sample_rate=None).model, n_bins=257, n_targets=2)
  with pytest.raises(ParameterError, match="mixture_stft of shape"):
    _model()(_stft()[:, :, :200])


# The overfit test's Adam steps (learning rate 1e-2) and the fall of the loss it asserts: 30 steps cut the loss
# 4.56x, 3.97x and 4.72x for models and batches of seeds 0, 1 and 2 (a step took 0.44 s on the loaded 2-core CPU).
OVERFIT_STEPS, OVERFIT_FACTOR = 30, 2.0


@functools.lru_cache(maxsize=None)
def _loss_and_grads(remat):
  """The jitted ``(loss, gradients)`` of the training loss (`objective.compute_loss`) of the tiny mel-band
  model, with or without `nnx.remat` on its blocks: one compile each, shared by the remat and overfit tests."""
  config = _tiny("mel", remat=remat)
  spec = objective.loss_spec(config)
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: models.get_model(config.model, n_bins=257, n_targets=4)))
  return jax.jit(jax.value_and_grad(lambda p, batch: objective.compute_loss(graphdef, p, batch, spec)))


@functools.lru_cache(maxsize=None)
def _mel_params_and_batch():
  """The tiny mel-band model's initial parameters and one training batch of generated songs."""
  config = _tiny("mel")
  return models.model_spec(config).init(jax.random.key(0)), next(loaders.make_train_iterator(config))


def test_remat_gives_the_same_gradients_and_the_rotary_frequencies_none():
  params, batch = _mel_params_and_batch()
  loss, grads = _loss_and_grads(False)(params, batch)
  remat_loss, remat_grads = _loss_and_grads(True)(params, batch)
  np.testing.assert_allclose(remat_loss, loss, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), remat_grads, grads)
  for name in ("time_rotary", "freq_rotary"):
    np.testing.assert_array_equal(grads[name]["frequencies"], 0.0)
  assert float(jnp.abs(grads["blocks"][0]["freq_transformer"]["attention"][0]["to_qkv"]["kernel"]).max()) > 0


def test_overfits_one_short_song():
  """Adam on one fixed batch of a generated song, through the remat test's gradient program (no compile of
  its own): the loss falls at least OVERFIT_FACTOR."""
  params, batch = _mel_params_and_batch()
  initial, loss_and_grads, tx = params, _loss_and_grads(False), optax.adam(1e-2)
  opt_state, losses = tx.init(params), []
  for _ in range(OVERFIT_STEPS):
    loss, grads = loss_and_grads(params, batch)
    updates, opt_state = tx.update(grads, opt_state)
    params = optax.apply_updates(params, updates)
    losses.append(float(loss))
  assert losses[-1] < losses[0] / OVERFIT_FACTOR, losses
  for name in ("time_rotary", "freq_rotary"):  # no gradient, and Adam has no weight decay: fixed, as the reference's
    np.testing.assert_array_equal(params[name]["frequencies"], initial[name]["frequencies"])


# --- end to end: train, separate, export, score --------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """The tiny config trained through the command line (4 steps, validated and checkpointed)."""
  return _model_checks.train_tiny(tmp_path_factory.mktemp("bs_roformer_tiny"), "bs_roformer_tiny")


@pytest.fixture(scope="module")
def song(tmp_path_factory):
  """A MUSDB-style test track (four tones and their mixture, 0.7 s): ``(data root, mixture path)``."""
  root = tmp_path_factory.mktemp("songs")
  folder = _musdb_synth.write_track(root, "test", "song", _musdb_synth.make_stems(30_870))
  return root, folder / "mixture.wav"


def test_training_wrote_a_finite_checkpoint(workdir):
  assert json.loads((workdir / "config.json").read_text())["model"]["name"] == "bs_roformer"
  _, params = network.load_workdir(workdir)
  assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(params))
  initial = models.model_spec(bs_roformer_tiny.get_config()).init(jax.random.key(0))
  for name in ("time_rotary", "freq_rotary"):  # trained with the config's Adam: fixed, as the reference's
    np.testing.assert_array_equal(params[name]["frequencies"], initial[name]["frequencies"])


def test_separate_and_score(workdir, song, tmp_path):
  root, mixture_path = song
  estimates = tmp_path / "estimates"
  stems = _model_checks.separate_song(mixture_path, workdir, estimates)
  assert sorted(stems) == sorted(("vocals", "drums", "bass", "other"))
  assert all(s.shape == (2, 30_870) for s in stems.values())
  (folder,) = separate.output_folders([mixture_path], estimates)
  folder.rename(estimates / "song")
  assert main(["score", str(estimates), "--root", str(root), "-o", str(tmp_path / "scores"), "--quiet",
               "--no-report"]) == 0
  table = (tmp_path / "scores" / "results.csv").read_text()
  assert all(f",{t}," in table for t in ("vocals", "drums", "bass", "other"))


def test_export_round_trips_and_onnx_is_refused(workdir, song, tmp_path):
  _, mixture_path = song
  (mixture,), rate = audio.read(mixture_path)
  _model_checks.export_round_trips(["--method", "bs_roformer", "--set", f"checkpoint={workdir}", "--platforms", "cpu"],
                                   tmp_path / "bs_roformer.jaxexport", "bs_roformer", workdir, mixture, sample_rate=rate)
  separator = separators.get("bs_roformer", {"checkpoint": str(workdir)})
  with pytest.raises(ParameterError, match="model 'bs_roformer' is a 'complex' model: the ONNX export handles "
                                           "magnitude-mask networks only"):
    export.mask_function(separator)
  with pytest.raises(ParameterError, match="model 'bs_roformer'"):
    export.export_masks_onnx(tmp_path / "masks.onnx", config={"checkpoint": str(workdir)})
