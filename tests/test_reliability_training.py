"""The training, checkpoint and export side of the reliability issue (#36): a workdir lock, unreadable
checkpoints, config files that fail, OS errors at the outputs, SIGINT and SIGTERM during training.

Each test is the reproduction of its case: one ``error:`` line (exit 2) or the
right behaviour, and nothing half-written left behind.
"""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from mssjax import audio, checkpoints, cli, distributed, fileio
from mssjax.errors import CheckpointError
from mssjax.training import loop as train_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "unet_tiny.py")
sys.path.insert(0, str(REPO))  # the configs/ folder
from configs import unet_tiny  # pylint: disable=wrong-import-position


def tiny_config(steps=6):
  config = unet_tiny.get_config()
  config.num_train_steps, config.checkpoint_every, config.eval_every = steps, 2, 6
  return config


def _one_error_line(capsys, code, *needles):
  err = capsys.readouterr().err
  assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err[-3000:]
  for needle in needles:
    assert str(needle) in err, err
  return err


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A finished 6-step run: checkpoints/4, checkpoints/6 and best/6."""
  path = tmp_path_factory.mktemp("trained") / "w"
  train_lib.train_and_evaluate(tiny_config(), path)
  return path


@pytest.fixture()
def song(tmp_path):
  path = tmp_path / "song.wav"
  audio.save(path, np.random.default_rng(0).uniform(-0.3, 0.3, (2, 11025)).astype(np.float32))
  return path


# --- 2: the workdir lock -------------------------------------------------------------------------------

HOLD = ("import sys, time; from mssjax import fileio; lock = fileio.FileLock(sys.argv[1]); "
        "assert lock.acquire() is None; print('locked', flush=True); time.sleep(120)")


def test_a_second_run_on_a_workdir_fails_at_once_naming_the_holder(tmp_path, capsys):
  """Another process holds the workdir's lock: train and evaluate fail with one line naming it; once the
  holder is killed (-9) the lock is free (the OS releases it)."""
  lock_file = tmp_path / "w" / distributed.LOCK_FILE
  holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_file)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
  try:
    assert holder.stdout.readline().strip() == "locked"
    code = cli.main(["train", "--config", TINY, "--workdir", str(tmp_path / "w"), "--quiet"])
    _one_error_line(capsys, code, f"workdir='{tmp_path / 'w'}' is in use by another run (pid {holder.pid} on ")
    assert sorted(os.listdir(tmp_path / "w")) == [distributed.LOCK_FILE]  # no config, no checkpoint
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  lock = fileio.FileLock(lock_file)
  assert lock.acquire() is None
  assert fileio.FileLock(lock_file).acquire() == f"pid {os.getpid()} on {socket.gethostname()}"
  lock.release()


# --- 11: unreadable checkpoints -------------------------------------------------------------------------


def _truncate(step):
  for file in sorted((step / "params" / "d").iterdir()):
    file.write_bytes(file.read_bytes()[:10])


def _flip(step):
  for file in sorted((step / "params" / "d").iterdir()):
    data = bytearray(file.read_bytes())
    data[20::7] = bytes(b ^ 0xFF for b in data[20::7])
    file.write_bytes(bytes(data))


def _delete_params(step):
  shutil.rmtree(step / "params")


CORRUPTIONS = {"truncated": _truncate, "bit-flipped": _flip, "params deleted": _delete_params}


@pytest.mark.parametrize("corrupt", sorted(CORRUPTIONS))
def test_separate_falls_back_from_an_unreadable_checkpoint(workdir, song, tmp_path, capfd, corrupt):
  """The latest checkpoint damaged: separate uses the one before with a warning naming it, and no orbax
  traceback ("Event loop is closed") follows."""
  w = tmp_path / "w"
  shutil.copytree(workdir, w)
  CORRUPTIONS[corrupt](w / "checkpoints" / "6")
  code = cli.main(["separate", str(song), "--checkpoint", str(w), "--set", "which=latest", "-o",
                   str(tmp_path / "out"), "--quiet"])
  err = capfd.readouterr().err
  assert code == 0, err[-3000:]
  assert err.splitlines() == [err.splitlines()[0]] and "Traceback" not in err, err[-3000:]
  assert err.startswith(f"warning: {w / 'checkpoints' / '6'}: unreadable checkpoint (")
  assert err.rstrip().endswith(f"using {w / 'checkpoints' / '4'} instead")


def test_no_readable_checkpoint_and_a_config_of_another_model_are_one_line(workdir, tmp_path, capfd):
  w = tmp_path / "w"
  shutil.copytree(workdir, w)
  for step in (w / "checkpoints" / "4", w / "checkpoints" / "6", w / "best" / "6"):
    _truncate(step)
  code = cli.main(["export-weights", str(w), "-o", str(tmp_path / "x.safetensors")])
  err = capfd.readouterr().err
  assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err[-3000:]
  assert err.startswith(f"error: {w}: no readable checkpoint ({w / 'best' / '6'}: ValueError: OUT_OF_RANGE")
  assert not (tmp_path / "x.safetensors").exists()
  shutil.rmtree(w)
  shutil.copytree(workdir, w)
  text = (w / "config.json").read_text()
  (w / "config.json").write_text(text.replace('"lstm_hidden": 8', '"lstm_hidden": 16'))
  code = cli.main(["export-weights", str(w), "-o", str(tmp_path / "x.safetensors")])
  err = capfd.readouterr().err
  assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err[-3000:]
  assert err.startswith(f"error: {w / 'config.json'} does not describe the saved model: {w / 'best' / '6' / 'params'}:"
                        " the saved arrays do not fit (bottleneck/lstm/")


def test_resume_moves_an_unreadable_checkpoint_aside_and_goes_on(workdir, tmp_path, capfd):
  """Training resumes from the last readable checkpoint; the bad one is kept under another name so that
  its step can be saved again; with none readable left, one CheckpointError names each."""
  w = tmp_path / "w"
  shutil.copytree(workdir, w)
  _flip(w / "checkpoints" / "6")
  state = train_lib.train_and_evaluate(tiny_config(steps=8), w, allow_config_change=True)
  err = capfd.readouterr().err
  assert int(state.step) == 8 and "Traceback" not in err and "Event loop" not in err, err[-3000:]
  assert f"warning: {w / 'checkpoints' / '6'}: unreadable checkpoint (ValueError: " in err
  (aside,) = [name for name in os.listdir(w / "checkpoints") if name.startswith("6.unreadable-")]
  assert f"warning: {w / 'checkpoints' / '6'} moved to {aside}; training resumes from step 4" in err
  assert sorted(n for n in os.listdir(w / "checkpoints") if n.isdigit()) == ["6", "8"]
  for name in ("6", "8"):
    _delete_params(w / "checkpoints" / name)
  with pytest.raises(CheckpointError, match=rf"{w / 'checkpoints'}: no readable checkpoint \({w / 'checkpoints' / '8'}"
                     rf": FileNotFoundError: .*; {w / 'checkpoints' / '6'}: FileNotFoundError"):
    train_lib.train_and_evaluate(tiny_config(steps=10), w, allow_config_change=True)


# --- 12: config files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text,message", [
    ("def get_config():\n  raise SystemExit('bye')\n", "SystemExit: bye"),
    ("def get_config(\n", "SyntaxError"),
    ("def get_config():\n  return [1]\n", "get_config() returned a list, not an ml_collections.ConfigDict"),
])
def test_a_separator_config_file_that_fails_is_one_line_naming_it(text, message, song, tmp_path, capsys):
  """``separate --config FILE`` (the old --method-config) goes through the one loader of config files."""
  file = tmp_path / "method.py"
  file.write_text(text)
  code = cli.main(["separate", str(song), "--method", "hpss_repet", "--config", str(file), "-o", str(tmp_path / "o")])
  _one_error_line(capsys, code, f"error: --config {file}: ", message)
  assert not (tmp_path / "o").exists()


# --- 13: OS errors at the outputs ----------------------------------------------------------------------


def test_outputs_that_cannot_be_written_are_one_line_naming_them(workdir, tmp_path, capsys, monkeypatch):
  """A path below a file and a folder where a file goes (root cannot write either): export,
  export-weights, train and data prepare fail before any work, naming the path, and write nothing."""
  monkeypatch.chdir(tmp_path)
  pathlib.Path("file").write_text("x")
  pathlib.Path("folder").mkdir()
  pathlib.Path("songs/train/t").mkdir(parents=True)
  export = ["export", "--method", "hpss_repet", "--set", "chunk_seconds=1", "-o"]
  for argv, message in (
      (export + ["file/m.jaxexport"], "file/m.jaxexport: cannot be written: file is a file, not a folder"),
      (export + ["folder"], "folder: is a folder; a file goes there"),
      (["export-weights", str(workdir), "-o", "file/w.safetensors"], "file/w.safetensors: cannot be written: file"),
      (["export-weights", str(workdir), "-o", "folder"], "folder: is a folder; a file goes there"),
      (["train", "--config", TINY, "--workdir", "file/w"], f"{tmp_path / 'file' / 'w'}: cannot be written: "
                                                          f"{tmp_path / 'file'} is a file, not a folder"),
      (["train", "--config", TINY, "--workdir", "file"], f"{tmp_path / 'file'}: is a file, not a folder"),
      (["data", "prepare", "--root", "songs", "-o", "file/p"], "file/p: cannot be written: file is a file"),
      (["data", "prepare", "--root", "songs", "-o", "file"], "file: is a file, not a folder"),
  ):
    _one_error_line(capsys, cli.main(argv), f"error: {message}")
  assert sorted(os.listdir(tmp_path)) == ["file", "folder", "songs"] and not os.listdir("folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_one_line(tmp_path, capsys):
  (tmp_path / "ro").mkdir(mode=0o555)
  code = cli.main(["export", "--method", "hpss_repet", "-o", str(tmp_path / "ro" / "m.jaxexport")])
  _one_error_line(capsys, code, f"{tmp_path / 'ro'} is read-only")
  assert fileio.check_writable(tmp_path / "rw" / "x") == tmp_path / "rw" / "x"


# --- 14: SIGINT and SIGTERM during training ---------------------------------------------------------------


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_an_interrupted_run_ends_in_one_line_and_resumes(tmp_path, capsys, signal_name):
  """Interrupted after its first checkpoint (as a terminal or a cluster does, to the process group): exit 2,
  one line saying where the last complete checkpoint is, no orbax temporary folder; a resume goes on."""
  w = tmp_path / "w"
  train = ["train.py", "--config", TINY, "--workdir", str(w), "--set", "num_train_steps=100000",
           "--set", "eval_every=0", "--set", "checkpoint_every=2"]
  process = subprocess.Popen([sys.executable, *train], cwd=REPO, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
  try:
    deadline = time.monotonic() + 240
    while not (w / "checkpoints" / "2").is_dir() and process.poll() is None and time.monotonic() < deadline:
      time.sleep(0.1)
    os.killpg(process.pid, getattr(signal, signal_name))
    err = process.communicate(timeout=120)[1]
  finally:
    if process.poll() is None:
      process.kill()
  assert process.returncode == 2, err[-3000:]
  steps = sorted(int(n) for n in os.listdir(w / "checkpoints"))  # no N.orbax-checkpoint-tmp
  suffix = "" if signal_name == "SIGINT" else f" ({signal_name})"
  lines = err.strip().splitlines()
  assert len(lines) <= 3 and "Traceback" not in err, err[-3000:]
  assert lines[-1] == f"error: interrupted{suffix}; the last complete checkpoint is step {steps[-1]} in {w / 'checkpoints'}"
  code = cli.main(["train", "--config", TINY, "--workdir", str(w), "--set", f"num_train_steps={steps[-1] + 1}",
                   "--set", "eval_every=0", "--set", "checkpoint_every=2", "--allow-config-change"])
  assert code == 0, capsys.readouterr().err[-3000:]
  assert checkpoints.managers(w, create=False).latest.latest_step() == steps[-1] + 1
