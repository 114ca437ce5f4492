"""Tests for mssjax.data.tfds_musdb: the array_record builder round trip, without TensorFlow."""

import importlib.util
import os
import sys

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from mssjax import TARGETS
from mssjax.data import generate, musdb, tfds_musdb
from mssjax.errors import DataError, ParameterError

SECONDS = 1.5


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  tfds.disable_progress_bar()
  path = tmp_path_factory.mktemp("generated")
  generate.write_songs(path, n_train=2, n_test=1, seconds=SECONDS, seed=11)
  return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds")


def _wav_track(root, subset, name):
  folder = root / subset / name
  stems = {s: sf.read(folder / f"{s}.wav", dtype="float32")[0].T for s in generate.STEM_FILES}
  return stems["mixture"], np.stack([stems[t] for t in TARGETS])


def _records(source):
  return [source[i] for i in range(len(source))]


def test_tensorflow_is_not_installed():
  assert importlib.util.find_spec("tensorflow") is None


@pytest.mark.parametrize("config", ["hq", "hq_float32"])
def test_round_trip_is_exact(root, data_dir, config):
  builder = tfds_musdb.build(root, data_dir, config=config)
  assert set(builder.info.splits) == {"train", "test"}  # generated songs: no MUSDB18 valid tracks
  for split, count in (("train", 2), ("test", 1)):
    records = _records(builder.as_data_source(split))
    assert len(records) == count
    names = sorted(r["name"].decode() for r in records)
    assert names == [generate.song_name(split, i) for i in range(count)]
    for record in records:
      assert record["subset"].decode() == split and record["start"] == 0
      mixture, targets = _wav_track(root, split, record["name"].decode())
      assert record["targets"].dtype == np.dtype("int16" if config == "hq" else "float32")
      np.testing.assert_array_equal(tfds_musdb.decode_audio(record["mixture"]), mixture)
      np.testing.assert_array_equal(tfds_musdb.decode_audio(record["targets"]), targets)
  assert "tensorflow" not in sys.modules
  # The uncompressed writer was only swapped in for the build.
  assert tfds.core.file_adapters.ArrayRecordFileAdapter.write_examples.__module__.startswith(
      "tensorflow_datasets")


def test_segments_cover_the_track(root, data_dir):
  config = tfds_musdb.Musdb18Config(name="hq_test_segments", segment_seconds=0.4)
  builder = tfds_musdb.build(root, data_dir, config=config)
  records = _records(builder.as_data_source("train"))
  assert len(records) == 2 * int(np.ceil(SECONDS / 0.4))
  for name in {r["name"].decode() for r in records}:
    parts = sorted((r for r in records if r["name"].decode() == name), key=lambda r: r["start"])
    assert [r["start"] for r in parts] == [int(round(0.4 * 44100)) * i for i in range(len(parts))]
    mixture, targets = _wav_track(root, "train", name)
    np.testing.assert_array_equal(np.concatenate([r["targets"] for r in parts], axis=-1), targets)
    np.testing.assert_array_equal(np.concatenate([r["mixture"] for r in parts], axis=-1), mixture)


def test_registered_name_reads_without_the_builder_object(root, data_dir):
  tfds_musdb.build(root, data_dir, config="hq")
  source = tfds.data_source("musdb18/hq", split="test", data_dir=str(data_dir))
  assert len(source) == 1 and source[0]["targets"].shape == (4, 2, int(SECONDS * 44100))


def test_build_is_idempotent(root, data_dir):
  first = tfds_musdb.build(root, data_dir, config="hq")
  files = sorted(os.stat(p).st_mtime_ns for p in first.data_path.iterdir())
  second = tfds_musdb.build(root, data_dir, config="hq")
  assert sorted(os.stat(p).st_mtime_ns for p in second.data_path.iterdir()) == files


def test_int16_refuses_audio_off_the_16_bit_grid(tmp_path):
  folder = tmp_path / "root" / "train" / "float track"
  folder.mkdir(parents=True)
  audio = np.random.default_rng(0).uniform(-0.5, 0.5, (1000, 2)).astype(np.float32)
  for stem in generate.STEM_FILES:
    sf.write(folder / f"{stem}.wav", audio, 44100, subtype="FLOAT")
  with pytest.raises(DataError, match="not 16-bit"):
    tfds_musdb.build(tmp_path / "root", tmp_path / "tfds", config="hq")
  builder = tfds_musdb.build(tmp_path / "root", tmp_path / "tfds", config="hq_float32")
  np.testing.assert_array_equal(builder.as_data_source("train")[0]["mixture"], audio.T)


def test_bad_input(tmp_path, root):
  with pytest.raises(ParameterError, match="config="):
    tfds_musdb.make_builder(tmp_path, config="nope")
  with pytest.raises(DataError, match="no such folder"):
    tfds_musdb.build(tmp_path / "missing", tmp_path / "tfds")
  with pytest.raises(ParameterError, match="dtype="):
    tfds_musdb.make_builder(tmp_path, config=tfds_musdb.Musdb18Config(name="bad", dtype="int8")).info
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match="no train/ or test/"):
    tfds_musdb.build(tmp_path / "empty", tmp_path / "tfds")
  with pytest.raises(DataError, match="choose a hq"):
    tfds_musdb.build(root, tmp_path / "tfds", config="stems")


@pytest.mark.realdata
def test_stem_mp4_previews(musdb_root, tmp_path):
  """Two real MUSDB18 previews (linked, not copied) through the "stems" config."""
  names = sorted(p.name for p in (musdb_root / "test").glob("*.stem.mp4"))[:2]
  (tmp_path / "root" / "test").mkdir(parents=True)
  for name in names:
    (tmp_path / "root" / "test" / name).symlink_to(musdb_root / "test" / name)
  builder = tfds_musdb.build(tmp_path / "root", tmp_path / "tfds", config="stems")
  assert set(builder.info.splits) == {"test"}
  records = {r["name"].decode(): r for r in _records(builder.as_data_source("test"))}
  for track in musdb.load_tracks(tmp_path / "root", subset="test"):
    np.testing.assert_array_equal(records[track.name]["targets"], track.targets())
    np.testing.assert_array_equal(records[track.name]["mixture"], track.mixture())


def test_build_command(root, tmp_path, capsys):
  from mssjax.data.__main__ import main  # pylint: disable=import-outside-toplevel
  status = main(["build", "--root", str(root), "--data-dir", str(tmp_path), "--builder-config", "hq_float32"])
  out = capsys.readouterr().out
  assert status == 0 and "train: 2 examples" in out and "test: 1 examples" in out
  assert len(tfds.data_source("musdb18/hq_float32", split="train", data_dir=str(tmp_path))) == 2


@pytest.mark.realdata
def test_prepared_real_previews_build_as_int16(musdb_root, tmp_path):
  """The README's path: `prepare` a MUSDB18 folder, then `build --builder-config hq` (int16, exact)."""
  from mssjax.data import prepare  # pylint: disable=import-outside-toplevel
  names = sorted(p.name for p in (musdb_root / "test").glob("*.stem.mp4"))[:2]
  (tmp_path / "root" / "test").mkdir(parents=True)
  for name in names:
    (tmp_path / "root" / "test" / name).symlink_to(musdb_root / "test" / name)
  summary = prepare.prepare(tmp_path / "root", tmp_path / "prepared", prepare.Settings(segment=3.0))
  assert [r["status"] for r in summary["tracks"]] == ["written", "written"]
  builder = tfds_musdb.build(tmp_path / "prepared", tmp_path / "tfds", config="hq")
  records = {r["name"].decode(): r for r in _records(builder.as_data_source("test"))}
  for track in musdb.load_tracks(tmp_path / "prepared", subset="test"):
    assert records[track.name]["targets"].dtype == np.int16
    np.testing.assert_array_equal(tfds_musdb.decode_audio(records[track.name]["targets"]), track.targets())
