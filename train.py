"""Trains the U-Net + BiLSTM separator.

  python train.py --config configs/unet.py --workdir workdirs/unet [--config.data.root=PATH ...]

This file is intentionally kept short: every hyperparameter lives in the config
and the work is done by `mssjax.train_lib.train_and_evaluate`. Re-running with
the same workdir resumes from its latest checkpoint.
"""

from absl import app, flags, logging
import jax
from ml_collections import config_flags

from mssjax import train_lib

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and config.json.")
flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() first (one process per host; "
                  "every host runs the same command with the same shared workdir).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO
  if FLAGS.multihost:
    jax.distributed.initialize()
  train_lib.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  app.run(main)
