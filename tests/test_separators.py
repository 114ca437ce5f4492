"""Tests of the separator registry: calling convention, recipes, oracles, bad input."""

import pathlib
import shutil
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from mssjax import TARGETS, separators
from mssjax.errors import ParameterError

N = 22050  # 0.5 s at 44.1 kHz


def _small(name):
  """The recipe's config with a small STFT and short REPET distances, for speed."""
  config = separators.default_config(name)
  config.stft.n_fft, config.stft.hop_length = 1024, 256
  if "repet" in config:
    config.repet.min_distance = 0.05
  if "nmf" in config:
    config.nmf.n_iter, config.nmf.n_components = 20, 8
  return config


@pytest.fixture(scope="module")
def tracks():
  """Two stereo tracks ``[2, 2, N]`` and their stems ``[2, 4, 2, N]``."""
  rng = np.random.default_rng(0)
  t = np.arange(N) / 44100
  beat = (np.sin(2 * np.pi * 3 * t) > 0.95).astype(np.float32)
  stems = np.stack([
      0.3 * np.sin(2 * np.pi * 440 * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))),  # vocals
      0.5 * beat * rng.standard_normal(N),  # drums
      0.4 * np.sin(2 * np.pi * 60 * t),  # bass
      0.2 * np.sin(2 * np.pi * 1200 * t),  # other
  ]).astype(np.float32)
  stems = np.stack([stems, 0.8 * stems], axis=1)  # stereo
  references = np.stack([stems, stems[:, :, ::-1].copy()])
  return references.sum(axis=1), references


_RECIPES = {}


def _recipe(name):
  """One separator per recipe for the module, so each compiles once."""
  if name not in _RECIPES:
    _RECIPES[name] = separators.get(name, _small(name))
  return _RECIPES[name]


@pytest.fixture(scope="module", params=["hpss_repet", "nmf"])
def recipe(request):
  return _recipe(request.param)


def test_names_and_unknown_name():
  assert set(separators.names()) >= {"hpss_repet", "nmf", "irm1", "irm2", "ibm", "mwf", "mixture", "unet"}
  with pytest.raises(ParameterError, match="separator='repet' is not known; valid choices: .*hpss_repet"):
    separators.get("repet")


def test_recipe_stems_add_up_and_batch(recipe, tracks):
  mixtures, _ = tracks
  assert not recipe.needs_references and recipe.n_parameters == 0
  stems = recipe(mixtures)
  assert set(stems) == set(TARGETS)
  for stem in stems.values():
    assert stem.shape == mixtures.shape and stem.dtype == np.float32 and np.all(np.isfinite(stem))
  total = sum(np.asarray(stems[t]) for t in TARGETS)
  np.testing.assert_allclose(total, mixtures, atol=1e-4)
  one = recipe(mixtures[1])
  # on CPU tracks are looped inside the call: the same result as one call; vmapped (accelerators),
  # NMF's 100s of batched matmuls differ from single ones in rounding, hence its looser bound
  atol = 0.0 if jax.default_backend() == "cpu" else 1e-4 if recipe.name == "hpss_repet" else 5e-3
  for t in TARGETS:
    np.testing.assert_allclose(np.asarray(one[t]), np.asarray(stems[t][1]), atol=atol)


def test_recipe_silent_mixture(recipe):
  stems = recipe(np.zeros((2, N), np.float32))
  for stem in stems.values():
    assert not np.any(np.isnan(stem)) and float(np.abs(stem).max()) == 0.0


def test_hpss_repet_puts_the_low_tone_in_bass(tracks):
  mixtures, references = tracks
  stems = _recipe("hpss_repet")(mixtures[0])
  bass = np.asarray(stems["bass"])
  err = np.sum((bass - references[0, 2]) ** 2) / np.sum(references[0, 2] ** 2)
  assert err < 0.5


@pytest.mark.parametrize("name", ["irm1", "irm2", "ibm", "mwf"])
def test_oracles_beat_the_mixture(tracks, name):
  mixtures, references = tracks
  sep = separators.get(name)
  assert sep.needs_references
  stems = sep(mixtures, references)
  for j, t in enumerate(TARGETS):
    est, ref = np.asarray(stems[t]), references[:, j]
    assert np.sum((est - ref) ** 2) < 0.5 * np.sum((mixtures - ref) ** 2), t
  if name in ("irm1", "irm2"):
    np.testing.assert_allclose(sum(np.asarray(stems[t]) for t in TARGETS), mixtures, atol=1e-4)


def test_mixture_separator_is_the_floor(tracks):
  mixtures, _ = tracks
  stems = separators.get("mixture")(mixtures)
  for t in TARGETS:
    np.testing.assert_array_equal(np.asarray(stems[t]), mixtures)


@pytest.mark.parametrize("mixture, match", [
    (np.full((2, N), np.nan, np.float32), "non-finite"),
    (np.zeros((1, N), np.float32), "stereo"),
    (np.zeros(N, np.float32), "stereo"),
    (np.zeros((2, 0), np.float32), "empty"),
    (np.zeros((2, N), np.complex64), "real"),
])
def test_bad_mixture(mixture, match):
  with pytest.raises(ParameterError, match=match):
    separators.get("mixture")(mixture)


def test_oracle_references_checked(tracks):
  mixtures, references = tracks
  sep = separators.get("irm2")
  with pytest.raises(ParameterError, match="references"):
    sep(mixtures)
  with pytest.raises(ParameterError, match="4 targets|must be"):
    sep(mixtures, references[:, :3])


def test_mixture_shorter_than_the_harmonic_filter(recipe):
  """5 frames (hop 256) against a 45-frame harmonic filter: the filter is capped, the stems still add up."""
  x = np.random.default_rng(1).standard_normal((2, 1024)).astype(np.float32)
  stems = recipe(x)
  np.testing.assert_allclose(sum(np.asarray(stems[t]) for t in TARGETS), x, atol=1e-4)
  with pytest.raises(ParameterError, match="at least 2 frames"):
    recipe(np.zeros((2, 100), np.float32))


def test_bad_config():
  config = separators.default_config("hpss_repet")
  config.stft.n_fft = 0
  with pytest.raises(ParameterError, match="n_fft"):
    separators.get("hpss_repet", config)


def test_overrides_reach_the_separator(tracks):
  mixtures, _ = tracks
  small = _small("hpss_repet")
  default = _recipe("hpss_repet")
  wide = separators.get("hpss_repet", {**small.to_dict(), "hpss": {"kernel_size": (31, 5)}})
  assert wide.config.hpss.kernel_size == (31, 5) and wide.config.stft.n_fft == 1024
  assert not np.allclose(wide(mixtures)["drums"], default(mixtures)["drums"], atol=1e-4)
  assert separators.get("hpss_repet", {"hpss.kernel_size": (31, 5)}).config.hpss.kernel_size == (31, 5)


def test_configs_are_locked_and_checked():
  with pytest.raises(ParameterError, match="unknown key 'hpss.kernel'; valid keys: bass_cutoff_hz, chunk_seconds"):
    separators.get("hpss_repet", {"hpss.kernel": 3})
  with pytest.raises(ParameterError, match="wrong type"):
    separators.get("nmf", {"nmf.n_iter": "many"})
  extra = separators.default_config("nmf").to_dict()
  extra["nmf"]["rank"] = 3
  import ml_collections  # pylint: disable=import-outside-toplevel
  with pytest.raises(ParameterError, match=r"unknown keys \['nmf.rank'\]"):
    separators.get("nmf", ml_collections.ConfigDict(extra))
  config = separators.default_config("irm2")
  with pytest.raises(AttributeError, match="locked"):
    config.wiener_iteration = 2
  assert config.stft.n_fft == 4096
  for name in separators.names():  # every separator's config says how songs are chunked
    config = separators.default_config(name)
    assert config.method == name and "chunk_seconds" in config and "overlap_seconds" in config


def test_config_files_are_what_the_tools_build_from():
  import configs.evaluate, configs.hpss_repet  # pylint: disable=import-outside-toplevel,multiple-imports
  from mssjax.evaluation import loop as evaluate_lib  # pylint: disable=import-outside-toplevel
  config = configs.evaluate.get_config()
  config.methods = "hpss_repet,nmf,mixture"
  config.separators.hpss_repet.bass_cutoff_hz = 150.0
  built = evaluate_lib.load_separators(config)
  assert built["hpss_repet"].config.bass_cutoff_hz == 150.0
  assert built["nmf"].config.to_dict() == separators.nmf_config().to_dict()


def _bumps(freqs, bumps):
  """Bases ``[n_bins, r]``: each a sum of Gaussian bumps ``(centre Hz, width Hz, height)``."""
  return np.stack([sum(h * np.exp(-0.5 * ((freqs - f) / w) ** 2) for f, w, h in basis) for basis in bumps],
                  axis=1).astype(np.float32)


def test_bass_ownership():
  """A basis goes to bass when enough of its energy lies below the cut-off, overtones and all."""
  freqs = np.fft.rfftfreq(4096, 1 / 44100)
  W = _bumps(freqs, [
      [(80.0, 10.0, 1.0), (160.0, 10.0, 0.6), (240.0, 10.0, 0.4)],  # a bass note and its overtones
      [(300.0, 10.0, 1.0), (600.0, 10.0, 0.5)],  # a guitar note: all above 200 Hz
      [(150.0, 10.0, 0.5), (450.0, 10.0, 1.0), (900.0, 10.0, 1.0)],  # a low piano note: 11% below
  ])
  own = lambda share, cutoff=200.0: np.asarray(separators.bass_ownership(
      W, sample_rate=44100, n_fft=4096, cutoff_hz=cutoff, share=share))
  np.testing.assert_array_equal(own(0.5), [1.0, 0.0, 0.0])
  np.testing.assert_array_equal(own(0.1), [1.0, 0.0, 1.0])  # a lower share moves the decision
  np.testing.assert_array_equal(own(0.5, cutoff=100.0), [1.0, 0.0, 0.0])  # 1 / 1.52 of the bass below 100 Hz
  np.testing.assert_array_equal(own(0.7, cutoff=100.0), [0.0, 0.0, 0.0])
  assert own(0.5).dtype == np.float32
  silent = np.asarray(separators.bass_ownership(np.zeros((2049, 2), np.float32), sample_rate=44100, n_fft=4096,
                                                cutoff_hz=200.0, share=0.5))
  np.testing.assert_array_equal(silent, [0.0, 0.0])  # an empty basis owns nothing


def _band_energy(x, low_hz, high_hz):
  spectrum = np.abs(np.fft.rfft(np.asarray(x), axis=-1)) ** 2
  freqs = np.fft.rfftfreq(x.shape[-1], 1 / 44100)
  return float(np.sum(spectrum[..., (freqs >= low_hz) & (freqs < high_hz)]))


def test_nmf_gives_the_bass_its_overtones():
  """A bass note's overtone above the cut-off goes to bass, a tone in the same band with no low partner to other."""
  n = 2 * 44100
  t = np.arange(n) / 44100
  gate = (np.sin(2 * np.pi * 1.5 * t) > 0).astype(np.float32)  # notes that come and go: one NMF component each
  bass = gate * (0.5 * np.sin(2 * np.pi * 65 * t) + 0.3 * np.sin(2 * np.pi * 260 * t))
  other = (1 - gate) * 0.3 * np.sin(2 * np.pi * 330 * t)
  mixture = np.stack([bass + other, bass + other]).astype(np.float32)
  config = _small("nmf")
  config.stft.n_fft, config.stft.hop_length = 4096, 1024  # 65 Hz and 260 Hz in bins of 10.8 Hz
  config.update(dict(bass_share=0.5, wiener_iterations=0))
  config.hpss.kernel_size = (17, 17)  # notes of 0.33 s: harmonic for a 0.4 s filter, not for the 1 s default
  config.nmf.n_iter = 50
  stems = separators.get("nmf", config)(mixture)
  overtone = [_band_energy(stems[target], 240.0, 280.0) for target in TARGETS]
  assert overtone[TARGETS.index("bass")] > 0.7 * sum(overtone), dict(zip(TARGETS, overtone))
  tone = [_band_energy(stems[target], 310.0, 350.0) for target in TARGETS]
  assert tone[TARGETS.index("other")] > 0.7 * sum(tone), dict(zip(TARGETS, tone))
  config.bass_share = 1.01  # no basis is bass: the overtone goes to other, as in hpss_repet
  stems = separators.get("nmf", config)(mixture)
  overtone = [_band_energy(stems[target], 240.0, 280.0) for target in TARGETS]
  assert overtone[TARGETS.index("other")] > 0.7 * sum(overtone), dict(zip(TARGETS, overtone))


_INSTALLED_CHECK = textwrap.dedent("""
    import importlib.util, pathlib, sys
    import numpy as np
    import mssjax
    from mssjax import separators
    assert pathlib.Path(mssjax.__file__).parent == pathlib.Path(sys.argv[1]) / "mssjax", mssjax.__file__
    assert importlib.util.find_spec("configs") is None
    assert separators.get("nmf").config.nmf.n_components == 32
    sep = separators.get("hpss_repet")
    x = np.random.default_rng(0).standard_normal((2, 20 * 1024)).astype(np.float32)
    stems = sep(x)
    assert np.allclose(sum(np.asarray(s) for s in stems.values()), x, atol=1e-4)
    print("ok")
""")


def test_get_works_without_the_repository(tmp_path):
  """As an installed copy: only the package on the path, run from an unrelated folder."""
  site = tmp_path / "site"
  shutil.copytree(pathlib.Path(separators.__file__).parents[1], site / "mssjax",
                  ignore=shutil.ignore_patterns("__pycache__"))
  (tmp_path / "work").mkdir()
  env = {"PYTHONPATH": str(site), "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"}
  result = subprocess.run([sys.executable, "-c", _INSTALLED_CHECK, str(site)], cwd=tmp_path / "work", env=env,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


@pytest.mark.realdata
@pytest.mark.slow
def test_hpss_repet_on_a_real_track(musdb_root):
  from mssjax import audio  # pylint: disable=import-outside-toplevel
  path = sorted((musdb_root / "test").glob("*.stem.mp4"))[0]
  stems = audio.load_stems(path)[:, :, :4 * 44100]  # mixture, drums, bass, other, vocals
  mixture, references = stems[0], stems[[4, 1, 2, 3]]
  out = separators.get("hpss_repet")(mixture)

  def sdr(ref, est):
    return 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - est) ** 2))

  gains = [sdr(references[j], np.asarray(out[t])) - sdr(references[j], mixture) for j, t in enumerate(TARGETS)]
  assert np.mean(gains) > 3.0, gains


def test_unet_test_time_averaging_is_the_mean_of_the_moved_back_passes():
  """shifts=2, channel_swap: four passes (two delays within a hop, each also swapped), each moved back."""
  from mssjax.separators import network as separator_lib  # noqa: PLC0415
  unet = separators.get("unet")
  net = unet.network
  hop = net.hop_length
  rng = np.random.default_rng(0)
  x = (0.1 * rng.standard_normal((2, 3 * hop + 100))).astype(np.float32)
  n = x.shape[-1]

  def one_pass(mixture):
    return np.asarray(separator_lib.separate_with_params(net.graphdef, unet.params, mixture[None], n_fft=net.n_fft,
                                                         hop_length=hop)[0])

  expected = []
  for offset in (0, hop // 2):
    padded = np.pad(x, ((0, 0), (offset, hop - offset)))
    expected.append(one_pass(padded)[..., offset:offset + n])
    expected.append(one_pass(padded[::-1])[:, ::-1, offset:offset + n])
  averaged = separators.get("unet", {"shifts": 2, "channel_swap": True})
  np.testing.assert_allclose(averaged.separate_chunk(x), np.mean(expected, axis=0), atol=1e-6)
  assert not np.allclose(averaged.separate_chunk(x), one_pass(x), atol=1e-4)   # the passes do differ
  with pytest.raises(ParameterError, match="shifts=0"):
    separators.get("unet", {"shifts": 0})
