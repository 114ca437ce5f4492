"""A small BS-RoFormer for the MUSDB18 7-second previews on a 2-core CPU (the architecture study's size).

Prepare the previews once (see ``configs/unet_previews.py``), then::

  python train.py --config configs/bs_roformer_previews.py --workdir workdirs/bs_roformer_previews

``configs/bs_roformer.py`` cut for the CPU with the data settings of
``configs/unet_previews.py``: a 2048-point STFT with a 1024-sample hop (as the
U-Net's), 32 bands (the reference's 62-band split with neighbouring bands
merged in pairs: 12 x 4, 6 x 8, 4 x 24, 4 x 48 and 4 x 96 bins, then 128 and
129), 32 features, two blocks, two heads of 16, mask MLPs of hidden width 32,
blocks rematerialised and no multi-resolution STFT term (memory: the time
attention's frames x frames matrices of every band, and that term's 50-sample
hop, each need gigabytes at batch 16 x 6 s). 4 targets: 1,404,252 parameters
(tests/test_model_bs_roformer.py checks it against the reference). Its step
time and what it reaches belong to the architecture study, not to this docstring.
"""

from configs import bs_roformer, unet_previews


def get_config():
  """The previews config."""
  config = bs_roformer.get_config()
  previews = unet_previews.get_config()
  for section in ("data", "eval", "separate"):
    config[section] = previews[section]
  for name in ("num_train_steps", "log_every", "eval_every", "checkpoint_every"):
    config[name] = previews[name]
  config.stft.n_fft, config.stft.hop_length = 2048, 1024
  config.loss.weights.multi_resolution_stft = 0.0  # its 50-sample hop alone needs gigabytes at batch 16 x 6 s
  config.model.freqs_per_bands = (4,) * 12 + (8,) * 6 + (24,) * 4 + (48,) * 4 + (96,) * 4 + (128, 129)
  config.model.dim = 32
  config.model.depth = 2
  config.model.heads = 2
  config.model.dim_head = 16
  config.model.mlp_expansion_factor = 1
  config.model.remat = True  # the time attention's [frames x frames] matrices of every band are the memory
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 100
  return config
