"""A tiny U-Net trained a few steps on generated songs: for tests and smoke runs.

Run:
  python train.py --config configs/unet_tiny.py --workdir /tmp/unet_tiny

Needs no data (songs come from `mssjax.data.generate`). Four steps of batch 2 on
half-second chunks; compiles and trains in seconds on a CPU. It reaches nothing
in particular: it checks that the machinery works.
"""

from configs import unet


def get_config():
  """The tiny config."""
  config = tiny_run(unet.get_config())
  config.model.features = (4, 8)
  config.model.lstm_hidden = 8
  config.model.kernel_size = (3, 3)
  config.model.bandwidth_hz = 8_000
  config.model.stats_batches = 1
  config.optim.warmup_steps = 1
  return config


def tiny_run(config):
  """``config`` cut to a smoke run, for any architecture's tiny config: four steps of batch 2 on
  quarter-second chunks of generated songs, a 512-point STFT, validation on one half-second song."""
  config.num_train_steps = 4
  config.log_every = 1
  config.eval_every = 4
  config.checkpoint_every = 2
  config.progress = False
  config.stft.n_fft, config.stft.hop_length = 512, 128
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
