"""A tiny Conv-TasNet trained a few steps on generated songs: for tests and smoke runs.

Run:
  python train.py --config configs/conv_tasnet_tiny.py --workdir /tmp/conv_tasnet_tiny

Needs no data (songs come from `mssjax.data.generate`). N=16 filters of L=16
samples, B=8, H=16, X=2 blocks, R=1 repeat; four steps of batch 2 on
quarter-second chunks, compiles and trains in seconds on a CPU. It reaches
nothing in particular: it checks that the machinery works.
"""

from configs import conv_tasnet, unet_tiny


def get_config():
  """The tiny config."""
  config = unet_tiny.tiny_run(conv_tasnet.get_config())
  config.model.n_filters = 16
  config.model.filter_length = 16
  config.model.bottleneck_channels = 8
  config.model.hidden_channels = 16
  config.model.n_blocks = 2
  config.model.n_repeats = 1
  return config
