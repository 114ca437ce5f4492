"""Command line: ``python -m mssjax separate SONG... [--method NAME] [-o OUT] [--set KEY=VALUE ...]``.

Separates audio files into ``OUT/<song>/{vocals,drums,bass,other}.wav`` with
any separator of `mssjax.separators`: the pretrained network by default
(``--method unet``), a training workdir (``--checkpoint WORKDIR``), or a
classical recipe by name. Every setting is a key of the method's config
(`mssjax.separators.default_config`), changed with ``--set KEY=VALUE``
(repeatable; ``--set hpss.kernel_size=31,17``) or read from a config file
(``--method-config configs/hpss_repet.py``, whose ``get_config()`` returns the
method's config); ``--list-settings`` prints the keys and their defaults.
``--checkpoint``, ``--chunk-seconds``, ``--overlap-seconds`` and
``--wiener-iterations`` are shorthands for the keys of the same names.
``python -m mssjax export-weights WORKDIR -o FILE`` writes a training
workdir's best checkpoint as one weights file (the format of the shipped
network, `mssjax.weights`). ``python -m mssjax export --method NAME -o OUT`` writes
a separator as a portable `jax.export` module and ``OUT.json``, which
`mssjax.exported` runs without mssjax (``--onnx FILE``: the network's masks as
ONNX; see `mssjax.export`).

Compiled programs are kept in JAX's persistent cache between runs
(`mssjax.compilation_cache`; ``MSSJAX_COMPILATION_CACHE=0`` turns it off).

Songs of any length, sample rate and channel count are cut into overlapping
chunks (see `mssjax.separate`); a progress bar counts the chunks. A file that
cannot be read or written is reported on one line and the others go on; the
exit status is 1 if any file failed, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
import traceback
from typing import Sequence

import ml_collections

from mssjax import config as config_lib
from mssjax.errors import USER_ERRORS, ParameterError

SHORTHANDS = {"checkpoint": "checkpoint", "chunk_seconds": "chunk_seconds",
              "overlap_seconds": "overlap_seconds", "wiener_iterations": "wiener_iterations"}


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m mssjax", description=__doc__.splitlines()[0])
  parser.add_argument("--debug", action="store_true", help="show tracebacks")
  commands = parser.add_subparsers(dest="command", required=True)
  sep = commands.add_parser("separate", help="separate songs into vocals, drums, bass and other")
  sep.add_argument("songs", nargs="*", help="audio files (wav, flac, mp3, mp4, .stem.mp4, ...)")
  sep.add_argument("--method", default="unet", help="separator name (default unet, the pretrained network)")
  sep.add_argument("-o", "--out", default="separated", help="output folder (default separated/)")
  sep.add_argument("--method-config", help="a config file whose get_config() returns the method's config")
  sep.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one key of the method's config (repeatable)")
  sep.add_argument("--list-settings", action="store_true", help="print the method's config and exit")
  sep.add_argument("--checkpoint", help="= --set checkpoint=WORKDIR (method unet: a training workdir)")
  sep.add_argument("--chunk-seconds", type=float, help="= --set chunk_seconds=S")
  sep.add_argument("--overlap-seconds", type=float, help="= --set overlap_seconds=S")
  sep.add_argument("--wiener-iterations", type=int, help="= --set wiener_iterations=N")
  sep.add_argument("--quiet", action="store_true", help="no progress bar")
  export = commands.add_parser("export-weights", help="write a training workdir's checkpoint as one weights file")
  export.add_argument("workdir", help="the training workdir")
  export.add_argument("-o", "--out", required=True, help="the .safetensors file (mssjax/pretrained/unet.safetensors "
                      "to replace the shipped network)")
  export.add_argument("--which", default="best", choices=("best", "latest"), help="checkpoint (default best)")
  export.add_argument("--storage-dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                      help="storage of floating-point parameters (default float32)")
  _add_export_parser(commands)
  from mssjax import score  # pylint: disable=import-outside-toplevel
  score.add_arguments(commands.add_parser(
      "score", help="score a folder of estimates (<track>/<target>.wav) against MUSDB18 with BSSEval v4"))
  return parser


def _add_export_parser(commands: argparse._SubParsersAction) -> None:
  """``export``: a separator as a `jax.export` module + JSON (`mssjax.export`)."""
  portable = commands.add_parser("export", help="write a separator as a portable jax.export module (and ONNX masks)")
  portable.add_argument("--method", default="unet", help="separator name (default unet, the pretrained network)")
  portable.add_argument("-o", "--out", required=True, help="the module file; its JSON is written to OUT.json")
  portable.add_argument("--method-config", help="a config file whose get_config() returns the method's config")
  portable.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one key of the method's config (repeatable), e.g. chunk_seconds=10")
  portable.add_argument("--platforms", default="cpu,cuda",
                        help="comma-separated platforms to lower for (default cpu,cuda; no GPU needed)")
  portable.add_argument("--onnx", metavar="FILE", help="also write the network's mask estimator as ONNX (unet)")
  portable.add_argument("--onnx-separator", metavar="FILE",
                        help="also write the network's whole chunk separator (STFT, masks, iSTFT) as ONNX (unet)")
  portable.set_defaults(**{flag: None for flag in SHORTHANDS})


def load_config_file(path: str) -> ml_collections.ConfigDict:
  """``get_config()`` of a Python config file (as ``configs/*.py``)."""
  file = pathlib.Path(path)
  if not file.is_file():
    raise ParameterError(f"--method-config={path!r}: no such file")
  repo = str(file.resolve().parent.parent)  # configs import their siblings as `configs.x`
  if repo not in sys.path:
    sys.path.insert(0, repo)
  spec = importlib.util.spec_from_file_location(f"_mssjax_config_{file.stem}", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ParameterError(f"--method-config={path!r} has no get_config()")
  return module.get_config()


def method_config(args: argparse.Namespace) -> ml_collections.ConfigDict:
  """The method's config from the command line: the file or the default, then ``--set`` and shorthands."""
  from mssjax import separators  # pylint: disable=import-outside-toplevel  # jax loads only past --help
  base = separators.make_config(args.method, load_config_file(args.method_config) if args.method_config else None)
  overrides = config_lib.parse_assignments(args.set)
  for flag, key in SHORTHANDS.items():
    if getattr(args, flag) is not None:
      overrides[key] = getattr(args, flag)
  return config_lib.override(base, overrides, what=f"{args.method} config")


def separate_command(args: argparse.Namespace) -> int:
  """Runs ``separate``; returns the exit status."""
  from mssjax import compilation_cache, separate, separators  # pylint: disable=import-outside-toplevel
  compilation_cache.enable()
  config = method_config(args)
  if args.list_settings:
    print(config)
    return 0
  if not args.songs:
    raise ParameterError("no songs given: python -m mssjax separate SONG... [-o OUT]")
  if args.method in separators.ORACLES:
    raise ParameterError(f"method={args.method!r} is an oracle: it needs the reference stems, not a song")
  if config.get("chunk_seconds") is not None and config.get("overlap_seconds") is not None:
    # before a network is loaded; a network fills in the settings left to it when it is built
    separate.check_chunking(chunk_seconds=config.chunk_seconds, overlap_seconds=config.overlap_seconds,
                            sample_rate=config.get("sample_rate") or 44100)
  separate.check_output_folder(args.out, ())
  separator = separators.get(args.method, config)
  outcomes = separate.separate_files(separator, args.songs, args.out, show_progress=not args.quiet)
  for outcome in outcomes:
    if outcome.note:
      print(f"note: {outcome.note}", file=sys.stderr)
    if outcome.error:
      print(f"error: {outcome.error}", file=sys.stderr)
    else:
      print(outcome.folder)
  failed = sum(o.error is not None for o in outcomes)
  if failed:
    print(f"{failed} of {len(outcomes)} songs failed", file=sys.stderr)
  return 1 if failed else 0


def export_command(args: argparse.Namespace) -> int:
  """Runs ``export-weights``."""
  from mssjax.separators import network  # pylint: disable=import-outside-toplevel
  path = network.export_weights(args.workdir, args.out, which=args.which, storage_dtype=args.storage_dtype)
  print(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")
  return 0


def export_separator_command(args: argparse.Namespace) -> int:
  """Runs ``export``: the module and its JSON, then the ONNX masks if asked for."""
  from mssjax import export  # pylint: disable=import-outside-toplevel
  platforms = export.check_platforms([p.strip() for p in args.platforms.split(",") if p.strip()])
  if (args.onnx or args.onnx_separator) and args.method != "unet":
    raise ParameterError(f"--onnx and --onnx-separator convert the network; method={args.method!r} has none")
  config = method_config(args)
  result = export.export_separator(args.method, args.out, config=config, platforms=platforms)
  print(f"{result.module} ({result.module_bytes / 1e6:.2f} MB, {', '.join(platforms)}) and {result.metadata}")
  if args.onnx:
    onnx = export.export_masks_onnx(args.onnx, config=config)
    print(f"{onnx.path} ({onnx.size_bytes / 1e6:.2f} MB, magnitude {list(onnx.input_shape)} -> masks; "
          f"onnxruntime vs JAX: max abs difference {onnx.max_abs_difference:.2e})")
  if args.onnx_separator:
    onnx = export.export_separator_onnx(args.onnx_separator, config=config)
    print(f"{onnx.path} ({onnx.size_bytes / 1e6:.2f} MB, mixture {list(onnx.input_shape)} -> stems; "
          f"onnxruntime vs JAX: max abs difference {onnx.max_abs_difference:.2e})")
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of ``python -m mssjax`` and the ``mssjax`` script."""
  args = _parser().parse_args(argv)
  try:
    if args.command == "separate":
      return separate_command(args)
    if args.command == "export-weights":
      return export_command(args)
    if args.command == "export":
      return export_separator_command(args)
    if args.command == "score":
      from mssjax import score  # pylint: disable=import-outside-toplevel
      return score.run(args)
  except USER_ERRORS as error:
    if args.debug:
      traceback.print_exc()
    print(f"error: {error}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())

