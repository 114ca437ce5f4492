"""Evaluates separators with BSSEval v4 and writes museval JSON, tables and an HTML report.

  python evaluate.py --config configs/evaluate.py --workdir DIR \
      [--config.methods=hpss_repet,nmf,irm2] [--config.data.root=PATH] [--config.data.subset=test] \
      [--config.separators.hpss_repet.hpss.kernel_size=31,17]

This file is intentionally kept short: the work is done by
`mssjax.evaluate_lib.evaluate`. Re-running with the same workdir skips finished tracks.
With --multihost every process runs the same command on a shared workdir (see
mssjax.distributed) and evaluates its share of the tracks.
A bad setting is one ``error:`` line (exit 2; tracebacks with --debug); the exit
status is 1 if any track failed.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mssjax import compilation_cache, distributed, evaluate_lib
from mssjax.errors import USER_ERRORS as ERRORS

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Evaluation config file (configs/evaluate.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Output folder for JSON scores, tables and the report.")
flags.DEFINE_bool("multihost", False, "Join the other processes first (mssjax.distributed.initialize: "
                  "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, or none on Cloud TPU / "
                  "SLURM); every process runs the same command with the same shared workdir, takes its "
                  "share of the tracks, and process 0 writes the tables and the report.")
flags.DEFINE_bool("debug", False, "Show tracebacks of errors.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  compilation_cache.enable()  # MSSJAX_COMPILATION_CACHE=0 turns it off
  try:
    if FLAGS.multihost:
      distributed.initialize()
    summary = evaluate_lib.evaluate(FLAGS.config, FLAGS.workdir)
  except ERRORS as error:
    if FLAGS.debug:
      raise
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(f"{summary['done']} evaluated, {summary['skipped']} skipped, {len(summary['failures'])} failed")
  for failure in summary["failures"]:
    print(f"  FAILED {failure['method']} / {failure['track']}: {failure['error']}")
  if summary["report"]:
    print(f"report: {summary['report']}")
  return 1 if summary["failures"] else 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
