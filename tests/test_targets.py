"""Targets and rates are data: every separator is one `Separator` with its own targets and sample rate."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mssjax import TARGETS, models, separate, separators, sharded
from mssjax.errors import ParameterError, check_targets
from mssjax.separators import Separator


def _tone(hz, *, seconds=1.0, rate=44100):
  t = np.arange(int(seconds * rate)) / rate
  return np.stack([np.sin(2 * np.pi * hz * t), 0.5 * np.sin(2 * np.pi * hz * t)]).astype(np.float32)


def _identity(name="identity", *, targets=("a", "b"), rate=22050, chunk_seconds=None):
  """A separator that returns the mixture as each target: ``apply`` sees audio at ``rate``."""
  n = len(targets)
  return Separator(name, targets, rate, ml_collections.ConfigDict(), lambda p, x: jnp.stack([x / n] * n),
                   chunk_seconds=chunk_seconds, overlap_seconds=0.0 if chunk_seconds is None else 0.1)


@pytest.mark.parametrize("chunk_seconds", [None, 0.3])
def test_a_22050_hz_separator_gets_stems_at_the_inputs_rate(chunk_seconds):
  """A 1 kHz tone survives the trip to 22.05 kHz and back; a 15 kHz tone, above its Nyquist, does not."""
  sep = _identity(chunk_seconds=chunk_seconds)
  for hz, kept in ((1000, True), (15000, False)):
    x = _tone(hz)
    stems = separate.separate_array(sep, x, sample_rate=44100)
    assert list(stems) == ["a", "b"] and stems["a"].shape == x.shape
    total = stems["a"] + stems["b"]
    inner = slice(2000, -2000)  # away from the resampler's edges
    error = np.max(np.abs(total[:, inner] - x[:, inner]))
    if kept:
      assert error < 1e-2, error
    else:
      assert np.max(np.abs(total[:, inner])) < 1e-2


def test_the_separators_rate_setting_acts():
  """``mixture`` at 8 kHz removes what lies above 4 kHz; at 44.1 kHz nothing."""
  x = _tone(6000)
  low = separate.separate_array(separators.get("mixture", {"sample_rate": 8000}), x, sample_rate=44100)
  full = separate.separate_array(separators.get("mixture"), x, sample_rate=44100)
  assert np.max(np.abs(low["vocals"][:, 2000:-2000])) < 1e-2
  np.testing.assert_allclose(full["vocals"], x, atol=1e-6)


def test_oracles_and_the_mixture_take_any_targets():
  rng = np.random.default_rng(0)
  stems = (0.1 * rng.standard_normal((3, 2, 44100))).astype(np.float32)
  targets = ("guitar", "piano", "speech")
  oracle = separators.get("irm2", {"targets": targets})
  assert oracle.targets == targets
  out = oracle(stems.sum(0), stems)
  assert list(out) == list(targets)
  sdr = [10 * np.log10(np.sum(stems[i] ** 2) / np.sum((stems[i] - np.asarray(out[t])) ** 2))
         for i, t in enumerate(targets)]
  assert min(sdr) > 3.0, sdr
  with pytest.raises(ParameterError, match="references of shape"):
    oracle(stems.sum(0), stems[:2])
  mixture = separators.get("mixture", {"targets": ("vocals", "accompaniment")})
  assert list(mixture(stems.sum(0))) == ["vocals", "accompaniment"]


def test_sharded_tracks_follow_the_targets():
  rng = np.random.default_rng(1)
  stems = (0.1 * rng.standard_normal((3, 2, 2, 8192))).astype(np.float32)  # 3 tracks of 2 targets
  oracle = separators.get("irm1", {"targets": ("x", "y")})
  out = sharded.separate_tracks(oracle, stems.sum(1), stems)
  assert list(out) == ["x", "y"] and out["x"].shape == (3, 2, 8192)
  alone = oracle(stems[1].sum(0), stems[1])
  np.testing.assert_allclose(out["y"][1], np.asarray(alone["y"]), atol=1e-6)


@pytest.mark.parametrize("bad, match", [
    ((), "at least one target"), ("vocals", "sequence of target names"), (("a", "a"), "names a target twice"),
    (("a/b",), "not a usable target name"), (("a,b",), "not a usable target name"), ((".hidden",), "not a usable target name"), (("",), "not a usable")])
def test_bad_targets_are_named(bad, match):
  with pytest.raises(ParameterError, match=match):
    check_targets(bad)
  with pytest.raises(ParameterError, match="wrong type" if isinstance(bad, str) else match):
    separators.get("mixture", {"targets": bad})


def test_a_config_without_targets_is_musdbs_four():
  """Weights and workdirs written before ``config.targets`` existed load as MUSDB18's four targets."""
  old = ml_collections.ConfigDict(dict(sample_rate=44100, model=dict(name="unet", n_targets=4)))
  new = models.upgrade_config(old)
  assert tuple(new.targets) == TARGETS and "n_targets" not in new.model and "n_targets" in old.model
  assert models.upgrade_config(new) is new
  with pytest.raises(ParameterError, match="n_targets=2"):
    models.upgrade_config(ml_collections.ConfigDict(dict(model=dict(name="unet", n_targets=2))))


def test_the_shipped_network_is_a_separator_like_any_other():
  unet = separators.get("unet")
  assert isinstance(unet, Separator) and unet.targets == TARGETS and unet.sample_rate == 44100
  assert unet.network is not None and unet.n_parameters > 0 and not unet.needs_references
  hpss = separators.get("hpss_repet")
  assert hpss.network is None and hpss.n_parameters == 0 and hpss.params == {}


def test_a_whole_song_separator_cannot_be_exported():
  from mssjax.deploy import export  # pylint: disable=import-outside-toplevel
  with pytest.raises(ParameterError, match="chunk_seconds=None"):
    export.metadata(separators.get("mixture", {"chunk_seconds": None}), b"", None)


def test_sharded_tracks_of_a_network_equal_its_own_calls():
  """A separator with parameters (the shipped network) splits tracks over devices like a classical one."""
  unet = separators.get("unet")
  x = (0.1 * np.random.default_rng(2).standard_normal((2, 2, 8192))).astype(np.float32)
  out = sharded.separate_tracks(unet, x)
  alone = unet(x)
  for t in unet.targets:
    np.testing.assert_allclose(out[t], np.asarray(alone[t]), atol=1e-5)
