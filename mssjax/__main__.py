"""``python -m mssjax COMMAND ...`` (and the ``mssjax`` script): the command line, `mssjax.cli`.

  python -m mssjax --help                    every command, one line each
  python -m mssjax COMMAND --help            the command's flags, and its settings with their defaults
"""

import sys

from mssjax.cli import main

__all__ = ["main"]

if __name__ == "__main__":
  sys.exit(main())
