"""Bad inputs, bad flags and kills, as a new user and a hostile one would try them.

Each test is the reproduction of one case of the reliability issue: no input
hangs, exhausts memory, escapes its folder or poisons a model, and every
failure is one clear line and a non-zero exit.
"""

import json
import os
import pathlib
import subprocess
import sys

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from mssjax import TARGETS, audio, separate
from mssjax.__main__ import main
from mssjax.errors import ParameterError

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture()
def song(tmp_path):
  path = tmp_path / "song.wav"
  audio.save(path, np.random.default_rng(0).uniform(-0.3, 0.3, (2, 44100)).astype(np.float32))
  return path


def _separate(*args):
  return main(["separate", *map(str, args), "--method", "mixture", "--quiet"])


# --- 1, 9: chunking -----------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flags,message", [
    (["--chunk-seconds", "0.5"], "overlap_seconds=1.0 must be shorter than chunk_seconds=0.5"),
    (["--chunk-seconds", "-1"], "chunk_seconds=-1.0 must be > 0"),
    (["--chunk-seconds", "1e-5"], "chunk_seconds=1e-05 is shorter than one sample"),
    (["--chunk-seconds", "1", "--overlap-seconds", "1"], "overlap_seconds=1.0 must be shorter than chunk_seconds"),
    (["--chunk-seconds", "nan"], "chunk_seconds=nan must be a finite number"),
    (["--chunk-seconds", "inf"], "chunk_seconds=inf must be a finite number"),
    (["--overlap-seconds", "nan"], "overlap_seconds=nan must be a finite number"),
    (["--chunk-seconds", "0"], "chunk_seconds=0.0 must be > 0"),
    (["--set", "chunk_seconds=-3"], "chunk_seconds=-3.0 must be > 0"),
])
def test_bad_chunking_is_one_line_before_any_work(song, tmp_path, capsys, flags, message):
  assert _separate(song, "-o", tmp_path / "out", *flags) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
  assert not (tmp_path / "out").exists()


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(n=st.integers(1, 5000), chunk=st.integers(1, 2000), data=st.data())
def test_chunking_arithmetic(n, chunk, data):
  """Any chunk, overlap and length: finitely many chunks, every sample covered with total weight 1, and an
  identity separator gives the input back."""
  overlap = data.draw(st.integers(0, chunk - 1))
  starts = separate.chunk_starts(n, chunk, overlap)
  assert len(starts) <= n // max(chunk - overlap, 1) + 2
  assert starts[0] == 0 and starts[-1] + chunk >= n and all(b - a == chunk - overlap for a, b in zip(starts, starts[1:]))
  x = np.random.default_rng(n).standard_normal((1, n)).astype(np.float32)
  out = separate.separate_in_chunks(lambda c: c[None], x, chunk_samples=chunk, overlap_samples=overlap)
  np.testing.assert_allclose(out[0], x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk,overlap", [(0, 0), (10, 10), (10, -1), (10, 2.5), (True, 0)])
def test_chunk_starts_refuses_a_non_positive_hop(chunk, overlap):
  with pytest.raises(ParameterError):
    separate.chunk_starts(100, chunk, overlap)


# --- 5, 10, 13: names and batches ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["...wav", "..stem.mp4", ". .flac", "a\x01b.wav"])
def test_output_folders_stay_inside_the_output_folder(tmp_path, name):
  folder = separate.output_folders([tmp_path / name], tmp_path / "out")[0]
  assert folder.resolve().parent == (tmp_path / "out").resolve() and folder.name not in ("", ".", "..")


def test_a_song_named_dots_writes_inside_out(tmp_path):
  path = tmp_path / "...wav"
  audio.save(path, np.zeros((2, 4410), np.float32) + 0.1)
  assert _separate(path, "-o", tmp_path / "out") == 0
  assert sorted(os.listdir(tmp_path / "out" / "song")) == sorted(f"{t}.wav" for t in TARGETS)
  assert sorted(os.listdir(tmp_path)) == ["...wav", "out"]


def test_same_names_get_distinct_folders(tmp_path, capsys):
  for folder, value in (("a", 0.1), ("b", 0.2)):
    audio.save(tmp_path / folder / "song.wav", np.full((2, 4410), value, np.float32))
  assert _separate(tmp_path / "a" / "song.wav", tmp_path / "b" / "song.wav", "-o", tmp_path / "out") == 0
  captured = capsys.readouterr()
  assert [pathlib.Path(p).name for p in captured.out.splitlines()] == ["song", "song (2)"]
  assert "b/song.wav: another input is also named 'song'; its stems go to 'song (2)'" in captured.err
  np.testing.assert_allclose(audio.load(tmp_path / "out" / "song" / "vocals.wav"), 0.1, atol=1e-6)
  np.testing.assert_allclose(audio.load(tmp_path / "out" / "song (2)" / "vocals.wav"), 0.2, atol=1e-6)


def test_a_bad_file_does_not_stop_the_batch(song, tmp_path, capsys):
  (tmp_path / "broken.wav").write_bytes(b"RIFF....not audio")
  code = _separate(tmp_path / "broken.wav", tmp_path / "missing.mp3", song, "-o", tmp_path / "out")
  assert code == 1
  err = capsys.readouterr().err
  assert "broken.wav" in err and "missing.mp3" in err and "2 of 3 songs failed" in err
  assert sorted(os.listdir(tmp_path / "out")) == ["song"]


def test_six_channels_give_six_channel_stems(tmp_path):
  mixture = np.random.default_rng(3).uniform(-0.2, 0.2, (6, 22050)).astype(np.float32)
  audio.save(tmp_path / "surround.wav", mixture, sample_rate=44100)
  assert _separate(tmp_path / "surround.wav", "-o", tmp_path / "out") == 0
  for target in TARGETS:
    (stem,), rate = audio.read(tmp_path / "out" / "surround" / f"{target}.wav")
    assert stem.shape == (6, 22050) and rate == 44100
    np.testing.assert_allclose(stem, mixture, atol=1e-5)  # "mixture" returns the song as every stem


# --- 8: outputs ----------------------------------------------------------------------------------------


def test_unwritable_outputs_fail_before_the_separation(song, tmp_path, capsys):
  (tmp_path / "file").write_text("x")
  for out in (tmp_path / "file", tmp_path / "file" / "below", pathlib.Path("/proc/mssjax-test")):
    assert _separate(song, "-o", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cannot write the stems there" in err and err.count("\n") == 1, err


def test_a_stem_name_taken_by_a_folder_leaves_no_partial_set(song, tmp_path, capsys):
  (tmp_path / "out" / "song" / "drums.wav").mkdir(parents=True)
  assert _separate(song, "-o", tmp_path / "out") == 1
  assert "drums.wav: is a folder" in capsys.readouterr().err
  assert os.listdir(tmp_path / "out" / "song") == ["drums.wav"]


def test_stems_are_written_as_a_set(tmp_path, monkeypatch):
  """A failure while writing the third stem leaves neither new stems nor temporary files."""
  folder = tmp_path / "song"
  stems = {t: np.full((2, 100), 0.1, np.float32) for t in TARGETS}
  separate.write_stems(folder, stems, sample_rate=44100)
  before = {t: (folder / f"{t}.wav").read_bytes() for t in TARGETS}
  real_write, calls = audio.soundfile.write, []

  def failing_write(*args, **kwargs):
    calls.append(args[0])
    if len(calls) == 3:
      raise OSError(28, "No space left on device", str(args[0]))
    return real_write(*args, **kwargs)

  monkeypatch.setattr(audio.soundfile, "write", failing_write)
  with pytest.raises(Exception, match="No space left"):
    separate.write_stems(folder, {t: s * 2 for t, s in stems.items()}, sample_rate=44100)
  assert {t: (folder / f"{t}.wav").read_bytes() for t in TARGETS} == before
  assert sorted(os.listdir(folder)) == sorted(f"{t}.wav" for t in TARGETS)


# --- 4, 11: result stores ------------------------------------------------------------------------------


def _evaluate_config(**data):
  sys.path.insert(0, str(REPO))
  from configs import evaluate as evaluate_config  # pylint: disable=import-outside-toplevel
  config = evaluate_config.get_config()
  config.methods, config.progress = "irm2", False
  config.data.n_generated, config.data.seconds = 1, 3.0
  config.report.n_audio_tracks = 1
  config.data.update(data)
  return config


def test_stores_resume_repair_and_rescore(tmp_path, capsys):
  from mssjax.evaluation import loop as evaluate_lib  # pylint: disable=import-outside-toplevel
  from mssjax.metrics import store  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "wd"
  first = evaluate_lib.evaluate(_evaluate_config(), workdir)
  assert first["done"] == 1
  results = workdir / "irm2" / "test"
  (path,) = list(results.glob("*.json"))
  track = path.stem
  # A kill's leftovers: temporary files of this version and of an older one are not results.
  (results / f".{track}.json.abc.partial").write_text('{"targets": [')
  (results / ".tmp-xyz.json").write_text('{"targets": [')
  again = evaluate_lib.evaluate(_evaluate_config(), workdir)
  assert (again["done"], again["skipped"]) == (0, 1)
  assert len(again["rows"]) == len(first["rows"])
  # A corrupt result is re-computed, with a warning naming it.
  good = path.read_text()
  path.write_text(good[:len(good) // 2])
  capsys.readouterr()
  assert evaluate_lib.evaluate(_evaluate_config(), workdir)["done"] == 1
  assert f"{path}: unreadable result" in capsys.readouterr().err
  assert json.loads(path.read_text()) == json.loads(good)
  # Other BSSEval settings re-score instead of mixing results.
  config = _evaluate_config()
  config.window_seconds = config.hop_seconds = 0.5
  assert store.result_problem(workdir, "irm2", "test", track, win=0.5, hop=0.5).startswith(f"{path}: scored with")
  assert evaluate_lib.evaluate(config, workdir)["done"] == 1
  frames = json.loads(path.read_text())["targets"][0]["frames"]
  assert frames[0]["duration"] == 0.5 and frames[1]["time"] == 0.5
  # The report's reference audio is repaired after a kill between its writes.
  reference = evaluate_lib.audio_folder(workdir, track, "reference")
  (reference / "bass.wav").unlink()
  path.unlink()
  evaluate_lib.evaluate(config, workdir)
  assert sorted(os.listdir(reference)) == sorted(f"{n}.wav" for n in ("mixture",) + TARGETS)


def test_a_corrupt_result_of_another_run_names_its_file(tmp_path):
  from mssjax.errors import DataError  # pylint: disable=import-outside-toplevel
  from mssjax.metrics import store  # pylint: disable=import-outside-toplevel
  (tmp_path / "m" / "test").mkdir(parents=True)
  (tmp_path / "m" / "test" / "t.json").write_text("{")
  with pytest.raises(DataError, match=r"t.json: not a readable museval result"):
    store.load_scores(tmp_path, ["m"], subset="test")


# --- 6, 12: the entry points ---------------------------------------------------------------------------


def _run(*args):
  return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=300,
                        check=False)


@pytest.mark.slow
def test_entry_points_print_one_line_errors(tmp_path):
  evaluate = ["evaluate.py", "--config", "configs/evaluate.py", "--workdir", tmp_path / "wd"]
  train = ["train.py", "--config", "configs/unet_tiny.py", "--workdir", tmp_path / "run"]
  for args, message in (
      (evaluate + ["--config.methods=hpss_repet,nope"], "unknown method(s) ['nope']"),
      (evaluate + ["--config.window_seconds=-1"], "window_seconds=-1.0 must be > 0"),
      (evaluate + [f"--config.data.root={tmp_path / 'missing'}"], "is not a folder"),
      (train + ["--config.model.name=unte"], "model.name='unte' is not known; valid choices: ['conv_tasnet', 'unet']"),
      (train + ["--config.eval.metric=sdr"], "eval.metric='sdr' is not known"),
  ):
    out = _run(*args)
    assert out.returncode == 2, (args, out.stderr[-2000:])
    assert out.stderr.strip().splitlines()[-1] == f"error: {out.stderr.split('error: ')[-1].strip()}"
    assert message in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]
  assert not (tmp_path / "wd").exists() and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_evaluate_exits_non_zero_when_tracks_fail(tmp_path):
  from mssjax.data import generate  # pylint: disable=import-outside-toplevel
  root = tmp_path / "songs"
  generate.write_songs(root, n_train=0, n_test=1, seconds=2.0)
  (track,) = (root / "test").iterdir()
  audio.save(track / "vocals.wav", np.zeros((2, 88200), np.float32), subtype="PCM_16")  # silent: BSSEval fails
  out = _run("evaluate.py", "--config", "configs/evaluate.py", "--workdir", tmp_path / "wd", "--config.methods=irm2",
             f"--config.data.root={root}", "--config.progress=False", "--config.report.enabled=False")
  assert out.returncode == 1, out.stderr[-2000:]
  assert "0 evaluated, 0 skipped, 1 failed" in out.stdout
