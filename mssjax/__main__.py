"""Command line: ``python -m mssjax separate SONG... --method NAME -o OUT``.

Separates audio files into ``OUT/<song>/{vocals,drums,bass,other}.wav`` with
any separator of `mssjax.separators` (the classical recipes by name) or the
trained network (``--method unet --checkpoint WORKDIR``). Songs of any length,
sample rate and channel count are cut into overlapping chunks (see
`mssjax.separate`); a progress bar counts the chunks.
"""

import argparse
import sys

from mssjax.errors import AudioError, ParameterError


def _parser():
  parser = argparse.ArgumentParser(prog="python -m mssjax", description=__doc__.splitlines()[0])
  commands = parser.add_subparsers(dest="command", required=True)
  sep = commands.add_parser("separate", help="separate songs into vocals, drums, bass and other")
  sep.add_argument("songs", nargs="+", help="audio files (wav, flac, mp3, mp4, .stem.mp4, ...)")
  sep.add_argument("--method", default="unet", help="separator name (default unet)")
  sep.add_argument("--checkpoint", help="training workdir of the network (method unet)")
  sep.add_argument("-o", "--out", default="separated", help="output folder (default separated/)")
  sep.add_argument("--chunk-seconds", type=float, help="chunk length (default: the method's own)")
  sep.add_argument("--overlap-seconds", type=float, help="overlap of consecutive chunks")
  sep.add_argument("--wiener-iterations", type=int, help="multichannel Wiener EM iterations (method unet)")
  sep.add_argument("--quiet", action="store_true", help="no progress bar")
  return parser


def get_separator(method, *, checkpoint=None, wiener_iterations=None):
  """The separator ``method``: the network from ``checkpoint`` for "unet", else `mssjax.separators.get`."""
  if method == "unet":
    from mssjax.models import separator  # pylint: disable=import-outside-toplevel
    if not checkpoint:
      raise ParameterError("--method unet needs --checkpoint WORKDIR (a training workdir)")
    return separator.unet_separator({"checkpoint": checkpoint, "wiener_iterations": wiener_iterations})
  from mssjax import separators  # pylint: disable=import-outside-toplevel
  return separators.get(method)


def separate_command(args):
  """Runs ``separate``; returns the output folders."""
  from mssjax import separate  # pylint: disable=import-outside-toplevel
  separator = get_separator(args.method, checkpoint=args.checkpoint, wiener_iterations=args.wiener_iterations)
  if getattr(separator, "needs_references", False):
    raise ParameterError(f"method={args.method!r} is an oracle: it needs the reference stems, not a song")
  folders = separate.separate_files(separator, args.songs, args.out, chunk_seconds=args.chunk_seconds,
                                    overlap_seconds=args.overlap_seconds, show_progress=not args.quiet)
  for folder in folders:
    print(folder)
  return folders


def main(argv=None):
  """Entry point of ``python -m mssjax`` and the ``mssjax`` script."""
  args = _parser().parse_args(argv)
  try:
    if args.command == "separate":
      separate_command(args)
  except (ParameterError, AudioError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
