"""Tests of the U-Net + BiLSTM (mssjax.models) and its separator core."""

import functools
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from mssjax import models, spectral
from mssjax.errors import ParameterError
from mssjax.separators import network as separator_lib
from mssjax.models.unet import UNet, count_parameters, depth_to_space


@functools.lru_cache(maxsize=None)
def _cached_model(items):
  settings = dict(n_bins=20, audio_channels=2, n_targets=4, features=(4, 8), kernel_size=(3, 3),
                  up_kernel_size=(3, 3), lstm_hidden=8, mask_activation="softmax", remat=False)
  settings.update(dict(items))
  return UNet(**settings, rngs=nnx.Rngs(0))


def _model(**kwargs):
  """A small model, built once per setting (the tests never change its parameters)."""
  return _cached_model(tuple(sorted(kwargs.items())))


@nnx.jit
def _apply(model, magnitude):
  return model(magnitude)


def _magnitude(shape, seed=0):
  return jnp.abs(jax.random.normal(jax.random.key(seed), shape))


@pytest.mark.parametrize("features,n_bins,full_bins,n_frames", [
    ((4,), 20, 20, 7), ((4, 8), 20, 33, 16), ((4, 8, 8), 9, 9, 1)])
def test_mask_shapes(features, n_bins, full_bins, n_frames):
  model = _model(n_bins=n_bins, features=features)
  masks = _apply(model, _magnitude((2, 2, full_bins, n_frames)))
  assert masks.shape == (2, 4, 2, full_bins, n_frames)
  assert bool(jnp.all(jnp.isfinite(masks)))


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", "relu"])
def test_mask_activations(activation):
  masks = _apply(_model(mask_activation=activation), _magnitude((1, 2, 20, 8)))
  assert bool(jnp.all(masks >= 0))
  if activation == "softmax":
    np.testing.assert_allclose(masks.sum(1), 1.0, atol=1e-6)
  if activation == "sigmoid":
    assert bool(jnp.all(masks <= 1))


def test_bins_above_the_band_repeat_the_top_mask():
  masks = _apply(_model(n_bins=12), _magnitude((1, 2, 20, 5)))
  np.testing.assert_array_equal(masks[..., 12:, :], jnp.broadcast_to(masks[..., 11:12, :], masks[..., 12:, :].shape))


def test_jit_matches_eager():
  model = _model()
  x = _magnitude((1, 2, 20, 8))
  eager = model(x)
  jitted = _apply(model, x)
  np.testing.assert_allclose(eager, jitted, rtol=1e-5, atol=1e-6)


def test_bilstm_carries_context_both_ways_in_time():
  """Changing the last frame changes the first frame's mask and vice versa (the BLSTM sees the whole chunk)."""
  model = _model(features=(4,))  # one level: the convolutions alone see only a few frames around
  x = _magnitude((1, 2, 20, 32))
  base = _apply(model, x)
  last = _apply(model, x.at[..., -1].multiply(5.0))
  first = _apply(model, x.at[..., 0].multiply(5.0))
  assert float(jnp.max(jnp.abs(last[..., 0] - base[..., 0]))) > 1e-6
  assert float(jnp.max(jnp.abs(first[..., -1] - base[..., -1]))) > 1e-6


def test_chunk_independence_of_batch():
  """Group norm has no batch statistics: an example's masks do not depend on its batch mates."""
  model = _model()
  x = _magnitude((2, 2, 20, 8))
  np.testing.assert_allclose(_apply(model, x)[1:2], _apply(model, x[1:2]), rtol=1e-5, atol=1e-6)


def test_only_parameters_no_rng_or_batch_state():
  _, state = nnx.split(_model())
  kinds = {type(v).__name__ for v in jax.tree.leaves(state, is_leaf=lambda v: isinstance(v, nnx.Variable))}
  assert kinds == {"Param"}


def test_parameter_count_matches_leaves():
  model = _model()
  _, state = nnx.split(model)
  assert count_parameters(model) == sum(int(np.size(p)) for p in jax.tree.leaves(nnx.to_pure_dict(state)))
  assert count_parameters(_model(features=(4, 8, 8))) > count_parameters(model)


def test_depth_to_space_places_each_feature_group_in_a_2x2_block():
  x = jnp.arange(1 * 2 * 3 * 8, dtype=jnp.float32).reshape(1, 2, 3, 8)
  y = depth_to_space(x)
  assert y.shape == (1, 4, 6, 2)
  for i in range(2):
    for j in range(2):
      np.testing.assert_array_equal(y[0, i::2, j::2, :], x[0, :, :, (2 * i + j) * 2:(2 * i + j) * 2 + 2])


@pytest.mark.parametrize("kwargs,message", [
    (dict(n_bins=0), "n_bins"),
    (dict(features=()), "features"),
    (dict(lstm_hidden=-1), "lstm_hidden"),
    (dict(mask_activation="tanh"), "mask_activation"),
])
def test_bad_sizes(kwargs, message):
  settings = dict(n_bins=20, audio_channels=2, n_targets=4, features=(4,), kernel_size=(3, 3),
                  up_kernel_size=(3, 3), lstm_hidden=4, mask_activation="softmax", remat=False)
  settings.update(kwargs)
  with pytest.raises(ParameterError, match=message):
    UNet(**settings, rngs=nnx.Rngs(0))


def test_wrong_input_shape():
  with pytest.raises(ParameterError, match="magnitude of shape"):
    _apply(_model(), _magnitude((1, 1, 20, 4)))
  with pytest.raises(ParameterError, match="magnitude of shape"):
    _apply(_model(), _magnitude((1, 2, 10, 4)))


def test_registry_by_name():
  config = ml_collections.ConfigDict(dict(name="unet", audio_channels=2, features=(4,),
                                          kernel_size=(3, 3), up_kernel_size=(3, 3), lstm_hidden=4,
                                          mask_activation="softmax", remat=False))
  assert isinstance(models.get_model(config, n_bins=8, n_targets=4), UNet)
  assert "unet" in models.names()
  config.name = "transformer"
  with pytest.raises(ParameterError, match=r"valid choices: \['bs_roformer', 'conv_tasnet', 'umx', 'unet'\]"):
    models.get_model(config, n_bins=8, n_targets=4)


def test_softmax_estimates_add_up_to_the_mixture():
  """Masks summing to one give waveform estimates summing to the mixture (a linear STFT/iSTFT pair)."""
  model = _model(n_bins=65)
  mixture = jax.random.normal(jax.random.key(1), (1, 2, 2000)) * 0.1
  separate = nnx.jit(lambda m, x: separator_lib.separate_waveforms(m, x, n_fft=128, hop_length=32))
  estimates = separate(model, mixture)
  assert estimates.shape == (1, 4, 2, 2000)
  np.testing.assert_allclose(estimates.sum(1), mixture, atol=1e-5)


def test_estimates_are_masked_mixture_stft():
  model = _model(n_bins=65)
  stft = spectral.stft(jax.random.normal(jax.random.key(2), (1, 2, 2000)), n_fft=128, hop_length=32)
  estimates = nnx.jit(separator_lib.estimate_spectrograms)(model, stft)
  masks = _apply(model, jnp.abs(stft))
  np.testing.assert_allclose(estimates, masks * stft[:, None], rtol=1e-6)


def test_model_bins_from_bandwidth():
  config = ml_collections.ConfigDict(dict(stft=dict(n_fft=1024, hop_length=256), sample_rate=44100,
                                          model=dict(bandwidth_hz=11025.0)))
  assert models.model_bins(config) == 256  # bins 0..255 lie below 11025 Hz
  config.model.bandwidth_hz = None
  assert models.model_bins(config) == 513


def test_wiener_refinement_keeps_the_mixture():
  """Multichannel Wiener estimates (EM, mssjax.filtering) add up to the mixture, like the masks they start from."""
  model = _model(n_bins=65)
  stft = spectral.stft(jax.random.normal(jax.random.key(3), (1, 2, 2000)), n_fft=128, hop_length=32)
  refine = nnx.jit(lambda m, x: separator_lib.estimate_spectrograms(m, x, wiener_iterations=1))
  estimates = refine(model, stft)
  assert estimates.shape == (1, 4, 2, 65, stft.shape[-1])
  assert bool(jnp.all(jnp.isfinite(estimates)))
  # Exact but for the EM's regularisation (eps) in near-singular bins: compare energies.
  assert float(jnp.linalg.norm(estimates.sum(1) - stft) / jnp.linalg.norm(stft)) < 1e-2
  assert float(jnp.max(jnp.abs(estimates - nnx.jit(separator_lib.estimate_spectrograms)(model, stft)))) > 1e-4


def test_the_configs_state_their_parameter_counts():
  """configs/unet.py's docstring gives its model's size; the shipped recipe is the 1.3 M one."""
  import sys  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  from configs import unet, unet_previews  # pylint: disable=import-outside-toplevel
  assert models.model_spec(unet.get_config()).n_parameters == 9_624_654
  assert "9,624,654" in unet.__doc__
  assert models.model_spec(unet_previews.get_config()).n_parameters == 1_318_826
