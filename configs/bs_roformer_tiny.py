"""A tiny BS-RoFormer trained a few steps on generated songs: for tests and smoke runs.

Run:
  python train.py --config configs/bs_roformer_tiny.py --workdir /tmp/bs_roformer_tiny

Needs no data (songs come from `mssjax.data.generate`). Eight bands of a
512-point STFT, 16 features, one block; four steps of batch 2 on
quarter-second chunks, in seconds on a CPU. It reaches nothing in particular:
it checks that the machinery works.
"""

from configs import bs_roformer, unet_tiny


def get_config():
  """The tiny config."""
  config = bs_roformer.get_config()
  tiny = unet_tiny.get_config()
  for section in ("data", "eval", "separate"):
    config[section] = tiny[section]
  for name in ("num_train_steps", "log_every", "eval_every", "checkpoint_every", "progress"):
    config[name] = tiny[name]
  config.stft.n_fft, config.stft.hop_length = 512, 128
  config.model.freqs_per_bands = (32,) * 7 + (33,)  # two widths: two batched products per stage
  config.model.dim = 16
  config.model.depth = 1
  config.model.heads = 2
  config.model.dim_head = 8
  config.model.mlp_expansion_factor = 1
  config.loss.weights.multi_resolution_stft = 0.0
  config.optim.warmup_steps = 1
  config.optim.learning_rate = 3e-3
  return config
