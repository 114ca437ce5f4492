"""Trains the U-Net + BiLSTM separator.

  python train.py --config configs/unet.py --workdir workdirs/unet [--config.data.root=PATH ...]

This file is intentionally kept short: every hyperparameter lives in the config
and the work is done by `mssjax.train_lib.train_and_evaluate`. Re-running with
the same workdir resumes from its latest checkpoint; a different config is
refused unless --allow_config_change. A bad setting is one ``error:`` line
(exit 2; tracebacks with --debug).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mssjax import compilation_cache, distributed, train_lib
from mssjax.errors import USER_ERRORS as ERRORS

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and config.json.")
flags.DEFINE_bool("multihost", False, "Join the other processes first (mssjax.distributed.initialize: "
                  "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, or none on Cloud TPU / "
                  "SLURM); every process runs the same command with the same shared workdir.")
flags.DEFINE_bool("allow_config_change", False, "Resume a workdir whose config.json differs from --config.")
flags.DEFINE_bool("debug", False, "Show tracebacks of errors.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO
  compilation_cache.enable()  # MSSJAX_COMPILATION_CACHE=0 turns it off
  try:
    if FLAGS.multihost:
      distributed.initialize()
    train_lib.train_and_evaluate(FLAGS.config, FLAGS.workdir, allow_config_change=FLAGS.allow_config_change)
  except (*ERRORS, FloatingPointError) as error:
    if FLAGS.debug:
      raise
    print(f"error: {error}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
