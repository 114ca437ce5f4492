"""Evaluates separators with BSSEval v4: ``python -m mssjax evaluate`` under its old name.

  python evaluate.py --config configs/evaluate.py --workdir DIR \
      [--set methods=hpss_repet,nmf,irm2] [--set data.root=PATH] [--set data.subset=test] \
      [--set separators.hpss_repet.hpss.kernel_size=31,17]

This file is intentionally kept short: every setting lives in the config
(``--set KEY=VALUE`` or ``--config.KEY=VALUE`` changes one; see `mssjax.cli`)
and the work is done by `mssjax.evaluation.loop.evaluate`, which writes museval
JSON, tables and an HTML report. Re-running with the same workdir skips
finished tracks. With --multihost every process runs the same command on a
shared workdir (`mssjax.distributed`) and evaluates its share of the tracks.
A bad setting is one ``error:`` line (exit 2; tracebacks with --debug); the
exit status is 1 if any track failed.
"""

import sys

from mssjax import cli

if __name__ == "__main__":
  sys.exit(cli.main(command="evaluate", prog="python evaluate.py"))
