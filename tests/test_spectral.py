"""Tests of the spectral core against librosa, and its invariants."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import scipy.signal

from mssjax import spectral
from mssjax.errors import ParameterError

SETTINGS = [  # (n_fft, hop_length, center)
    (4096, 1024, True),
    (4096, 1024, False),
    (2048, 512, True),
    (2048, 512, False),
    (1024, 256, True),
    (1000, 300, True),  # hop does not divide n_fft, even n_fft not a power of two
    (513, 128, False),  # odd n_fft
]
LENGTHS = [44100, 12345, 7001]


def _audio(shape, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


@pytest.mark.parametrize("n_fft,hop_length,center", SETTINGS)
@pytest.mark.parametrize("n_samples", LENGTHS)
def test_stft_matches_librosa(n_fft, hop_length, center, n_samples):
  x = _audio((2, n_samples))
  ours = np.asarray(spectral.stft(x, n_fft=n_fft, hop_length=hop_length, center=center))
  ref = librosa.stft(x, n_fft=n_fft, hop_length=hop_length, center=center)
  assert ours.shape == ref.shape
  assert ours.dtype == np.complex64
  assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("n_fft,hop_length,center", SETTINGS)
@pytest.mark.parametrize("use_length", [True, False])
def test_istft_matches_librosa(n_fft, hop_length, center, use_length):
  n = 12345
  Z = librosa.stft(_audio((2, n), seed=1), n_fft=n_fft, hop_length=hop_length, center=center)
  length = n if use_length else None
  ours = np.asarray(spectral.istft(Z, n_fft=n_fft, hop_length=hop_length, center=center, length=length))
  ref = librosa.istft(Z, n_fft=n_fft, hop_length=hop_length, center=center, length=length)
  assert ours.shape == ref.shape
  assert np.abs(ours - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("n_fft,hop_length,center", SETTINGS)
@pytest.mark.parametrize("n_samples", LENGTHS)
def test_round_trip(n_fft, hop_length, center, n_samples):
  x = _audio((2, n_samples), seed=2)
  y = spectral.istft(spectral.stft(x, n_fft=n_fft, hop_length=hop_length, center=center),
                     n_fft=n_fft, hop_length=hop_length, center=center, length=n_samples)
  y = np.asarray(y)
  if center:
    np.testing.assert_allclose(y, x, atol=1e-5)
  else:
    # Without centring the first and last samples are seen by a window that is
    # (nearly) zero there; the interior is reconstructed.
    np.testing.assert_allclose(y[..., n_fft:-n_fft], x[..., n_fft:-n_fft], atol=1e-5)


@pytest.mark.parametrize("n_fft,hop_length,center", SETTINGS)
@pytest.mark.parametrize("block_frames", [1, 3, 7])
def test_blocked_transforms_match_librosa(n_fft, hop_length, center, block_frames):
  # On CPU long signals are transformed in a loop over blocks of frames; small
  # blocks force that path here (7 does not divide the frame counts, so the
  # last block overlaps the one before).
  n = 12345
  x = _audio((2, n), seed=8)
  ours = np.asarray(spectral.stft(x, n_fft=n_fft, hop_length=hop_length, center=center,
                                  block_frames=block_frames))
  ref = librosa.stft(x, n_fft=n_fft, hop_length=hop_length, center=center)
  assert ours.shape == ref.shape
  assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max()
  whole = np.asarray(spectral.stft(x, n_fft=n_fft, hop_length=hop_length, center=center, block_frames=0))
  assert np.abs(ours - whole).max() <= 1e-6 * np.abs(whole).max()
  for length in (n, None):
    y = np.asarray(spectral.istft(ref, n_fft=n_fft, hop_length=hop_length, center=center, length=length,
                                  block_frames=block_frames))
    y_ref = librosa.istft(ref, n_fft=n_fft, hop_length=hop_length, center=center, length=length)
    assert y.shape == y_ref.shape
    assert np.abs(y - y_ref).max() <= 1e-5 * max(1.0, np.abs(y_ref).max())


def test_blocked_transforms_batched_vmapped_and_differentiable():
  x = jnp.asarray(_audio((3, 2, 6000), seed=9))
  kw = dict(n_fft=512, hop_length=128)

  def energy(a, block_frames):
    Z = spectral.stft(a, **kw, block_frames=block_frames)
    return jnp.sum(spectral.istft(Z * 0.5, hop_length=128, length=a.shape[-1], block_frames=block_frames) ** 2)

  blocked = jax.jit(jax.value_and_grad(energy), static_argnums=1)(x, 5)
  whole = jax.jit(jax.value_and_grad(energy), static_argnums=1)(x, 0)
  np.testing.assert_allclose(float(blocked[0]), float(whole[0]), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(blocked[1]), np.asarray(whole[1]), atol=1e-5)
  np.testing.assert_allclose(np.asarray(blocked[1]), 0.5 * np.asarray(x), atol=1e-4)
  vmapped = jax.vmap(lambda a: spectral.stft(a, **kw, block_frames=4))(x)
  np.testing.assert_allclose(np.asarray(vmapped), np.asarray(spectral.stft(x, **kw, block_frames=0)),
                             atol=1e-4)


def test_default_block_size_covers_long_signals():
  # 30 s of stereo audio is long enough for the default loop on CPU; it must
  # agree with librosa like the whole-signal transform.
  x = _audio((2, 30 * 44100), seed=10)
  assert spectral._block_frames((2,), 4096, spectral.n_frames_for(x.shape[-1]), None) > 0
  Z = spectral.stft(x)
  ref = librosa.stft(x, n_fft=4096, hop_length=1024)
  assert np.abs(np.asarray(Z) - ref).max() <= 1e-5 * np.abs(ref).max()
  y = np.asarray(spectral.istft(Z, length=x.shape[-1]))
  np.testing.assert_allclose(y, x, atol=1e-5)


@pytest.mark.parametrize("n_samples", [1, 100, 1000, 4095])
def test_signals_shorter_than_n_fft(n_samples):
  x = _audio((2, n_samples), seed=3)
  Z = spectral.stft(x, n_fft=4096, hop_length=1024)
  with pytest.warns(UserWarning):
    ref = librosa.stft(x, n_fft=4096, hop_length=1024)
  assert Z.shape == ref.shape
  np.testing.assert_allclose(np.asarray(Z), ref, atol=1e-5 * np.abs(ref).max())
  y = spectral.istft(Z, hop_length=1024, length=n_samples)
  np.testing.assert_allclose(np.asarray(y), x, atol=1e-5)


def test_batched_leading_dimensions_and_vmap():
  x = _audio((3, 2, 5000), seed=4)
  Z = spectral.stft(x, n_fft=1024, hop_length=256)
  assert Z.shape == (3, 2, 513, spectral.n_frames_for(5000, n_fft=1024, hop_length=256))
  single = spectral.stft(x[1, 0], n_fft=1024, hop_length=256)
  np.testing.assert_allclose(np.asarray(Z[1, 0]), np.asarray(single), atol=1e-4)
  vmapped = jax.vmap(lambda a: spectral.stft(a, n_fft=1024, hop_length=256))(x)
  np.testing.assert_allclose(np.asarray(vmapped), np.asarray(Z), atol=1e-4)


def test_jit_of_a_pipeline_and_gradients():
  x = jnp.asarray(_audio((2, 4000), seed=5))

  @jax.jit
  def energy(a):
    Z = spectral.stft(a, n_fft=512, hop_length=128)
    y = spectral.istft(Z * 0.5, hop_length=128, length=a.shape[-1])
    return jnp.sum(y ** 2)

  np.testing.assert_allclose(float(energy(x)), 0.25 * float(jnp.sum(x ** 2)), rtol=1e-4)
  grad = jax.grad(energy)(x)
  np.testing.assert_allclose(np.asarray(grad), 0.5 * np.asarray(x), atol=1e-4)


@pytest.mark.parametrize("window", ["hann", "hamming", ("kaiser", 8.0)])
@pytest.mark.parametrize("win_length", [None, 800])
def test_windows_and_win_length(window, win_length):
  x = _audio((2, 9000), seed=6)
  ours = np.asarray(spectral.stft(x, n_fft=1024, hop_length=200, win_length=win_length, window=window))
  ref = librosa.stft(x, n_fft=1024, hop_length=200, win_length=win_length, window=window)
  assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max()
  y = spectral.istft(ours, hop_length=200, win_length=win_length, window=window, length=9000)
  np.testing.assert_allclose(np.asarray(y), librosa.istft(ref, hop_length=200, win_length=win_length,
                                                          window=window, length=9000), atol=1e-4)


def test_array_window():
  x = _audio((9000,), seed=7)
  win = np.hanning(1024)
  ours = np.asarray(spectral.stft(x, n_fft=1024, hop_length=256, window=win))
  ref = librosa.stft(x, n_fft=1024, hop_length=256, window=win)
  assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_fft=0), "n_fft=0 must be a positive integer"),
    (dict(hop_length=0), "hop_length=0 must be a positive integer"),
    (dict(hop_length=1.5), "hop_length=1.5 must be a positive integer"),
    (dict(n_fft=512, win_length=1024), "win_length=1024 must be at most n_fft=512"),
    (dict(window="no-such-window"), "window='no-such-window'"),
    (dict(n_fft=8192, center=False), "shorter than n_fft=8192"),
    (dict(block_frames=-2), "block_frames=-2 must be a positive integer"),
])
def test_stft_bad_parameters(kwargs, match):
  with pytest.raises(ParameterError, match=match):
    spectral.stft(np.zeros(5000, np.float32), **kwargs)


def test_bad_inputs():
  with pytest.raises(ParameterError, match="must be real"):
    spectral.stft(np.zeros(5000, np.complex64))
  with pytest.raises(ParameterError, match="bins"):
    spectral.istft(np.zeros((100, 10), np.complex64), n_fft=1024)
  with pytest.raises(ParameterError, match="length=0"):
    spectral.istft(np.zeros((513, 10), np.complex64), length=0)
  with pytest.raises(ParameterError, match=r"\[..., n_bins, n_frames\]"):
    spectral.istft(np.zeros(10, np.complex64))


def test_magphase_matches_librosa():
  Z = librosa.stft(_audio(5000, seed=8), n_fft=512)
  Z[:, 0] = 0
  mag, phase = spectral.magphase(Z, power=2.0)
  ref_mag, ref_phase = librosa.magphase(Z, power=2.0)
  np.testing.assert_allclose(np.asarray(mag), ref_mag, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(phase), ref_phase, atol=1e-5)


@pytest.mark.parametrize("power", [1.0, 2.0, 10.0, np.inf])
@pytest.mark.parametrize("split_zeros", [False, True])
def test_softmask_matches_librosa(power, split_zeros):
  rng = np.random.default_rng(9)
  X = rng.random((64, 50)).astype(np.float32)
  X_ref = rng.random((64, 50)).astype(np.float32)
  X[:5] = 0
  X_ref[:3] = 0
  ours = spectral.softmask(X, X_ref, power=power, split_zeros=split_zeros)
  ref = librosa.util.softmask(X, X_ref, power=power, split_zeros=split_zeros)
  np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-6)


def test_softmask_bad_power():
  with pytest.raises(ParameterError, match="power=0"):
    spectral.softmask(np.ones(3), np.ones(3), power=0)


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_ratio_masks_sum_to_one(power):
  rng = np.random.default_rng(10)
  mags = rng.random((4, 2, 33, 20)).astype(np.float32)
  mags[:, :, 0] = 0  # all sources silent in one bin
  masks = np.asarray(spectral.ratio_masks(mags, power=power))
  np.testing.assert_allclose(masks.sum(0), 1.0, atol=1e-6)
  np.testing.assert_allclose(masks[:, :, 0], 0.25)
  expected = mags[:, :, 1:] ** power / (mags[:, :, 1:] ** power).sum(0)
  np.testing.assert_allclose(masks[:, :, 1:], expected, rtol=1e-5)


def test_binary_masks_one_hot():
  mags = np.array([[1.0, 0.0, 3.0], [2.0, 0.0, 1.0]], np.float32)
  masks = np.asarray(spectral.binary_masks(mags))
  np.testing.assert_array_equal(masks, [[0, 1, 1], [1, 0, 0]])


def test_band_mask():
  m = np.asarray(spectral.band_mask(sample_rate=44100, n_fft=4096, high_hz=200.0))
  freqs = librosa.fft_frequencies(sr=44100, n_fft=4096)
  assert m.shape == (2049, 1)
  np.testing.assert_array_equal(m[:, 0], (freqs < 200).astype(np.float32))
  band = np.asarray(spectral.band_mask(sample_rate=44100, n_fft=4096, low_hz=200.0, high_hz=4000.0))
  np.testing.assert_array_equal(band[:, 0], ((freqs >= 200) & (freqs < 4000)).astype(np.float32))
  with pytest.raises(ParameterError, match="below"):
    spectral.band_mask(low_hz=300.0, high_hz=200.0)


@pytest.mark.parametrize("window", ["hann", "hamming", ("kaiser", 8.0), "boxcar"])
@pytest.mark.parametrize("n_fft,hop,n_frames", [(16, 1, 40), (512, 128, 1), (1024, 300, 17), (2048, 2048, 3),
                                                (4096, 1024, 300), (333, 1500, 5)])
def test_window_helpers_equal_librosa_bit_for_bit(window, n_fft, hop, n_frames):
  import librosa  # pylint: disable=import-outside-toplevel
  win = scipy.signal.get_window(window, n_fft // 2 + 1, fftbins=True)
  padded = spectral.pad_center(win, size=n_fft)
  np.testing.assert_array_equal(padded, librosa.util.pad_center(win, size=n_fft))
  ours = spectral.window_sumsquare(padded, n_frames=n_frames, hop_length=hop)
  theirs = librosa.filters.window_sumsquare(window=padded, n_frames=n_frames, hop_length=hop, win_length=n_fft,
                                            n_fft=n_fft, dtype=np.float64)
  np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("n", [1, 2, 3, 511, 2048, 4097])
def test_default_hann_window_is_scipys_bit_for_bit(n):
  """The default window is built without importing scipy.signal (process start-up), to the same bits."""
  theirs = scipy.signal.get_window("hann", n, fftbins=True)
  np.testing.assert_array_equal(spectral._get_window("hann", n, n), theirs)  # pylint: disable=protected-access


def test_importing_mssjax_leaves_scipy_signal_out():
  code = "import sys, mssjax, mssjax.separators; print('scipy.signal' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
  assert out.stdout.strip() == "False", out.stderr[-2000:]
