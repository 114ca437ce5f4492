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
  config = unet_tiny.tiny_run(bs_roformer.get_config())
  config.model.freqs_per_bands = (32,) * 7 + (33,)  # two widths: two batched products per stage
  config.model.dim = 16
  config.model.depth = 1
  config.model.heads = 2
  config.model.dim_head = 8
  config.model.mlp_expansion_factor = 1
  config.loss.weights.multi_resolution_stft = 0.0
  config.optim.warmup_steps = 1
  return config
