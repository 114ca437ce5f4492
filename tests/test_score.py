"""python -m mssjax score: a folder of estimates against MUSDB18 references, as museval scores it."""

import csv
import json
import shutil

import numpy as np
import pytest
import soundfile

from _musdb_synth import RATE, write_track
from mssjax import TARGETS, audio, fileio
from mssjax.evaluation import score
from mssjax.__main__ import main
from mssjax.data import load_tracks
from mssjax.errors import DataError, ParameterError
from mssjax.metrics import bss_eval_v4, store

N = RATE  # 1 s songs


def _noise_stems(seed):
  """Four stereo noise stems on the 16-bit grid (tones would make BSSEval's Gram matrix singular)."""
  rng = np.random.default_rng(seed)
  stems = {t: np.rint(0.05 * 32768 * rng.standard_normal((2, N))).astype(np.float32) / 32768 for t in TARGETS}
  stems["mixture"] = sum(stems[t] for t in TARGETS)
  return stems


def _root(tmp_path, names=("A - One", "B - Two", "C - Three")):
  root = tmp_path / "root"
  for seed, name in enumerate(names):
    write_track(root, "test", name, _noise_stems(seed))
  return root


def _estimates(root, out, *, nested=False, skip=()):
  """Noisy copies of the references, written as 16-bit wavs the way separators write them."""
  rng = np.random.default_rng(1)
  for track in load_tracks(root):
    if track.name in skip:
      continue
    folder = out / ("test" if nested else "") / fileio.safe_name(track.name)  # as mssjax separate names it
    targets = track.targets()
    for i, (target, x) in enumerate(zip(TARGETS, targets)):  # leakage from the next target, and noise
      leak = 0.3 * targets[(i + 1) % 4]
      audio.save(folder / f"{target}.wav", x + leak + 0.05 * rng.standard_normal(x.shape), subtype="PCM_16")
  return out


def _expected(root, estimates_dir, name):
  track, = [t for t in load_tracks(root) if t.name == name]
  ests = np.stack([audio.read(estimates_dir / name / f"{t}.wav")[0][0] for t in TARGETS])
  return bss_eval_v4(np.transpose(track.targets(), (0, 2, 1)), np.transpose(ests, (0, 2, 1)), window=RATE // 4,
                     hop=RATE // 4)


def test_score_writes_museval_json_tables_report_and_resumes(tmp_path):
  root = _root(tmp_path)
  estimates = _estimates(root, tmp_path / "demucs")
  out = tmp_path / "out"
  summary = score.score(estimates, root, out, window_seconds=0.25, hop_seconds=0.25, progress=False,
                        report_tracks=1)
  assert [o.status for o in summary["outcomes"]] == ["scored"] * 3 and summary["method"] == "demucs"
  document = json.loads((out / "demucs" / "test" / "B - Two.json").read_text())
  expected = _expected(root, estimates, "B - Two")
  for i, target in enumerate(document["targets"]):
    assert target["name"] == TARGETS[i]
    for m in store.JSON_METRICS:
      np.testing.assert_allclose([f["metrics"][m] for f in target["frames"]], expected[m][i], atol=1e-4)
  assert len(summary["rows"]) == 4 and (out / "results.md").is_file() and summary["report"].is_file()
  assert (out / "report" / "audio" / "A - One" / "demucs" / "vocals.wav").is_file()
  museval = pytest.importorskip("museval")
  methods = museval.MethodStore()
  methods.add_eval_dir(out / "demucs")
  assert set(methods.df["target"]) == set(TARGETS)
  stamp = (out / "demucs" / "test" / "B - Two.json").stat().st_mtime_ns
  again = score.score(estimates, root, out, window_seconds=0.25, hop_seconds=0.25, progress=False, report=False)
  assert [o.status for o in again["outcomes"]] == ["done"] * 3
  assert (out / "demucs" / "test" / "B - Two.json").stat().st_mtime_ns == stamp
  x = audio.read(estimates / "B - Two" / "bass.wav")[0][0]
  audio.save(estimates / "B - Two" / "bass.wav", 0.5 * x, subtype="PCM_16")  # new estimates: scored again
  third = score.score(estimates, root, out, window_seconds=0.25, hop_seconds=0.25, progress=False, report=False)
  assert [o.status for o in third["outcomes"]] == ["done", "scored", "done"]


def test_score_reads_subset_folders_safe_names_and_other_formats(tmp_path):
  root = tmp_path / "root"
  write_track(root, "test", "AC\\DC - Song", _noise_stems(3))
  write_track(root, "test", "Other - Song", _noise_stems(4))
  estimates = _estimates(root, tmp_path / "est", nested=True)
  safe = fileio.safe_name("AC\\DC - Song")
  assert safe != "AC\\DC - Song" and (estimates / "test" / safe).is_dir()
  for target in TARGETS:  # flac estimates for one track
    path = estimates / "test" / "Other - Song" / f"{target}.wav"
    x, rate = soundfile.read(path)
    soundfile.write(path.with_suffix(".flac"), x, rate)
    path.unlink()
  summary = score.score(estimates, root, tmp_path / "out", method="x", window_seconds=0.25, hop_seconds=0.25,
                        progress=False, report=False)
  assert [o.status for o in summary["outcomes"]] == ["scored", "scored"]


def test_score_isolates_bad_tracks_and_fits_lengths_like_museval(tmp_path, capsys):
  root = _root(tmp_path, names=("A - One", "B - Two", "C - Three", "D - Four", "E - Five", "F - Six"))
  estimates = _estimates(root, tmp_path / "est")
  (estimates / "A - One" / "drums.wav").unlink()                               # a missing target
  (estimates / "B - Two" / "bass.wav").write_bytes(b"not audio")               # unreadable
  x = audio.read(estimates / "C - Three" / "other.wav")[0][0]
  audio.save(estimates / "C - Three" / "other.wav", x, sample_rate=48000)      # another rate
  audio.save(estimates / "D - Four" / "vocals.wav", x[:1])                     # mono
  long = audio.read(estimates / "E - Five" / "vocals.wav")[0][0]
  audio.save(estimates / "E - Five" / "vocals.wav", np.pad(long, ((0, 0), (0, 300))), subtype="PCM_16")
  audio.save(estimates / "F - Six" / "vocals.wav", long[:, :-100], subtype="PCM_16")
  shutil.copytree(estimates / "F - Six", estimates / "Z - Unknown")            # no reference
  code = main(["score", str(estimates), "--root", str(root), "-o", str(tmp_path / "out"), "--quiet",
               "--window-seconds", "0.25", "--hop-seconds", "0.25", "--no-report"])
  assert code == 1
  err = capsys.readouterr().err
  for line in ("A - One: " + str(estimates / "A - One") + ": missing estimate(s) of drums",
               "B - Two: " + str(estimates / "B - Two" / "bass.wav"),
               "sample rate 48000 Hz, the reference's is 44100 Hz",
               "D - Four: " + str(estimates / "D - Four" / "vocals.wav") + ": 1 channel(s), the reference has 2",
               "Z - Unknown: " + str(estimates / "Z - Unknown") + ": no reference track of that name"):
    assert line in err, line
  written = sorted(p.name for p in (tmp_path / "out" / "est" / "test").glob("*.json"))
  assert written == ["E - Five.json", "F - Six.json"]
  meta = json.loads(store.meta_path(tmp_path / "out", "est", "test", "E - Five").read_text())
  assert meta["notes"] == [f"vocals: {N + 300} samples, the reference {N}: cut at the end (as museval)"]
  meta = json.loads(store.meta_path(tmp_path / "out", "est", "test", "F - Six").read_text())
  assert "zero-padded at the end" in meta["notes"][0]
  assert not list((tmp_path / "out").rglob("*.partial"))


def test_score_refuses_bad_settings_before_any_work(tmp_path):
  root = _root(tmp_path, names=("A - One",))
  estimates = _estimates(root, tmp_path / "est")
  with pytest.raises(ParameterError, match="target='piano' is not known"):
    score.score(estimates, root, tmp_path / "out", targets=["vocals", "piano"], progress=False)
  with pytest.raises(ParameterError, match="at least two targets"):
    score.score(estimates, root, tmp_path / "out", targets=["vocals"], progress=False)
  with pytest.raises(DataError, match="estimates folder not found"):
    score.score(tmp_path / "nothing", root, tmp_path / "out", progress=False)
  with pytest.raises(ParameterError, match="jobs=0 must be a positive integer"):
    score.score(estimates, root, tmp_path / "out", jobs=0, progress=False)
  assert not (tmp_path / "out").exists()


def test_score_with_several_jobs_records_what_one_job_records(tmp_path):
  """Tracks scored in parallel threads: the same outcomes, in the same order, and the same JSON."""
  root = _root(tmp_path, names=("A - One", "B - Two", "C - Three", "D - Four"))
  estimates = _estimates(root, tmp_path / "est")
  (estimates / "B - Two" / "bass.wav").write_bytes(b"not audio")
  runs = {}
  for jobs in (1, 3):
    out = tmp_path / f"out{jobs}"
    summary = score.score(estimates, root, out, window_seconds=0.25, hop_seconds=0.25, progress=False,
                          report=False, jobs=jobs)
    documents = {p.name: json.loads(p.read_text())["targets"] for p in (out / "est" / "test").glob("*.json")}
    runs[jobs] = ([(o.track, o.status) for o in summary["outcomes"]], documents)
  assert runs[1][0] == [("A - One", "scored"), ("B - Two", "failed"), ("C - Three", "scored"), ("D - Four", "scored")]
  assert runs[3] == runs[1]


def test_score_vocals_accompaniment(tmp_path):
  root = _root(tmp_path, names=("A - One",))
  track, = load_tracks(root)
  folder = tmp_path / "est" / "A - One"
  stems = track.stems()
  audio.save(folder / "vocals.wav", stems["vocals"] * 0.9)
  audio.save(folder / "accompaniment.wav", stems["drums"] + stems["bass"] + stems["other"] * 0.5)
  summary = score.score(tmp_path / "est", root, tmp_path / "out", targets=["vocals", "accompaniment"],
                        window_seconds=0.25, hop_seconds=0.25, progress=False, report=False)
  assert [o.status for o in summary["outcomes"]] == ["scored"]
  assert {r["target"] for r in summary["rows"]} == {"vocals", "accompaniment"}


@pytest.mark.realdata
@pytest.mark.slow
def test_score_real_previews_matches_museval_eval_mus_dir(musdb_root, tmp_path):
  """The command on real previews gives museval.eval_mus_dir's JSON (musdb's own decode) frame by frame."""
  if shutil.which("ffmpeg") is None:
    pytest.skip("musdb needs the ffmpeg program")
  musdb = pytest.importorskip("musdb")
  museval = pytest.importorskip("museval")
  name = "Georgia Wonder - Siren"
  root = tmp_path / "root"
  (root / "test").mkdir(parents=True)
  (root / "test" / f"{name}.stem.mp4").symlink_to(musdb_root / "test" / f"{name}.stem.mp4")
  track, = load_tracks(root)
  mixture = track.mixture()
  folder = tmp_path / "est" / "test" / name
  for target, x in zip(TARGETS, track.targets()):  # a crude separator: reference plus some mixture
    audio.save(folder / f"{target}.wav", 0.8 * x + 0.1 * mixture, subtype="PCM_16")
  summary = score.score(tmp_path / "est", root, tmp_path / "ours", method="crude", progress=False, report=False)
  assert [o.status for o in summary["outcomes"]] == ["scored"]
  museval.eval_mus_dir(musdb.DB(root=str(root), subsets="test"), str(tmp_path / "est"), str(tmp_path / "theirs"))
  theirs = json.loads((tmp_path / "theirs" / "test" / f"{name}.json").read_text())
  ours = json.loads((tmp_path / "ours" / "crude" / "test" / f"{name}.json").read_text())
  worst = 0.0
  for a, b in zip(ours["targets"], theirs["targets"]):
    assert a["name"] == b["name"]
    for fa, fb in zip(a["frames"], b["frames"], strict=True):
      for m in store.JSON_METRICS:
        x, y = fa["metrics"][m], fb["metrics"][m]
        assert (x is None or np.isnan(x)) == (y is None or np.isnan(y))
        if y is not None and not np.isnan(y):
          worst = max(worst, abs(x - y))
  assert worst < 0.01, worst


def _vocals_sdr(out, method="est"):
  rows = [r for r in store.table_rows(out, [method]) if r["target"] == "vocals"]
  return rows[0]["SDR"], rows[0]["n_tracks"]


def test_score_against_another_root_or_a_changed_reference_scores_again(tmp_path, capsys):
  # #36 case 3: `score EST --root A -o S`, then `score EST --root B -o S` printed "0 scored, 1 already
  # scored", kept A's numbers, and the table counted a track B does not have.
  root_a = _root(tmp_path / "a", names=("A - One", "B - Two"))
  root_b = tmp_path / "b" / "root"
  write_track(root_b, "test", "A - One", _noise_stems(7))  # the same name, other references
  estimates = _estimates(root_a, tmp_path / "est")
  out = tmp_path / "out"
  args = ["--quiet", "--window-seconds", "0.25", "--hop-seconds", "0.25", "--no-report"]
  assert main(["score", str(estimates), "--root", str(root_a), "-o", str(out), *args]) == 0
  sdr_a, n_a = _vocals_sdr(out)
  assert n_a == 2
  capsys.readouterr()
  assert main(["score", str(estimates), "--root", str(root_b), "-o", str(out), *args]) == 1  # B - Two: no track
  err = capsys.readouterr().err
  assert "no reference track of that name" in err
  sdr_b, n_b = _vocals_sdr(out)
  assert n_b == 2  # the folder still holds A's result of B - Two; the run's table does not count it
  rows = list(csv.DictReader((out / "results.csv").open()))
  assert {r["n_tracks"] for r in rows} == {"1"}
  expected = _expected(root_b, estimates, "A - One")
  got = json.loads(store.track_path(out, "est", "test", "A - One").read_text())["targets"][0]["frames"]
  np.testing.assert_allclose([f["metrics"]["SDR"] for f in got], expected["SDR"][0], atol=1e-4)
  assert float(rows[[r["target"] for r in rows].index("vocals")]["SDR"]) != pytest.approx(sdr_a, abs=0.1)
  # a reference rewritten in place (same root and name) is scored again; an untouched one is not
  again = score.score(estimates, root_b, out, window_seconds=0.25, hop_seconds=0.25, progress=False, report=False)
  assert [o.status for o in again["outcomes"] if o.track == "A - One"] == ["done"]
  write_track(root_b, "test", "A - One", _noise_stems(8))
  third = score.score(estimates, root_b, out, window_seconds=0.25, hop_seconds=0.25, progress=False, report=False)
  assert [o.status for o in third["outcomes"] if o.track == "A - One"] == ["scored"]
  meta = json.loads(store.meta_path(out, "est", "test", "A - One").read_text())
  assert meta["references"]["path"] == str((root_b / "test" / "A - One").resolve())
