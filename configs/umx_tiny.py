"""A tiny Open-Unmix trained a few steps on generated songs: for tests and smoke runs.

Run:
  python train.py --config configs/umx_tiny.py --workdir /tmp/umx_tiny

Needs no data (songs come from `mssjax.data.generate`). Four steps of batch 2 on
quarter-second chunks, hidden size 8, the 3 LSTM layers; compiles and trains in
seconds on a CPU. It reaches nothing in particular: it checks that the machinery works.
"""

from configs import umx, unet_tiny


def get_config():
  """The tiny config."""
  config = unet_tiny.tiny_run(umx.get_config())
  config.model.hidden_size = 8
  config.model.bandwidth_hz = 8_000
  config.model.stats_batches = 1
  config.separate.wiener_iterations = 0
  return config
