"""The command line of mssjax: one front end for every command.

::

  python -m mssjax COMMAND [PATH...] [-o OUT] [--config FILE] [--set KEY=VALUE ...] [--debug]

  python -m mssjax train --config configs/unet.py --workdir W --set data.root=/path/to/musdb18hq
  python -m mssjax evaluate --config configs/evaluate.py --workdir W --set methods=hpss_repet,irm2
  python -m mssjax separate song.mp3 --set method=hpss_repet --set hpss.kernel_size=31,17 -o separated/
  python -m mssjax score separated/ --set root=/path/to/musdb18 -o scores/
  python -m mssjax export --set method=hpss_repet --set chunk_seconds=10 -o portable/hpss.jaxexport
  python -m mssjax export-weights W -o unet.safetensors --set storage_dtype=float16
  python -m mssjax data generate -o songs/ --set n_train=8 --set stems=guitar,piano
  python -m mssjax data prepare|validate|build ...

The commands are the table `mssjax.commands.COMMANDS`; ``python -m mssjax
--help`` lists them, ``python -m mssjax COMMAND --help`` shows one's flags and
settings with their defaults.

**Settings.** Every setting of every command is a key of the command's config,
a locked `ml_collections.ConfigDict` (the house rule: the config is the only
knob). It starts from the command's defaults, or from ``--config FILE``: a
Python file whose ``get_config()`` returns the whole config (as
``configs/*.py``; train and evaluate need one). Then ``--set KEY=VALUE``
changes one key (repeatable, applied in order; nested keys are dotted,
``--set hpss.kernel_size=31,17``). A value is read as its default's type
(`mssjax.config.parse_assignments`): ``31,17`` for a tuple, ``true`` for a
bool, any text for a string. ``--config.KEY=VALUE`` (ml_collections'
config-flag form, which train.py and evaluate.py have always taken) is the
same as ``--set KEY=VALUE``. A misspelled key is an error listing the valid
ones. A few frequent settings have shorthand flags, each shown in ``--help``
as ``= --set KEY=VALUE`` (``--method NAME`` = ``--set method=NAME``).
``--list-settings`` prints the config a command would run with, as
``KEY=VALUE`` lines, and exits.

The flags that are not settings: positional paths (songs, folders),
``-o/--out``, ``--workdir``, ``--config``, ``--set``, ``--list-settings``,
``--quiet``, ``--debug``, and the run switches ``--multihost`` (train,
evaluate), ``--allow-config-change`` (train), ``--onnx FILE`` and
``--onnx-separator FILE`` (export's extra outputs), and separate's choice of outputs:
``--filename TEMPLATE``, ``--stems``, ``--two-stems``, ``--recursive``, ``--overwrite``.

**Errors.** An expected failure (a bad setting, path or file, a config file
that does not load, Ctrl-C or SIGTERM) ends the command with one line
``error: ...`` and exit status 2; ``--debug`` adds the traceback. SIGTERM is
raised as `Terminated`, a `KeyboardInterrupt`, so a killed command cleans up
as after Ctrl-C (``separate`` removes the stems it was writing). train.py, evaluate.py and
``python -m mssjax.data`` are this front end under other names.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import importlib.util
import pathlib
import signal
import sys
import threading
import traceback
from typing import Any, Iterator, NoReturn, Sequence

import ml_collections

from mssjax import config as config_lib
from mssjax.commands import COMMANDS, Command
from mssjax.errors import USER_ERRORS, ParameterError

ConfigDict = ml_collections.ConfigDict

ERRORS = (*USER_ERRORS, OSError, FloatingPointError, MemoryError)
"""What a command reports as one ``error:`` line (with Ctrl-C and XLA's out-of-memory): not a bug of mssjax."""

OUT_OF_MEMORY = ("RESOURCE_EXHAUSTED", "Out of memory")
"""How XLA's allocation failures (``jax.errors.JaxRuntimeError``, a RuntimeError) begin or say so."""


def _out_of_memory(error: BaseException) -> bool:
  return isinstance(error, RuntimeError) and any(word in str(error) for word in OUT_OF_MEMORY)

PROG = "python -m mssjax"


class Terminated(KeyboardInterrupt):
  """SIGTERM, raised where the program is (as Ctrl-C's `KeyboardInterrupt`), so ``finally`` blocks clean up."""


def _raise_terminated(signum: int, frame: Any) -> NoReturn:
  del signum, frame
  raise Terminated()


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
  """SIGTERM raises `Terminated` while the command runs (only the main thread can set a handler)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = signal.signal(signal.SIGTERM, _raise_terminated)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


def overview(prog: str = PROG) -> str:
  """The text of ``python -m mssjax --help``: one line per command."""
  width = max(map(len, COMMANDS)) + 2
  lines = [f"usage: {prog} COMMAND [PATH...] [-o OUT] [--config FILE] [--set KEY=VALUE ...] [--debug]", "",
           "commands:"]
  lines += [f"  {name:<{width}}{command.summary}" for name, command in COMMANDS.items()]
  lines += ["", "Every setting is a key of the command's config: --config FILE (a Python file whose get_config()",
            "returns it), then --set KEY=VALUE (repeatable; --config.KEY=VALUE is the same).",
            f"{prog} COMMAND --help lists the command's settings with their defaults."]
  return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
  """An argument parser whose errors are `ParameterError`s (one ``error:`` line, exit 2)."""

  def error(self, message: str) -> NoReturn:
    raise ParameterError(f"{message} (see {self.prog} --help)")


class _Assign(argparse.Action):
  """A shorthand flag: appends ``KEY=VALUE`` to ``--set``'s list, in command-line order."""

  def __init__(self, option_strings: Sequence[str], dest: str, *, key: str, value: str | None = None,
               **kwargs: Any) -> None:
    super().__init__(option_strings, dest, nargs=0 if value is not None else None, default=argparse.SUPPRESS,
                     **kwargs)
    self.key, self.value = key, value

  def __call__(self, parser, namespace, values, option_string=None):
    value = self.value if self.value is not None else values
    namespace.set = [*(getattr(namespace, "set", None) or []), f"{self.key}={value}"]


def _parser(command: Command, prog: str) -> _Parser:
  parser = _Parser(prog=prog, description=command.summary, add_help=False)
  command.arguments(parser)
  settings = parser.add_argument_group("settings (keys of the command's config; listed below with their defaults)")
  settings.add_argument("--config", metavar="FILE", help="a Python file whose get_config() returns the whole config")
  settings.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one setting (repeatable; --config.KEY=VALUE is the same)")
  for shorthand in command.shorthands:
    settings.add_argument(*shorthand.flags, dest="set", action=_Assign, key=shorthand.key, value=shorthand.value,
                          metavar=None if shorthand.value is not None else "VALUE",
                          help=f"= --set {shorthand.key}={shorthand.value or 'VALUE'}")
  other = parser.add_argument_group("other")
  other.add_argument("--list-settings", action="store_true", help="print the settings (after --config, --set) and exit")
  other.add_argument("--debug", action="store_true", help="show tracebacks of errors")
  other.add_argument("-h", "--help", action="store_true", help="show this help and exit")
  return parser


def config_dots(argv: Sequence[str]) -> list[str]:
  """``--config.KEY=VALUE`` (or ``--config.KEY VALUE``) -> ``--set KEY=VALUE``; the rest as it is."""
  out, words = [], iter(argv)
  for word in words:
    if word == "--":
      out += [word, *words]
      break
    if word.startswith("--config."):
      key, sep, value = word[len("--config."):].partition("=")
      if not sep:
        value = next(words, None)
        if value is None:
          raise ParameterError(f"{word} needs a value: {word}=VALUE")
      out += ["--set", f"{key}={value}"]
    else:
      out.append(word)
  return out


def load_config_file(path: str) -> ConfigDict:
  """``get_config()`` of a Python config file (as ``configs/*.py``, which import their siblings as ``configs.x``).

  Raises:
    ParameterError: a missing file, a file that fails to run (an exception,
      a syntax error, ``sys.exit``), no ``get_config()``, or one that fails or
      returns something other than a ConfigDict; the message names the file.
  """
  file = pathlib.Path(path)
  if not file.is_file():
    raise ParameterError(f"--config {path}: no such file")
  repo = str(file.resolve().parent.parent)
  if repo not in sys.path:
    sys.path.insert(0, repo)
  loader = importlib.machinery.SourceFileLoader(f"_mssjax_config_{file.stem}", str(file))
  module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
  try:
    loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
      raise ParameterError("defines no get_config()")
    config = module.get_config()
  except (Exception, SystemExit) as error:  # pylint: disable=broad-except  # whatever the user's file does wrong
    message = str(error) if isinstance(error, ParameterError) else f"{type(error).__name__}: {error}"
    raise ParameterError(f"--config {path}: {message}") from error
  if not isinstance(config, ConfigDict):
    raise ParameterError(f"--config {path}: get_config() returned a {type(config).__name__}, "
                         "not an ml_collections.ConfigDict")
  return config


def settings(name: str, command: Command, args: argparse.Namespace) -> ConfigDict:
  """The command's locked config: its defaults or ``--config``'s, then ``--set`` and the shorthands, in order."""
  file = load_config_file(args.config) if args.config else None
  base = command.settings(file, config_lib.parse_assignments(args.set))
  what = f"{name} settings"
  return config_lib.override(base, config_lib.parse_assignments(args.set, base, what=what), what=what)


def format_settings(config: ConfigDict) -> list[str]:
  """``KEY=VALUE`` lines that ``--set`` reads back (strings bare, tuples of plain items comma-separated)."""
  return [f"{key}={_text(value)}" for key, value in config_lib.flat_items(config)]


def _text(value: Any) -> str:
  if isinstance(value, str):
    return value
  if isinstance(value, tuple) and value and all(
      isinstance(v, (int, float)) or (isinstance(v, str) and v and "," not in v and v == v.strip()) for v in value):
    return ",".join(map(str, value))
  return repr(value)


def _help(name: str, command: Command, parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
  try:
    listing = [f"  {line}" for line in format_settings(settings(name, command, args))]
  except ParameterError as error:
    listing = [f"  ({error})"]
  return "\n".join([parser.format_help(), "settings and their defaults (change with --set KEY=VALUE):", *listing])


def _command(argv: list[str], prog: str) -> tuple[str, list[str]] | None:
  """The command's name and its arguments; None after printing the overview (for --help)."""
  words = 2 if argv[:1] == ["data"] else 1
  if len(argv) < words:
    raise ParameterError(f"'data' needs a command: {', '.join(n for n in COMMANDS if n.startswith('data '))}")
  if argv[words - 1] in ("-h", "--help"):
    print(overview(prog))
    return None
  name = " ".join(argv[:words])
  if name not in COMMANDS:
    raise ParameterError(f"unknown command {name!r}; commands: {', '.join(COMMANDS)} (see {prog} --help)")
  return name, argv[words:]


def _main(argv: list[str], prog: str, name: str | None) -> int:
  if name is None:
    while argv[:1] == ["--debug"]:
      argv = argv[1:]
    if not argv:
      print(overview(prog), file=sys.stderr)
      return 2
    found = _command(argv, prog)
    if found is None:
      return 0
    (name, argv), prog = found, f"{prog} {found[0]}"
  command = COMMANDS[name]
  parser = _parser(command, prog)
  args = parser.parse_args(config_dots(argv))
  if args.help:
    print(_help(name, command, parser, args))
    return 0
  config = settings(name, command, args)
  if args.list_settings:
    print("\n".join(format_settings(config)))
    return 0
  return command.run(args, config)


def main(argv: Sequence[str] | None = None, *, prog: str = PROG, command: str | None = None) -> int:
  """Runs one command; returns its exit status (2: an error, reported on one line).

  Args:
    argv: the arguments (default ``sys.argv[1:]``): ``COMMAND ARGS...``, or
      the command's ``ARGS...`` when ``command`` names it.
    prog: the program's name in messages.
    command: the command, for an entry point of one command (train.py:
      ``main(command="train", prog="python train.py")``).
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  debug = "--debug" in argv
  try:
    with _sigterm_raises():
      return _main(argv, prog, command)
  except (*ERRORS, KeyboardInterrupt, RuntimeError) as error:
    if isinstance(error, RuntimeError) and not _out_of_memory(error):
      raise
    if debug:
      traceback.print_exc()
    if isinstance(error, KeyboardInterrupt) and not str(error):  # training's says where its checkpoint is
      message = "terminated (SIGTERM)" if isinstance(error, Terminated) else "interrupted"
    elif isinstance(error, MemoryError) or _out_of_memory(error):
      first = (str(error).strip().splitlines() or [""])[0]
      message = f"out of memory{': ' + first if first else ''} (a smaller batch, chunk or model needs less)"
    else:
      message = str(error) or type(error).__name__
    print(f"error: {message}", file=sys.stderr)
    return 2
