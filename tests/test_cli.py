"""mssjax.cli: one front end, one override syntax (--config FILE, --set KEY=VALUE), one error line."""

import json
import pathlib
import shutil
import subprocess
import sys

import ml_collections
import pytest

from mssjax import cli, commands
from mssjax import config as config_lib
from mssjax.errors import ParameterError

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "unet_tiny.py")
EVALUATE = str(REPO / "configs" / "evaluate.py")


def _settings(capsys, *argv):
  """The ``KEY=VALUE`` lines ``--list-settings`` prints, as a dict."""
  assert cli.main([*argv, "--list-settings"]) == 0, capsys.readouterr().err
  return dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())


def _error(capsys, *argv):
  """The one ``error:`` line of a failing command (exit status 2, no traceback)."""
  assert cli.main(list(argv)) == 2
  captured = capsys.readouterr()
  assert captured.err.count("\n") == 1 and captured.err.startswith("error: "), captured.err
  assert "Traceback" not in captured.err
  return captured.err.strip()


# --- the commands and their help ------------------------------------------------------------------------


def test_help_lists_every_command_on_one_line_each(capsys):
  assert cli.main(["--help"]) == 0
  out = capsys.readouterr().out
  for name in ("train", "evaluate", "separate", "score", "export", "export-weights", "data prepare", "data validate",
               "data generate", "data build"):
    assert name in commands.COMMANDS
    assert sum(line.strip().startswith(name + " ") for line in out.splitlines()) == 1, name
  assert "--set KEY=VALUE" in out
  assert cli.main([]) == 2 and "commands:" in capsys.readouterr().err


@pytest.mark.parametrize("argv,shown", [
    (["separate"], ["method=unet", "chunk_seconds=None", "= --set chunk_seconds=VALUE"]),
    (["separate", "--method", "hpss_repet"], ["hpss.kernel_size=", "bass_cutoff_hz=200.0"]),
    (["export"], ["platforms=cpu,cuda", "= --set platforms=VALUE"]),
    (["score"], ["window_seconds=1.0", "targets=()", "--no-report", "= --set report=False"]),
    (["export-weights"], ["which=best", "storage_dtype=float32"]),
    (["data", "prepare"], ["segment=30.0", "position=active", "--drop-short", "= --set keep_short=False"]),
    (["data", "generate"], ["n_train=8", "seconds=10.0", "layout=auto"]),
    (["train", "--config", TINY], ["num_train_steps=4", "model.features=4,8", "--workdir"]),
    (["evaluate", "--config", EVALUATE], ["methods=unet,hpss_repet,nmf,irm2,mixture", "data.subset=test"]),
    (["train"], ["no --config FILE given"]),
])
def test_command_help_shows_its_settings_with_defaults(argv, shown, capsys):
  assert cli.main([*argv, "--help"]) == 0
  out = capsys.readouterr().out
  assert "--set KEY=VALUE" in out and "--config FILE" in out
  for text in shown:
    assert text in out, (text, out)


def test_data_commands_answer_under_both_names(capsys):
  from mssjax.data.__main__ import main  # pylint: disable=import-outside-toplevel
  assert main(["--help"]) == 0 and "data validate" in capsys.readouterr().out
  assert main(["validate", "--set", "silent_db=-70", "--list-settings"]) == 0
  assert capsys.readouterr().out.splitlines() == [
      f"{key}={value}" for key, value in _settings(capsys, "data", "validate", "--set", "silent_db=-70").items()]
  assert "unknown command 'data nonsense'" in _error(capsys, "data", "nonsense")


# --- one override syntax ----------------------------------------------------------------------------------


@pytest.mark.parametrize("argv,key,value", [
    (["separate", "--set", "method=hpss_repet"], "hpss.kernel_size", "31,17"),
    (["separate"], "weights", "some/file.safetensors"),
    (["export", "--set", "method=nmf"], "nmf.n_iter", "7"),
    (["export"], "platforms", "cpu"),
    (["score"], "targets", "vocals,accompaniment"),
    (["export-weights"], "storage_dtype", "float16"),
    (["data", "prepare"], "keep_short", "False"),
    (["data", "generate"], "stems", "guitar,piano"),
    (["data", "validate"], "residual_db", "-10.0"),
    (["data", "build"], "builder_config", "hq_10s"),
    (["train", "--config", TINY], "data.batch_size", "3"),
    (["train", "--config", TINY], "optim.freeze", "encoder"),
    (["evaluate", "--config", EVALUATE], "separators.hpss_repet.hpss.kernel_size", "31,17"),
])
def test_set_and_config_dot_forms_change_the_same_setting(argv, key, value, capsys):
  default = _settings(capsys, *argv)
  assert default[key] != value
  with_set = _settings(capsys, *argv, "--set", f"{key}={value}")
  assert with_set[key] == value
  assert with_set == dict(default, **{key: value})
  assert _settings(capsys, *argv, f"--config.{key}={value}") == with_set
  assert _settings(capsys, *argv, f"--config.{key}", value) == with_set


def test_values_are_read_as_their_defaults_type():
  config = ml_collections.ConfigDict(dict(n=1, x=1.0, flag=True, name="a", pair=(1, 2), names=("a", "b"), free=None))
  got = config_lib.parse_assignments(["n=3", "x=2", "flag=false", "name=123", "pair=31,17", "names=vocals",
                                      "free=runs/a", "free=(1, 2)"], config)
  assert got == dict(n=3, x=2.0, flag=False, name="123", pair=(31, 17), names=("vocals",), free=(1, 2))
  assert type(got["x"]) is float  # pylint: disable=unidiomatic-typecheck
  for bad, message in (("n=1.5", "n='1.5' must be an integer"), ("x=loud", "x='loud' must be a number"),
                       ("flag=maybe", "flag='maybe' must be true or false"), ("n", "must be KEY=VALUE")):
    with pytest.raises(ParameterError, match=message):
      config_lib.parse_assignments([bad], config)


def test_shorthands_are_set_in_command_line_order(capsys):
  hpss = ("separate", "--method", "hpss_repet")
  assert _settings(capsys, *hpss, "--chunk-seconds", "5", "--set", "chunk_seconds=7")["chunk_seconds"] == "7.0"
  assert _settings(capsys, *hpss, "--set", "chunk_seconds=7", "--chunk-seconds", "5")["chunk_seconds"] == "5.0"
  assert _settings(capsys, "data", "prepare", "--drop-short")["keep_short"] == "False"
  assert _settings(capsys, "score", "--no-report", "--root", "r")["report"] == "False"


def test_a_config_file_sets_every_key_and_chooses_the_separator(tmp_path, capsys):
  assert _settings(capsys, "separate", "--config", str(REPO / "configs" / "nmf.py"))["method"] == "nmf"
  file = tmp_path / "prepare_config.py"
  file.write_text("import ml_collections\n"
                  "from mssjax import commands\n\n"
                  "def get_config():\n"
                  "  config = commands.COMMANDS['data prepare'].settings(None, {})\n"
                  "  config.segment = 12.0\n"
                  "  return config\n")
  assert _settings(capsys, "data", "prepare", "--config", str(file))["segment"] == "12.0"
  assert _settings(capsys, "data", "prepare", "--config", str(file), "--set", "segment=3")["segment"] == "3.0"


# --- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv,key", [
    (["separate", "song.wav", "--set", "hpss.kernal_size=3"], "hpss.kernal_size"),
    (["separate", "--method", "hpss_repet", "--set", "hpss.kernal_size=3"], "hpss.kernal_size"),
    (["score", "est", "-o", "out", "--set", "windw_seconds=2"], "windw_seconds"),
    (["data", "generate", "-o", "out", "--config.n_trian=2"], "n_trian"),
    (["train", "--config", TINY, "--workdir", "w", "--set", "optim.learning_rat=1"], "optim.learning_rat"),
    (["evaluate", "--config", EVALUATE, "--workdir", "w", "--set", "method=irm2"], "method"),
])
def test_a_misspelled_key_fails_listing_the_valid_ones(argv, key, tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(tmp_path)
  line = _error(capsys, *argv)
  assert f"unknown key {key!r}; valid keys: " in line
  valid = line.split("valid keys: ")[1].split(", ")
  assert len(valid) > 3 and key not in valid and valid == sorted(valid)
  assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("text,message", [
    ("def get_config(:\n", "SyntaxError"),
    ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
    ("def get_config():\n  return {'a': 1}\n", "get_config() returned a dict, not an ml_collections.ConfigDict"),
    ("def get_config():\n  return 1 / 0\n", "ZeroDivisionError"),
    ("import ml_collections\n", "defines no get_config()"),
])
def test_a_bad_config_file_is_one_error_line_naming_it(text, message, tmp_path, capsys):
  file = tmp_path / "bad_config.py"
  file.write_text(text)
  for command in (["train", "--workdir", str(tmp_path / "w")], ["separate", "song.wav"], ["data", "generate"]):
    line = _error(capsys, *command, "--config", str(file))
    assert line.startswith(f"error: --config {file}: ") and message in line, line
  assert _error(capsys, "evaluate", "--config", str(tmp_path / "none.py")) == \
      f"error: --config {tmp_path / 'none.py'}: no such file"


def test_a_config_file_of_other_keys_is_refused(capsys):
  assert "unknown keys" in _error(capsys, "data", "prepare", "--config", EVALUATE)
  assert "unknown keys" in _error(capsys, "separate", "--method", "nmf", "--config",
                                  str(REPO / "configs" / "hpss_repet.py"))


def test_expected_failures_are_one_line_and_debug_shows_the_traceback(capsys, monkeypatch):
  def interrupted(args, config):
    raise KeyboardInterrupt

  def unwritable(args, config):
    raise PermissionError(13, "Permission denied", "out/x.wav")

  assert _error(capsys, "data", "generate") == "error: -o OUT (the output folder) is not given"
  generate = commands.COMMANDS["data generate"]
  monkeypatch.setitem(commands.COMMANDS, "data generate", generate._replace(run=interrupted))
  assert _error(capsys, "data", "generate", "-o", "x") == "error: interrupted"
  monkeypatch.setitem(commands.COMMANDS, "data generate", generate._replace(run=unwritable))
  assert _error(capsys, "data", "generate", "-o", "x") == "error: [Errno 13] Permission denied: 'out/x.wav'"
  assert cli.main(["data", "generate", "-o", "x", "--debug"]) == 2
  err = capsys.readouterr().err
  assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: [Errno 13]")
  assert _error(capsys, "separate", "--nonsense").startswith("error: unrecognized arguments: --nonsense")
  assert _error(capsys, "data", "generate", "--set", "n_train=two") == \
      "error: data generate settings: n_train='two' must be an integer (the default is 8)"


# --- the same syntax runs every command ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
  """Two generated 1 s songs (musdb18hq layout), written by ``data generate`` with --set."""
  root = tmp_path_factory.mktemp("songs")
  assert cli.main(["data", "generate", "-o", str(root), "--set", "n_train=0", "--set", "n_test=2",
                   "--set", "seconds=1.0", "--config.seed=3", "--quiet"]) == 0
  return root


def test_data_generate_and_validate(songs, tmp_path, capsys):
  assert sorted(p.parent.parent.name for p in songs.glob("*/*/mixture.wav")) == ["test", "test"]
  report = tmp_path / "report.json"
  assert cli.main(["data", "validate", "--set", f"root={songs}", "--set", "residual_db=-10", "-o", str(report),
                   "--quiet"]) == 0
  assert len(json.loads(report.read_text())) == 2
  capsys.readouterr()


def test_separate_then_score(songs, tmp_path, capsys):
  mixtures = tmp_path / "mixtures"
  mixtures.mkdir()
  for folder in sorted((songs / "test").iterdir()):
    shutil.copy(folder / "mixture.wav", mixtures / f"{folder.name}.wav")
  separated = tmp_path / "separated"
  assert cli.main(["separate", *map(str, sorted(mixtures.iterdir())), "--set", "method=mixture",
                   "--set", "chunk_seconds=0.5", "--config.overlap_seconds=0.1", "-o", str(separated),
                   "--quiet"]) == 0
  assert sorted(p.name for p in separated.iterdir()) == sorted(p.stem for p in mixtures.iterdir())
  out = tmp_path / "scores"
  code = cli.main(["score", str(separated), "--set", f"root={songs}", "--set", "window_seconds=0.5",
                   "--set", "hop_seconds=0.5", "--set", "method=floor", "--set", "report=false", "-o", str(out),
                   "--quiet"])
  assert code == 0, capsys.readouterr().err
  assert "2 scored" in capsys.readouterr().out
  assert len(list((out / "floor" / "test").glob("*.json"))) == 2


def test_export(tmp_path, capsys):
  path = tmp_path / "mixture.jaxexport"
  assert cli.main(["export", "--set", "method=mixture", "--set", "platforms=cpu", "--set", "chunk_seconds=0.5",
                   "--config.overlap_seconds=0.1", "-o", str(path)]) == 0
  assert "MB, cpu) and" in capsys.readouterr().out
  metadata = json.loads(pathlib.Path(f"{path}.json").read_text())
  assert (metadata["method"], metadata["platforms"], metadata["chunk_samples"], metadata["overlap_samples"]) == (
      "mixture", ["cpu"], 22050, 4410)
  assert "platforms" not in metadata["config"]  # a setting of the command, not of the separator


def test_evaluate(songs, tmp_path, capsys):
  workdir = tmp_path / "wd"
  code = cli.main(["evaluate", "--config", EVALUATE, "--workdir", str(workdir), "--set", "methods=mixture",
                   "--set", f"data.root={songs}", "--config.report.enabled=false", "--quiet"])
  assert code == 0, capsys.readouterr().err
  assert "2 evaluated, 0 skipped, 0 failed" in capsys.readouterr().out
  assert (workdir / "results.md").is_file() and not (workdir / "report").exists()


@pytest.mark.slow
def test_train(tmp_path, capsys):
  workdir = tmp_path / "run"
  assert cli.main(["train", "--config", TINY, "--workdir", str(workdir), "--set", "num_train_steps=2",
                   "--set", "eval_every=2", "--config.checkpoint_every=2", "--quiet"]) == 0
  config = json.loads((workdir / "config.json").read_text())
  assert (config["num_train_steps"], config["eval_every"], config["checkpoint_every"]) == (2, 2, 2)
  assert config["progress"] is False
  capsys.readouterr()


def test_train_py_and_evaluate_py_are_the_same_front_end():
  """The README's and CI's entry points take both forms; python -m mssjax takes them too."""
  for argv in (["train.py", "--config", "configs/unet_tiny.py", "--workdir", "w", "--config.data.batch_size=3"],
               ["-m", "mssjax", "train", "--config", "configs/unet_tiny.py", "--workdir", "w",
                "--set", "data.batch_size=3"]):
    out = subprocess.run([sys.executable, *argv, "--list-settings"], cwd=REPO, capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "data.batch_size=3" in out.stdout.splitlines()
  out = subprocess.run([sys.executable, "evaluate.py", "--config", "configs/evaluate.py", "--workdir", "w",
                        "--set", "methods=nope"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 2 and out.stderr.strip().splitlines() == [out.stderr.strip()], out.stderr[-2000:]
  assert "unknown method(s) ['nope']" in out.stderr
  assert not (REPO / "w").exists()


@pytest.mark.parametrize("error,message", [
    (MemoryError(), "error: out of memory (a smaller batch, chunk or model needs less)"),
    (RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 45.00GiB.\nmore"),
     "error: out of memory: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 45.00GiB. "
     "(a smaller batch, chunk or model needs less)"),
])
def test_running_out_of_memory_is_one_line(monkeypatch, capsys, error, message):
  def run(args, config):
    raise error
  monkeypatch.setitem(commands.COMMANDS, "separate", commands.COMMANDS["separate"]._replace(run=run))
  assert cli.main(["separate", "song.wav"]) == 2
  assert capsys.readouterr().err.splitlines() == [message]


def test_another_runtime_error_is_a_bug_and_keeps_its_traceback(monkeypatch):
  def run(args, config):
    raise RuntimeError("a bug")
  monkeypatch.setitem(commands.COMMANDS, "separate", commands.COMMANDS["separate"]._replace(run=run))
  with pytest.raises(RuntimeError, match="a bug"):
    cli.main(["separate", "song.wav"])

