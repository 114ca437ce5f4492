"""Tests for any stems in any layout: mssjax.data.layouts, splits, sources, and the pipeline, loaders,
validate, prepare and generate on 2-stem and 6-stem generated sets."""

import json

import ml_collections
import numpy as np
import pytest
import soundfile as sf

from mssjax import TARGETS
from mssjax.data import generate, layouts, loaders, pipeline, splits
from mssjax.data import prepare as prep
from mssjax.data import validate as validation
from mssjax.data.__main__ import main
from mssjax.errors import DataError, ParameterError

TWO = ("guitar", "speech")
SIX = ("guitar", "piano", "speech", "drums", "bass", "synth")
SECONDS, CHUNK = 1.0, 2048
# The seeds below give songs where every stem plays: the vocal voice (speech) rests through some short songs.
OFF = dict(gain=False, channel_swap=False, remix=False, batch_remix=False)


def _write(root, stems, layout, **kwargs):
  kwargs = dict(dict(n_train=4, n_test=1, seconds=SECONDS, seed=1), **kwargs)
  generate.write_songs(root, stems=stems, layout=layout, **kwargs)
  return root


@pytest.fixture(scope="module")
def two(tmp_path_factory):
  return _write(tmp_path_factory.mktemp("two"), TWO, "trackfolder", seed=2)


@pytest.fixture(scope="module")
def six(tmp_path_factory):
  return _write(tmp_path_factory.mktemp("six"), SIX, "trackfolder", seed=3, mixture=False, audio_format="flac")


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
  return _write(tmp_path_factory.mktemp("pool"), TWO, "sourcefolder", seed=2, n_train=5)


@pytest.fixture(scope="module")
def hq(tmp_path_factory):
  return _write(tmp_path_factory.mktemp("hq"), TARGETS, "musdb18hq", n_train=2)  # seed 1


def _data(root, **fields):
  config = pipeline.default_config()
  config.root, config.batch_size, config.chunk_seconds, config.sample_rate = str(root), 3, CHUNK / 44100, 44100
  config.shard_by_process = False
  config.augment.update(fields.pop("augment", {}))
  config.update(fields)
  return config


def _experiment(data, targets):
  config = ml_collections.ConfigDict()
  config.seed, config.sample_rate, config.targets, config.data = 0, 44100, targets, data
  return config


# --- layouts ----------------------------------------------------------------------------------------


def test_each_layout_is_detected(two, six, pool, hq, tmp_path):
  assert layouts.detect_layout(hq) == "musdb18hq"
  assert layouts.detect_layout(two) == layouts.detect_layout(two, targets=TWO) == "trackfolder"
  assert layouts.detect_layout(six, targets=("piano",)) == "trackfolder"
  assert layouts.detect_layout(pool) == layouts.detect_layout(pool, targets=TWO) == "sourcefolder"
  (tmp_path / "test").mkdir()
  (tmp_path / "test" / "A - B.stem.mp4").write_bytes(b"x")
  assert layouts.detect_layout(tmp_path) == "musdb18"


def test_layouts_without_subset_folders_are_one_train_subset(tmp_path):
  generate.write_songs(tmp_path, n_train=2, n_test=0, seconds=0.1, stems=TWO, layout="trackfolder")
  flat = tmp_path / "flat"
  (tmp_path / "train").rename(flat)
  dataset = layouts.scan(flat)
  assert dataset.layout == "trackfolder" and dataset.subsets == ("train",) and len(dataset.items) == 2
  assert dataset.stem_names() == tuple(sorted(TWO))


def test_ambiguous_and_empty_folders_ask_for_the_layout(tmp_path):
  folder = tmp_path / "train" / "guitar"  # a track named guitar, or the guitar stem folder?
  folder.mkdir(parents=True)
  sf.write(folder / "take.wav", np.zeros((100, 2)), 44100)
  with pytest.raises(DataError, match=r"fits several layouts \(trackfolder, sourcefolder\); set data.layout"):
    layouts.detect_layout(tmp_path)
  assert layouts.detect_layout(tmp_path, targets=("guitar",)) == "sourcefolder"
  assert layouts.detect_layout(tmp_path, targets=("take",)) == "trackfolder"
  with pytest.raises(DataError, match="no folder holds files named after the targets"):
    layouts.detect_layout(tmp_path, targets=("piano",))
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match="empty: no tracks"):
    layouts.detect_layout(tmp_path / "empty")
  with pytest.raises(DataError, match="nowhere: no such folder"):
    layouts.detect_layout(tmp_path / "nowhere")


@pytest.mark.parametrize("targets, message", [
    ("vocals", "must be a sequence of target names"), ((), "at least one"), (("a", "a"), "names a target twice"),
    (("mixture",), "must not hold 'mixture'"), (("",), "not a usable target name"),
])
def test_bad_targets(targets, message):
  with pytest.raises(ParameterError, match=message):
    layouts.check_targets(targets)


# --- the training pipeline --------------------------------------------------------------------------


@pytest.mark.parametrize("fixture, targets", [("two", TWO), ("six", SIX), ("pool", TWO)])
def test_train_loader_shapes_and_mixture_is_the_sum(fixture, targets, request):
  root = request.getfixturevalue(fixture)
  loader = pipeline.make_train_loader(_experiment(_data(root), targets), seed=0)
  batches = [batch for batch, _ in zip(loader, range(3))]
  for batch in batches:
    assert list(batch) == ["mixture", "targets"]
    assert batch["mixture"].shape == (3, 2, CHUNK) and batch["targets"].shape == (3, len(targets), 2, CHUNK)
    np.testing.assert_allclose(batch["mixture"], batch["targets"].sum(axis=1), atol=1e-6)
  stems = np.concatenate([b["targets"] for b in batches])
  assert np.all(np.abs(stems).max(axis=(0, -2, -1)) > 0)  # every stem plays somewhere


def test_targets_follow_the_config_order_and_other_stems_join_the_mixture(six):
  targets = ("speech", "guitar")
  source = pipeline.make_source(_data(six), targets=targets)
  assert source.stem_names == targets + ("bass", "drums", "piano", "synth")
  song = generate.generate_song(seed=generate._song_seed(3, "train", 0), seconds=SECONDS, stems=SIX)
  track = source.track(0)
  np.testing.assert_array_equal(track["targets"], np.stack([song[t] for t in targets]))
  np.testing.assert_array_equal(track["mixture"], sum(song[t] for t in SIX))
  batch = next(iter(pipeline.make_train_loader(_data(six, augment=OFF), seed=0, targets=targets)))
  rest = batch["mixture"] - batch["targets"].sum(axis=1)
  assert batch["targets"].shape[1] == 2 and np.abs(rest).max() > 0.01  # bass, drums, piano, synth


def test_batch_remix_keeps_the_other_stems_in_the_mixture(six):
  data = _data(six, augment=dict(OFF, batch_remix=True))
  batch = next(iter(pipeline.make_train_loader(data, seed=0, targets=("piano",))))
  assert list(batch) == ["mixture", "targets"] and batch["targets"].shape == (3, 1, 2, CHUNK)
  assert np.abs(batch["mixture"] - batch["targets"][:, 0]).max() > 0.01


def test_a_missing_stem_is_silence_with_a_warning(tmp_path):
  root = _write(tmp_path, SIX, "trackfolder", n_train=3, n_test=0)
  folder = root / "train" / generate.song_name("train", 1)
  (folder / "piano.wav").unlink()
  with pytest.warns(pipeline.MissingStemWarning, match=r"Song 001: no file for target 'piano'"):
    source = pipeline.make_source(_data(root, split=""), targets=SIX)
  track = source.track(1)
  np.testing.assert_array_equal(track["targets"][SIX.index("piano")], 0.0)
  assert np.abs(track["targets"][SIX.index("guitar")]).max() > 0
  (folder / "mixture.wav").unlink()
  with pytest.warns(pipeline.MissingStemWarning):
    source = pipeline.make_source(_data(root, split=""), targets=SIX)
  np.testing.assert_array_equal(source.track(1)["mixture"], source.track(1)["targets"].sum(0))


def test_tracks_of_different_lengths(tmp_path):
  root = _write(tmp_path, TWO, "trackfolder", n_train=2, n_test=0, seconds=0.2)
  _write(tmp_path, TWO, "trackfolder", n_train=3, n_test=0, seconds=0.05)  # song 2 only: 0.05 s
  source = pipeline.make_source(_data(root, split=""), targets=TWO)
  assert source.lengths == [8820, 8820, 2205]
  assert source.track(2)["targets"].shape == (2, 2, 2205)
  chunk = source.chunk(2, length=4000, rng=np.random.default_rng(0))
  assert chunk.shape == (2, 2, 4000) and not chunk[..., 2205:].any()


def test_sourcefolder_validation_mixtures_are_seeded_and_cropped(pool, tmp_path):
  tracks = pipeline.make_eval_source(_data(pool, eval_subset="train", eval_split=""), targets=TWO)
  again = pipeline.make_eval_source(_data(pool, eval_subset="train", eval_split=""), targets=TWO)
  assert len(tracks) == 5 and tracks[0]["name"] == "mixture 000"
  for a, b in zip(tracks, again):
    np.testing.assert_array_equal(a["targets"], b["targets"])
    np.testing.assert_array_equal(a["mixture"], a["targets"].sum(0))
  files = [tracks.source.files_of(i) for i in range(5)]
  assert sorted(f[0] for f in files) == sorted(tracks.source.pools[0])  # every guitar file once
  other_seed = pipeline.make_eval_source(_data(pool, eval_subset="train", eval_split="", valid_seed=3), targets=TWO)
  assert [other_seed.source.files_of(i) for i in range(5)] != files
  # Files of different lengths: the mixture is cut to the shortest.
  short = _write(tmp_path, TWO, "sourcefolder", n_train=1, n_test=0, seconds=0.1)
  sf.write(short / "train" / "speech" / "long.wav", np.zeros((44100, 2), np.int16), 44100, subtype="PCM_16")
  source = pipeline.SourceFolderSource(short, targets=TWO, split=None)
  assert {source.track(i)["targets"].shape[-1] for i in range(len(source))} == {4410}


# --- validation splits ------------------------------------------------------------------------------


def _names(config, targets):
  return [t["name"] for t in pipeline.make_eval_source(config, targets=targets)]


def test_validation_from_a_valid_folder(tmp_path):
  root = _write(tmp_path, TWO, "trackfolder", n_valid=2)
  assert _names(_data(root), TWO) == [generate.song_name("valid", i) for i in range(2)]
  assert len(pipeline.make_source(_data(root), targets=TWO)) == 4  # split "train": the whole train/ folder


def test_validation_from_a_list_file(two, tmp_path):
  names = [generate.song_name("train", 3), generate.song_name("train", 1)]
  listed = tmp_path / "valid.txt"
  listed.write_text(f"# held out\n{names[0]}\n\n{names[1]}\n")
  config = _data(two, valid_list=str(listed))
  assert _names(config, TWO) == sorted(names)
  assert pipeline.make_source(config, targets=TWO).names == [generate.song_name("train", i) for i in (0, 2)]
  listed.write_text("Nobody - Nothing\n")
  with pytest.raises(DataError, match=rf"{listed}: names no track .*: Nobody - Nothing"):
    pipeline.make_eval_source(config, targets=TWO)
  with pytest.raises(ParameterError, match="data.valid_list must name a file"):
    pipeline.make_eval_source(_data(two, valid_method="list"), targets=TWO)


def test_validation_from_a_seeded_fraction(tmp_path):
  root = _write(tmp_path, TWO, "trackfolder", n_train=10, n_test=0, seconds=0.05)
  config = _data(root, valid_fraction=0.3)
  chosen = _names(config, TWO)
  assert len(chosen) == 3 and chosen == _names(config, TWO)
  assert set(chosen).isdisjoint(pipeline.make_source(config, targets=TWO).names)
  assert _names(_data(root, valid_fraction=0.3, valid_seed=1), TWO) != chosen
  with pytest.raises(ParameterError, match=r"data.valid_fraction=1.0 must be < 1"):
    pipeline.make_eval_source(_data(root, valid_fraction=1.0), targets=TWO)
  with pytest.raises(DataError, match="no tracks in split 'valid'"):
    pipeline.make_eval_source(_data(root, valid_method="musdb"), targets=TWO)


def test_a_fraction_of_a_sourcefolder_is_taken_per_stem(pool):
  dataset = layouts.scan(pool)
  valid = splits.select(dataset, subset="train", split="valid", valid=splits.ValidSplit(fraction=0.2))
  assert sorted(i.files[0][0] for i in valid) == sorted(TWO)  # one file of each stem
  train = splits.select(dataset, subset="train", split="train", valid=splits.ValidSplit(fraction=0.2))
  assert len(train) == 8 and not {i.name for i in train} & {i.name for i in valid}


def test_a_fraction_that_leaves_nothing_to_train_on(tmp_path):
  root = _write(tmp_path, TWO, "trackfolder", n_train=1, n_test=0, seconds=0.05)
  with pytest.raises(DataError, match="leaves none to train on"):
    pipeline.make_source(_data(root), targets=TWO)


# --- config, targets and loaders --------------------------------------------------------------------


def test_config_fields_are_locked_and_checked(two):
  with pytest.raises(ParameterError, match="unknown key 'valid_fracton'"):
    pipeline.make_source({"root": str(two), "valid_fracton": 0.2}, targets=TWO)
  with pytest.raises(ParameterError, match=r"data.layout='folders' is not known; valid choices: \['auto'"):
    pipeline.make_source(_data(two, layout="folders"), targets=TWO)
  with pytest.raises(ParameterError, match="data.valid_method='random' is not known"):
    pipeline.make_source(_data(two, valid_method="random"), targets=TWO)
  with pytest.raises(DataError, match=r"no files for target\(s\) guitar, speech .*\(stem folders: Generated - Train"):
    pipeline.make_source(_data(two, layout="sourcefolder"), targets=TWO)  # track folders taken for stem folders
  with pytest.raises(DataError, match=r"no track of subset 'train' has a file for target\(s\) vocals"):
    pipeline.make_source(_data(two, layout="trackfolder"), targets=("vocals", "guitar"))


def test_targets_come_from_the_experiment_config(two):
  experiment = _experiment(_data(two), TWO)
  assert pipeline.targets_of(experiment) == TWO
  assert pipeline.targets_of(_data(two)) == TARGETS
  with pytest.raises(ParameterError, match="differs from config.targets"):
    pipeline.make_train_loader(experiment, seed=0, targets=("speech", "guitar"))
  source = pipeline.ArraySource([np.zeros((4, 2, 100))])
  with pytest.raises(ParameterError, match=r"the source serves targets \('vocals'"):
    pipeline.make_train_loader(experiment, seed=0, source=source)
  arrays = pipeline.ArraySource([np.ones((2, 2, 5000), np.float32)], target_names=TWO)
  batch = next(iter(pipeline.make_train_loader(experiment, seed=0, source=arrays)))
  assert batch["targets"].shape == (3, 2, 2, CHUNK)


def _loader_config(data, targets):
  config = _experiment(data, targets)
  config.eval = ml_collections.ConfigDict(dict(seconds=0.25, max_tracks=1))
  return config


@pytest.mark.parametrize("targets", [TWO, SIX])
def test_synthetic_loader_and_validation_tracks_follow_the_targets(targets):
  data = ml_collections.ConfigDict(dict(name="synthetic", chunk_seconds=0.1, batch_size=2))
  config = _loader_config(data, targets)
  batch = next(loaders.make_train_iterator(config))
  assert batch["targets"].shape == (2, len(targets), 2, 4410)
  np.testing.assert_array_equal(batch["mixture"], batch["targets"].sum(1))
  (track,) = loaders.validation_tracks(config)
  assert track.targets.shape == (len(targets), 2, 11025)


def test_files_loader_and_validation_tracks_follow_the_targets(six):
  data = _data(six, name="musdb", chunk_seconds=0.05, batch_size=2)
  config = _loader_config(data, ("piano", "speech"))
  assert next(loaders.make_train_iterator(config))["targets"].shape == (2, 2, 2, 2205)
  (track,) = loaders.validation_tracks(config)  # a seeded tenth of 4 training songs: one
  assert track.targets.shape == (2, 2, int(SECONDS * 44100))


# --- errors name the file ---------------------------------------------------------------------------


def test_bad_files_are_named(tmp_path):
  root = _write(tmp_path, TWO, "trackfolder", n_train=2, n_test=0, seconds=0.05)
  folder = root / "train" / generate.song_name("train", 0)
  sf.write(folder / "guitar.flac", np.zeros((100, 2), np.int16), 44100)
  with pytest.raises(DataError, match=r"Song 000: several files for stem 'guitar' \(guitar.flac, guitar.wav\)"):
    pipeline.make_source(_data(root, split=""), targets=TWO)
  (folder / "guitar.flac").unlink()
  sf.write(folder / "speech.wav", np.zeros((2205, 2), np.int16), 22050)
  with pytest.raises(DataError, match=r"Song 000/speech.wav: sample rate 22050 Hz, expected 44100 Hz"):
    pipeline.make_source(_data(root, split=""), targets=TWO)
  sf.write(folder / "speech.wav", np.zeros((100, 2), np.int16), 44100)
  with pytest.raises(DataError, match=r"Song 000: stems differ in length \(guitar 2205, speech 100"):
    pipeline.make_source(_data(root, split=""), targets=TWO)


# --- validate, prepare, generate on every layout ----------------------------------------------------


def test_validate_every_layout(two, six, pool, hq):
  for root, count in ((two, 5), (hq, 3)):
    results = validation.validate(root)
    assert len(results) == count and all(r["ok"] and not r["warnings"] for r in results), results
    assert all(r["residual_db"][0] < -60 for r in results)
  six_results = validation.validate(six)
  assert all(r["ok"] for r in six_results)
  assert all(r["warnings"] == ["no mixture file: the mixture is the sum of the stems"] for r in six_results)
  assert set(six_results[0]["rates"]) == set(SIX) and set(six_results[0]["lengths"].values()) == {44100}
  pool_results = validation.validate(pool, subset="train")
  assert len(pool_results) == 10 and all(r["ok"] for r in pool_results)
  assert pool_results[0]["track"] == f"guitar/{generate.song_name('train', 0)} - guitar.wav"


def test_validate_reports_missing_stems_rates_and_lengths(tmp_path):
  root = _write(tmp_path, TWO, "trackfolder", n_train=3, n_test=0, seed=2)
  (root / "train" / generate.song_name("train", 0) / "speech.wav").unlink()
  sf.write(root / "train" / generate.song_name("train", 1) / "guitar.wav", np.zeros((50, 2), np.int16), 48000)
  results = {r["track"]: r for r in validation.validate(root)}
  missing = results[generate.song_name("train", 0)]
  assert missing["missing"] == ["speech"] and missing["warnings"] == ["missing stem(s) speech: read as silence"]
  bad = results[generate.song_name("train", 1)]
  assert not bad["ok"] and bad["rates"]["guitar"] == 48000 and bad["lengths"]["guitar"] == 50
  assert any("sample rate 48000 Hz" in p for p in bad["problems"])
  assert any("stems differ in length" in p for p in bad["problems"])
  assert results[generate.song_name("train", 2)]["ok"]


def test_prepare_trackfolder_and_sourcefolder(six, pool, tmp_path):
  summary = prep.prepare(six, tmp_path / "six", prep.Settings(segment=0.25), subset="train")
  assert [r["status"] for r in summary["tracks"]] == ["written"] * 4
  assert all(r["ok"] for r in summary["validation"]), summary["validation"]
  folder = tmp_path / "six" / "train" / generate.song_name("train", 0)
  assert sorted(p.name for p in folder.iterdir()) == sorted(f"{s}.wav" for s in SIX + ("mixture",))
  assert layouts.detect_layout(tmp_path / "six") == "trackfolder"
  summary = prep.prepare(pool, tmp_path / "pool", prep.Settings(segment=0), subset="train", targets=TWO)
  assert [r["track"] for r in summary["tracks"]] == [f"mixture {i:03d}" for i in range(5)]
  # Files normalised one by one can sum past full scale: prepare counts it, validate flags it.
  for record, result in zip(summary["tracks"], summary["validation"]):
    assert all(p.startswith("mixture: clipping") for p in result["problems"]) and "speech" in result["rates"]
    assert bool(result["problems"]) == bool(record["mixture_clipped"])
  source = pipeline.make_source(_data(tmp_path / "pool", split=""), targets=TWO)
  expected = pipeline.SourceFolderSource(pool, targets=TWO).track(2)
  np.testing.assert_array_equal(source.track(2)["targets"], expected["targets"])


def test_prepare_fills_a_missing_stem_with_silence(tmp_path):
  root = _write(tmp_path / "in", TWO, "trackfolder", n_train=2, n_test=0, seconds=0.1)
  (root / "train" / generate.song_name("train", 1) / "guitar.wav").unlink()
  summary = prep.prepare(root, tmp_path / "out", prep.Settings(segment=0))
  assert summary["tracks"][1]["missing"] == ["guitar"] and summary["tracks"][1]["status"] == "written"
  written = tmp_path / "out" / "train" / generate.song_name("train", 1) / "guitar.wav"
  assert not sf.read(written)[0].any()


def test_generate_validate_prepare_commands(tmp_path, capsys):
  assert main(["generate", "--out", str(tmp_path / "g"), "--n-train", "2", "--n-test", "0", "--seconds", "1",
               "--stems", "guitar,piano,speech", "--layout", "sourcefolder"]) == 0
  assert "(sourcefolder, stems guitar, piano, speech)" in capsys.readouterr().out
  assert sorted(p.name for p in (tmp_path / "g" / "train").iterdir()) == ["guitar", "piano", "speech"]
  assert main(["validate", "--root", str(tmp_path / "g"), "--report", str(tmp_path / "r.json")]) == 0
  assert len(json.loads((tmp_path / "r.json").read_text())) == 6
  assert main(["prepare", "--root", str(tmp_path / "g"), "--out", str(tmp_path / "p"), "--segment", "0",
               "--targets", "guitar,speech"]) == 0
  assert sorted(p.name for p in (tmp_path / "p" / "train" / "mixture 000").iterdir()) == [
      "guitar.wav", "mixture.wav", "speech.wav"]
  capsys.readouterr()
  assert main(["generate", "--out", str(tmp_path / "h"), "--stems", "guitar", "--layout", "musdb18hq"]) == 2
  assert "layout='musdb18hq' holds MUSDB18's stems" in capsys.readouterr().err


def test_generated_custom_stems_are_deterministic_and_distinct():
  song = generate.generate_song(seed=3, seconds=0.5, stems=SIX)
  again = generate.generate_song(seed=3, seconds=0.5, stems=SIX)
  assert list(song) == list(SIX) + ["mixture"]
  for name in song:
    np.testing.assert_array_equal(song[name], again[name])
  total = song["guitar"]
  for name in SIX[1:]:
    total = total + song[name]
  np.testing.assert_array_equal(song["mixture"], total)
  assert not np.array_equal(song["guitar"], song["piano"])  # one voice, two performances
  assert generate.voices_of("speech") == ("vocals",) and generate.voices_of("accompaniment") == (
      "drums", "bass", "other")
  assert generate.voices_of("theremin") == generate.voices_of("theremin") and generate.voices_of("theremin")[0] in \
      generate.VOICES
