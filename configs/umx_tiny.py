"""A tiny Open-Unmix trained a few steps on generated songs: for tests and smoke runs.

Run:
  python train.py --config configs/umx_tiny.py --workdir /tmp/umx_tiny

Needs no data (songs come from `mssjax.data.generate`). Four steps of batch 2 on
quarter-second chunks, hidden size 8, the 3 LSTM layers; compiles and trains in
seconds on a CPU. It reaches nothing in particular: it checks that the machinery works.
"""

from configs import umx


def get_config():
  """The tiny config."""
  config = umx.get_config()
  config.num_train_steps = 4
  config.log_every = 1
  config.eval_every = 4
  config.checkpoint_every = 2
  config.progress = False
  config.stft.n_fft, config.stft.hop_length = 512, 128
  config.model.hidden_size = 8
  config.model.bandwidth_hz = 8_000
  config.model.stats_batches = 1
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
  config.separate.wiener_iterations = 0
  return config
