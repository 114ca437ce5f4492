"""A tiny Conv-TasNet trained a few steps on generated songs: for tests and smoke runs.

Run:
  python train.py --config configs/conv_tasnet_tiny.py --workdir /tmp/conv_tasnet_tiny

Needs no data (songs come from `mssjax.data.generate`). N=16 filters of L=16
samples, B=8, H=16, X=2 blocks, R=1 repeat; four steps of batch 2 on
quarter-second chunks, compiles and trains in seconds on a CPU. It reaches
nothing in particular: it checks that the machinery works.
"""

from configs import conv_tasnet


def get_config():
  """The tiny config."""
  config = conv_tasnet.get_config()
  config.num_train_steps = 4
  config.log_every = 1
  config.eval_every = 4
  config.checkpoint_every = 2
  config.progress = False
  config.stft.n_fft, config.stft.hop_length = 512, 128  # only the Wiener filter, if asked for, uses it
  config.model.n_filters = 16
  config.model.filter_length = 16
  config.model.bottleneck_channels = 8
  config.model.hidden_channels = 16
  config.model.n_blocks = 2
  config.model.n_repeats = 1
  config.optim.learning_rate = 3e-3
  config.data.name = "synthetic"
  config.data.root = ""
  config.data.chunk_seconds = 0.25
  config.data.batch_size = 2
  config.data.worker_count = 0
  config.eval.metric = "global_sdr"
  config.eval.max_tracks = 1
  config.eval.seconds = 0.5
  config.separate.chunk_seconds = 0.5
  config.separate.overlap_seconds = 0.1
  return config
