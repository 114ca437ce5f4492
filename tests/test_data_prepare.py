"""Tests for mssjax.data.prepare: trimming, segment choice, the resumable atomic run, bad tracks."""

import json
import os

import numpy as np
import pytest
import soundfile

from _musdb_synth import RATE, make_stems, write_track
from mssjax import TARGETS
from mssjax import audio
from mssjax.data import load_tracks
from mssjax.data import prepare as prep
from mssjax.data.__main__ import main
from mssjax.errors import AudioError, DataError, ParameterError

FRAME = prep.FRAME_LENGTH


# --- the measurements ------------------------------------------------------------------------------


def test_frame_rms_db_of_constant_signals():
  x = np.full((2, 3 * FRAME + 10), 0.1, np.float32)
  x[:, FRAME:2 * FRAME] = 0.01
  levels = prep.frame_rms_db(x)
  np.testing.assert_allclose(levels, [-20, -40, -20, -20], atol=1e-4)
  assert prep.frame_rms_db(x[None].repeat(3, 0)).shape == (3, 4)


def test_trim_bounds_cut_at_frames_above_the_threshold():
  x = np.zeros((2, 12000), np.float32)
  x[:, 3000:8000] = 0.1
  x[:, 9000:] = 1e-5  # -100 dBFS: silence
  assert prep.trim_bounds(x, silence_db=-60) == (2 * FRAME, 8 * FRAME)
  assert prep.trim_bounds(x, silence_db=-120) == (2 * FRAME, 12000)
  with pytest.raises(DataError, match="below -60 dBFS"):
    prep.trim_bounds(np.zeros((2, 5000), np.float32))


def _staggered(n_seconds=4):
  """Four stems; all four play only during the third second, one plays throughout."""
  stems = make_stems(n_seconds * RATE)
  targets = np.stack([stems[t] for t in TARGETS])
  targets[1:, :, :2 * RATE] = 0
  targets[1:, :, 3 * RATE:] = 0
  return targets


@pytest.mark.parametrize("position,expected", [("start", 0), ("center", RATE // 2 * 3)])
def test_segment_start_fixed_positions(position, expected):
  assert prep.segment_start(_staggered(), RATE, position=position) == expected


def test_segment_start_active_finds_where_every_stem_plays():
  start = prep.segment_start(_staggered(), RATE, position="active")
  assert abs(start - 2 * RATE) < FRAME
  with pytest.raises(ParameterError, match="longer than the track"):
    prep.segment_start(_staggered(1), 2 * RATE)


@pytest.mark.parametrize("segment,keep_short,expected", [
    (1.0, True, "where all four play"),
    (None, True, (0, 4 * RATE)),
    (10.0, True, (0, 4 * RATE)),
    (10.0, False, None),
])
def test_cut(segment, keep_short, expected):
  targets = _staggered()
  bounds = prep.cut(targets, RATE, prep.Settings(segment=segment, keep_short=keep_short))
  if isinstance(expected, str):
    assert abs(bounds[0] - 2 * RATE) < FRAME and bounds[1] - bounds[0] == RATE
  else:
    assert bounds == expected


@pytest.mark.parametrize("kwargs,message", [
    ({"segment": -1.0}, "segment=-1.0"),
    ({"position": "end"}, "position='end'"),
    ({"subtype": "MP3"}, "subtype"),
])
def test_bad_settings(kwargs, message):
  with pytest.raises(ParameterError, match=message):
    prep.Settings(**kwargs)


# --- whole runs on synthetic tracks ----------------------------------------------------------------


def _long_song():
  """3 s: 0.5 s of silence at each end; all four stems only during [1.5 s, 2.5 s)."""
  stems = make_stems(3 * RATE, seed=4)
  for name in TARGETS:
    stems[name][:, :RATE // 2] = 0
    stems[name][:, -RATE // 2:] = 0
    if name != "vocals":
      stems[name][:, :3 * RATE // 2] = 0
      stems[name][:, 5 * RATE // 2:] = 0
  stems["mixture"] = sum(stems[t] for t in TARGETS) * 0.5  # a wrong mixture: prepare remakes it
  return stems


@pytest.fixture
def source(tmp_path):
  root = tmp_path / "in"
  write_track(root, "train", "Long - Song", _long_song())
  write_track(root, "test", "Short - Song", make_stems(RATE // 2, seed=5))
  write_track(root, "test", "Broken - Song", make_stems(RATE, seed=6))
  (root / "test" / "Broken - Song" / "other.wav").write_bytes(b"not audio")
  write_track(root, "test", "Missing - Song", make_stems(RATE, seed=7), skip=("bass",))
  write_track(root, "test", "Rate - Song", make_stems(RATE, seed=8), rate=48000)
  uneven = make_stems(RATE, seed=9)
  uneven["vocals"] = uneven["vocals"][:, :RATE - 100]
  write_track(root, "test", "Uneven - Song", uneven)
  write_track(root, "test", "Empty - Song", make_stems(RATE, seed=10))
  (root / "test" / "Empty - Song" / "drums.wav").write_bytes(b"")
  return root


FAILURES = {
    "Broken - Song": "other.wav: not a readable audio file",
    "Missing - Song": "missing stem file(s) bass.wav",
    "Rate - Song": "sample rate 48000 Hz, expected 44100 Hz",
    "Uneven - Song": "stems differ in length",
    "Empty - Song": "drums.wav: file is empty",
}


SETTINGS = prep.Settings(segment=0.5)


def test_prepare_writes_aligned_segments_and_remixes(source, tmp_path):
  out = tmp_path / "out"
  summary = prep.prepare(source, out, SETTINGS)
  records = {r["track"]: r for r in summary["tracks"]}
  assert {n: r["status"] for n, r in records.items()} == {
      "Long - Song": "written", "Short - Song": "written", **{name: "failed" for name in FAILURES}}
  for name, reason in FAILURES.items():
    assert reason in records[name]["reason"]
  long = records["Long - Song"]
  assert long["end"] - long["start"] == RATE // 2 and 3 * RATE // 2 - FRAME < long["start"] < 2 * RATE
  original = _long_song()
  track, = load_tracks(out, subset="train")
  for name in TARGETS:
    np.testing.assert_array_equal(track.stem(name), original[name][:, long["start"]:long["end"]])
  np.testing.assert_allclose(track.mixture(), track.targets().sum(0), atol=1e-6)
  short = records["Short - Song"]
  assert (short["start"], short["end"]) == (0, RATE // 2)  # shorter than the segment: kept whole
  assert all(r["ok"] for r in summary["validation"]) and len(summary["validation"]) == 2
  assert json.loads((out / "prepare_report.json").read_text())["tracks"] == summary["tracks"]
  assert sorted(os.listdir(out / "test")) == ["Short - Song"]  # no half-written folders


def test_prepare_stores_16_bit_sources_exactly_and_refuses_to_quantise(tmp_path):
  stems = make_stems(RATE, seed=3)
  for name in TARGETS:  # the remade mixture exceeds full scale at one sample per channel
    stems[name][:, 100] = 9830 / 32768
  write_track(tmp_path / "in", "test", "Loud - Song", stems)
  summary = prep.prepare(tmp_path / "in", tmp_path / "out", prep.Settings(segment=0))
  record, = summary["tracks"]
  assert record["status"] == "written" and record["mixture_clipped"] == 2
  track, = load_tracks(tmp_path / "out")
  assert soundfile.info(str(track.file("vocals"))).subtype == "PCM_16"
  np.testing.assert_array_equal(track.stem("vocals"), stems["vocals"])
  assert track.mixture()[0, 100] == 32767 / 32768
  off_grid = make_stems(RATE, seed=4)
  off_grid["bass"] += 1e-6
  write_track(tmp_path / "float", "test", "Float - Song", off_grid)
  failed = prep.prepare(tmp_path / "float", tmp_path / "out2", prep.Settings(segment=0), check=False)
  assert "not 16-bit audio" in failed["tracks"][0]["reason"] and "--subtype FLOAT" in failed["tracks"][0]["reason"]
  kept = prep.prepare(tmp_path / "float", tmp_path / "out3", prep.Settings(segment=0, subtype="FLOAT"), check=False)
  assert kept["tracks"][0]["status"] == "written"
  np.testing.assert_array_equal(load_tracks(tmp_path / "out3")[0].stem("bass"), off_grid["bass"])


def test_rerun_skips_finished_tracks_and_redoes_changed_ones(source, tmp_path):
  out = tmp_path / "out"
  prep.prepare(source, out, SETTINGS, check=False)
  written = out / "train" / "Long - Song" / "vocals.wav"
  stamp = written.stat().st_mtime_ns
  again = prep.prepare(source, out, SETTINGS, check=False)
  assert {r["track"]: r["status"] for r in again["tracks"]}["Long - Song"] == "done"
  assert written.stat().st_mtime_ns == stamp
  other = prep.prepare(source, out, prep.Settings(segment=0.5, position="start"), check=False)
  record = {r["track"]: r for r in other["tracks"]}["Long - Song"]
  assert record["status"] == "written" and record["start"] < RATE // 2
  assert audio.info(written).frames == RATE // 2
  assert sorted(os.listdir(out / "train")) == ["Long - Song"]
  prep.prepare(source, out, prep.Settings(segment=5.0, keep_short=False), check=False)
  assert os.listdir(out / "train") == []  # dropped now: the earlier output goes


def test_drop_short_and_strict(source, tmp_path):
  dropped = prep.prepare(source, tmp_path / "a", prep.Settings(segment=0.75, keep_short=False), subset="test")
  assert {r["track"]: r["status"] for r in dropped["tracks"]}["Short - Song"] == "dropped"
  assert not (tmp_path / "a" / "test" / "Short - Song").exists()
  with pytest.raises(AudioError, match="other.wav"):
    prep.prepare(source, tmp_path / "b", SETTINGS, strict=True)
  with pytest.raises(ParameterError, match="must differ from root"):
    prep.prepare(source, source, SETTINGS)


def test_duplicate_names_fail_both_tracks(source, tmp_path):
  write_track(source, "test", "long - song", make_stems(RATE, seed=11))
  summary = prep.prepare(source, tmp_path / "out", SETTINGS, check=False)
  records = {r["track"]: r for r in summary["tracks"]}
  assert records["Long - Song"]["status"] == records["long - song"]["status"] == "failed"
  assert "duplicate track name (also test/long - song)" in records["Long - Song"]["reason"]
  assert records["Short - Song"]["status"] == "written"


def test_cli(source, tmp_path, capsys):
  out = tmp_path / "cli"
  args = ["prepare", "--root", str(source), "--out", str(out), "--segment", "0.5", "--position", "center"]
  assert main(args) == 1  # five tracks failed
  printed = capsys.readouterr().out
  assert "7 tracks: 2 written, 0 already done, 0 dropped, 5 failed" in printed
  assert "failed: test/Broken - Song" in printed
  assert main(args + ["--subset", "train", "--drop-short"]) == 0
  assert "1 tracks: 1 written" in capsys.readouterr().out
  assert main(args + ["--subset", "train", "--drop-short"]) == 0
  assert "1 tracks: 0 written, 1 already done" in capsys.readouterr().out


# --- real data -------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_tracks_prepare_into_a_valid_dataset(musdb_root, tmp_path):
  root = tmp_path / "in"
  (root / "test").mkdir(parents=True)
  for name in ("PR - Oh No", "PR - Happy Daze"):
    os.symlink(musdb_root / "test" / f"{name}.stem.mp4", root / "test" / f"{name}.stem.mp4")
  summary = prep.prepare(root, tmp_path / "out", prep.Settings(segment=3.0))
  assert [r["status"] for r in summary["tracks"]] == ["written", "written"]
  checked = [(r["track"], r["ok"]) for r in summary["validation"]]
  assert checked == [("PR - Happy Daze", True), ("PR - Oh No", True)]
  happy, = load_tracks(tmp_path / "out", subset="test")[:1]
  original, = [t for t in load_tracks(musdb_root) if t.name == "PR - Happy Daze"]
  vocals = original.stem("vocals")
  record = summary["tracks"][0]
  chosen = np.mean(vocals[:, record["start"]:record["end"]] ** 2)
  at_start = np.mean(vocals[:, :record["end"] - record["start"]] ** 2)
  assert chosen >= at_start  # vocals play in ~29 % of the clip; the active window holds them
  np.testing.assert_array_equal(happy.stem("vocals"), vocals[:, record["start"]:record["end"]])
