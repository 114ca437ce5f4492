"""The commands of ``python -m mssjax``: each one's settings, shorthand flags and work.

`COMMANDS` is the one table the front end (`mssjax.cli`) reads. Each
`Command` has

- ``settings``: its config before the command line's overrides: the defaults
  (taken from the library function or dataclass that owns them, so each has
  one default), or the ``--config`` file's config (train and evaluate have no
  defaults of their own: their configs are ``configs/*.py``);
- ``shorthands``: flags that stand for ``--set KEY=VALUE`` (`Shorthand`);
- ``arguments``: what is not a setting: positional paths, ``-o/--out``,
  ``--workdir`` and run switches (``--quiet``, ``--multihost``);
- ``run(args, config)``: the work, given the locked config; returns the exit
  status.

Everything heavy (jax, the training loop, TFDS) is imported inside the
functions, when a command needs it, so ``python -m mssjax --help`` and the
inference commands load no training code.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import pathlib
import sys
import warnings
from typing import Any, Callable, Mapping, NamedTuple

import ml_collections

from mssjax import config as config_lib
from mssjax import fileio
from mssjax.errors import ParameterError, check_positive_int

ConfigDict = ml_collections.ConfigDict

DEFAULT_METHOD = "unet"
"""The separator of ``separate`` and ``export`` when none is named: the pretrained network."""


class Shorthand(NamedTuple):
  """A flag that stands for ``--set KEY=VALUE``.

  Attributes:
    flags: its spellings (``("--chunk-seconds",)``).
    key: the setting it changes.
    value: for a switch (a flag without a value, ``--drop-short``), the value
      it sets (``"False"``); None: the flag takes the value (``--seed 3``).
  """
  flags: tuple[str, ...]
  key: str
  value: str | None = None


class Command(NamedTuple):
  """One command (see the module docstring)."""
  summary: str
  settings: Callable[[ConfigDict | None, Mapping[str, Any]], ConfigDict]
  run: Callable[[argparse.Namespace, ConfigDict], int]
  arguments: Callable[[argparse.ArgumentParser], None]
  shorthands: tuple[Shorthand, ...] = ()


def _shorthands(*specs: str | tuple[str, str, str]) -> tuple[Shorthand, ...]:
  """``"--chunk-seconds"`` -> the flag of key ``chunk_seconds``; ``(flag, key, value)`` -> a switch."""
  return tuple(Shorthand((spec,), spec[2:].replace("-", "_")) if isinstance(spec, str)
               else Shorthand((spec[0],), spec[1], spec[2]) for spec in specs)


def keyword_defaults(function: Callable[..., Any], *names: str) -> dict[str, Any]:
  """The defaults of ``function``'s keyword arguments ``names`` (the one place they are written)."""
  parameters = inspect.signature(function).parameters
  return {name: parameters[name].default for name in names}


def _fixed(name: str, default: Callable[[], ConfigDict]) -> Callable[[ConfigDict | None, Mapping[str, Any]], ConfigDict]:
  """The settings of a command whose keys never change: the defaults, or a ``--config`` file of the same keys."""
  def settings(file: ConfigDict | None, assignments: Mapping[str, Any]) -> ConfigDict:
    del assignments
    base = default()
    if file is None:
      return base
    config_lib.check_same_keys(file, base, what=f"{name} settings")
    return file
  return settings


def _from_file(example: str) -> Callable[[ConfigDict | None, Mapping[str, Any]], ConfigDict]:
  """The settings of a command whose config is an experiment file (``configs/*.py``)."""
  def settings(file: ConfigDict | None, assignments: Mapping[str, Any]) -> ConfigDict:
    del assignments
    if file is None:
      raise ParameterError(f"no --config FILE given (for example --config {example})")
    return file
  return settings


def _require(value: Any, what: str) -> Any:
  if value in (None, "", ()):
    raise ParameterError(f"{what} is not given")
  return value


def _out(parser: argparse.ArgumentParser, what: str, *aliases: str, default: str | None = None) -> None:
  parser.add_argument("-o", "--out", *aliases, default=default, metavar="OUT",
                      help=what + (f" (default {default})" if default else " (required)"))


def _quiet(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--quiet", action="store_true", help="no progress bar")


# --- separate, export, export-weights ----------------------------------------------------------------


def separator_settings(file: ConfigDict | None, assignments: Mapping[str, Any]) -> ConfigDict:
  """The config of the separator named by ``method``: ``--set method=``, else the file's, else the network's.

  A separator's config holds its name as ``method`` (`mssjax.separators.default_config`), so
  ``--config configs/hpss_repet.py`` chooses hpss_repet. Where no method is named, a
  ``--checkpoint`` or ``--set weights=`` names the network, whose architecture (``unet``, ``umx``...)
  is then the method; otherwise the default, the pretrained ``unet``.
  """
  from mssjax import separators  # pylint: disable=import-outside-toplevel  # jax loads only when needed
  from mssjax.separators import network  # pylint: disable=import-outside-toplevel
  method = assignments.get("method") or (file.method if file is not None and "method" in file else None)
  return separators.make_config(method or network.method_of(assignments, DEFAULT_METHOD), file)


def _separate_arguments(parser: argparse.ArgumentParser) -> None:
  from mssjax import song_files  # pylint: disable=import-outside-toplevel
  from mssjax.audio import writing  # pylint: disable=import-outside-toplevel  # the formats' one table
  parser.add_argument("songs", nargs="*", help="audio files (wav, flac, mp3, mp4, .stem.mp4, ...) and folders "
                      "(every audio file in them)")
  _out(parser, "output folder: OUT/<folder>/<song>/<stem>.<format>", default="separated")
  defaults = writing.DEFAULT_SETTINGS
  parser.add_argument("--format", choices=writing.FORMATS,
                      help=f"the stems' file format (default {writing.OutputFormat.format})")
  parser.add_argument("--bit-depth", choices=writing.BIT_DEPTHS,
                      help=f"wav: 16, 24 or 32f (float), default {defaults['wav']}; flac: 16 or 24, default "
                           f"{defaults['flac']}. 16 bit is TPDF-dithered; 16 and 24 bit clip samples beyond full "
                           "scale, with a warning that counts them")
  parser.add_argument("--bitrate", metavar="RATE",
                      help="mp3, ogg, m4a: bit rate such as 192k (default " +
                           ", ".join(f"{f} {defaults[f] // 1000}k" for f in ("mp3", "ogg", "m4a")) + ")")
  parser.add_argument("--filename", default=song_files.DEFAULT_FILENAME, metavar="TEMPLATE",
                      help="where each stem goes inside OUT (and below a song's folder relative to its input folder "
                      "unless the template places {folder}); fields {track}, {stem}, {ext}, {folder} "
                      f"(default {song_files.DEFAULT_FILENAME})")
  chosen = parser.add_mutually_exclusive_group()
  chosen.add_argument("--stems", metavar="STEM,...", help="write only these targets (default all)")
  chosen.add_argument("--two-stems", metavar="STEM",
                      help="write STEM and no_STEM (the sum of the other targets' estimates)")
  parser.add_argument("--recursive", action="store_true", help="search the subfolders of folders too")
  parser.add_argument("--overwrite", action="store_true",
                      help="separate again the songs whose stems all exist (skipped by default)")
  _quiet(parser)
  parser.add_argument("--batch-size", type=int, default=1, metavar="B",
                      help="chunks per compiled call, split over this process's devices; the stems are bit for bit "
                      "those of one chunk per call (default 1)")
  parser.add_argument("--multihost", action="store_true",
                      help="join the other processes first (mssjax.distributed.initialize: JAX_COORDINATOR_ADDRESS, "
                      "JAX_NUM_PROCESSES, JAX_PROCESS_ID, or none on Cloud TPU / SLURM); every process runs the same "
                      "command and separates its share of the songs (process p of P: songs p, p + P, ...)")


def _clipping_lines(message, category, filename, lineno, file=None, line=None, *, show=None):
  """`warnings.showwarning` for separate: a clipping warning is one ``warning: ...`` line above the progress bar."""
  from mssjax import audio  # pylint: disable=import-outside-toplevel
  if not issubclass(category, audio.ClippingWarning):
    return show(message, category, filename, lineno, file, line)
  import tqdm  # pylint: disable=import-outside-toplevel
  tqdm.tqdm.write(f"warning: {fileio.printable(str(message))}", file=sys.stderr)
  return None


def _separate(args: argparse.Namespace, config: ConfigDict) -> int:
  """Separates the songs; exit status 1 if any failed."""
  # pylint: disable-next=import-outside-toplevel
  from mssjax import audio, compilation_cache, distributed, fileio, separate, separators, song_files
  if not args.songs:
    raise ParameterError("no songs given: python -m mssjax separate SONG_OR_FOLDER... [-o OUT]")
  check_positive_int("--batch-size", args.batch_size)
  chosen = {"format": args.format, "bit_depth": args.bit_depth, "bitrate": args.bitrate}
  output_format = audio.OutputFormat(**{key: value for key, value in chosen.items() if value is not None})
  if config.method in separators.ORACLES:
    raise ParameterError(f"method={config.method!r} is an oracle: it needs the reference stems, not a song")
  compilation_cache.enable()
  if config.get("chunk_seconds") is not None and config.get("overlap_seconds") is not None:
    # before a network is loaded; a network fills in the settings left to it when it is built
    separate.check_chunking(chunk_seconds=config.chunk_seconds, overlap_seconds=config.overlap_seconds,
                            sample_rate=config.get("sample_rate") or 44100)
  song_files.check_filename(args.filename)
  separate.check_stems_writable(args.out, folder=True)
  if args.multihost:
    distributed.initialize()
  separator = separators.get(config.method, config)
  stems = [name.strip() for name in args.stems.split(",")] if args.stems is not None else None
  with warnings.catch_warnings():
    warnings.simplefilter("always", audio.ClippingWarning)  # one per song, even for two songs of one name
    warnings.showwarning = functools.partial(_clipping_lines, show=warnings.showwarning)
    outcomes = separate.separate_files(separator, args.songs, args.out, filename=args.filename, stems=stems,
                                       two_stems=args.two_stems, recursive=args.recursive, overwrite=args.overwrite,
                                       show_progress=not args.quiet, output_format=output_format,
                                       batch_size=args.batch_size, multihost=args.multihost)
  for outcome in outcomes:  # names that are not UTF-8 (bad\xff.wav) printed with the byte escaped
    if outcome.note and not outcome.skipped and not outcome.error:
      print(f"note: {fileio.printable(outcome.note)}", file=sys.stderr)
    if outcome.error:
      print(f"error: {fileio.printable(outcome.error)}", file=sys.stderr)
    elif not outcome.skipped:
      for written in (outcome.folder,) if outcome.folder is not None else outcome.files:
        print(fileio.printable(written))
  skipped = sum(o.skipped for o in outcomes)
  if skipped:
    print(f"skipped {skipped} finished song{'s' if skipped != 1 else ''} (--overwrite redoes them)", file=sys.stderr)
  failed = sum(o.error is not None for o in outcomes)
  if args.multihost:
    import jax  # pylint: disable=import-outside-toplevel
    print(f"process {jax.process_index()} of {jax.process_count()}: {len(outcomes) - failed - skipped} of "
          f"{len(outcomes)} songs separated", file=sys.stderr)
  if failed:
    print(f"{failed} of {len(outcomes)} songs failed", file=sys.stderr)
  return 1 if failed else 0


SEPARATOR_SHORTHANDS = _shorthands("--method", "--checkpoint", "--chunk-seconds", "--overlap-seconds",
                                   "--wiener-iterations")


def _export_settings(file: ConfigDict | None, assignments: Mapping[str, Any]) -> ConfigDict:
  """The separator's config and ``platforms``, the platforms its module is lowered for."""
  from mssjax.deploy import export  # pylint: disable=import-outside-toplevel
  platforms = export.DEFAULT_PLATFORMS
  if file is not None and "platforms" in file:
    platforms = file.platforms
    file = ConfigDict({key: value for key, value in file.items() if key != "platforms"})
  config = ConfigDict(separator_settings(file, assignments).to_dict())
  config.platforms = tuple(platforms)
  return config


def _export_arguments(parser: argparse.ArgumentParser) -> None:
  _out(parser, "the module file; its JSON is written to OUT.json")
  parser.add_argument("--onnx", metavar="FILE", help="also write the network's mask estimator as ONNX (unet)")
  parser.add_argument("--onnx-separator", metavar="FILE",
                      help="also write the network's whole chunk separator (STFT, masks, iSTFT) as ONNX (unet)")


def _export(args: argparse.Namespace, config: ConfigDict) -> int:
  """Writes the module and its JSON, then the ONNX files asked for."""
  from mssjax import separators  # pylint: disable=import-outside-toplevel
  from mssjax.deploy import export  # pylint: disable=import-outside-toplevel
  _require(args.out, "-o OUT (the module file)")
  platforms = export.check_platforms(list(config.platforms))
  if (args.onnx or args.onnx_separator) and config.method not in separators.network_names():
    raise ParameterError(f"--onnx and --onnx-separator convert the network; method={config.method!r} has none")
  for path in (args.out, f"{args.out}.json", args.onnx, args.onnx_separator):  # before the minutes of lowering
    if path:
      fileio.check_writable(path)
  method_config = ConfigDict({key: value for key, value in config.items() if key != "platforms"})
  result = export.export_separator(config.method, args.out, config=method_config, platforms=platforms)
  print(f"{result.module} ({result.module_bytes / 1e6:.2f} MB, {', '.join(platforms)}) and {result.metadata}")
  if args.onnx:
    onnx = export.export_masks_onnx(args.onnx, config=method_config)
    print(f"{onnx.path} ({onnx.size_bytes / 1e6:.2f} MB, magnitude {list(onnx.input_shape)} -> masks; "
          f"onnxruntime vs JAX: max abs difference {onnx.max_abs_difference:.2e})")
  if args.onnx_separator:
    onnx = export.export_separator_onnx(args.onnx_separator, config=method_config)
    print(f"{onnx.path} ({onnx.size_bytes / 1e6:.2f} MB, mixture {list(onnx.input_shape)} -> stems; "
          f"onnxruntime vs JAX: max abs difference {onnx.max_abs_difference:.2e})")
  return 0


def _export_weights_config() -> ConfigDict:
  from mssjax.separators import network  # pylint: disable=import-outside-toplevel
  return ConfigDict(keyword_defaults(network.export_weights, "which", "storage_dtype"))


def _export_weights_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("workdir", nargs="?", help="the training workdir")
  _out(parser, "the .safetensors file (mssjax/pretrained/unet.safetensors replaces the shipped network)")


def _export_weights(args: argparse.Namespace, config: ConfigDict) -> int:
  from mssjax.separators import network  # pylint: disable=import-outside-toplevel
  _require(args.workdir, "WORKDIR (the training workdir)")
  fileio.check_writable(_require(args.out, "-o OUT (the .safetensors file)"))
  path = network.export_weights(args.workdir, args.out, which=config.which, storage_dtype=config.storage_dtype)
  print(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")
  return 0


# --- train, evaluate -----------------------------------------------------------------------------------


def _multihost(parser: argparse.ArgumentParser, what: str) -> None:
  parser.add_argument("--multihost", action="store_true",
                      help="join the other processes first (mssjax.distributed.initialize: JAX_COORDINATOR_ADDRESS, "
                      "JAX_NUM_PROCESSES, JAX_PROCESS_ID, or none on Cloud TPU / SLURM); every process runs the "
                      f"same command with the same shared workdir{what}")


def _train_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--workdir", help="folder for checkpoints, metrics and config.json (required)")
  _multihost(parser, "")
  parser.add_argument("--allow-config-change", "--allow_config_change", action="store_true",
                      help="resume a workdir whose config.json differs from the config")


def _start(args: argparse.Namespace) -> None:
  """What train and evaluate do first: quiet logs, the compilation cache, the other processes."""
  from absl import logging  # pylint: disable=import-outside-toplevel
  from mssjax import compilation_cache, distributed  # pylint: disable=import-outside-toplevel
  _require(args.workdir, "--workdir FOLDER")
  logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO
  compilation_cache.enable()  # MSSJAX_COMPILATION_CACHE=0 turns it off
  if args.multihost:
    distributed.initialize()


def _train(args: argparse.Namespace, config: ConfigDict) -> int:
  from mssjax.training import loop as train_lib  # pylint: disable=import-outside-toplevel
  _start(args)
  train_lib.train_and_evaluate(config, args.workdir, allow_config_change=args.allow_config_change)
  return 0


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--workdir", help="output folder for JSON scores, tables and the report (required)")
  _multihost(parser, ", takes its share of the tracks, and process 0 writes the tables and the report")


def _evaluate(args: argparse.Namespace, config: ConfigDict) -> int:
  """Evaluates; exit status 1 if any track failed."""
  from mssjax.evaluation import loop as evaluate_lib  # pylint: disable=import-outside-toplevel
  _start(args)
  summary = evaluate_lib.evaluate(config, args.workdir)
  print(f"{summary['done']} evaluated, {summary['skipped']} skipped, {len(summary['failures'])} failed")
  for failure in summary["failures"]:
    print(f"  FAILED {failure['method']} / {failure['track']}: {failure['error']}")
  if summary["report"]:
    print(f"report: {summary['report']}")
  return 1 if summary["failures"] else 0


# --- score ---------------------------------------------------------------------------------------------


def _score_config() -> ConfigDict:
  from mssjax.evaluation import score  # pylint: disable=import-outside-toplevel
  defaults = keyword_defaults(score.score, "subset", "targets", "method", "window_seconds", "hop_seconds", "report",
                              "report_tracks", "jobs")
  # targets () (the default): every stem of the references (MUSDB18: vocals, drums, bass, other)
  return ConfigDict(dict(defaults, root="", targets=tuple(defaults["targets"] or ()), method=defaults["method"] or ""))


def _score_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("estimates", nargs="?", help="folder of <track>/<target>.wav (or <subset>/<track>/<target>.wav)")
  _out(parser, "output folder: museval JSON, tables, report")
  _quiet(parser)


def _score(args: argparse.Namespace, config: ConfigDict) -> int:
  """Scores the estimates; exit status 1 when any track failed."""
  from mssjax import compilation_cache  # pylint: disable=import-outside-toplevel
  from mssjax.evaluation import score
  from mssjax.metrics import store  # pylint: disable=import-outside-toplevel
  _require(args.estimates, "ESTIMATES (the folder of estimates)")
  _require(config.root, "root (the references: --root FOLDER)")
  _require(args.out, "-o OUT (the output folder)")
  compilation_cache.enable()
  summary = score.score(args.estimates, config.root, args.out, subset=config.subset, targets=config.targets or None,
                        method=config.method or None, window_seconds=config.window_seconds,
                        hop_seconds=config.hop_seconds, report=config.report, report_tracks=config.report_tracks,
                        jobs=config.jobs, progress=not args.quiet)
  counts = {s: sum(o.status == s for o in summary["outcomes"]) for s in ("scored", "done", "failed")}
  print(store.markdown_table(summary["rows"]))
  print(f"{counts['scored']} scored, {counts['done']} already scored, {counts['failed']} failed "
        f"in {summary['seconds']:.1f} s; results in {args.out}")
  for outcome in summary["outcomes"]:
    if outcome.status == "failed":
      print(f"FAILED {outcome.track}: {outcome.message}", file=sys.stderr)
  if summary["report"] is not None:
    print(f"report: {summary['report']}")
  return 1 if counts["failed"] else 0


# --- data prepare, validate, generate, build -----------------------------------------------------------

DATA_SHORTHANDS = _shorthands("--root", "--subset", "--layout", "--targets")


def _prepare_config() -> ConfigDict:
  from mssjax.data import prepare  # pylint: disable=import-outside-toplevel
  return ConfigDict(dict(root="", subset="", layout="auto", targets=(), **keyword_defaults(prepare.prepare, "seed"),
                         **dataclasses.asdict(prepare.Settings()), **keyword_defaults(prepare.prepare, "strict")))


def _prepare(args: argparse.Namespace, config: ConfigDict) -> int:
  """Prepares; exit status 0 when no track failed and the output validates, else 1."""
  from mssjax.data import prepare  # pylint: disable=import-outside-toplevel
  _require(config.root, "root (the input folder: --root FOLDER)")
  fileio.check_writable(_require(args.out, "-o OUT (the output folder)"), folder=True)
  settings = prepare.Settings(segment=config.segment or None, position=config.position, silence_db=config.silence_db,
                              active_db=config.active_db, keep_short=config.keep_short, subtype=config.subtype)
  summary = prepare.prepare(config.root, args.out, settings, subset=config.subset or None, layout=config.layout,
                            targets=config.targets or None, seed=config.seed, strict=config.strict,
                            progress=not args.quiet)
  print(prepare.format_summary(summary))
  print(f"report written to {pathlib.Path(args.out) / 'prepare_report.json'}")
  failed = any(r["status"] == "failed" for r in summary["tracks"])
  invalid = summary["validation"] is not None and not all(r["ok"] for r in summary["validation"])
  return 1 if failed or invalid else 0


def _validate_config() -> ConfigDict:
  from mssjax.data import validate  # pylint: disable=import-outside-toplevel
  thresholds = validate.Thresholds()
  return ConfigDict(dict(root="", subset="", layout="auto", targets=(), residual_db=thresholds.residual_db,
                         silent_db=thresholds.silent_db, only_problems=False))


def _validate(args: argparse.Namespace, config: ConfigDict) -> int:
  """Validates; exit status 0 when every track is ok, else 1."""
  from mssjax.data import validate  # pylint: disable=import-outside-toplevel
  _require(config.root, "root (the dataset folder: --root FOLDER)")
  thresholds = validate.Thresholds(residual_db=config.residual_db, silent_db=config.silent_db)
  results = validate.validate(config.root, subset=config.subset or None, layout=config.layout,
                              targets=config.targets or None, thresholds=thresholds, report=args.out,
                              progress=not args.quiet)
  print(validate.format_table(results, only_problems=config.only_problems))
  if args.out:
    print(f"report written to {args.out}")
  return 0 if all(r["ok"] for r in results) else 1


def _generate_config() -> ConfigDict:
  from mssjax.data import generate  # pylint: disable=import-outside-toplevel
  defaults = keyword_defaults(generate.write_songs, "n_valid", "seed", "stems", "mixture", "audio_format")
  # layout "auto": musdb18hq for MUSDB18's stems in wav with a mixture, else trackfolder
  return ConfigDict(dict(defaults, n_train=8, n_test=4, seconds=10.0, stems=tuple(defaults["stems"]), layout="auto"))


def _generate(args: argparse.Namespace, config: ConfigDict) -> int:
  from mssjax import TARGETS  # pylint: disable=import-outside-toplevel
  from mssjax.data import generate  # pylint: disable=import-outside-toplevel
  _require(args.out, "-o OUT (the output folder)")
  stems = tuple(config.stems)
  layout = config.layout
  if layout == "auto":
    layout = "musdb18hq" if set(stems) == set(TARGETS) and config.mixture and config.audio_format == "wav" \
        else "trackfolder"
  written = generate.write_songs(args.out, n_train=config.n_train, n_test=config.n_test, n_valid=config.n_valid,
                                 seconds=config.seconds, seed=config.seed, progress=not args.quiet, stems=stems,
                                 layout=layout, mixture=config.mixture, audio_format=config.audio_format)
  print(f"{len(written)} generated songs in {args.out} ({layout}, stems {', '.join(stems)})")
  return 0


def _build_config() -> ConfigDict:
  from mssjax.data import tfds_musdb  # pylint: disable=import-outside-toplevel
  return ConfigDict(dict(root="", builder_config=keyword_defaults(tfds_musdb.build, "config")["config"]))


def _build(args: argparse.Namespace, config: ConfigDict) -> int:
  from mssjax.data import tfds_musdb  # pylint: disable=import-outside-toplevel
  _require(config.root, "root (the MUSDB18 folder: --root FOLDER)")
  _require(args.out, "-o OUT (the TFDS data folder)")
  builder = tfds_musdb.build(config.root, args.out, config=config.builder_config)
  for name, split in builder.info.splits.items():
    print(f"{name}: {split.num_examples} examples")
  print(f"written to {builder.data_dir}")
  return 0


def _folder_out(*aliases: str, what: str = "output folder") -> Callable[[argparse.ArgumentParser], None]:
  def arguments(parser: argparse.ArgumentParser) -> None:
    _out(parser, what, *aliases)
    _quiet(parser)
  return arguments


def _validate_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("-o", "--out", "--report", metavar="FILE", help="write the results to this JSON file")
  _quiet(parser)


COMMANDS: dict[str, Command] = {
    "train": Command(
        "train the U-Net + BiLSTM separator (a training workdir that resumes)",
        _from_file("configs/unet.py"), _train, _train_arguments, _shorthands(("--quiet", "progress", "False"))),
    "evaluate": Command(
        "evaluate separators with BSSEval v4: museval JSON, tables, the HTML report",
        _from_file("configs/evaluate.py"), _evaluate, _evaluate_arguments,
        _shorthands(("--quiet", "progress", "False"))),
    "separate": Command(
        "separate songs into stems with any separator (default the pretrained network)",
        separator_settings, _separate, _separate_arguments, SEPARATOR_SHORTHANDS),
    "score": Command(
        "score a folder of estimates (<track>/<target>.wav) against MUSDB18 with BSSEval v4",
        _fixed("score", _score_config), _score, _score_arguments,
        _shorthands("--root", "--subset", "--targets", "--method", "--window-seconds", "--hop-seconds",
                    "--report-tracks", "--jobs", ("--no-report", "report", "False"))),
    "export": Command(
        "write a separator as a portable jax.export module (and the network as ONNX)",
        _export_settings, _export, _export_arguments, SEPARATOR_SHORTHANDS + _shorthands("--platforms")),
    "export-weights": Command(
        "write a training workdir's checkpoint as one weights file",
        _fixed("export-weights", _export_weights_config), _export_weights, _export_weights_arguments,
        _shorthands("--which", "--storage-dtype")),
    "data prepare": Command(
        "trim, cut one segment per track, remix; write wav track folders",
        _fixed("data prepare", _prepare_config), _prepare, _folder_out(),
        DATA_SHORTHANDS + _shorthands("--seed", "--segment", "--position", "--silence-db", "--active-db",
                                      ("--keep-short", "keep_short", "True"), ("--drop-short", "keep_short", "False"),
                                      "--subtype", ("--strict", "strict", "True"))),
    "data validate": Command(
        "check every track of a dataset (any layout), write a JSON report",
        _fixed("data validate", _validate_config), _validate, _validate_arguments,
        DATA_SHORTHANDS + _shorthands("--residual-db", "--silent-db", ("--only-problems", "only_problems", "True"))),
    "data generate": Command(
        "write generated multitrack songs (any stems, any layout)",
        _fixed("data generate", _generate_config), _generate, _folder_out(),
        _shorthands("--n-train", "--n-valid", "--n-test", "--seconds", "--seed", "--stems", "--layout",
                    ("--format", "audio_format", None), ("--no-mixture", "mixture", "False"))),
    "data build": Command(
        "write the musdb18 TFDS dataset (array_record)",
        _fixed("data build", _build_config), _build, _folder_out("--data-dir", what="the TFDS data folder"),
        _shorthands("--root", "--builder-config")),
}
"""Every command, by the words that name it (``python -m mssjax data prepare ...``)."""
