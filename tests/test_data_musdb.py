"""Tests for mssjax.data.musdb: layouts, lazy tracks, the train / valid split, bad datasets."""

import os
import pathlib
import pickle

import numpy as np
import pytest

from _musdb_synth import RATE, make_stems, write_track
from mssjax import TARGETS
from mssjax import audio
from mssjax.data import musdb
from mssjax.data import load_tracks, detect_layout
from mssjax.errors import AudioError, DataError, ParameterError

N = RATE // 4


@pytest.fixture(scope="module")
def hq_root(tmp_path_factory):
  """train: one validation track and one training track; test: one track."""
  root = tmp_path_factory.mktemp("hq")
  write_track(root, "train", "ANiMAL - Rockshow", make_stems(N, seed=1))
  write_track(root, "train", "Some - Training Song", make_stems(N, seed=2))
  write_track(root, "test", "Some - Test Song", make_stems(N, seed=3))
  (root / "train" / ".hidden.partial").mkdir()  # half-written folders of prepare are ignored
  (root / "test" / "notes.txt").write_text("not a track")
  return root


def _link_stems(root, pairs, musdb_root):
  """Builds a MUSDB18 folder of symbolic links to real stem files: pairs of (subset, name)."""
  for subset, name in pairs:
    (root / subset).mkdir(parents=True, exist_ok=True)
    os.symlink(musdb_root / subset / f"{name}.stem.mp4", root / subset / f"{name}.stem.mp4")
  return root


# --- MUSDB18-HQ (synthetic) ------------------------------------------------------------------------


def test_detects_the_hq_layout(hq_root):
  assert detect_layout(hq_root) == "musdb18hq"


@pytest.mark.parametrize("subset,split,names", [
    ("test", None, ["Some - Test Song"]),
    ("train", None, ["ANiMAL - Rockshow", "Some - Training Song"]),
    ("train", "train", ["Some - Training Song"]),
    ("train", "valid", ["ANiMAL - Rockshow"]),
    (None, None, ["ANiMAL - Rockshow", "Some - Training Song", "Some - Test Song"]),
    (["test", "train"], None, ["Some - Test Song", "ANiMAL - Rockshow", "Some - Training Song"]),
])
def test_subsets_and_splits(hq_root, subset, split, names):
  tracks = load_tracks(hq_root, subset=subset, split=split)
  assert [t.name for t in tracks] == names
  assert all(t.layout == "musdb18hq" for t in tracks)


def test_track_reads_stems_in_targets_order(hq_root):
  track, = load_tracks(hq_root, subset="test")
  expected = make_stems(N, seed=3)
  assert (track.subset, track.sample_rate, track.n_samples) == ("test", RATE, N)
  assert track.duration == pytest.approx(N / RATE)
  assert track.path == hq_root / "test" / "Some - Test Song"
  targets = track.targets()
  assert targets.shape == (4, 2, N) and targets.dtype == np.float32
  for index, name in enumerate(TARGETS):
    np.testing.assert_array_equal(targets[index], expected[name])
    np.testing.assert_array_equal(track.stem(name), expected[name])
  np.testing.assert_array_equal(track.mixture(), expected["mixture"])
  assert set(track.stems()) == set(musdb.STEM_NAMES)


def test_tracks_are_lazy_and_cache_only_when_asked(hq_root, monkeypatch):
  reads = []
  original = audio.read
  monkeypatch.setattr(audio, "read", lambda path, **kw: reads.append(path) or original(path, **kw))
  tracks = load_tracks(hq_root, subset=None)
  assert reads == []
  track = tracks[0]
  track.stem("vocals"), track.stem("vocals")
  assert len(reads) == 2
  cached, = load_tracks(hq_root, subset="test", cache=True)
  first = cached.stem("bass")
  assert cached.stem("bass") is first and len(reads) == 3
  cached.targets()
  assert len(reads) == 6  # the three other targets only
  cached.clear_cache()
  cached.stem("bass")
  assert len(reads) == 7


def test_tracks_pickle_for_worker_processes(hq_root):
  track, = load_tracks(hq_root, subset="test")
  track.header()
  copy = pickle.loads(pickle.dumps(track))
  assert (copy.name, copy.subset, copy.path, copy.n_samples) == (track.name, track.subset, track.path, N)
  np.testing.assert_array_equal(copy.targets(), track.targets())


# --- bad datasets ----------------------------------------------------------------------------------


def test_missing_or_empty_folders(tmp_path):
  with pytest.raises(DataError, match="no such folder"):
    load_tracks(tmp_path / "nowhere")
  with pytest.raises(DataError, match="has no train/ or test/ folder"):
    load_tracks(tmp_path)
  (tmp_path / "test").mkdir()
  (tmp_path / "train").mkdir()
  with pytest.raises(DataError, match="no tracks"):
    load_tracks(tmp_path)


def test_empty_subset(tmp_path):
  write_track(tmp_path, "train", "A - B", make_stems(100))
  (tmp_path / "test").mkdir()
  with pytest.raises(DataError, match=r"test: no musdb18hq tracks"):
    load_tracks(tmp_path, subset="test")
  assert len(load_tracks(tmp_path, subset="train")) == 1


def test_missing_stem_file(tmp_path):
  write_track(tmp_path, "test", "A - B", make_stems(100), skip=("bass", "other"))
  with pytest.raises(DataError, match=r"A - B: missing stem file\(s\) bass.wav, other.wav"):
    load_tracks(tmp_path)


def test_empty_track_folder(tmp_path):
  write_track(tmp_path, "test", "A - B", make_stems(100))
  (tmp_path / "test" / "C - D").mkdir()
  with pytest.raises(DataError, match=r"C - D: missing stem file\(s\) mixture.wav, drums.wav"):
    load_tracks(tmp_path)


def test_duplicate_track_names(tmp_path):
  write_track(tmp_path, "train", "A - B", make_stems(100))
  write_track(tmp_path, "test", "a - b", make_stems(100))
  with pytest.raises(DataError, match="duplicate track names: test/a - b and train/A - B"):
    load_tracks(tmp_path, subset="test")


def test_mixed_layouts(tmp_path):
  write_track(tmp_path, "train", "A - B", make_stems(100))
  (tmp_path / "test").mkdir()
  (tmp_path / "test" / "C - D.stem.mp4").write_bytes(b"x")
  with pytest.raises(DataError, match="holds both .stem.mp4 files and track folders"):
    load_tracks(tmp_path)
  assert [t.name for t in load_tracks(tmp_path, subset="train", layout="musdb18hq")] == ["A - B"]


def test_unequal_stem_lengths(tmp_path):
  stems = make_stems(1000)
  stems["vocals"] = stems["vocals"][:, :900]
  write_track(tmp_path, "test", "A - B", stems)
  track, = load_tracks(tmp_path)
  with pytest.raises(DataError, match=r"A - B: stems differ in length \(.*vocals 900.*mixture 1000"):
    track.targets()
  with pytest.raises(DataError, match="stems differ in length"):
    track.stem("vocals")


def test_wrong_sample_rate(tmp_path):
  write_track(tmp_path, "test", "A - B", make_stems(1000), rate=48000)
  track, = load_tracks(tmp_path)
  assert track.sample_rate == 48000
  with pytest.raises(DataError, match=r"mixture.wav: sample rate 48000 Hz, expected 44100 Hz"):
    track.mixture()
  assert load_tracks(tmp_path, sample_rate=48000)[0].mixture().shape == (2, 1000)


def test_corrupt_stem_file(tmp_path):
  folder = write_track(tmp_path, "test", "A - B", make_stems(1000))
  (folder / "drums.wav").write_bytes(b"")
  track, = load_tracks(tmp_path)
  with pytest.raises(AudioError, match="drums.wav: file is empty"):
    track.targets()


@pytest.mark.parametrize("kwargs,message", [
    ({"subset": "valid"}, "subset='valid'"),
    ({"subset": "train", "split": "test"}, "split='test'"),
    ({"subset": "test", "split": "valid"}, "applies to subset='train' only"),
    ({"layout": "wav"}, "layout='wav'"),
])
def test_bad_parameters(hq_root, kwargs, message):
  with pytest.raises(ParameterError, match=message):
    load_tracks(hq_root, **kwargs)


def test_bad_stem_name(hq_root):
  with pytest.raises(ParameterError, match="stem='voice'"):
    load_tracks(hq_root)[0].stem("voice")


# --- MUSDB18 (real previews) -----------------------------------------------------------------------


def test_validation_tracks_are_musdbs():
  yaml = pytest.importorskip("yaml")
  reference = pytest.importorskip("musdb")
  config = yaml.safe_load((pathlib.Path(reference.__file__).parent / "configs" / "mus.yaml").read_text())
  assert sorted(musdb.VALIDATION_TRACKS) == sorted(config["validation_tracks"])


@pytest.mark.realdata
def test_real_subsets_and_split(musdb_root):
  assert detect_layout(musdb_root) == "musdb18"
  assert len(load_tracks(musdb_root)) == 40
  train = load_tracks(musdb_root, subset="train")
  assert len(train) == 94
  valid = [t.name for t in load_tracks(musdb_root, subset="train", split="valid")]
  assert sorted(valid) == sorted(musdb.VALIDATION_TRACKS)
  rest = [t.name for t in load_tracks(musdb_root, subset="train", split="train")]
  assert sorted(rest + valid) == sorted(t.name for t in train) and len(rest) == 80


@pytest.mark.realdata
def test_real_track(musdb_root):
  """The default decoding is the musdb package's: 16-bit values, ffmpeg's length (end padding kept)."""
  track = next(t for t in load_tracks(musdb_root) if t.name == "PR - Happy Daze")
  assert (track.sample_rate, track.n_samples, track.layout, track.decoding) == (RATE, 300032, "musdb18", "musdb")
  stems = track.stems()
  targets = track.targets()
  assert targets.shape == (4, 2, 300032) and targets.dtype == np.float32
  for index, name in enumerate(TARGETS):
    np.testing.assert_array_equal(targets[index], stems[name])
  field = audio.load_stems(track.path, pcm16=True, keep_padding=True)
  np.testing.assert_array_equal(track.mixture(), field[0])
  np.testing.assert_array_equal(track.stem("vocals"), field[4])
  np.testing.assert_array_equal(audio.quantize_pcm16(targets), targets)


@pytest.mark.realdata
def test_real_track_float_decoding(musdb_root):
  track = next(t for t in load_tracks(musdb_root, decoding="float") if t.name == "PR - Happy Daze")
  assert (track.n_samples, track.decoding) == (299880, "float")
  assert track.targets().shape == (4, 2, 299880)
  np.testing.assert_array_equal(track.mixture(), audio.load_stems(track.path)[0])
  with pytest.raises(ParameterError, match="decoding='f32' is not known"):
    load_tracks(musdb_root, decoding="f32")


@pytest.mark.realdata
def test_real_duplicates_between_subsets(musdb_root, tmp_path):
  _link_stems(tmp_path, [("test", "PR - Oh No"), ("train", "The Districts - Vermont")], musdb_root)
  assert [t.name for t in load_tracks(tmp_path, subset=None)] == ["The Districts - Vermont", "PR - Oh No"]
  os.symlink(musdb_root / "test" / "PR - Oh No.stem.mp4", tmp_path / "train" / "PR - Oh No.stem.mp4")
  with pytest.raises(DataError, match="duplicate track names: test/PR - Oh No.stem.mp4 and train/PR - Oh No"):
    load_tracks(tmp_path)
