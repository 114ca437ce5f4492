"""``python -m mssjax.data COMMAND ...``: the dataset tools.

Each command is a module with ``add_arguments(parser)`` and ``run(args) -> int``
(the exit status), listed in `COMMANDS`; a module is imported only when its
command runs, so heavy ones (TFDS) cost nothing to the others. To add one,
add a line to `COMMANDS`. mssjax's own errors (a missing folder, an unreadable
file, a bad parameter) end a command with a one-line message and status 2.

    python -m mssjax.data prepare --root IN --out OUT [--segment 30] [--layout auto --targets a,b] ...
    python -m mssjax.data validate --root ROOT --report OUT.json [--layout auto --targets a,b]
    python -m mssjax.data generate --out OUT [--n-train 8 --n-test 4 --seconds 10]
                                   [--stems guitar,piano,speech --layout trackfolder]
    python -m mssjax.data build --root MUSDB --data-dir TFDS_DIR [--config hq_10s]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from mssjax.errors import USER_ERRORS

COMMANDS = {
    # name: (module, one-line help)
    "prepare": ("mssjax.data.prepare", "trim, cut one segment per track, remix; write wav track folders"),
    "validate": ("mssjax.data.validate", "check every track of a dataset (any layout), write a JSON report"),
    "generate": ("mssjax.data.generate", "write generated multitrack songs (any stems, any layout)"),
    "build": ("mssjax.data.tfds_musdb", "write the musdb18 TFDS dataset (array_record)"),
}


def _overview():
  lines = ["usage: python -m mssjax.data COMMAND [--help] ...", "", "commands:"]
  lines += [f"  {name:<10} {help_text}" for name, (_, help_text) in COMMANDS.items()]
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  """Parses ``argv`` (default ``sys.argv[1:]``), runs the command, returns its exit status."""
  argv = sys.argv[1:] if argv is None else list(argv)
  if not argv or argv[0] in ("-h", "--help"):
    print(_overview())
    return 0 if argv else 2
  if argv[0] not in COMMANDS:
    print(f"unknown command {argv[0]!r}\n\n{_overview()}", file=sys.stderr)
    return 2
  module_name, help_text = COMMANDS[argv[0]]
  module = importlib.import_module(module_name)
  parser = argparse.ArgumentParser(prog=f"python -m mssjax.data {argv[0]}", description=help_text)
  module.add_arguments(parser)
  args = parser.parse_args(argv[1:])
  try:
    return module.run(args)
  except USER_ERRORS as error:
    print(f"error: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
