"""mssjax.training.losses and bss_eval_v4(differentiable=True) against museval, the metric, a NumPy transcription and finite differences."""

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from mssjax import ParameterError
from mssjax.training import losses
from mssjax.metrics import METRICS, bss_eval_v4, toeplitz

museval = pytest.importorskip("museval")

VALUE_TOL = 0.01   # dB: the differentiable BSSEval against the metric function's checked numpy route


def _coloured(rng, shape, smooth=8):
  """Band-limited noise (a moving average), closer to music than white noise."""
  kernel = np.ones(smooth) / smooth
  return np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), -2, rng.standard_normal(shape))


@pytest.fixture(scope="module")
def synthetic():
  """Three stereo sources of 3,000 samples and estimates with leakage and noise (float32)."""
  rng = np.random.default_rng(0)
  refs = _coloured(rng, (3, 3000, 2)).astype(np.float32)
  ests = (0.7 * refs + 0.1 * refs.sum(0)[None] + 0.05 * rng.standard_normal(refs.shape)).astype(np.float32)
  return refs, ests


def test_sdr_is_museval_whole_signal_sdr(synthetic):
  """museval (filters_len 512, v4 images) with win = hop = n: energy of s over that of s_hat - s."""
  refs, ests = synthetic
  expected = museval.evaluate(refs, ests, win=refs.shape[1], hop=refs.shape[1])[0][:, 0]
  np.testing.assert_allclose(np.asarray(losses.sdr(refs, ests)), expected, atol=1e-4)


@pytest.mark.parametrize("jit", [False, True])
def test_sdr_and_si_sdr_are_batched(synthetic, jit):
  refs, ests = synthetic
  batch_refs, batch_ests = np.stack([refs, 2 * refs]), np.stack([ests, 2 * ests])
  for fn in (losses.sdr, losses.si_sdr):
    f = jax.jit(fn) if jit else fn
    out = np.asarray(f(batch_refs, batch_ests))
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[1], out[0], atol=1e-4)          # both are scale-free in (s, s_hat) jointly
    np.testing.assert_allclose(out[0], np.asarray(fn(refs, ests)), atol=1e-5)


def test_sdr_of_exact_estimate_is_inf_and_eps_keeps_it_finite(synthetic):
  refs, _ = synthetic
  assert np.all(np.isinf(np.asarray(losses.sdr(refs, refs))))
  grad = jax.grad(lambda e: jnp.sum(losses.sdr(refs, e, eps=1e-8)))(jnp.asarray(refs) + 1e-3)
  assert np.all(np.isfinite(np.asarray(grad)))


def test_si_sdr_is_scale_invariant_and_matches_its_definition(synthetic):
  refs, ests = synthetic
  r, e = refs.astype(np.float64), ests.astype(np.float64)
  alpha = np.sum(e * r, axis=(1, 2), keepdims=True) / np.sum(r ** 2, axis=(1, 2), keepdims=True)
  expected = 10 * np.log10(np.sum((alpha * r) ** 2, axis=(1, 2)) / np.sum((e - alpha * r) ** 2, axis=(1, 2)))
  np.testing.assert_allclose(np.asarray(losses.si_sdr(refs, ests)), expected, atol=1e-3)
  np.testing.assert_allclose(np.asarray(losses.si_sdr(refs, 0.1 * ests)), expected, atol=1e-3)
  zero_mean = np.asarray(losses.si_sdr(refs + 0.5, ests + 0.5, zero_mean=True))
  np.testing.assert_allclose(zero_mean, np.asarray(losses.si_sdr(refs, ests, zero_mean=True)), atol=1e-3)


def _mrstft_numpy(refs, ests, fft_sizes, hop_lengths, win_lengths, eps=1e-8):
  """auraloss's MultiResolutionSTFTLoss per source, transcribed with librosa (zero padding)."""
  total = 0.0
  for n_fft, hop, win in zip(fft_sizes, hop_lengths, win_lengths):
    def mag(x):
      spec = librosa.stft(np.swapaxes(x, -1, -2).astype(np.float64), n_fft=n_fft, hop_length=hop,
                          win_length=win, window="hann", center=True, pad_mode="constant")
      return np.sqrt(np.maximum(np.abs(spec) ** 2, eps))
    m, m_hat = mag(refs), mag(ests)
    axes = (-3, -2, -1)
    total = total + (np.sqrt(np.sum((m - m_hat) ** 2, axis=axes)) / np.sqrt(np.sum(m ** 2, axis=axes))
                     + np.mean(np.abs(np.log(m) - np.log(m_hat)), axis=axes))
  return total / len(fft_sizes)


@pytest.mark.parametrize("settings", [dict(), dict(fft_sizes=(256,), hop_lengths=(64,), win_lengths=(256,))])
def test_multi_resolution_stft_matches_numpy_transcription(synthetic, settings):
  refs, ests = synthetic
  defaults = dict(fft_sizes=(1024, 2048, 512), hop_lengths=(120, 240, 50), win_lengths=(600, 1200, 240))
  expected = _mrstft_numpy(refs, ests, **{**defaults, **settings})
  actual = np.asarray(jax.jit(lambda r, e: losses.multi_resolution_stft(r, e, **settings))(refs, ests))
  assert actual.shape == (3,)
  np.testing.assert_allclose(actual, expected, rtol=1e-4)
  assert np.allclose(np.asarray(losses.multi_resolution_stft(refs, refs, **settings)), 0.0, atol=1e-6)


def test_multi_resolution_stft_rejects_mismatched_resolutions(synthetic):
  refs, ests = synthetic
  with pytest.raises(ParameterError, match="must be non-empty and of equal length"):
    losses.multi_resolution_stft(refs, ests, fft_sizes=(512, 256), hop_lengths=(128,), win_lengths=(512,))


@pytest.mark.parametrize("window,hop", [(1200, 700), (3000, 3000)])
def test_bss_eval_v4_values_equal_the_metric(synthetic, window, hop):
  refs, ests = synthetic
  expected = bss_eval_v4(refs, ests, window=window, hop=hop, filters_len=32)
  actual = bss_eval_v4(refs, ests, window=window, hop=hop, filters_len=32, differentiable=True)
  assert list(actual) == list(METRICS)
  for name in METRICS:
    assert isinstance(actual[name], jax.Array) and actual[name].dtype == np.float32, name
    np.testing.assert_allclose(np.asarray(actual[name]), expected[name], atol=VALUE_TOL, err_msg=name)


def _silent_first_window(refs):
  refs = refs.copy()
  refs[1, :1000] = 0                                            # window 0 silent: NaN for every source
  return refs


def test_bss_eval_v4_is_batched_and_silent_windows_are_nan(synthetic):
  refs, ests = synthetic
  refs_silent = _silent_first_window(refs)
  out = bss_eval_v4(np.stack([refs, refs_silent]), np.stack([ests, ests]), window=1000, hop=1000,
                    filters_len=32, differentiable=True)
  assert out["SIR"].shape == (2, 3, 3)
  for track, track_refs in enumerate((refs, refs_silent)):
    expected = bss_eval_v4(track_refs, ests, window=1000, hop=1000, filters_len=32)
    for name in METRICS:
      np.testing.assert_allclose(np.asarray(out[name][track]), expected[name], atol=VALUE_TOL, err_msg=name)
  assert np.all(np.isnan(np.stack([out[name] for name in METRICS])[:, 1, :, 0]))


def test_bss_eval_v4_gradient_is_float32_in_a_float32_program_and_zero_in_silent_windows(synthetic):
  refs, ests = synthetic
  refs_silent = _silent_first_window(refs)
  with jax.enable_x64(False):
    grad = jax.jit(jax.grad(lambda e: jnp.nansum(jnp.stack(list(bss_eval_v4(
        refs_silent, e, window=1000, hop=1000, filters_len=16, differentiable=True).values())))))(ests)
  assert grad.dtype == np.float32 and np.all(np.isfinite(np.asarray(grad)))


@pytest.fixture(scope="module")
def float64_case():
  """Two stereo sources of 400 samples in float64, the four metric sums and their jitted VJP (one compile each)."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(1)
    refs = _coloured(rng, (2, 400, 2))
    ests = 0.8 * refs + 0.2 * refs[::-1] + 0.1 * rng.standard_normal(refs.shape)

    def sums(r, e):
      out = bss_eval_v4(r, e, window=200, hop=100, filters_len=8, framewise_dtype="float64", differentiable=True)
      return jnp.stack([jnp.sum(out[name]) for name in METRICS])

    def pullback(r, e, cotangent):
      return jax.vjp(sums, r, e)[1](cotangent)

    return refs, ests, jax.jit(sums), jax.jit(pullback)


@pytest.mark.parametrize("argument", ["estimates", "references"])
def test_bss_eval_v4_gradient_matches_finite_differences_in_float64(float64_case, argument):
  """Each metric's gradient (SDR, ISR, SIR, SAR) along random directions, central differences with step 1e-6."""
  refs, ests, sums, pullback = float64_case
  which = ("references", "estimates").index(argument)
  step = 1e-6
  with jax.enable_x64(True):
    for seed in range(2):
      direction = np.random.default_rng(10 + seed).standard_normal(refs.shape)
      shift = [np.zeros_like(refs), np.zeros_like(refs)]
      shift[which] = step * direction
      fd = (np.asarray(sums(refs + shift[0], ests + shift[1])) - np.asarray(sums(refs - shift[0], ests - shift[1]))) / (2 * step)
      for index, name in enumerate(METRICS):
        grad = np.asarray(pullback(refs, ests, jnp.eye(4)[index])[which])
        assert abs(float(np.sum(grad * direction)) - fd[index]) <= 1e-6 * max(1.0, abs(fd[index])), (name, seed)


@pytest.mark.parametrize("batched", [False, True])
def test_the_adjoint_solve_has_autodiffs_gradient(batched):
  """`toeplitz.solve_block_toeplitz(adjoint=True)`'s VJP rule against JAX's derivative of the recursion."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(3)
    signal = _coloured(rng, (3000, 2))
    lags = np.arange(-3, 4)
    blocks = np.stack([signal[max(k, 0):3000 + min(k, 0)].T @ signal[max(-k, 0):3000 - max(k, 0)]
                       for k in lags])                                  # R_k of a stereo signal, [7, 2, 2]
    y = rng.standard_normal((4, 2, 3))
    if batched:
      blocks, y = np.stack([blocks, 1.5 * blocks]), np.stack([y, -y])
    weights = rng.standard_normal(y.shape)

    def loss(b, v, adjoint):
      degenerate = np.zeros(y.shape[:-3], bool)
      return jnp.sum(weights * toeplitz.solve_block_toeplitz(b, v, degenerate, adjoint=adjoint))

    grads = {a: jax.grad(loss, argnums=(0, 1))(blocks, y, a) for a in (False, True)}
  for by_adjoint, by_autodiff in zip(grads[True], grads[False]):
    np.testing.assert_allclose(np.asarray(by_adjoint), np.asarray(by_autodiff), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    (dict(window=0), "window=0 must be a positive integer"),
    (dict(filters_len=5000), "n_samples=3000 must be at least filters_len=5000"),
    (dict(frames_batch=0), "frames_batch=0 must be a positive integer"),
    (dict(solver="lu"), "solver='lu' has no gradient here"),
    (dict(framewise_dtype="float16"), "framewise_dtype='float16' is not known"),
])
def test_differentiable_bss_eval_v4_rejects_bad_settings(synthetic, kwargs, match):
  refs, ests = synthetic
  with pytest.raises(ParameterError, match=match):
    bss_eval_v4(refs, ests, differentiable=True, **kwargs)


def test_shapes_must_match(synthetic):
  refs, ests = synthetic
  for fn in (losses.sdr, losses.si_sdr, losses.multi_resolution_stft, losses.bss_eval_terms):
    with pytest.raises(ParameterError, match="must match"):
      fn(refs, ests[:, :2000])


# --- in training (mssjax.training.loop) -----------------------------------------------------------------


def _tiny(**loss):
  from configs import unet_tiny  # pylint: disable=import-outside-toplevel
  config = unet_tiny.get_config()
  for key, value in loss.items():
    node = config.loss
    *parents, leaf = key.split(".")
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config


@pytest.fixture(scope="module")
def tiny_batch():
  from mssjax.data import loaders  # pylint: disable=import-outside-toplevel
  return next(loaders.make_train_iterator(_tiny()))


def test_default_loss_is_unchanged():
  from mssjax.training import loop as train_lib  # pylint: disable=import-outside-toplevel
  spec = train_lib.loss_spec(_tiny())
  assert (spec.kind, spec.domain, spec.weights) == ("l1", "magnitude", ())


def test_training_steps_with_waveform_terms_lower_the_loss(tiny_batch):
  """Every waveform term at once (one compile): SDR as the main term, SI-SDR, the STFT distance and SIR added."""
  from mssjax.training import loop as train_lib  # pylint: disable=import-outside-toplevel
  config = _tiny(**{"kind": "sdr", "weights.si_sdr": 0.5, "weights.multi_resolution_stft": 0.5,
                    "weights.sir": 0.05, "filters_len": 16})
  assert [name for name, _ in train_lib.loss_spec(config).weights] == ["si_sdr", "multi_resolution_stft", "sir"]
  mesh = train_lib.make_mesh()
  state = train_lib.create_train_state(config, jax.random.key(0), stats_batches=[tiny_batch])
  state = train_lib.replicate(state, mesh)  # as training places it: one compile, not two
  step = train_lib.parallel_train_step(mesh)
  values = []
  for i in range(4):
    state, metrics = step(state, train_lib.shard_batch(tiny_batch, mesh), jax.random.key(i))
    values.append(float(metrics["loss"]))
    assert np.isfinite(values[-1]) and np.isfinite(float(metrics["grad_norm"])) and bool(metrics["params_finite"])
  assert values[-1] < values[0], values


@pytest.mark.slow
def test_sir_term_skips_silent_and_mono_chunks_with_finite_gradients(tiny_batch):
  from mssjax.training import loop as train_lib  # pylint: disable=import-outside-toplevel
  config = _tiny(kind="sir", filters_len=16)
  batch = {k: np.array(v) for k, v in tiny_batch.items()}
  batch["targets"][0, 0] = 0                                          # a silent target
  batch["targets"][1, 1, 1] = batch["targets"][1, 1, 0]               # an exactly mono one
  batch["mixture"] = batch["targets"].sum(1)
  state = train_lib.create_train_state(config, jax.random.key(0), stats_batches=[batch])
  loss, grads = jax.jit(jax.value_and_grad(
      lambda p: train_lib.compute_loss(state.graphdef, p, batch, state.loss)))(state.params)
  assert float(loss) == 0.0                                           # both chunks left out
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("key,value,match", [
    ("kind", "sdri", "loss.kind='sdri' is not known"),
    ("weights.sir", -1.0, "loss.weights.sir=-1.0 must be >= 0"),
    ("filters_len", 0, "loss.filters_len=0 must be a positive integer"),
])
def test_bad_loss_settings_fail_before_training(key, value, match):
  from mssjax.training import loop as train_lib  # pylint: disable=import-outside-toplevel
  with pytest.raises(ParameterError, match=match):
    train_lib.check_config(_tiny(**{key: value}))


def test_sir_term_is_the_mean_over_the_chunks_it_is_defined_for():
  from mssjax.training import objective as train_loss  # pylint: disable=import-outside-toplevel
  targets = np.swapaxes(_coloured(np.random.default_rng(4), (2, 4, 2000, 2)), -1, -2).astype(np.float32)
  estimates = 0.8 * targets + 0.05 * targets.sum(1, keepdims=True)
  targets[1, 0] = 0                                                   # chunk 1 left out
  term = float(jax.jit(lambda t, e: train_loss._waveform_term("sir", t, e, 16))(targets, estimates))
  refs, ests = np.swapaxes(targets[0], -1, -2), np.swapaxes(estimates[0], -1, -2)
  expected = -np.mean(np.asarray(losses.bss_eval_terms(refs, ests, filters_len=16)["SIR"]))
  np.testing.assert_allclose(term, expected, rtol=1e-5)
