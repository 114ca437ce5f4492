"""Trains the U-Net + BiLSTM separator: ``python -m mssjax train`` under its old name.

  python train.py --config configs/unet.py --workdir workdirs/unet [--set data.root=PATH ...]

This file is intentionally kept short: every hyperparameter lives in the config
(``--set KEY=VALUE`` or ``--config.KEY=VALUE`` changes one; see `mssjax.cli`)
and the work is done by `mssjax.training.loop.train_and_evaluate`. Re-running with
the same workdir resumes from its latest checkpoint; a different config is
refused unless --allow-config-change. With --multihost every process runs the
same command on a shared workdir (`mssjax.distributed`). A bad setting is one
``error:`` line (exit 2; tracebacks with --debug).
"""

import sys

from mssjax import cli

if __name__ == "__main__":
  sys.exit(cli.main(command="train", prog="python train.py"))
