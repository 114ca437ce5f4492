"""Tests for mssjax.data.generate: deterministic generated songs in the MUSDB18-HQ layout."""

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from mssjax import TARGETS
from mssjax.data import generate
from mssjax.errors import ParameterError

SR = 44100


@pytest.fixture(scope="module")
def song():
  return generate.generate_song(seed=7, seconds=4.0)


def test_shapes_dtype_and_peak(song):
  assert set(song) == set(TARGETS) | {"mixture"}
  for audio in song.values():
    assert audio.shape == (2, 4 * SR) and audio.dtype == np.float32
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 0.9
  assert np.abs(song["mixture"]).max() == pytest.approx(0.9, abs=3e-4)


def test_mixture_is_exact_sum_of_stems(song):
  total = song["vocals"] + song["drums"] + song["bass"] + song["other"]
  np.testing.assert_array_equal(song["mixture"], total)


def test_stems_on_16_bit_grid(song):
  for audio in song.values():
    scaled = audio.astype(np.float64) * 32768
    np.testing.assert_array_equal(scaled, np.round(scaled))


def test_deterministic_for_a_seed(song):
  again = generate.generate_song(seed=7, seconds=4.0)
  other = generate.generate_song(seed=8, seconds=4.0)
  for name in song:
    np.testing.assert_array_equal(song[name], again[name])
  assert not np.array_equal(song["vocals"], other["vocals"])


def _band_fraction(x, low, high):
  freqs, power = scipy.signal.welch(x.mean(axis=0), fs=SR, nperseg=4096)
  return power[(freqs >= low) & (freqs < high)].sum() / power.sum()


@pytest.mark.parametrize("seed", range(6))
def test_bass_stays_below_200_hz(seed):
  bass = generate.generate_song(seed=seed, seconds=2.0)["bass"]
  assert _band_fraction(bass, 0, 200) > 0.99


def test_stems_live_in_their_bands(song):
  assert _band_fraction(song["bass"], 0, 200) > 0.99
  assert _band_fraction(song["vocals"], 250, 5000) > 0.8
  assert _band_fraction(song["other"], 150, 2500) > 0.9
  assert _band_fraction(song["drums"], 3000, 20000) > 0.05  # hats and snare noise


def test_stereo_panning_and_activity(song):
  for name in TARGETS:
    assert np.sqrt(np.mean(song[name] ** 2)) > 0.01
  assert not np.array_equal(song["drums"][0], song["drums"][1])
  # Vocals have rests: some 100 ms frames are silent, most are not.
  frames = np.abs(song["vocals"][0, : 40 * 4410].reshape(40, 4410)).max(axis=1)
  assert 0.3 < np.mean(frames > 1e-3) <= 1.0


def _pitch_moves(audio):
  """Fraction of voiced 10 ms frame pairs whose spectral peak (2.7 Hz bins) moves."""
  frames = np.lib.stride_tricks.sliding_window_view(audio, 4096)[::441]
  spectrum = np.abs(np.fft.rfft(frames * np.hanning(4096), n=16384, axis=-1))[:, :1500]
  peak = np.argmax(spectrum, axis=-1)
  voiced = spectrum.max(axis=-1) > 0.1 * spectrum.max()
  pairs = voiced[1:] & voiced[:-1]
  return np.mean(peak[1:][pairs] != peak[:-1][pairs])


def test_vocals_vibrato(monkeypatch):
  """The voice's pitch moves within notes (5-6 Hz vibrato); without vibrato it would not."""
  with_vibrato = _pitch_moves(generate.generate_song(seed=3, seconds=6.0)["vocals"][0])
  monkeypatch.setattr(generate, "_VIBRATO_DEPTH", (0.0, 0.0))
  without = _pitch_moves(generate.generate_song(seed=3, seconds=6.0)["vocals"][0])
  assert with_vibrato > 0.4 and without < 0.2


@pytest.mark.parametrize("kwargs", [dict(seed=-1, seconds=1.0), dict(seed=0, seconds=0.0),
                                    dict(seed=0, seconds=1.0, sample_rate=0), dict(seed=1.5, seconds=1.0)])
def test_bad_parameters(kwargs):
  with pytest.raises(ParameterError):
    generate.generate_song(**kwargs)


def test_write_songs_layout_exact_and_skips(tmp_path):
  folders = generate.write_songs(tmp_path, n_train=2, n_test=1, seconds=1.0, seed=3)
  assert [f.relative_to(tmp_path).parts[0] for f in folders] == ["train", "train", "test"]
  assert len({f.name for f in folders}) == 3
  for folder in folders:
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{s}.wav" for s in generate.STEM_FILES)
  info = sf.info(folders[0] / "vocals.wav")
  assert (info.samplerate, info.channels, info.frames, info.subtype) == (SR, 2, SR, "PCM_16")
  stems = {s: sf.read(folders[0] / f"{s}.wav", dtype="float32")[0].T for s in generate.STEM_FILES}
  np.testing.assert_array_equal(stems["mixture"],
                                stems["vocals"] + stems["drums"] + stems["bass"] + stems["other"])
  # The file holds exactly the generated array.
  again = generate.generate_song(seed=generate._song_seed(3, "train", 0), seconds=1.0)
  np.testing.assert_array_equal(stems["vocals"], again["vocals"])
  # Re-running skips existing files (mtime unchanged) and rewrites a missing one.
  mtime = (folders[0] / "bass.wav").stat().st_mtime_ns
  (folders[1] / "other.wav").unlink()
  generate.write_songs(tmp_path, n_train=2, n_test=1, seconds=1.0, seed=3)
  assert (folders[0] / "bass.wav").stat().st_mtime_ns == mtime
  assert (folders[1] / "other.wav").is_file()
  assert not list(tmp_path.rglob(".*"))  # no temporary files left


def test_write_songs_bad_counts(tmp_path):
  with pytest.raises(ParameterError):
    generate.write_songs(tmp_path, n_train=-1, n_test=0, seconds=1.0)


def test_generate_command(tmp_path, capsys):
  from mssjax.data.__main__ import main  # pylint: disable=import-outside-toplevel
  status = main(["generate", "--out", str(tmp_path), "--n-train", "1", "--n-test", "1", "--seconds", "0.5"])
  assert status == 0 and "2 generated songs" in capsys.readouterr().out
  assert sorted(p.parent.parent.name for p in tmp_path.glob("*/*/mixture.wav")) == ["test", "train"]
