"""Tests of the ensemble separator (mssjax.separators.ensemble): members, weights, averages, rules, tools.

Members are the cheap ones to compile: the pretrained network, oracles with a
small STFT (given random shares of the mixture as references) and the
``mixture`` separator (every stem is the mixture); hpss_repet members are only
built, never run (its compilation alone takes longer than this whole module).
"""

import json
import pathlib

import numpy as np
import pytest

from mssjax import TARGETS, audio, separate, separators
from mssjax.__main__ import main
from mssjax.deploy import export, exported
from mssjax.errors import ParameterError

N = 22050  # 0.5 s at 44.1 kHz


def _hpss():
  config = separators.default_config("hpss_repet").unlock()
  config.stft.n_fft, config.stft.hop_length = 1024, 256
  config.repet.min_distance = 0.05
  config.chunk_seconds, config.overlap_seconds = 0.5, 0.1
  return config


def _mixture(**changes):
  config = separators.default_config("mixture").unlock()
  config.update(dict(dict(chunk_seconds=2.0, overlap_seconds=0.25), **changes))
  return config


def _ensemble(members, **settings):
  """An ensemble config of ``{label: member config}`` with ``settings`` (average, weights, ...)."""
  config = separators.ensemble_config({label: c for label, c in members.items()})
  config.stft.n_fft, config.stft.hop_length = 1024, 256
  for key, value in settings.items():
    if key == "weights":
      config.weights.update(value)
    else:
      config[key] = value
  return config


@pytest.fixture(scope="module")
def mixtures():
  """Two stereo tracks ``[2, 2, N]``: a tone, a pulse and noise."""
  rng = np.random.default_rng(0)
  t = np.arange(N) / 44100
  x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * (np.sin(2 * np.pi * 3 * t) > 0.9) * rng.standard_normal(N)
  return np.stack([np.stack([x, 0.7 * x]), np.stack([x[::-1], x[::-1]])]).astype(np.float32)


def _oracle(name="irm2", **changes):
  config = separators.default_config(name).unlock()
  config.stft.n_fft, config.stft.hop_length = 1024, 256
  config.update(changes)
  return config


@pytest.fixture(scope="module")
def references(mixtures):
  """True stems ``[2, 4, 2, N]`` for the oracle members: random shares of each mixture."""
  shares = np.random.default_rng(1).dirichlet(np.ones(4), size=(2, 2, N)).transpose(0, 3, 1, 2)
  return (shares * mixtures[:, None]).astype(np.float32)


def _stack(stems):
  return np.stack([np.asarray(stems[t]) for t in TARGETS])


def test_one_member_is_that_member_bit_for_bit(mixtures, references):
  unet = separators.get("unet")  # the pretrained network (8 s chunks, 1 s overlap)
  one = separators.get("ensemble", {"members": ("unet",)})
  assert (one.targets, one.sample_rate, one.chunk_seconds, one.overlap_seconds) == (unet.targets, 44100, 8.0, 1.0)
  assert one.n_parameters == unet.n_parameters
  np.testing.assert_array_equal(one.separate_chunk(mixtures[0]), unet.separate_chunk(mixtures[0]))
  # an oracle member, over a batch of tracks; normalised weights: a member twice, at any weight, is the member once
  irm2 = _stack(separators.get("irm2", _oracle())(mixtures, references))
  for members in ({"a": _oracle()}, {"a": _oracle(), "b": _oracle()}):
    ensemble = separators.get("ensemble", _ensemble(members, weights={"vocals": (3.0,) * len(members)}))
    np.testing.assert_array_equal(_stack(ensemble(mixtures, references)), irm2)


def test_magnitude_average_is_a_soft_mask_of_the_mixture(mixtures, references):
  """One ``mixture`` member: every mean magnitude is |X|, so each mask is 1/4 and each stem a quarter of the mixture;
  with an oracle member the stems add up to the mixture and differ from the member's (re-masked)."""
  quarter = separators.get("ensemble", _ensemble({"m": _mixture()}, average="magnitude"))
  np.testing.assert_allclose(_stack(quarter(mixtures)), np.broadcast_to(mixtures / 4, (4,) + mixtures.shape),
                             atol=1e-6)
  member = _stack(separators.get("irm2", _oracle())(mixtures, references))
  once = _stack(separators.get("ensemble", _ensemble({"a": _oracle()}, average="magnitude"))(mixtures, references))
  twice = separators.get("ensemble", _ensemble({"a": _oracle(), "b": _oracle()}, average="magnitude"))
  np.testing.assert_allclose(_stack(twice(mixtures, references)), once, atol=1e-6)
  np.testing.assert_allclose(once.sum(axis=0), mixtures, atol=1e-5)
  assert not np.allclose(once, member, atol=1e-4)


def test_weights_per_target_pick_and_mix_members(mixtures, references):
  config = _ensemble({"irm": _oracle(), "mix": _mixture()},
                     weights={"vocals": (1.0, 0.0), "drums": (0, 2), "bass": (1, 3)})
  both = separators.get("ensemble", config)
  assert both.chunk_seconds == 2.0 and both.params == {"irm": {}, "mix": {}} and both.needs_references
  got = both(mixtures, references)
  alone = separators.get("irm2", _oracle())(mixtures, references)
  np.testing.assert_array_equal(got["vocals"], alone["vocals"])
  np.testing.assert_array_equal(got["drums"], mixtures)
  np.testing.assert_allclose(got["bass"], 0.25 * np.asarray(alone["bass"]) + 0.75 * mixtures, atol=1e-6)
  np.testing.assert_allclose(got["other"], 0.5 * np.asarray(alone["other"]) + 0.5 * mixtures, atol=1e-6)
  with pytest.raises(ParameterError, match="is an oracle"):
    both(mixtures)


def test_common_targets_and_oracle_references_in_their_order(mixtures, references):
  """The targets are those all members have, in the first member's order; an oracle member gets its references in
  its own order."""
  config = _ensemble({"mix": _mixture(), "duo": _mixture(targets=("piano", "vocals"))})
  assert separators.get("ensemble", config).targets == ("vocals",)
  config.member_configs.duo = _oracle("irm1", targets=("drums", "vocals"))
  both = separators.get("ensemble", config)
  assert both.targets == ("vocals", "drums")
  alone = separators.get("irm1", config.member_configs.duo)(mixtures, references[:, 1::-1])
  got = both(mixtures, references[:, :2])
  for target in both.targets:
    np.testing.assert_allclose(got[target], 0.5 * mixtures + 0.5 * np.asarray(alone[target]), atol=1e-6)
  config.member_configs.duo.targets = ("drums", "vocals", "piano")
  with pytest.raises(ParameterError, match=r"member 'duo' is an oracle of targets \('drums', 'vocals', 'piano'\)"):
    separators.get("ensemble", config)


@pytest.mark.parametrize("change, message", [
    (dict(member_configs={"mix": _mixture(sample_rate=22050)}),
     r"^ensemble members must work at one sample rate: hpss at 44100 Hz, mix at 22050 Hz$"),
    (dict(member_configs={"mix": _mixture(targets=("guitar",))}),
     r"^ensemble members have no target in common: hpss \('vocals', 'drums', 'bass', 'other'\); mix \('guitar',\)$"),
    (dict(weights={"vocals": (1.0,)}), r"weights.vocals=\(1.0,\) must hold one weight per member \('hpss', 'mix'\)"),
    (dict(weights={"piano": (1.0, 1.0)}), r"weights.piano weights a target the ensemble does not have"),
    (dict(weights={"vocals": (0, 0)}), "must not all be zero"),
    (dict(weights={"vocals": (-1, 2)}), r"weights.vocals=-1 must be >= 0"),
    (dict(average="median"), r"average='median' is not known; valid choices: \['waveform', 'magnitude'\]"),
    (dict(members=("hpss", "piano")), "member 'piano' has no config .*and is not a separator name"),
    (dict(members=("hpss", "hpss")), "names a member twice"),
])
def test_bad_ensembles_are_one_parameter_error(change, message):
  config = _ensemble({"hpss": _hpss(), "mix": _mixture()})
  for key, value in change.items():
    if isinstance(value, dict):
      config[key].update(value)
    else:
      config[key] = value
  with pytest.raises(ParameterError, match=message) as error:
    separators.get("ensemble", config)
  assert "\n" not in str(error.value)


def test_config_keys_are_checked():
  with pytest.raises(ParameterError, match="unknown key 'averge'"):
    separators.get("ensemble", {"averge": "magnitude"})
  config = _ensemble({"hpss": _hpss()})
  config.member_configs.hpss.hpss.kernel = 3
  with pytest.raises(ParameterError, match=r"hpss_repet config: unknown keys \['hpss.kernel'\]"):
    separators.make_config("ensemble", config)
  config = _ensemble({"hpss": _hpss()})
  config.member_configs.hpss.method = "repet"
  with pytest.raises(ParameterError, match="separator='repet' is not known"):
    separators.make_config("ensemble", config)
  checked = separators.make_config("ensemble", {"members": ("unet",), "weights.vocals": (2.0,)})
  assert checked.members == ("unet",) and checked.weights.vocals == (2.0,) and checked.member_configs.unet.method == "unet"


def test_separate_command_line(tmp_path, mixtures, capsys):
  """``separate --config FILE --set ...`` builds the ensemble of the file's members and its settings act."""
  song = tmp_path / "song.wav"
  audio.save(song, mixtures[0])
  config_file = tmp_path / "ens.py"
  config_file.write_text(
      "from mssjax import separators\n"
      "def get_config():\n"
      "  mix = separators.default_config('mixture')\n"
      "  return separators.ensemble_config({'a': mix, 'b': mix})\n")
  out = tmp_path / "out"
  assert main(["separate", str(song), "--config", str(config_file), "--set", "average=magnitude", "--set",
               "weights.vocals=1,0", "--set", "member_configs.b.chunk_seconds=0.25", "--set",
               "member_configs.b.overlap_seconds=0.05", "-o", str(out), "--quiet"]) == 0
  for target in TARGETS:  # each mask is 1/4 (test_magnitude_average_is_a_soft_mask_of_the_mixture)
    np.testing.assert_allclose(audio.load(out / "song" / f"{target}.wav"), mixtures[0] / 4, atol=1e-6)
  assert main(["separate", str(song), "--config", str(config_file), "--set", "weights.vocals=1", "-o", str(out)]) == 2
  assert main(["separate", str(song), "--config", str(config_file), "--set", "member_configs.b.chunk_seconds=0.5",
               "-o", str(out)]) == 2
  assert capsys.readouterr().err.splitlines()[-1] == ("error: ensemble member 'b' (mixture): overlap_seconds=1.0 "
                                                      "must be shorter than chunk_seconds=0.5")


def test_export_round_trip(tmp_path, mixtures):
  """The module of a two-member magnitude ensemble, over several chunks, equals `separate_array`."""
  config = _ensemble({"a": _mixture(chunk_seconds=0.25, overlap_seconds=0.05), "b": _mixture()}, average="magnitude",
                     weights={"vocals": (0.75, 0.25)})
  path = tmp_path / "ensemble.jaxexport"
  export.export_separator("ensemble", path, config=config, platforms=["cpu"])
  meta = json.loads(pathlib.Path(f"{path}.json").read_text())
  assert (meta["method"], meta["chunk_samples"], meta["config"]["members"]) == ("ensemble", N // 2, ["a", "b"])
  song = np.concatenate([mixtures[0], mixtures[1]], axis=-1)
  got = exported.load(path).separate(song)
  want = separate.separate_array(separators.get("ensemble", config), song, sample_rate=44100)
  for target in TARGETS:
    np.testing.assert_allclose(got[target], want[target], atol=1e-5)
  np.testing.assert_allclose(want["vocals"], song / 4, atol=1e-5)


def test_evaluate_config_holds_the_example_ensemble():
  import configs.ensemble, configs.evaluate  # pylint: disable=import-outside-toplevel,multiple-imports
  from mssjax.evaluation import loop as evaluate_lib  # pylint: disable=import-outside-toplevel
  config = configs.evaluate.get_config()
  assert config.separators.ensemble.to_dict() == configs.ensemble.get_config().to_dict()
  config.methods = "ensemble"
  config.separators.ensemble.members = ("hpss_repet",)
  evaluate_lib.check_config(config)
  built = evaluate_lib.load_separators(config)["ensemble"]
  assert built.targets == TARGETS and built.chunk_seconds == 30.0
