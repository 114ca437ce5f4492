"""Tests for mssjax.data.validate: every defect on synthetic tracks, the real previews, the CLI."""

import json
import os

import numpy as np
import pytest

from _musdb_synth import make_stems, write_track
from mssjax.data import load_tracks
from mssjax.data import validate as validation
from mssjax.data.__main__ import main

N = 8192


def _defects():
  """name -> (stems, write_track keyword arguments, expected problem patterns)."""
  clean = make_stems(N)
  cases = {"Clean - Song": (clean, {}, [])}

  def variant(name, patterns, change=None, **kwargs):
    stems = {k: v.copy() for k, v in clean.items()}
    if change:
      change(stems)
    cases[name] = (stems, kwargs, patterns)

  # mixture = 0.5 * stem sum: the residual is as loud as the mixture (0 dB), 6 dB below the stem sum
  variant("Residual - Left", [r"mixture != sum of stems: residual -?0\.0 dB on channel 0"],
          lambda s: s["mixture"].__setitem__(0, 0.5 * s["mixture"][0]))
  variant("Quiet - Bass", [r"bass: nearly silent \(RMS -77\.0 dBFS < -45 dBFS\)"],
          lambda s: s.update(bass=s["bass"] * 1e-3, mixture=s["mixture"] - s["bass"] * (1 - 1e-3)))
  variant("Zero - Drums", [r"drums: silent \(all samples zero\)"],
          lambda s: s.update(drums=0 * s["drums"], mixture=s["mixture"] - s["drums"]))
  variant("NaN - Vocals", [r"vocals: 2 NaN/Inf samples"],
          lambda s: (s["vocals"].__setitem__((0, 10), np.nan), s["vocals"].__setitem__((1, 3), np.inf)))
  loud = {t: 3 * clean[t] for t in ("vocals", "drums", "bass", "other")}
  variant("Clipped - Mixture", [r"mixture: clipping \(\d+ samples at \|x\| >= 0.999"],
          lambda s: s.update(mixture=np.clip(3 * s["mixture"], -1, 1), **loud))
  variant("Rate - Song", [rf"{stem}: sample rate 48000 Hz \(expected 44100\)" for stem in ("mixture", "vocals")],
          rate=48000)
  variant("Mono - Vocals", [r"vocals: 1 channel\(s\) \(expected 2\)"],
          lambda s: s.update(vocals=s["vocals"][:1]))
  variant("Short - Other", [r"stems differ in length \(.*other 8000"],
          lambda s: s.update(other=s["other"][:, :8000]))
  variant("Missing - Drums", [r"missing stem file\(s\) drums.wav"], skip=("drums",))
  return cases


@pytest.fixture(scope="module")
def defects(tmp_path_factory):
  root = tmp_path_factory.mktemp("defects")
  cases = _defects()
  for name, (stems, kwargs, _) in cases.items():
    write_track(root, "test", name, stems, **kwargs)
  write_track(root, "test", "Corrupt - Bass", make_stems(N))
  (root / "test" / "Corrupt - Bass" / "bass.wav").write_bytes(b"RIFF" + bytes(60))
  write_track(root, "train", "clean - song", make_stems(N))  # the same name as a test track
  return root, cases


@pytest.fixture(scope="module")
def results(defects):
  root, _ = defects
  return {r["track"]: r for r in validation.validate(root)}


def test_every_track_is_reported(defects, results):
  _, cases = defects
  assert set(results) == set(cases) | {"Corrupt - Bass", "clean - song"}
  for r in results.values():
    assert set(r) >= {"track", "subset", "ok", "problems"} and r["ok"] == (not r["problems"])


@pytest.mark.parametrize("name", list(_defects()))
def test_each_defect_is_flagged(defects, results, name):
  _, cases = defects
  patterns = cases[name][2]
  problems = [p for p in results[name]["problems"] if "duplicate" not in p]
  if not patterns:
    assert problems == []
    return
  for pattern in patterns:
    assert any(__import__("re").search(pattern, p) for p in problems), (pattern, problems)


def test_clean_track_levels(results):
  clean = results["Clean - Song"]
  assert clean["sample_rate"] == 44100 and clean["n_samples"] == N
  assert max(clean["residual_db"]) < -100  # the mixture is the float32 sum of the stems
  assert max(clean["residual_stems_db"]) < -100
  assert set(clean["rms_db"]) == {"mixture", "drums", "bass", "other", "vocals"}
  assert clean["rms_db"]["vocals"] == pytest.approx(20 * np.log10(0.2 / np.sqrt(2)), abs=0.1)


def test_duplicates_corrupt_files_and_residuals(results):
  assert any("duplicate track name (also test/Clean - Song)" in p for p in results["clean - song"]["problems"])
  assert any("duplicate track name (also train/clean - song)" in p for p in results["Clean - Song"]["problems"])
  left = results["Residual - Left"]
  assert left["residual_stems_db"][0] == pytest.approx(-6.02, abs=0.01)
  assert left["residual_db"][1] < -100
  corrupt = results["Corrupt - Bass"]["problems"]
  assert any(p.startswith("bass: unreadable:") and "bass.wav" in p for p in corrupt)


def test_thresholds_are_configurable(defects):
  root, _ = defects
  loose = validation.Thresholds(residual_db=0.0, silent_db=-80.0)
  checked = {r["track"]: r for r in validation.validate(root, subset="test", thresholds=loose)}
  assert checked["Residual - Left"]["ok"] and checked["Quiet - Bass"]["ok"]
  assert "clean - song" not in checked


def test_report_and_table(defects, tmp_path, capsys):
  root, _ = defects
  report = tmp_path / "out" / "report.json"
  status = main(["validate", "--root", str(root), "--report", str(report), "--subset", "test"])
  assert status == 1
  written = json.loads(report.read_text())
  assert {r["track"] for r in written if not r["ok"]} >= {"Residual - Left", "Missing - Drums"}
  table = capsys.readouterr().out
  assert "Residual - Left" in table and "0.0 dB on channel 0 (threshold -15 dB)" in table
  assert f"{len(written)} tracks checked, 0 ok" in table  # every test track shares "Clean - Song"'s name
  assert os.listdir(report.parent) == ["report.json"]


def test_cli_errors_are_one_line(tmp_path, capsys):
  assert main(["validate", "--root", str(tmp_path / "nowhere")]) == 2
  assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nowhere'}: no such folder"


def test_unknown_command_lists_the_commands(capsys):
  assert main(["nonsense"]) == 2
  assert "prepare" in capsys.readouterr().err
  assert main(["--help"]) == 0
  assert "validate" in capsys.readouterr().out


@pytest.mark.realdata
def test_real_previews_flag_exactly_the_known_defects(musdb_root):
  tracks = load_tracks(musdb_root, subset="test")
  tracks += [t for t in load_tracks(musdb_root, subset="train") if t.name == "The Districts - Vermont"]
  results = {r["track"]: r for r in validation.validate_tracks(tracks)}
  assert len(results) == 41
  flagged = {name for name, r in results.items() if not r["ok"]}
  assert flagged == {"PR - Oh No", "The Districts - Vermont"}
  oh_no = results["PR - Oh No"]
  assert oh_no["problems"] == [
      f"mixture != sum of stems: residual {oh_no['residual_db'][0]:.1f} dB on channel 0 (threshold -15 dB)"]
  assert oh_no["residual_db"][0] > -3 and oh_no["residual_db"][1] < -15
  vermont = results["The Districts - Vermont"]
  assert len(vermont["problems"]) == 1 and vermont["problems"][0].startswith("bass: nearly silent")
  clean_residuals = [max(r["residual_db"]) for name, r in results.items() if r["ok"]]
  assert -36 < min(clean_residuals) and max(clean_residuals) < -20  # README: -21 to -35 dB


@pytest.mark.realdata
def test_real_cli_report(musdb_root, tmp_path):
  (tmp_path / "data" / "test").mkdir(parents=True)
  for name in ("PR - Oh No", "PR - Happy Daze"):
    os.symlink(musdb_root / "test" / f"{name}.stem.mp4", tmp_path / "data" / "test" / f"{name}.stem.mp4")
  report = tmp_path / "report.json"
  assert main(["validate", "--root", str(tmp_path / "data"), "--report", str(report)]) == 1
  written = json.loads(report.read_text())
  assert [(r["track"], r["subset"], r["ok"]) for r in written] == [("PR - Happy Daze", "test", True),
                                                                   ("PR - Oh No", "test", False)]
