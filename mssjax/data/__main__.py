"""``python -m mssjax.data COMMAND ...`` = ``python -m mssjax data COMMAND ...`` (`mssjax.cli`).

    python -m mssjax data prepare --root IN -o OUT [--set segment=30 --set position=active] ...
    python -m mssjax data validate --root ROOT -o REPORT.json [--set layout=auto --set targets=a,b]
    python -m mssjax data generate -o OUT [--set n_train=8 --set n_test=4 --set seconds=10]
    python -m mssjax data build --root MUSDB -o TFDS_DIR [--set builder_config=hq_10s]

``python -m mssjax data COMMAND --help`` lists a command's settings with their defaults.
"""

from __future__ import annotations

import sys
from typing import Sequence

from mssjax import cli


def main(argv: Sequence[str] | None = None) -> int:
  """Runs ``python -m mssjax data ARGV...``; returns its exit status."""
  return cli.main(["data", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
  sys.exit(main())
