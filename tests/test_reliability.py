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
import jax
import jax.extend
import numpy as np
import pytest
import soundfile
from hypothesis import strategies as st

from mssjax import TARGETS, audio, separate
from mssjax.__main__ import main
from mssjax.errors import AudioError, ParameterError

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
  real_write, calls = soundfile.SoundFile.write, []

  def failing_write(self, data):
    calls.append(self.name)
    if len(calls) == 3:
      raise OSError(28, "No space left on device", self.name)
    return real_write(self, data)

  monkeypatch.setattr(soundfile.SoundFile, "write", failing_write)
  with pytest.raises(AudioError, match=r"song/bass.wav: cannot be written \(No space left on device\)"):
    separate.write_stems(folder, {t: s * 2 for t, s in stems.items()}, sample_rate=44100)
  assert {t: (folder / f"{t}.wav").read_bytes() for t in TARGETS} == before
  assert sorted(os.listdir(folder)) == sorted(f"{t}.wav" for t in TARGETS)
  assert os.listdir(tmp_path) == ["song"]


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
      (train + ["--config.model.name=unte"], "model.name='unte' is not known; valid choices: ['bs_roformer', 'conv_tasnet', 'umx', 'unet']"),
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


# --- issue 36, separation: sets, long songs, full disks, odd names, signals, leftovers ---------------


def _read_set(folder):
  """The stems of ``folder`` as one directory inode holds them ({name: first sample}); None if it went away."""
  try:
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
  except FileNotFoundError:
    return None
  try:
    values = {}
    for name in os.listdir(handle):
      with open(name, "rb", opener=lambda path, flags: os.open(path, flags, dir_fd=handle)) as file:
        values[name] = float(soundfile.read(file, frames=1, dtype="float32")[0][0, 0])
    # Still at its path when read: never moved away, so never being removed (an open inode is not reused).
    return values if os.stat(folder).st_ino == os.fstat(handle).st_ino else None
  except (FileNotFoundError, soundfile.LibsndfileError):
    return None  # the set was replaced while it was read, and is being removed
  finally:
    os.close(handle)


def test_two_writers_leave_one_complete_set(tmp_path):
  """#36 case 5: two writers on one folder, 40 rounds each; every read sees one writer's complete set."""
  import threading  # pylint: disable=import-outside-toplevel
  folder, rounds, seen = tmp_path / "song", 40, []

  def writer(value):
    for _ in range(rounds):
      separate.write_stems(folder, {t: np.full((2, 64), value, np.float32) for t in TARGETS}, sample_rate=44100)

  threads = [threading.Thread(target=writer, args=(v,)) for v in (0.25, 0.5)]
  for thread in threads:
    thread.start()
  while any(thread.is_alive() for thread in threads):
    seen.append(_read_set(folder))
  for thread in threads:
    thread.join()
  seen.append(_read_set(folder))
  complete = [s for s in seen if s]
  assert complete and seen[-1], seen[-5:]
  for stems in complete:
    assert sorted(stems) == sorted(f"{t}.wav" for t in TARGETS) and len(set(stems.values())) == 1, stems
  assert os.listdir(tmp_path) == ["song"]


def test_a_file_set_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
  """#36 case 5, export's module and JSON: a target that is a folder, or a failing replace, changes nothing."""
  from mssjax import fileio  # pylint: disable=import-outside-toplevel
  (tmp_path / "module").mkdir()
  with pytest.raises(IsADirectoryError, match="module"):
    with fileio.atomic_paths([tmp_path / "module", tmp_path / "module.json"]) as (module, meta):
      module.write_bytes(b"new")
      meta.write_text("new")
  assert sorted(os.listdir(tmp_path)) == ["module"]
  (tmp_path / "a").write_text("old a")
  real_replace = os.replace

  def replace(source, target):
    if pathlib.Path(target).name == "b":
      raise OSError(28, "No space left on device", str(target))
    return real_replace(source, target)

  monkeypatch.setattr(os, "replace", replace)
  with pytest.raises(OSError, match="No space left"):
    with fileio.atomic_paths([tmp_path / "a", tmp_path / "b"]) as (a, b):
      a.write_text("new a")
      b.write_text("new b")
  assert (tmp_path / "a").read_text() == "old a"
  assert sorted(os.listdir(tmp_path)) == ["a", "module"]


def test_export_to_a_folder_leaves_nothing(tmp_path, capsys):
  """#36 case 5: ``export -o DIR`` left DIR.jaxexport.json behind."""
  (tmp_path / "hpss.jaxexport").mkdir()
  code = main(["export", "--method", "mixture", "--chunk-seconds", "0.5", "--overlap-seconds", "0.1", "-o", str(tmp_path / "hpss.jaxexport")])
  assert code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "hpss.jaxexport" in err and err.count("\n") == 1, err
  assert os.listdir(tmp_path) == ["hpss.jaxexport"] and not os.listdir(tmp_path / "hpss.jaxexport")


LONG_SONG = """
import sys
import numpy as np
from mssjax import audio
from mssjax.__main__ import main
def status(key):
  return int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) // 1024
folder, minutes, rate = sys.argv[1], float(sys.argv[2]), 48000
with audio.BlockWriter(f"{folder}/long.wav", sample_rate=rate, channels=2, subtype="PCM_16") as writer:
  for second in range(int(minutes * 60)):
    t = np.arange(second * rate, (second + 1) * rate) / rate
    writer.write(np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)]))
# longer than one 30 s chunk, so that the warm-up compiles the chunk the long song uses (a shorter song is
# one chunk of its own length)
audio.save(f"{folder}/short.wav", np.zeros((2, 40 * rate), np.float32), sample_rate=rate)
assert main(["separate", f"{folder}/short.wav", "--method", "mixture", "-o", f"{folder}/out", "--quiet"]) == 0
before = status("VmRSS")  # compiled and warm
open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
assert main(["separate", f"{folder}/long.wav", "--method", "mixture", "-o", f"{folder}/out", "--quiet"]) == 0
print("GROWTH_MB", status("VmHWM") - before)
"""


@pytest.mark.slow
def test_a_long_song_separates_in_bounded_memory(tmp_path):
  """#36 case 7: 5 minutes at 48 kHz (resampled for the 44.1 kHz separator and back). Held whole, its input,
  resampled copies and four stems took 1.1 GB; streamed, memory grows by about one 30 s chunk's arrays."""
  result = subprocess.run([sys.executable, "-c", LONG_SONG, str(tmp_path), "5"], cwd=REPO, capture_output=True,
                          text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  growth = int(result.stdout.split("GROWTH_MB")[1])
  assert growth < 300, growth
  stems = tmp_path / "out" / "long"
  header = audio.info(stems / "vocals.wav")
  assert (header.frames, header.sample_rate, header.channels) == (5 * 60 * 48000, 48000, 2)
  with soundfile.SoundFile(stems / "bass.wav") as stem:
    start = 4 * 60 * 48000 + 123
    stem.seek(start)
    t = np.arange(start, start + 1000) / 48000
    np.testing.assert_allclose(stem.read(1000, dtype="float32")[:, 0], 0.3 * np.sin(2 * np.pi * 220 * t), atol=1e-3)


@pytest.mark.parametrize("error", [soundfile.LibsndfileError(2), OSError(28, "No space left on device")])
def test_a_full_disk_fails_one_song_and_the_batch_goes_on(tmp_path, capsys, monkeypatch, error):
  """#36 cases 9, 17: a write error is one line naming the stem; that song leaves nothing, the next is written."""
  for name in ("a", "b"):
    audio.save(tmp_path / f"{name}.wav", np.full((2, 4410), 0.1, np.float32))
  real_write = soundfile.SoundFile.write

  def write(self, data):
    if b"/.a.partial-" in os.fsencode(self.name):
      raise error
    return real_write(self, data)

  monkeypatch.setattr(soundfile.SoundFile, "write", write)
  assert _separate(tmp_path / "a.wav", tmp_path / "b.wav", "-o", tmp_path / "out") == 1
  err = capsys.readouterr().err.splitlines()
  assert err[0].startswith(f"error: {tmp_path / 'out' / 'a' / 'vocals.wav'}: cannot be written (") and \
      ("System error" in err[0] or "No space left" in err[0]), err
  assert err[1:] == ["1 of 2 songs failed"]
  assert os.listdir(tmp_path / "out") == ["b"]
  assert sorted(os.listdir(tmp_path / "out" / "b")) == sorted(f"{t}.wav" for t in TARGETS)


def test_a_name_that_is_not_utf8_is_separated(tmp_path, monkeypatch):
  """#36 case 10, the reproduction: ``printf 'bad\\xff.wav'``; its stems go to ``bad\\xff/``, printed escaped
  on a strict UTF-8 stdout (a pipe's: where the UnicodeEncodeError came from)."""
  import io  # pylint: disable=import-outside-toplevel
  name = os.fsdecode(b"bad\xff.wav")
  audio.save(tmp_path / name, np.full((2, 4410), 0.1, np.float32))
  stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
  monkeypatch.setattr(sys, "stdout", stdout)
  assert _separate(tmp_path / name, "-o", tmp_path / "out") == 0
  stdout.seek(0)
  assert stdout.read().strip() == f"{tmp_path / 'out'}/bad\\xff"
  assert os.listdir(os.fsencode(tmp_path / "out")) == [b"bad\xff"]
  assert sorted(os.listdir(tmp_path / "out" / os.fsdecode(b"bad\xff"))) == sorted(f"{t}.wav" for t in TARGETS)


def test_a_signal_while_stems_are_written_leaves_nothing(tmp_path):
  """#36 cases 14, 15: SIGINT or SIGTERM during a separation: one line, no traceback, no partial set."""
  import signal  # pylint: disable=import-outside-toplevel
  import time  # pylint: disable=import-outside-toplevel
  path = tmp_path / "song.wav"
  audio.save(path, np.full((2, 20 * 60 * 8000), 0.1, np.float32), sample_rate=8000, subtype="PCM_16")
  runs = {number: (tmp_path / f"out{number}", subprocess.Popen(
      [sys.executable, "-m", "mssjax", "separate", str(path), "--method", "mixture", "-o", str(tmp_path / f"out{number}"),
       "--quiet"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
          for number in (signal.SIGINT, signal.SIGTERM)}  # both at once: they wait for jax together
  for number, (out, process) in runs.items():
    deadline = time.monotonic() + 120
    while not (out.is_dir() and os.listdir(out)) and time.monotonic() < deadline and process.poll() is None:
      time.sleep(0.02)  # until the stems are being written
    assert process.poll() is None, process.communicate()
    process.send_signal(number)
  for number, (out, process) in runs.items():
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, (stdout, stderr[-2000:])
    message = "error: interrupted" if number == signal.SIGINT else "error: terminated (SIGTERM)"
    assert stderr.strip().splitlines()[-1] == message and "Traceback" not in stderr, stderr[-2000:]
    assert not out.exists()


def test_a_later_run_removes_what_a_killed_one_left(tmp_path):
  """#36 case 15: temporary folders of writers that are gone are removed; a running writer's are kept."""
  song = tmp_path / "song.wav"
  audio.save(song, np.full((2, 4410), 0.1, np.float32))
  gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                        check=True).stdout.strip()
  stale, running = tmp_path / "out" / f".song.partial-{gone}-abc123", tmp_path / "out" / ".x.partial-1-def456"
  for folder in (stale, running, tmp_path / "out" / "song"):
    folder.mkdir(parents=True)
    (folder / "vocals.wav").write_bytes(b"half")
  (tmp_path / "out" / "song" / ".drums.wav.k2j3.partial").write_bytes(b"half")  # the old scheme's leftovers
  assert _separate(song, "-o", tmp_path / "out") == 0
  assert sorted(os.listdir(tmp_path / "out")) == [running.name, "song"]  # pid 1 runs
  assert sorted(os.listdir(tmp_path / "out" / "song")) == sorted(f"{t}.wav" for t in TARGETS)


def test_an_early_failure_leaves_no_folder(tmp_path, capsys, monkeypatch):
  """#36 case 17: bad weights, or no memory half-way through a song: no output folder, no song folder."""
  song = tmp_path / "song.wav"
  audio.save(song, np.full((2, 4410), 0.1, np.float32))
  assert main(["separate", str(song), "--checkpoint", str(tmp_path / "missing"), "-o", str(tmp_path / "out")]) == 2
  assert "missing" in capsys.readouterr().err and not (tmp_path / "out").exists()
  real_read_blocks = audio.read_blocks

  def read_blocks(path, **kwargs):
    header, blocks = real_read_blocks(path, **kwargs)

    def failing():
      yield next(blocks)
      raise MemoryError
    return header, failing()

  monkeypatch.setattr(audio, "read_blocks", read_blocks)
  assert _separate(song, song, "-o", tmp_path / "out") == 1
  assert capsys.readouterr().err.splitlines() == [f"error: {song}: out of memory while separating"] * 2 + \
      ["2 of 2 songs failed"]
  assert not (tmp_path / "out").exists()


# --- 8: settings whose memory grows with their value -------------------------------------------------


def test_check_memory_names_the_setting(monkeypatch):
  from mssjax import errors  # pylint: disable=import-outside-toplevel
  assert errors.available_memory() > 0
  monkeypatch.setattr(errors, "available_memory", lambda: 8 * 2**30)
  errors.check_memory("shifts=4", 2**30)
  with pytest.raises(ParameterError, match=r"^shifts=1000 needs about 45\.0 GiB of memory; 8\.0 GiB are available"):
    errors.check_memory("shifts=1000", 45 * 2**30)


@pytest.mark.timeout(60)
def test_a_rank_the_machine_cannot_hold_is_one_line_before_any_work(song, tmp_path, capsys, monkeypatch):
  # `--set nmf.n_components=100000` allocated 43 GB and died with a traceback. The available memory is
  # pinned, so the test never allocates, whatever the machine.
  from mssjax import decompose, errors  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(errors, "available_memory", lambda: 16 * 2**30)
  code = main(["separate", str(song), "--method", "nmf", "--set", "nmf.n_components=100000", "-o",
               str(tmp_path / "out"), "--quiet"])
  err = capsys.readouterr().err
  assert code != 0 and err.count("error:") == 1 and "Traceback" not in err
  assert "nmf.n_components=100000 needs about 77.6 GiB of memory; 16.0 GiB are available" in err
  with pytest.raises(ParameterError, match="n_components=100000 needs about"):
    decompose.nmf(np.ones((2049, 130), np.float32), n_components=100000, key=jax.random.PRNGKey(0))


@pytest.mark.timeout(120)
def test_a_chunk_the_machine_cannot_hold_is_one_line_before_it_runs(song, tmp_path, capsys, monkeypatch):
  # `--chunk-seconds 3600` on a 1-hour song: hpss_repet's similarity matrix alone is 290 GiB (XLA's memory
  # analysis of the compiled chunk). The check reads that analysis; the available memory is pinned here.
  from mssjax import errors, separators  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(errors, "available_memory", lambda: 2**10)
  code = main(["separate", str(song), "--method", "irm1", "-o", str(tmp_path / "out"), "--quiet"])
  assert code != 0  # an oracle: refused before any memory question
  capsys.readouterr()
  code = main(["separate", str(song), "--method", "mixture", "--chunk-seconds", "0.5", "--overlap-seconds", "0.1", "-o", str(tmp_path / "out"),
               "--quiet"])
  err = capsys.readouterr().err
  assert code != 0 and "Traceback" not in err and not (tmp_path / "out").exists()
  assert "error: " in err and "chunk_seconds=0.5 (mixture, 22050 samples) needs about" in err
  monkeypatch.undo()
  separator = separators.get("mixture")
  x = np.ones((2, 1000), np.float32)
  np.testing.assert_array_equal(separator.separate_chunk(x), np.asarray(separator(x)["vocals"])[None].repeat(4, 0))
  assert list(separator._compiled) == [1000]  # pylint: disable=protected-access  # compiled once per length


def test_a_chunk_longer_than_the_song_is_the_song():
  # `--method hpss_repet --chunk-seconds 1e9` asked for 321 TiB, `3600` on a 3 s song for 4 GB of padding.
  from mssjax import separators  # pylint: disable=import-outside-toplevel
  n = 3 * 44100
  for seconds in (1e9, 3600.0):
    separator = separators.get("hpss_repet", {"chunk_seconds": seconds})
    assert separate.chunk_samples(separator, n) == (n, 0)
  assert separate.chunk_samples(separators.get("hpss_repet"), 3600 * 44100) == (30 * 44100, 44100)


def _largest_array(jaxpr):
  """Elements of the largest array a jaxpr (or any jaxpr inside it) makes."""
  sizes = [0]
  for eqn in jaxpr.eqns:
    sizes += [int(np.prod(v.aval.shape)) for v in eqn.outvars if hasattr(v.aval, "shape")]
    for param in eqn.params.values():
      for inner in param if isinstance(param, (tuple, list)) else (param,):
        if isinstance(inner, (jax.extend.core.Jaxpr, jax.extend.core.ClosedJaxpr)):
          sizes.append(_largest_array(getattr(inner, "jaxpr", inner)))
  return max(sizes)


def test_shifts_run_one_pass_at_a_time():
  # `--set shifts=1000` ran every pass in one batch: a 45 GB allocation. Now the largest array is that of
  # one pass, whatever the number of passes (traced only: nothing is compiled or run).
  from mssjax import separators  # pylint: disable=import-outside-toplevel
  from mssjax.separators import network  # pylint: disable=import-outside-toplevel
  unet = separators.get("unet")
  net = unet.network
  x = np.zeros((1, 2, 3 * net.hop_length + 100), np.float32)

  def largest(shifts):
    return _largest_array(jax.make_jaxpr(lambda p, x: network.separate_with_params(
        net.graphdef, p, x, n_fft=net.n_fft, hop_length=net.hop_length, shifts=shifts))(unet.params, x).jaxpr)

  assert largest(1000) == largest(2)
